/*
 * test_open.c: version and status names, opening (options, migrations), NULL handles and
 * required arguments.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "c_test.h"

/* ---- version, status names, errors ---------------------------------------------------------- */

void test_version_and_names(void) {
    char expected[32];
    const char *names[8];
    int i, j;
    const char *unknown;

    CHECK(convstate_version_number() == CONVSTATE_VERSION_NUMBER);
    CHECK(CONVSTATE_VERSION_NUMBER ==
          CONVSTATE_VERSION_MAJOR * 10000 + CONVSTATE_VERSION_MINOR * 100 + CONVSTATE_VERSION_PATCH);
    snprintf(expected, sizeof expected, "%d.%d.%d", CONVSTATE_VERSION_MAJOR, CONVSTATE_VERSION_MINOR,
             CONVSTATE_VERSION_PATCH);
    CHECK(convstate_version_string() != NULL);
    CHECK(strcmp(convstate_version_string(), expected) == 0);
    CHECK(convstate_version_string() == convstate_version_string()); /* static storage */

    CHECK(CONVSTATE_OK == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_OK), "CONVSTATE_OK") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_NOT_FOUND), "CONVSTATE_NOT_FOUND") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_INVALID_ARGUMENT), "CONVSTATE_INVALID_ARGUMENT") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_CONFLICT), "CONVSTATE_CONFLICT") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_STORAGE_ERROR), "CONVSTATE_STORAGE_ERROR") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_OUTCOME_UNKNOWN), "CONVSTATE_OUTCOME_UNKNOWN") == 0);
    CHECK(strcmp(convstate_status_name(CONVSTATE_AGENT_ERROR), "CONVSTATE_AGENT_ERROR") == 0);
    /* INTERNAL_ERROR (out of memory, a foreign exception) cannot be provoked honestly: name only. */
    CHECK(strcmp(convstate_status_name(CONVSTATE_INTERNAL_ERROR), "CONVSTATE_INTERNAL_ERROR") == 0);
    for (i = 0; i < 8; ++i) names[i] = convstate_status_name((convstate_status)i);
    for (i = 0; i < 8; ++i)
        for (j = i + 1; j < 8; ++j) CHECK(strcmp(names[i], names[j]) != 0);
    unknown = convstate_status_name((convstate_status)99);
    CHECK(unknown != NULL);
    for (i = 0; i < 8; ++i) CHECK(unknown != NULL && strcmp(unknown, names[i]) != 0);
    CHECK(contains(unknown, "UNKNOWN"));

    /* Nothing has failed on this thread yet. */
    CHECK(convstate_last_error() != NULL);
    CHECK(convstate_last_error() != NULL && convstate_last_error()[0] == '\0');
    CHECK(convstate_last_error_field() != NULL);
    CHECK(convstate_last_error_field() != NULL && convstate_last_error_field()[0] == '\0');

    convstate_free(NULL); /* a no-op */
    convstate_db_close(NULL); /* a no-op */
    CHECK(1);
}

/* ---- opening, options, migrations ------------------------------------------------------------ */

typedef struct log_capture {
    int messages, opened, below_level;
} log_capture;

static void capture_log(void *context, int level, const char *message) {
    log_capture *cap = (log_capture *)context;
    ++cap->messages;
    if (level < CONVSTATE_LOG_INFO) ++cap->below_level;
    if (level == CONVSTATE_LOG_INFO && strstr(message, "opened the ") == message) ++cap->opened;
}

void test_open(void) {
    convstate_db_options init = CONVSTATE_DB_OPTIONS_INIT;
    convstate_db_options o = CONVSTATE_DB_OPTIONS_INIT;
    convstate_db *db = NULL;
    int version = -1;
    char *out = NULL;
    char id[128];

    CHECK(init.version == CONVSTATE_DB_OPTIONS_VERSION);
    CHECK(init.pool_size == 4);
    CHECK(init.busy_timeout_ms == 10000);
    CHECK(init.connect_timeout_ms == 10000);
    CHECK(init.migrate_on_open == 1);
    CHECK(init.max_retries == 8);
    CHECK(init.max_content_bytes == 0);
    CHECK(init.prepared_statements == 1);
    CHECK(init.pool_timeout_ms == 30000);
    CHECK(init.statement_timeout_ms == 30000);
    CHECK(init.max_user_id_bytes == 0 && init.max_id_bytes == 0 && init.max_title_bytes == 0);
    CHECK(init.max_metadata_bytes == 0 && init.max_tool_calls == 0 && init.max_batch == 0);

    CHECK_INVALID("out", convstate_db_open(g_url, NULL, NULL));
    CHECK_INVALID("url", convstate_db_open(NULL, NULL, &db));
    CHECK(db == NULL);
    CHECK_INVALID("url", convstate_db_open("", NULL, &db));
    CHECK_INVALID("url", convstate_db_open("oracle://localhost/x", NULL, &db));
    CHECK_INVALID("url", convstate_db_open("sqlite3://", NULL, &db));
    CHECK(db == NULL);

    o.version = 0;
    CHECK_INVALID("options.version", convstate_db_open(g_url, &o, &db));
    o.version = 99;
    CHECK_INVALID("options.version", convstate_db_open(g_url, &o, &db));
    o = init;
    o.pool_size = 0;
    CHECK_INVALID("pool_size", convstate_db_open(g_url, &o, &db));
    o = init;
    o.max_retries = -1;
    CHECK_INVALID("max_retries", convstate_db_open(g_url, &o, &db));
    o = init;
    o.statement_timeout_ms = 0;
    CHECK_INVALID("statement_timeout", convstate_db_open(g_url, &o, &db));
    CHECK(db == NULL);

    /* An unreachable server: STORAGE_ERROR, and the password never appears in the message. */
    o = init;
    o.connect_timeout_ms = 2000;
    o.max_retries = 0;
    CHECK_STATUS(CONVSTATE_STORAGE_ERROR, convstate_db_open("postgresql://u:secretpw@127.0.0.1:1/x", &o, &db));
    CHECK(db == NULL);
    CHECK(convstate_last_error()[0] != '\0');
    CHECK(!contains(convstate_last_error(), "secretpw"));
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    /* An SQLite file that cannot be created. */
    CHECK_STATUS(CONVSTATE_STORAGE_ERROR,
                 convstate_db_open("sqlite3:///nonexistent-convstate-dir/sub/x.db", &o, &db));
    CHECK(db == NULL);
    CHECK(strcmp(convstate_last_error_field(), "") == 0);

    /* Defaults (options NULL). */
    CHECK_OK(convstate_db_open(g_url, NULL, &db));
    CHECK(db != NULL);
    CHECK_OK(convstate_db_schema_version(db, &version));
    CHECK(version >= 1);
    convstate_db_close(db);
    db = NULL;

    /* Without migrate_on_open, then migrate explicitly (idempotent). */
    o = init;
    o.migrate_on_open = 0;
    o.pool_size = 1;
    CHECK_OK(convstate_db_open(g_url, &o, &db));
    CHECK_OK(convstate_db_migrate(db));
    CHECK_OK(convstate_db_migrate(db));
    version = -1;
    CHECK_OK(convstate_db_schema_version(db, &version));
    CHECK(version >= 1);
    CHECK_INVALID("db", convstate_db_migrate(NULL));
    CHECK_INVALID("db", convstate_db_schema_version(NULL, &version));
    CHECK_INVALID("out", convstate_db_schema_version(db, NULL));
    convstate_db_close(db);
    db = NULL;

    /* max_content_bytes is honoured. */
    o = init;
    o.max_content_bytes = 16;
    CHECK_OK(convstate_db_open(g_url, &o, &db));
    if (db && create_conversation(db, g_user, "limits", id)) {
        CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"content\":\"sixteen bytes ok\"}",
                                          NULL, NULL));
        CHECK_INVALID("content", convstate_message_append(
                                     db, g_user, id, "{\"role\":\"user\",\"content\":\"seventeen bytes!!\"}", NULL,
                                     &out));
        CHECK(out == NULL);
        CHECK(count_messages(db, g_user, id) == 1);
        CHECK_OK(convstate_conversation_delete(db, g_user, id));
    }
    convstate_db_close(db);
    db = NULL;

    /* Version 2: the other limits are honoured; prepared_statements 0 works the same. */
    o = init;
    o.max_title_bytes = 4;
    o.prepared_statements = 0;
    CHECK_OK(convstate_db_open(g_url, &o, &db));
    if (db) {
        convstate_stats stats = {99, 99, 99};
        CHECK_INVALID("title", convstate_conversation_create(db, g_user, "five!", NULL, &out));
        CHECK(out == NULL);
        CHECK_OK(convstate_db_stats(db, &stats));
        CHECK(stats.retries == 0);
        if (create_conversation(db, g_user, "lim", id)) {
            convstate_stats after = {0, 0, 0};
            CHECK_OK(convstate_db_stats(db, &after));
            CHECK(after.statements > stats.statements);
            CHECK(after.transactions >= stats.transactions + 1);
            CHECK_OK(convstate_conversation_delete(db, g_user, id));
        }
        CHECK_INVALID("db", convstate_db_stats(NULL, &stats));
        CHECK_INVALID("out", convstate_db_stats(db, NULL));
    }
    convstate_db_close(db);
    db = NULL;

    /* Version 3: the log callback receives what the library logs, from the open on; the
     * per-operation counters come as JSON. */
    {
        log_capture cap;
        memset(&cap, 0, sizeof cap);
        o = init;
        CHECK(init.log == NULL && init.log_context == NULL && init.log_level == CONVSTATE_LOG_INFO);
        o.log = capture_log;
        o.log_context = &cap;
        o.log_level = CONVSTATE_LOG_DEBUG + 7;
        CHECK_INVALID("log_level", convstate_db_open(g_url, &o, &db));
        o.log_level = CONVSTATE_LOG_INFO;
        CHECK_OK(convstate_db_open(g_url, &o, &db));
        CHECK(cap.messages >= 1 && cap.opened == 1 && cap.below_level == 0);
        if (db && create_conversation(db, g_user, "logged", id)) {
            CHECK_OK(convstate_db_stats_json(db, &out));
            CHECK(contains(out, "\"create\":{\"calls\":1,\"errors\":0,\"latency\":{\"count\":1,"));
            CHECK(contains(out, "\"pool\":{\"acquisitions\":"));
            FREE(out);
            CHECK_OK(convstate_conversation_delete(db, g_user, id));
        }
        CHECK_INVALID("out_json", convstate_db_stats_json(db, NULL));
    }
    convstate_db_close(db);
    db = NULL;

    /* A version-2 caller's struct ends at max_batch: the log fields after it are not read. */
    memset(&o, 0xff, sizeof o);
    memcpy(&o, &init, offsetof(convstate_db_options, log));
    o.version = 2;
    CHECK_OK(convstate_db_open(g_url, &o, &db));
    if (db && create_conversation(db, g_user, "v2", id)) CHECK_OK(convstate_conversation_delete(db, g_user, id));
    convstate_db_close(db);
    db = NULL;

    /* A version-1 caller's struct ends at max_content_bytes: nothing after it is read (here it
     * is garbage that version 2 would refuse: a statement timeout of 49 days). */
    memset(&o, 0xff, sizeof o);
    o.version = 1;
    o.pool_size = 2;
    o.busy_timeout_ms = 10000;
    o.connect_timeout_ms = 10000;
    o.migrate_on_open = 1;
    o.max_retries = 8;
    o.max_content_bytes = 0;
    CHECK_OK(convstate_db_open(g_url, &o, &db));
    if (db && create_conversation(db, g_user, "a title of more than four bytes", id))
        CHECK_OK(convstate_conversation_delete(db, g_user, id));
    convstate_db_close(db);
}

/* ---- NULL handles and required arguments --------------------------------------------------- */

void test_null_arguments(convstate_db *db) {
    char *out = NULL;
    int64_t n = 0;
    uint64_t u = 0;
    int calls = 0;
    const char *msg = "{\"role\":\"user\",\"content\":\"x\"}";
    const char *id = "00000000-0000-0000-0000-000000000000";

    CHECK_INVALID("db", convstate_conversation_create(NULL, g_user, NULL, NULL, &out));
    CHECK_INVALID("user_id", convstate_conversation_create(db, NULL, NULL, NULL, &out));
    CHECK_INVALID("user_id", convstate_conversation_create(db, "", NULL, NULL, &out));
    CHECK_INVALID("out_json", convstate_conversation_create(db, g_user, NULL, NULL, NULL));

    CHECK_INVALID("db", convstate_conversation_get(NULL, g_user, id, &out));
    CHECK_INVALID("user_id", convstate_conversation_get(db, NULL, id, &out));
    CHECK_INVALID("conversation_id", convstate_conversation_get(db, g_user, NULL, &out));
    CHECK_INVALID("conversation_id", convstate_conversation_get(db, g_user, "", &out));
    CHECK_INVALID("out_json", convstate_conversation_get(db, g_user, id, NULL));

    CHECK_INVALID("db", convstate_conversation_list(NULL, g_user, NULL, 10, &out));
    CHECK_INVALID("user_id", convstate_conversation_list(db, NULL, NULL, 10, &out));
    CHECK_INVALID("out_json", convstate_conversation_list(db, g_user, NULL, 10, NULL));

    CHECK_INVALID("db", convstate_conversation_rename(NULL, g_user, id, "t", &out));
    CHECK_INVALID("user_id", convstate_conversation_rename(db, NULL, id, "t", &out));
    CHECK_INVALID("conversation_id", convstate_conversation_rename(db, g_user, NULL, "t", &out));
    CHECK_INVALID("title", convstate_conversation_rename(db, g_user, id, NULL, &out));

    CHECK_INVALID("db", convstate_conversation_set_metadata(NULL, g_user, id, "{}", &out));
    CHECK_INVALID("user_id", convstate_conversation_set_metadata(db, NULL, id, "{}", &out));
    CHECK_INVALID("conversation_id", convstate_conversation_set_metadata(db, g_user, NULL, "{}", &out));
    CHECK_INVALID("metadata_json", convstate_conversation_set_metadata(db, g_user, id, NULL, &out));

    CHECK_INVALID("db", convstate_conversation_delete(NULL, g_user, id));
    CHECK_INVALID("user_id", convstate_conversation_delete(db, NULL, id));
    CHECK_INVALID("conversation_id", convstate_conversation_delete(db, g_user, NULL));

    CHECK_INVALID("db", convstate_conversation_delete_all(NULL, g_user, &u));
    CHECK_INVALID("user_id", convstate_conversation_delete_all(db, NULL, &u));

    CHECK_INVALID("db", convstate_message_append(NULL, g_user, id, msg, NULL, &out));
    CHECK_INVALID("user_id", convstate_message_append(db, NULL, id, msg, NULL, &out));
    CHECK_INVALID("conversation_id", convstate_message_append(db, g_user, NULL, msg, NULL, &out));
    CHECK_INVALID("message_json", convstate_message_append(db, g_user, id, NULL, NULL, &out));

    CHECK_INVALID("db", convstate_message_append_batch(NULL, g_user, id, "[{\"role\":\"user\"}]", NULL, &out));
    CHECK_INVALID("user_id", convstate_message_append_batch(db, NULL, id, "[{\"role\":\"user\"}]", NULL, &out));
    CHECK_INVALID("conversation_id",
                  convstate_message_append_batch(db, g_user, NULL, "[{\"role\":\"user\"}]", NULL, &out));
    CHECK_INVALID("messages_json", convstate_message_append_batch(db, g_user, id, NULL, NULL, &out));

    CHECK_INVALID("db", convstate_message_load_all(NULL, g_user, id, &out));
    CHECK_INVALID("user_id", convstate_message_load_all(db, NULL, id, &out));
    CHECK_INVALID("conversation_id", convstate_message_load_all(db, g_user, NULL, &out));
    CHECK_INVALID("out_json", convstate_message_load_all(db, g_user, id, NULL));

    CHECK_INVALID("db", convstate_message_load_last(NULL, g_user, id, 1, &out));
    CHECK_INVALID("user_id", convstate_message_load_last(db, NULL, id, 1, &out));
    CHECK_INVALID("conversation_id", convstate_message_load_last(db, g_user, NULL, 1, &out));
    CHECK_INVALID("out_json", convstate_message_load_last(db, g_user, id, 1, NULL));

    CHECK_INVALID("db", convstate_message_load_after(NULL, g_user, id, 0, 1, &out));
    CHECK_INVALID("user_id", convstate_message_load_after(db, NULL, id, 0, 1, &out));
    CHECK_INVALID("conversation_id", convstate_message_load_after(db, g_user, NULL, 0, 1, &out));
    CHECK_INVALID("out_json", convstate_message_load_after(db, g_user, id, 0, 1, NULL));

    CHECK_INVALID("db", convstate_message_load_before(NULL, g_user, id, 5, 1, &out));
    CHECK_INVALID("user_id", convstate_message_load_before(db, NULL, id, 5, 1, &out));
    CHECK_INVALID("conversation_id", convstate_message_load_before(db, g_user, NULL, 5, 1, &out));
    CHECK_INVALID("out_json", convstate_message_load_before(db, g_user, id, 5, 1, NULL));

    CHECK_INVALID("db", convstate_message_count(NULL, g_user, id, &n));
    CHECK_INVALID("user_id", convstate_message_count(db, NULL, id, &n));
    CHECK_INVALID("conversation_id", convstate_message_count(db, g_user, NULL, &n));
    CHECK_INVALID("out", convstate_message_count(db, g_user, id, NULL));

    CHECK_INVALID("db", convstate_window_load(NULL, g_user, id, NULL, &out));
    CHECK_INVALID("user_id", convstate_window_load(db, NULL, id, NULL, &out));
    CHECK_INVALID("conversation_id", convstate_window_load(db, g_user, NULL, NULL, &out));
    CHECK_INVALID("out_json", convstate_window_load(db, g_user, id, NULL, NULL));

    CHECK_INVALID("reply", convstate_reply_set_content(NULL, "x"));
    CHECK_INVALID("reply", convstate_reply_set_tool_calls(NULL, "[]"));
    CHECK_INVALID("reply", convstate_reply_add_message(NULL, msg));
    CHECK_INVALID("reply", convstate_reply_set_metadata(NULL, "{}"));
    CHECK_INVALID("reply", convstate_reply_set_error(NULL, "x"));

    CHECK_INVALID("db", convstate_turn(NULL, g_user, "hi", NULL, never_called_agent, &calls, &out));
    CHECK_INVALID("user_id", convstate_turn(db, NULL, "hi", NULL, never_called_agent, &calls, &out));
    CHECK_INVALID("user_id", convstate_turn(db, "", "hi", NULL, never_called_agent, &calls, &out));
    CHECK_INVALID("message", convstate_turn(db, g_user, NULL, NULL, never_called_agent, &calls, &out));
    CHECK_INVALID("agent", convstate_turn(db, g_user, "hi", NULL, NULL, &calls, &out));
    CHECK_INVALID("out_json", convstate_turn(db, g_user, "hi", NULL, never_called_agent, &calls, NULL));

    CHECK(out == NULL); /* nothing was returned by any failed call */
    CHECK(calls == 0);
}
