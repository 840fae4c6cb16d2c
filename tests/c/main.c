/*
 * convstate_c_test: the C API (bindings/c/include/convstate/convstate.h) exercised from pure C99.
 *
 *   convstate_c_test URL        URL: sqlite3:///path.db or postgresql://user@host:port/db
 *
 * Covers every function of the header and every status code it can produce (OUTCOME_UNKNOWN
 * on PostgreSQL only; INTERNAL_ERROR cannot be provoked honestly, so only its name is checked).
 * User ids are unique per run, so runs may share a database. Every returned string is freed
 * and every handle closed: the program is meant to run clean under valgrind.
 *
 * Prints "N passed, M failed" at the end; the exit status is nonzero on any failure.
 *
 * The areas live in test_*.c, what they share in c_test.h and c_test_support.c.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "c_test.h"

int main(int argc, char **argv) {
    convstate_db *db = NULL;
    convstate_db_options o = CONVSTATE_DB_OPTIONS_INIT;
    uint64_t n = 0;

    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: %s URL   (sqlite3:///path.db, postgresql://… or mysql://…)\n", argc > 0 ? argv[0] : "test");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr in order */
    g_url = argv[1];
    g_postgres = strncmp(g_url, "postgresql://", 13) == 0 || strncmp(g_url, "postgres://", 11) == 0;
    g_mariadb = strncmp(g_url, "mysql://", 8) == 0 || strncmp(g_url, "mariadb://", 10) == 0;
    snprintf(g_unique, sizeof g_unique, "%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(g_user, sizeof g_user, "c-user-%s", g_unique);
    snprintf(g_other, sizeof g_other, "c-other-%s", g_unique);
    snprintf(g_lister, sizeof g_lister, "c-lister-%s", g_unique);
    printf("convstate C API test on %s (%s), users *-%s\n", g_postgres ? "PostgreSQL" : g_mariadb ? "MariaDB" : "SQLite",
           convstate_version_string(), g_unique);

    test_version_and_names();
    test_open();

    o.pool_size = 4;
    if (convstate_db_open(g_url, &o, &db) != CONVSTATE_OK) {
        fprintf(stderr, "cannot open %s: %s\n", g_url, convstate_last_error());
        CHECK(!"the test database opens");
    } else {
        test_null_arguments(db);
        test_conversations(db);
        test_conversation_keys(db);
        test_forks(db);
        test_messages(db);
        test_truncate(db);
        test_summaries(db);
        test_windows(db);
        test_turns(db);
        test_turn_options_v2(db);
        test_split_turns(db);
        test_usage(db);
        test_content_parts(db);
        test_outcome_unknown(db);

        CHECK_OK(convstate_conversation_delete_all(db, g_user, &n));
        CHECK(n > 0);
        CHECK_OK(convstate_conversation_delete_all(db, g_other, NULL));
        CHECK_OK(convstate_conversation_delete_all(db, g_lister, NULL));
        convstate_db_close(db);
    }

    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
