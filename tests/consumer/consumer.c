/* The C API through the exported convstate::convstate_c target. */
#include <convstate/convstate.h>

#include <stdio.h>

int main(int argc, char **argv) {
    convstate_db *db = NULL;
    int64_t n = -1;
    char *json = NULL;
    if (argc != 2 || convstate_version_number() != CONVSTATE_VERSION_NUMBER) return 2;
    if (convstate_db_open(argv[1], NULL, &db) != CONVSTATE_OK ||
        convstate_conversation_create(db, "consumer-c", "t", NULL, &json) != CONVSTATE_OK) {
        fprintf(stderr, "%s\n", convstate_last_error());
        convstate_db_close(db);
        return 1;
    }
    printf("%s\n", json);
    convstate_free(json);
    if (convstate_message_count(db, "consumer-c", "missing", &n) != CONVSTATE_NOT_FOUND) return 1;
    convstate_db_close(db);
    return 0;
}
