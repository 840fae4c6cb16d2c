/*
 * test_conversations.c: create, get, rename, set_metadata, delete, list (paged), delete_all;
 * purge; external keys (get_or_create, get_by_key, turns by key).
 */
#include <stdio.h>
#include <string.h>

#include "c_test.h"

/* ---- conversations ------------------------------------------------------------------------- */

void test_conversations(convstate_db *db) {
    char *out = NULL;
    char id[128], got[256], cursor[256];
    char seen[5][128];
    char listed[5][128];
    int nlisted = 0, page, i, j, found;
    uint64_t deleted = 0;

    /* create / get */
    CHECK_OK(convstate_conversation_create(db, g_user, "First", "{\"topic\":\"c\",\"n\":1}", &out));
    CHECK(json_string_field(out, "id", id, sizeof id));
    CHECK(json_string_field(out, "user_id", got, sizeof got) && strcmp(got, g_user) == 0);
    CHECK(contains(out, "\"title\":\"First\""));
    CHECK(contains(out, "\"metadata\":{\"topic\":\"c\",\"n\":1}"));
    CHECK(json_int_field(out, "last_seq", -1) == 0);
    CHECK(json_int_field(out, "created_at_us", 0) > 0);
    FREE(out);

    CHECK_OK(convstate_conversation_get(db, g_user, id, &out));
    CHECK(json_string_field(out, "id", got, sizeof got) && strcmp(got, id) == 0);
    CHECK(contains(out, "\"title\":\"First\""));
    FREE(out);

    /* title and metadata may be NULL */
    CHECK_OK(convstate_conversation_create(db, g_user, NULL, NULL, &out));
    CHECK(contains(out, "\"title\":\"\""));
    CHECK(contains(out, "\"metadata\":{}"));
    FREE(out);

    /* bad metadata */
    CHECK_INVALID("metadata", convstate_conversation_create(db, g_user, "x", "[1,2]", &out));
    CHECK_INVALID("metadata", convstate_conversation_create(db, g_user, "x", "{not json", &out));
    CHECK(out == NULL);

    /* NOT_FOUND: a missing id, another user's id; the field is "" afterwards */
    CHECK_STATUS(CONVSTATE_NOT_FOUND,
                 convstate_conversation_get(db, g_user, "00000000-0000-0000-0000-000000000000", &out));
    CHECK(convstate_last_error()[0] != '\0');
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_get(db, g_other, id, &out));
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_rename(db, g_other, id, "stolen", &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_set_metadata(db, g_other, id, "{}", &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_delete(db, g_other, id));
    CHECK(out == NULL);

    /* rename */
    CHECK_OK(convstate_conversation_rename(db, g_user, id, "Renamed", &out));
    CHECK(contains(out, "\"title\":\"Renamed\""));
    FREE(out);
    CHECK_OK(convstate_conversation_rename(db, g_user, id, "Renamed \"twice\"", NULL)); /* out may be NULL */
    CHECK_OK(convstate_conversation_get(db, g_user, id, &out));
    CHECK(contains(out, "\"title\":\"Renamed \\\"twice\\\"\""));
    FREE(out);

    /* set_metadata */
    CHECK_OK(convstate_conversation_set_metadata(db, g_user, id, "{ \"k\" : \"v\" }", &out));
    CHECK(contains(out, "\"metadata\":{\"k\":\"v\"}"));
    FREE(out);
    CHECK_OK(convstate_conversation_set_metadata(db, g_user, id, "{\"k\":2}", NULL));
    CHECK_INVALID("metadata", convstate_conversation_set_metadata(db, g_user, id, "[]", &out));
    CHECK_INVALID("metadata", convstate_conversation_set_metadata(db, g_user, id, "nope", &out));
    CHECK(out == NULL);
    CHECK_OK(convstate_conversation_get(db, g_user, id, &out));
    CHECK(contains(out, "\"metadata\":{\"k\":2}"));
    FREE(out);

    /* delete */
    CHECK_OK(convstate_conversation_delete(db, g_user, id));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_get(db, g_user, id, &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_delete(db, g_user, id));

    /* list: five conversations, pages of two */
    for (i = 0; i < 5; ++i) {
        char title[32];
        snprintf(title, sizeof title, "list %d", i);
        if (!create_conversation(db, g_lister, title, seen[i])) return;
    }
    CHECK_INVALID("limit", convstate_conversation_list(db, g_lister, NULL, 0, &out));
    CHECK_INVALID("limit", convstate_conversation_list(db, g_lister, NULL, 101, &out));
    CHECK_INVALID("cursor", convstate_conversation_list(db, g_lister, "garbage", 2, &out));
    CHECK(out == NULL);
    cursor[0] = '\0';
    for (page = 0; page < 3; ++page) {
        const char *p;
        int items;
        /* the first page: "" and NULL both mean "from the start" */
        CHECK_OK(convstate_conversation_list(db, g_lister, page == 0 ? "" : cursor, 2, &out));
        items = count_of(out, "\"user_id\":");
        CHECK(items == (page < 2 ? 2 : 1));
        for (p = out ? strstr(out, "\"id\":\"") : NULL; p && nlisted < 5; p = strstr(p + 1, "\"id\":\""))
            if (json_string_field(p, "id", listed[nlisted], sizeof listed[nlisted])) ++nlisted;
        if (page < 2) {
            CHECK(json_string_field(out, "next_cursor", cursor, sizeof cursor));
            CHECK(cursor[0] != '\0');
        } else {
            CHECK(contains(out, "\"next_cursor\":null"));
        }
        FREE(out);
    }
    CHECK(nlisted == 5);
    for (i = 0; i < 5; ++i) {
        found = 0;
        for (j = 0; j < nlisted; ++j) found += strcmp(seen[i], listed[j]) == 0;
        CHECK(found == 1);
    }
    CHECK_OK(convstate_conversation_list(db, g_lister, NULL, 100, &out));
    CHECK(count_of(out, "\"user_id\":") == 5);
    CHECK(contains(out, "\"next_cursor\":null"));
    /* most recently updated first: the last created comes before the first */
    CHECK(position_of(out, seen[4]) >= 0 && position_of(out, seen[4]) < position_of(out, seen[0]));
    FREE(out);
    CHECK_OK(convstate_conversation_list(db, g_other, NULL, 10, &out));
    CHECK(contains(out, "\"items\":[]"));
    FREE(out);

    /* purge (the lister's only): a dry run counts, then the same goes; out-pointers may be NULL */
    {
        uint64_t convs = 99, msgs = 99;
        const int64_t future = INT64_C(1) << 62;
        CHECK_OK(convstate_conversations_purge(db, 0, g_lister, 0, 0, &convs, &msgs));
        CHECK(convs == 0 && msgs == 0); /* nothing is older than the epoch */
        CHECK_OK(convstate_conversations_purge(db, future, g_lister, 2, 1, &convs, &msgs));
        CHECK(convs == 5 && msgs == 0);
        CHECK_OK(convstate_conversation_list(db, g_lister, NULL, 100, &out));
        CHECK(count_of(out, "\"user_id\":") == 5);
        FREE(out);
        CHECK_INVALID("older_than", convstate_conversations_purge(db, -1, g_lister, 0, 0, NULL, NULL));
        CHECK_INVALID("batch_size", convstate_conversations_purge(db, future, g_lister, 10001, 0, NULL, NULL));
        CHECK_INVALID("user_id", convstate_conversations_purge(db, future, "", 0, 0, NULL, NULL));
        CHECK_OK(convstate_conversations_purge(db, future, g_lister, 2, 0, NULL, &msgs));
        CHECK(msgs == 0);
        CHECK_OK(convstate_conversation_list(db, g_lister, NULL, 100, &out));
        CHECK(contains(out, "\"items\":[]"));
        FREE(out);
        for (i = 0; i < 5; ++i) {
            CHECK_OK(convstate_conversation_create(db, g_lister, "again", NULL, &out));
            FREE(out);
        }
    }

    /* delete_all: the count, then nothing left; out_count may be NULL */
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, &deleted));
    CHECK(deleted == 5);
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, NULL));
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, &deleted));
    CHECK(deleted == 0);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_get(db, g_lister, seen[0], &out));
    CHECK(out == NULL);
}

/* Conversations addressed by the host's own key: get-or-create, get_by_key, turns by key. */
static int keyed_agent(void *context, const char *history_json, const char *user_id, const char *conversation_id,
                       convstate_reply *reply) {
    (void)context, (void)history_json, (void)user_id, (void)conversation_id;
    return convstate_reply_set_content(reply, "ok");
}

void test_conversation_keys(convstate_db *db) {
    char *out = NULL, id[128], again[128], key[128];
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
    snprintf(key, sizeof key, "thread-%s", g_unique);
    CHECK_OK(convstate_conversation_get_or_create(db, g_user, key, "keyed", NULL, &out));
    CHECK(contains(out, "\"created\":true"));
    CHECK(contains(out, "\"external_key\":\"thread-"));
    CHECK(json_string_field(out, "id", id, sizeof id));
    FREE(out);
    CHECK_OK(convstate_conversation_get_or_create(db, g_user, key, NULL, NULL, &out));
    CHECK(contains(out, "\"created\":false"));
    CHECK(json_string_field(out, "id", again, sizeof again) && strcmp(id, again) == 0);
    FREE(out);
    CHECK_OK(convstate_conversation_get_by_key(db, g_user, key, &out));
    CHECK(json_string_field(out, "id", again, sizeof again) && strcmp(id, again) == 0);
    FREE(out);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_get_by_key(db, g_other, key, &out));
    CHECK_INVALID("external_key", convstate_conversation_get_or_create(db, g_user, NULL, NULL, NULL, &out));
    CHECK_INVALID("external_key", convstate_conversation_get_by_key(db, g_user, "bad\tkey", &out));
    CHECK(out == NULL);

    /* A turn by key continues it; with conversation_id as well it is refused. */
    o.conversation_key = key;
    CHECK_OK(convstate_turn(db, g_user, "by key", &o, keyed_agent, NULL, &out));
    CHECK(contains(out, "\"created\":false"));
    CHECK(json_string_field(out, "conversation_id", again, sizeof again) && strcmp(id, again) == 0);
    FREE(out);
    o.conversation_id = id;
    CHECK_INVALID("conversation_key", convstate_turn(db, g_user, "both", &o, keyed_agent, NULL, &out));
    CHECK(count_messages(db, g_user, id) == 2);
}

/* Forks: a copy of a prefix, listed by its source; a regenerated reply in a fork. */
void test_forks(convstate_db *db) {
    char *out = NULL, src[128], fork_id[128];
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
    if (!create_conversation(db, g_user, "fork source", src)) return;
    CHECK_OK(convstate_message_append_batch(db, g_user, src,
                                            "[{\"role\":\"user\",\"content\":\"q1\"},{\"role\":\"assistant\",\"content\":\"a1\"},"
                                            "{\"role\":\"user\",\"content\":\"q2\"},{\"role\":\"assistant\",\"content\":\"a2\"}]",
                                            NULL, NULL));
    CHECK_INVALID("at_seq", convstate_conversation_fork(db, g_user, src, 9, NULL, NULL, NULL, &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_fork(db, g_other, src, 1, NULL, NULL, NULL, &out));
    CHECK(out == NULL);
    CHECK_OK(convstate_conversation_fork(db, g_user, src, 3, "edited", NULL, NULL, &out));
    CHECK(contains(out, "\"title\":\"edited\"") && contains(out, "\"last_seq\":3"));
    CHECK(contains(out, "\"forked_from\":{\"conversation_id\":\"") && contains(out, "\"seq\":3}"));
    CHECK(json_string_field(out, "id", fork_id, sizeof fork_id));
    FREE(out);
    CHECK(count_messages(db, g_user, fork_id) == 3);
    CHECK_OK(convstate_conversation_forks(db, g_user, src, &out));
    CHECK(contains(out, fork_id));
    FREE(out);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_forks(db, g_other, src, &out));

    /* regenerate: answer q2 again in the fork */
    o.conversation_id = fork_id;
    o.regenerate = 1;
    CHECK_OK(convstate_turn(db, g_user, "", &o, keyed_agent, NULL, &out));
    CHECK(json_int_field(out, "user_seq", -1) == 3 && json_int_field(out, "reply_seq", -1) == 4);
    FREE(out);
    CHECK_INVALID("regenerate", convstate_turn(db, g_user, "", &o, keyed_agent, NULL, &out));
    CHECK(count_messages(db, g_user, fork_id) == 4);
    CHECK(count_messages(db, g_user, src) == 4);
}
