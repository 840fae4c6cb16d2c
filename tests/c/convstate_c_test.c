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
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <convstate/convstate.h>

/* ---- a tiny check harness ------------------------------------------------------------------ */

static int g_passed = 0;
static int g_failed = 0;

static void check_at(int ok, const char *what, const char *file, int line) {
    if (ok) {
        ++g_passed;
        return;
    }
    ++g_failed;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
}

static void check_status_at(convstate_status got, convstate_status want, const char *expr, const char *file,
                            int line) {
    if (got == want) {
        ++g_passed;
        return;
    }
    ++g_failed;
    fprintf(stderr, "%s:%d: %s\n    returned %s, expected %s (last error: \"%s\", field: \"%s\")\n", file, line,
            expr, convstate_status_name(got), convstate_status_name(want), convstate_last_error(),
            convstate_last_error_field());
}

/* INVALID_ARGUMENT with the given field, a message, and the field readable afterwards. */
static void check_invalid_at(convstate_status got, const char *field, const char *expr, const char *file, int line) {
    const char *got_field = convstate_last_error_field();
    const char *message = convstate_last_error();
    if (got == CONVSTATE_INVALID_ARGUMENT && got_field != NULL && strcmp(got_field, field) == 0 && message != NULL &&
        message[0] != '\0') {
        ++g_passed;
        return;
    }
    ++g_failed;
    fprintf(stderr, "%s:%d: %s\n    returned %s with field \"%s\" (last error: \"%s\"), expected "
                    "CONVSTATE_INVALID_ARGUMENT with field \"%s\"\n",
            file, line, expr, convstate_status_name(got), got_field ? got_field : "(NULL)",
            message ? message : "(NULL)", field);
}

#define CHECK(cond) check_at((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_STATUS(want, call) check_status_at((call), (want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) check_status_at((call), CONVSTATE_OK, #call, __FILE__, __LINE__)
#define CHECK_INVALID(field, call) check_invalid_at((call), (field), #call, __FILE__, __LINE__)
#define FREE(p) (convstate_free(p), (p) = NULL)

/* ---- minimal JSON probing (no JSON library: substring checks on what the library writes) ---- */

static int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

static int count_of(const char *haystack, const char *needle) {
    int n = 0;
    size_t len = strlen(needle);
    const char *p = haystack;
    if (!p) return -1;
    while ((p = strstr(p, needle)) != NULL) {
        ++n;
        p += len;
    }
    return n;
}

/* Messages in a JSON array of stored messages (each stored message has exactly one "seq"). */
static int message_count(const char *json) { return count_of(json, "\"seq\":"); }

/* Whether the JSON holds "seq":n (followed by , or }). */
static int has_seq(const char *json, long long n) {
    char a[48], b[48];
    snprintf(a, sizeof a, "\"seq\":%lld,", n);
    snprintf(b, sizeof b, "\"seq\":%lld}", n);
    return contains(json, a) || contains(json, b);
}

/* Copies the string value of the first "key":"…" into out (raw, escapes kept). 1 on success. */
static int json_string_field(const char *json, const char *key, char *out, size_t size) {
    char pattern[64];
    const char *p, *end;
    size_t n;
    if (!json || size == 0) return 0;
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    p = strstr(json, pattern);
    if (!p) return 0;
    p += strlen(pattern);
    for (end = p; *end && *end != '"'; ++end)
        if (*end == '\\' && end[1]) ++end;
    if (*end != '"') return 0;
    n = (size_t)(end - p);
    if (n >= size) return 0;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* The integer value of the first "key":N; `fallback` when absent. */
static long long json_int_field(const char *json, const char *key, long long fallback) {
    char pattern[64];
    const char *p;
    char *end;
    long long v;
    if (!json) return fallback;
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    p = strstr(json, pattern);
    if (!p) return fallback;
    p += strlen(pattern);
    v = strtoll(p, &end, 10);
    return end == p ? fallback : v;
}

/* Position of needle in haystack, or -1. */
static long position_of(const char *haystack, const char *needle) {
    const char *p = haystack ? strstr(haystack, needle) : NULL;
    return p ? (long)(p - haystack) : -1L;
}

/* ---- shared state ----------------------------------------------------------------------------- */

static char g_unique[64];   /* pid-time, unique per run */
static char g_user[96];     /* the main user */
static char g_other[96];    /* another user, who must never see g_user's data */
static char g_lister[96];   /* a user with exactly five conversations */
static const char *g_url;
static int g_postgres;

/* Creates a conversation of `user` and copies its id into id (size 128). */
static int create_conversation(convstate_db *db, const char *user, const char *title, char *id) {
    char *out = NULL;
    int ok;
    CHECK_OK(convstate_conversation_create(db, user, title, NULL, &out));
    ok = json_string_field(out, "id", id, 128);
    CHECK(ok);
    FREE(out);
    return ok;
}

static int64_t count_messages(convstate_db *db, const char *user, const char *id) {
    int64_t n = -1;
    CHECK_OK(convstate_message_count(db, user, id, &n));
    return n;
}

/* ---- version, status names, errors ---------------------------------------------------------- */

static void test_version_and_names(void) {
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

static void test_open(void) {
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

    CHECK_INVALID("out", convstate_db_open(g_url, NULL, NULL));
    CHECK_INVALID("url", convstate_db_open(NULL, NULL, &db));
    CHECK(db == NULL);
    CHECK_INVALID("url", convstate_db_open("", NULL, &db));
    CHECK_INVALID("url", convstate_db_open("mysql://localhost/x", NULL, &db));
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
}

/* ---- NULL handles and required arguments --------------------------------------------------- */

static int never_called_agent(void *context, const char *history_json, const char *user_id,
                                           const char *conversation_id, convstate_reply *reply) {
    int *calls = (int *)context;
    (void)history_json;
    (void)user_id;
    (void)conversation_id;
    (void)reply;
    ++*calls;
    return CONVSTATE_OK;
}

static void test_null_arguments(convstate_db *db) {
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

/* ---- conversations ------------------------------------------------------------------------- */

static void test_conversations(convstate_db *db) {
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

    /* delete_all: the count, then nothing left; out_count may be NULL */
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, &deleted));
    CHECK(deleted == 5);
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, NULL));
    CHECK_OK(convstate_conversation_delete_all(db, g_lister, &deleted));
    CHECK(deleted == 0);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_conversation_get(db, g_lister, seen[0], &out));
    CHECK(out == NULL);
}

/* ---- messages -------------------------------------------------------------------------------- */

static void test_messages(convstate_db *db) {
    char *out = NULL;
    char id[128], other_id[128], got[128];
    int64_t expected;
    const char *keyed = "{\"role\":\"user\",\"content\":\"keyed\",\"idempotency_key\":\"key-1\"}";
    const char *batch =
        "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"calculator\",\"arguments\":\"{\\\"expression\\\":\\\"6*7\\\"}\"}}]},"
        "{\"role\":\"tool\",\"name\":\"calculator\",\"tool_call_id\":\"call_1\",\"content\":\"42\"},"
        "{\"role\":\"assistant\",\"content\":\"6*7 = 42\",\"metadata\":{\"model\":\"c\"},\"token_count\":7}]";

    if (!create_conversation(db, g_user, "messages", id)) return;
    if (!create_conversation(db, g_other, "other's", other_id)) return;

    /* append: the stored message comes back with its seq */
    CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"content\":\"hello \\u00e9\\n\"}", NULL,
                                      &out));
    CHECK(contains(out, "\"seq\":1,"));
    CHECK(contains(out, "\"role\":\"user\""));
    CHECK(contains(out, "\"content\":\"hello \xc3\xa9\\n\""));
    CHECK(json_string_field(out, "conversation_id", got, sizeof got) && strcmp(got, id) == 0);
    CHECK(json_int_field(out, "created_at_us", 0) > 0);
    FREE(out);
    CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"assistant\",\"content\":\"hi\"}", NULL, NULL));
    CHECK(count_messages(db, g_user, id) == 2);

    /* an idempotency key: the second append returns the stored message, stores nothing */
    CHECK_OK(convstate_message_append(db, g_user, id, keyed, NULL, &out));
    CHECK(has_seq(out, 3));
    CHECK(contains(out, "\"idempotency_key\":\"key-1\""));
    FREE(out);
    CHECK_OK(convstate_message_append(db, g_user, id, keyed, NULL, &out));
    CHECK(has_seq(out, 3));
    FREE(out);
    CHECK(count_messages(db, g_user, id) == 3);

    /* expected_last_seq: a mismatch is a CONFLICT and stores nothing */
    expected = 2;
    CHECK_STATUS(CONVSTATE_CONFLICT, convstate_message_append(db, g_user, id,
                                                              "{\"role\":\"assistant\",\"content\":\"late\"}",
                                                              &expected, &out));
    CHECK(out == NULL);
    CHECK(convstate_last_error()[0] != '\0');
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    CHECK(count_messages(db, g_user, id) == 3);
    expected = 3;
    CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"assistant\",\"content\":\"in time\"}", &expected,
                                      &out));
    CHECK(has_seq(out, 4));
    FREE(out);

    /* append_batch: consecutive seqs, atomically */
    expected = 4;
    CHECK_OK(convstate_message_append_batch(db, g_user, id, batch, &expected, &out));
    CHECK(message_count(out) == 3);
    CHECK(has_seq(out, 5) && has_seq(out, 6) && has_seq(out, 7));
    CHECK(contains(out, "\"tool_call_id\":\"call_1\""));
    CHECK(contains(out, "\"arguments\":\"{\\\"expression\\\":\\\"6*7\\\"}\""));
    CHECK(contains(out, "\"token_count\":7"));
    FREE(out);
    CHECK_STATUS(CONVSTATE_CONFLICT, convstate_message_append_batch(db, g_user, id, batch, &expected, &out));
    CHECK(count_messages(db, g_user, id) == 7);
    CHECK_OK(convstate_message_append_batch(db, g_user, id, "[{\"role\":\"user\",\"content\":\"b1\"},"
                                                            "{\"role\":\"assistant\",\"content\":\"b2\"}]",
                                            NULL, NULL));
    CHECK(count_messages(db, g_user, id) == 9);

    /* malformed input: INVALID_ARGUMENT naming the field, nothing stored */
    CHECK_INVALID("json", convstate_message_append(db, g_user, id, "{\"role\":", NULL, &out));
    CHECK_INVALID("json", convstate_message_append(db, g_user, id, "", NULL, &out));
    CHECK_INVALID("message", convstate_message_append(db, g_user, id, "[1]", NULL, &out));
    CHECK_INVALID("role", convstate_message_append(db, g_user, id, "{\"content\":\"x\"}", NULL, &out));
    CHECK_INVALID("role", convstate_message_append(db, g_user, id, "{\"role\":\"robot\"}", NULL, &out));
    CHECK_INVALID("content", convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"content\":5}", NULL, &out));
    CHECK_INVALID("tool_call_id", convstate_message_append(db, g_user, id, "{\"role\":\"tool\",\"content\":\"x\"}",
                                                           NULL, &out));
    CHECK_INVALID("metadata",
                  convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"metadata\":[1]}", NULL, &out));
    CHECK_INVALID("tool_calls[0].function.arguments",
                  convstate_message_append(db, g_user, id,
                                           "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"function\":"
                                           "{\"name\":\"f\",\"arguments\":\"{oops\"}}]}",
                                           NULL, &out));
    CHECK_INVALID("json", convstate_message_append_batch(db, g_user, id, "[{", NULL, &out));
    CHECK_INVALID("messages", convstate_message_append_batch(db, g_user, id, "{\"role\":\"user\"}", NULL, &out));
    CHECK_INVALID("messages", convstate_message_append_batch(db, g_user, id, "[]", NULL, &out));
    CHECK_INVALID("messages[1].role",
                  convstate_message_append_batch(db, g_user, id, "[{\"role\":\"user\"},{\"role\":\"bogus\"}]", NULL,
                                                 &out));
    CHECK_INVALID("messages[1].tool_call_id",
                  convstate_message_append_batch(db, g_user, id,
                                                 "[{\"role\":\"user\"},{\"role\":\"tool\",\"content\":\"x\"}]", NULL,
                                                 &out));
    CHECK(out == NULL);
    CHECK(count_messages(db, g_user, id) == 9);

    /* loading */
    CHECK_OK(convstate_message_load_all(db, g_user, id, &out));
    CHECK(out != NULL && out[0] == '[');
    CHECK(message_count(out) == 9);
    CHECK(position_of(out, "\"seq\":1,") >= 0 && position_of(out, "\"seq\":1,") < position_of(out, "\"seq\":9,"));
    CHECK(contains(out, "\"content\":\"keyed\""));
    FREE(out);

    CHECK_OK(convstate_message_load_last(db, g_user, id, 2, &out));
    CHECK(message_count(out) == 2 && has_seq(out, 8) && has_seq(out, 9));
    FREE(out);
    CHECK_OK(convstate_message_load_last(db, g_user, id, 100, &out));
    CHECK(message_count(out) == 9);
    FREE(out);

    CHECK_OK(convstate_message_load_after(db, g_user, id, 2, 2, &out));
    CHECK(message_count(out) == 2 && has_seq(out, 3) && has_seq(out, 4));
    FREE(out);
    CHECK_OK(convstate_message_load_after(db, g_user, id, 9, 10, &out));
    CHECK(out != NULL && strcmp(out, "[]") == 0);
    FREE(out);
    CHECK_INVALID("limit", convstate_message_load_after(db, g_user, id, 0, 0, &out));
    CHECK_INVALID("limit", convstate_message_load_after(db, g_user, id, 0, 10001, &out));

    CHECK_OK(convstate_message_load_before(db, g_user, id, 4, 10, &out));
    CHECK(message_count(out) == 3 && has_seq(out, 1) && has_seq(out, 3));
    FREE(out);
    CHECK_OK(convstate_message_load_before(db, g_user, id, 9, 2, &out)); /* the ones just before */
    CHECK(message_count(out) == 2 && has_seq(out, 7) && has_seq(out, 8));
    FREE(out);
    CHECK_OK(convstate_message_load_before(db, g_user, id, 1, 10, &out));
    CHECK(out != NULL && strcmp(out, "[]") == 0);
    FREE(out);
    /* a before_seq past the end: the newest messages; extreme values are safe */
    CHECK_OK(convstate_message_load_before(db, g_user, id, 100, 2, &out));
    CHECK(message_count(out) == 2 && has_seq(out, 8) && has_seq(out, 9));
    FREE(out);
    CHECK_OK(convstate_message_load_before(db, g_user, id, INT64_MAX, 1, &out));
    CHECK(message_count(out) == 1 && has_seq(out, 9));
    FREE(out);
    CHECK_OK(convstate_message_load_before(db, g_user, id, INT64_MIN, 10, &out));
    CHECK(out != NULL && strcmp(out, "[]") == 0);
    FREE(out);
    CHECK_OK(convstate_message_load_after(db, g_user, id, INT64_MIN, 2, &out));
    CHECK(message_count(out) == 2 && has_seq(out, 1) && has_seq(out, 2));
    FREE(out);
    CHECK_INVALID("limit", convstate_message_load_before(db, g_user, id, 5, 0, &out));
    CHECK(out == NULL);

    CHECK(count_messages(db, g_user, id) == 9);
    CHECK(count_messages(db, g_other, other_id) == 0);
    CHECK_OK(convstate_message_load_all(db, g_other, other_id, &out));
    CHECK(out != NULL && strcmp(out, "[]") == 0);
    FREE(out);

    /* NOT_FOUND: another user's conversation and a missing one, for every message call */
    {
        int64_t n = -1;
        const char *missing = "00000000-0000-0000-0000-000000000000";
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_append(db, g_other, id, "{\"role\":\"user\"}", NULL, &out));
        CHECK(strcmp(convstate_last_error_field(), "") == 0);
        CHECK_STATUS(CONVSTATE_NOT_FOUND,
                     convstate_message_append_batch(db, g_user, missing, "[{\"role\":\"user\"}]", NULL, &out));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_all(db, g_other, id, &out));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_last(db, g_user, missing, 3, &out));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_after(db, g_other, id, 0, 3, &out));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_before(db, g_other, id, 5, 3, &out));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_count(db, g_other, id, &n));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_all(db, g_user, other_id, &out));
        CHECK(out == NULL);
        CHECK(count_messages(db, g_user, id) == 9);
    }
}

/* ---- history windows ------------------------------------------------------------------------- */

static void test_windows(convstate_db *db) {
    char *out = NULL;
    char id[128];
    convstate_window init = CONVSTATE_WINDOW_INIT;
    convstate_window w = CONVSTATE_WINDOW_INIT;

    CHECK(init.version == CONVSTATE_WINDOW_VERSION);
    CHECK(init.kind == CONVSTATE_WINDOW_ALL);
    CHECK(init.keep_system == 1);

    if (!create_conversation(db, g_user, "windows", id)) return;
    CHECK_OK(convstate_message_append_batch(db, g_user, id,
                                            "[{\"role\":\"system\",\"content\":\"sys\"},"
                                            "{\"role\":\"user\",\"content\":\"u1\"},"
                                            "{\"role\":\"assistant\",\"content\":\"a1\"},"
                                            "{\"role\":\"user\",\"content\":\"u2\"},"
                                            "{\"role\":\"assistant\",\"content\":\"a2\"}]",
                                            NULL, NULL));

    CHECK_OK(convstate_window_load(db, g_user, id, NULL, &out));
    CHECK(message_count(out) == 5);
    FREE(out);
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 5);
    FREE(out);

    w.kind = CONVSTATE_WINDOW_LAST_MESSAGES;
    w.max_messages = 2;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 3); /* the system message is kept and does not count */
    CHECK(contains(out, "\"content\":\"sys\"") && contains(out, "\"content\":\"u2\"") &&
          contains(out, "\"content\":\"a2\"") && !contains(out, "\"content\":\"u1\""));
    FREE(out);
    w.keep_system = 0;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 2 && !contains(out, "\"content\":\"sys\""));
    FREE(out);

    w = init;
    w.kind = CONVSTATE_WINDOW_TOKEN_BUDGET;
    w.token_budget = 1; /* the newest message is always kept */
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(contains(out, "\"content\":\"a2\"") && contains(out, "\"content\":\"sys\"") &&
          !contains(out, "\"content\":\"u1\""));
    FREE(out);
    w.token_budget = 1000000;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 5);
    FREE(out);

    /* bad windows */
    w = init;
    w.version = 0;
    CHECK_INVALID("window.version", convstate_window_load(db, g_user, id, &w, &out));
    w.version = 99;
    CHECK_INVALID("window.version", convstate_window_load(db, g_user, id, &w, &out));
    w = init;
    w.kind = 42;
    CHECK_INVALID("window.kind", convstate_window_load(db, g_user, id, &w, &out));
    w = init;
    w.kind = CONVSTATE_WINDOW_LAST_MESSAGES;
    w.max_messages = 0;
    CHECK_INVALID("window.max_messages", convstate_window_load(db, g_user, id, &w, &out));
    w = init;
    w.kind = CONVSTATE_WINDOW_TOKEN_BUDGET;
    w.token_budget = 0;
    CHECK_INVALID("window.token_budget", convstate_window_load(db, g_user, id, &w, &out));
    CHECK(out == NULL);

    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_window_load(db, g_other, id, NULL, &out));
    CHECK(out == NULL);
}

/* ---- the turn --------------------------------------------------------------------------------- */

enum agent_mode {
    AGENT_PLAIN,      /* reply "reply <n>" */
    AGENT_TOOL,       /* an assistant tool call + a tool result, then a reply carrying tool calls */
    AGENT_FAIL,       /* convstate_reply_set_error("boom") and a non-OK return */
    AGENT_FAIL_QUIET, /* a non-OK return without an error message */
    AGENT_BAD_OUTPUT, /* an intermediate user message: the library refuses the output */
    AGENT_SETTERS,    /* exercises the reply setters' errors, then replies */
    AGENT_NESTED      /* starts a competing turn on the same conversation (reject policy) */
};

struct agent_ctx {
    int calls;
    enum agent_mode mode;
    const char *expect_user;     /* user_id the agent must receive */
    const char *expect_conv;     /* conversation_id it must receive ("" when unknown) */
    const char *expect_history;  /* a substring history_json must hold, or NULL */
    int history_messages;        /* messages in the last history_json */
    int saw_expected;            /* expect_history was found */
    convstate_db *db;            /* for AGENT_NESTED */
    convstate_status nested_status;
    int nested_agent_calls;
    char *nested_out;
};

static int test_agent(void *context, const char *history_json, const char *user_id,
                                   const char *conversation_id, convstate_reply *reply) {
    struct agent_ctx *ctx = (struct agent_ctx *)context;
    const char *last_role;
    char content[64], call[512], result[256], calls[256];
    ++ctx->calls;

    /* history_json: a JSON array of stored messages ending with this turn's user message */
    CHECK(history_json != NULL && history_json[0] == '[');
    CHECK(user_id != NULL && strcmp(user_id, ctx->expect_user) == 0);
    CHECK(conversation_id != NULL && conversation_id[0] != '\0');
    if (ctx->expect_conv && ctx->expect_conv[0]) CHECK(strcmp(conversation_id, ctx->expect_conv) == 0);
    ctx->history_messages = message_count(history_json);
    last_role = NULL;
    {
        const char *p = history_json;
        while ((p = strstr(p, "\"role\":\"")) != NULL) last_role = p++;
    }
    CHECK(last_role != NULL && strncmp(last_role, "\"role\":\"user\"", 13) == 0);
    if (ctx->expect_history) ctx->saw_expected = contains(history_json, ctx->expect_history);

    snprintf(content, sizeof content, "reply %d", ctx->calls);
    switch (ctx->mode) {
    case AGENT_FAIL:
        CHECK_OK(convstate_reply_set_content(reply, "never stored"));
        CHECK_OK(convstate_reply_set_error(reply, "boom"));
        return CONVSTATE_AGENT_ERROR;
    case AGENT_FAIL_QUIET:
        return CONVSTATE_INTERNAL_ERROR;
    case AGENT_BAD_OUTPUT:
        CHECK_OK(convstate_reply_add_message(reply, "{\"role\":\"user\",\"content\":\"not allowed here\"}"));
        CHECK_OK(convstate_reply_set_content(reply, content));
        return CONVSTATE_OK;
    case AGENT_TOOL:
        snprintf(call, sizeof call,
                 "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_%d\",\"type\":\"function\","
                 "\"function\":{\"name\":\"calculator\",\"arguments\":\"{\\\"expression\\\":\\\"6*7\\\"}\"}}]}",
                 ctx->calls);
        snprintf(result, sizeof result,
                 "{\"role\":\"tool\",\"name\":\"calculator\",\"tool_call_id\":\"call_%d\",\"content\":\"42\"}",
                 ctx->calls);
        snprintf(calls, sizeof calls,
                 "[{\"id\":\"next_%d\",\"type\":\"function\",\"function\":{\"name\":\"clock\","
                 "\"arguments\":\"{}\"}}]",
                 ctx->calls);
        CHECK_OK(convstate_reply_add_message(reply, call));
        CHECK_OK(convstate_reply_add_message(reply, result));
        CHECK_OK(convstate_reply_set_tool_calls(reply, calls));
        CHECK_OK(convstate_reply_set_content(reply, "6*7 = 42"));
        CHECK_OK(convstate_reply_set_metadata(reply, "{\"agent\":\"c\",\"tool\":true}"));
        return CONVSTATE_OK;
    case AGENT_SETTERS:
        CHECK_INVALID("content", convstate_reply_set_content(reply, NULL));
        CHECK_INVALID("tool_calls_json", convstate_reply_set_tool_calls(reply, NULL));
        CHECK_INVALID("json", convstate_reply_set_tool_calls(reply, "[{"));
        CHECK_INVALID("tool_calls[0].function.arguments",
                      convstate_reply_set_tool_calls(
                          reply, "[{\"id\":\"x\",\"function\":{\"name\":\"f\",\"arguments\":\"{oops\"}}]"));
        CHECK_INVALID("message_json", convstate_reply_add_message(reply, NULL));
        CHECK_INVALID("role", convstate_reply_add_message(reply, "{\"role\":\"robot\"}"));
        CHECK_INVALID("metadata_json", convstate_reply_set_metadata(reply, NULL));
        CHECK_INVALID("message", convstate_reply_set_error(reply, NULL));
        /* the reply is still usable; a later setter replaces an earlier value */
        CHECK_OK(convstate_reply_set_content(reply, "overwritten"));
        CHECK_OK(convstate_reply_set_content(reply, content));
        CHECK_OK(convstate_reply_set_tool_calls(reply, "[]"));
        CHECK_OK(convstate_reply_set_metadata(reply, "{\"agent\":\"c\"}"));
        return CONVSTATE_OK;
    case AGENT_NESTED: {
        /* Another turn on this conversation while this one runs: rejected under the reject
         * policy (this turn holds no connection, so the competing turn reaches the database). */
        convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
        o.conversation_id = conversation_id;
        o.reject_concurrent = 1;
        ctx->nested_status = convstate_turn(ctx->db, user_id, "competing", &o, never_called_agent,
                                            &ctx->nested_agent_calls, &ctx->nested_out);
        CHECK_OK(convstate_reply_set_content(reply, content));
        return CONVSTATE_OK;
    }
    case AGENT_PLAIN:
        break;
    }
    CHECK_OK(convstate_reply_set_content(reply, content));
    CHECK_OK(convstate_reply_set_metadata(reply, "{\"agent\":\"c\"}"));
    return CONVSTATE_OK;
}

/* On AGENT_ERROR, out_json says where the user message was stored: conversation id, its seq,
 * whether the turn created the conversation. conv may be NULL (a created conversation: the id is
 * copied into created_id, size 128). Frees *out. */
static void check_agent_error_result_at(char **out, const char *conv, long long user_seq, int created,
                                        char *created_id, const char *file, int line) {
    char id[128];
    const int ok = *out != NULL && json_string_field(*out, "conversation_id", id, sizeof id) &&
                   (conv == NULL || strcmp(id, conv) == 0) && json_int_field(*out, "user_seq", -1) == user_seq &&
                   contains(*out, created ? "\"created\":true" : "\"created\":false");
    check_at(ok, "AGENT_ERROR result {conversation_id, user_seq, created}", file, line);
    if (!ok) fprintf(stderr, "    got %s; expected user_seq %lld, created %d\n", *out ? *out : "NULL", user_seq, created);
    if (created_id) {
        if (ok) memcpy(created_id, id, sizeof id);
        else created_id[0] = '\0';
    }
    FREE(*out);
}
#define CHECK_AGENT_ERROR_RESULT(out, conv, user_seq, created, created_id) \
    check_agent_error_result_at((out), (conv), (user_seq), (created), (created_id), __FILE__, __LINE__)

static void test_turns(convstate_db *db) {
    struct agent_ctx ctx;
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
    convstate_turn_options init = CONVSTATE_TURN_OPTIONS_INIT;
    convstate_window w = CONVSTATE_WINDOW_INIT;
    char *out = NULL, *again = NULL;
    char conv[128], conv2[128], got[128], key[128];
    long long user_seq, reply_seq;
    int64_t before;
    int calls;

    memset(&ctx, 0, sizeof ctx);
    ctx.expect_user = g_user;
    ctx.expect_conv = "";
    ctx.db = db;

    CHECK(init.version == CONVSTATE_TURN_OPTIONS_VERSION);
    CHECK(init.conversation_id == NULL && init.idempotency_key == NULL && init.window == NULL);
    CHECK(init.reject_concurrent == 0);

    /* 1. a turn that creates its conversation */
    o.title = "C turn";
    o.conversation_metadata_json = "{\"src\":\"c\"}";
    o.message_metadata_json = "{\"m\":1}";
    ctx.mode = AGENT_PLAIN;
    CHECK_OK(convstate_turn(db, g_user, "hello there", &o, test_agent, &ctx, &out));
    CHECK(ctx.calls == 1);
    CHECK(ctx.history_messages == 1);
    CHECK(contains(out, "\"created\":true"));
    CHECK(contains(out, "\"replayed\":false"));
    CHECK(contains(out, "\"reply\":\"reply 1\""));
    CHECK(contains(out, "\"tool_calls\":[]"));
    CHECK(json_int_field(out, "user_seq", -1) == 1);
    CHECK(json_int_field(out, "reply_seq", -1) == 2);
    if (!json_string_field(out, "conversation_id", conv, sizeof conv)) {
        CHECK(!"a conversation_id in the turn result");
        FREE(out);
        return;
    }
    FREE(out);
    CHECK_OK(convstate_conversation_get(db, g_user, conv, &out));
    CHECK(contains(out, "\"title\":\"C turn\""));
    CHECK(contains(out, "\"metadata\":{\"src\":\"c\"}"));
    CHECK(json_int_field(out, "last_seq", -1) == 2);
    FREE(out);
    CHECK_OK(convstate_message_load_all(db, g_user, conv, &out));
    CHECK(message_count(out) == 2);
    CHECK(contains(out, "\"content\":\"hello there\",\"metadata\":{\"m\":1}"));
    CHECK(contains(out, "\"role\":\"assistant\",\"content\":\"reply 1\",\"metadata\":{\"agent\":\"c\"}"));
    FREE(out);

    /* options NULL: creates another conversation */
    CHECK_OK(convstate_turn(db, g_user, "no options", NULL, test_agent, &ctx, &out));
    CHECK(ctx.calls == 2);
    CHECK(contains(out, "\"created\":true"));
    CHECK(json_string_field(out, "conversation_id", conv2, sizeof conv2) && strcmp(conv2, conv) != 0);
    FREE(out);

    /* 2. continuing it: the agent sees the history */
    o = init;
    o.conversation_id = conv;
    ctx.expect_conv = conv;
    ctx.expect_history = "\"content\":\"hello there\"";
    CHECK_OK(convstate_turn(db, g_user, "second", &o, test_agent, &ctx, &out));
    CHECK(ctx.calls == 3);
    CHECK(ctx.saw_expected);
    CHECK(ctx.history_messages == 3);
    CHECK(contains(out, "\"created\":false"));
    CHECK(json_string_field(out, "conversation_id", got, sizeof got) && strcmp(got, conv) == 0);
    CHECK(json_int_field(out, "user_seq", -1) == 3);
    CHECK(json_int_field(out, "reply_seq", -1) == 4);
    FREE(out);
    ctx.expect_history = NULL;

    /* the reply setters' errors inside a real callback */
    ctx.mode = AGENT_SETTERS;
    CHECK_OK(convstate_turn(db, g_user, "setters", &o, test_agent, &ctx, &out));
    CHECK(contains(out, "\"reply\":\"reply 4\""));
    CHECK(json_int_field(out, "reply_seq", -1) == 6);
    FREE(out);

    /* a window in the options: the agent sees only the newest message */
    w.kind = CONVSTATE_WINDOW_LAST_MESSAGES;
    w.max_messages = 1;
    o.window = &w;
    ctx.mode = AGENT_PLAIN;
    CHECK_OK(convstate_turn(db, g_user, "windowed", &o, test_agent, &ctx, &out));
    CHECK(ctx.history_messages == 1);
    FREE(out);
    w.version = 7;
    CHECK_INVALID("window.version", convstate_turn(db, g_user, "bad window", &o, test_agent, &ctx, &out));
    w.version = CONVSTATE_WINDOW_VERSION;
    w.kind = -1;
    CHECK_INVALID("window.kind", convstate_turn(db, g_user, "bad window", &o, test_agent, &ctx, &out));
    o.window = NULL;

    /* 3. an agent loop: a tool call and its result before a reply that carries tool calls */
    ctx.mode = AGENT_TOOL;
    calls = ctx.calls;
    CHECK_OK(convstate_turn(db, g_user, "what is 6*7?", &o, test_agent, &ctx, &out));
    CHECK(ctx.calls == calls + 1);
    user_seq = json_int_field(out, "user_seq", -1);
    reply_seq = json_int_field(out, "reply_seq", -1);
    CHECK(user_seq == 9 && reply_seq == 12);
    CHECK(contains(out, "\"reply\":\"6*7 = 42\""));
    CHECK(contains(out, "\"tool_calls\":[{\"id\":\"next_"));
    CHECK(contains(out, "\"name\":\"clock\""));
    FREE(out);
    CHECK_OK(convstate_message_load_after(db, g_user, conv, user_seq, 10, &out));
    CHECK(message_count(out) == 3);
    CHECK(contains(out, "\"role\":\"tool\",\"content\":\"42\",\"name\":\"calculator\",\"tool_call_id\":\"call_"));
    CHECK(contains(out, "\"metadata\":{\"agent\":\"c\",\"tool\":true}"));
    CHECK(position_of(out, "\"role\":\"assistant\",\"content\":\"\",\"tool_calls\"") >= 0);
    FREE(out);

    /* 4. idempotent retry: the stored result, the agent not called again */
    ctx.mode = AGENT_PLAIN;
    snprintf(key, sizeof key, "turn-%s", g_unique);
    o.idempotency_key = key;
    calls = ctx.calls;
    CHECK_OK(convstate_turn(db, g_user, "keyed turn", &o, test_agent, &ctx, &out));
    CHECK(ctx.calls == calls + 1);
    CHECK(contains(out, "\"replayed\":false"));
    before = count_messages(db, g_user, conv);
    CHECK_OK(convstate_turn(db, g_user, "keyed turn", &o, test_agent, &ctx, &again));
    CHECK(ctx.calls == calls + 1);
    CHECK(contains(again, "\"replayed\":true"));
    CHECK(json_int_field(again, "reply_seq", -1) == json_int_field(out, "reply_seq", -2));
    CHECK(json_int_field(again, "user_seq", -1) == json_int_field(out, "user_seq", -2));
    CHECK(json_int_field(again, "reply_seq", -1) > 0);
    FREE(out);
    FREE(again);
    CHECK(count_messages(db, g_user, conv) == before);
    o.idempotency_key = NULL;

    /* a keyed creating turn, retried: the same conversation, replayed */
    {
        convstate_turn_options c = CONVSTATE_TURN_OPTIONS_INIT;
        char k2[160], first[128], second[128];
        snprintf(k2, sizeof k2, "create-%s", g_unique);
        c.idempotency_key = k2;
        ctx.expect_conv = "";
        calls = ctx.calls;
        CHECK_OK(convstate_turn(db, g_user, "create once", &c, test_agent, &ctx, &out));
        CHECK_OK(convstate_turn(db, g_user, "create once", &c, test_agent, &ctx, &again));
        CHECK(ctx.calls == calls + 1);
        CHECK(contains(out, "\"created\":true") && contains(out, "\"replayed\":false"));
        CHECK(contains(again, "\"replayed\":true"));
        CHECK(json_string_field(out, "conversation_id", first, sizeof first));
        CHECK(json_string_field(again, "conversation_id", second, sizeof second) && strcmp(first, second) == 0);
        FREE(out);
        FREE(again);
        ctx.expect_conv = conv;
    }

    /* 5. the agent fails: AGENT_ERROR with its message, only the user message stored */
    ctx.mode = AGENT_FAIL;
    before = count_messages(db, g_user, conv);
    CHECK_STATUS(CONVSTATE_AGENT_ERROR, convstate_turn(db, g_user, "please fail", &o, test_agent, &ctx, &out));
    CHECK(contains(convstate_last_error(), "boom"));
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    CHECK_AGENT_ERROR_RESULT(&out, conv, before + 1, 0, NULL);
    CHECK(count_messages(db, g_user, conv) == before + 1);
    CHECK_OK(convstate_message_load_last(db, g_user, conv, 1, &out));
    CHECK(contains(out, "\"role\":\"user\",\"content\":\"please fail\""));
    FREE(out);

    ctx.mode = AGENT_FAIL_QUIET;
    CHECK_STATUS(CONVSTATE_AGENT_ERROR, convstate_turn(db, g_user, "fail quietly", &o, test_agent, &ctx, &out));
    CHECK(convstate_last_error()[0] != '\0');
    CHECK_AGENT_ERROR_RESULT(&out, conv, before + 2, 0, NULL);
    CHECK(count_messages(db, g_user, conv) == before + 2);

    ctx.mode = AGENT_BAD_OUTPUT;
    CHECK_STATUS(CONVSTATE_AGENT_ERROR, convstate_turn(db, g_user, "bad output", &o, test_agent, &ctx, &out));
    CHECK(contains(convstate_last_error(), "intermediate[0].role"));
    CHECK_AGENT_ERROR_RESULT(&out, conv, before + 3, 0, NULL);
    CHECK(count_messages(db, g_user, conv) == before + 3);

    /* a creating turn whose agent fails: the result names the created conversation, which holds
     * the user message and can be continued */
    {
        convstate_turn_options c = CONVSTATE_TURN_OPTIONS_INIT;
        char created[128];
        ctx.mode = AGENT_FAIL;
        ctx.expect_conv = "";
        CHECK_STATUS(CONVSTATE_AGENT_ERROR, convstate_turn(db, g_user, "create, then fail", &c, test_agent, &ctx,
                                                           &out));
        CHECK(contains(convstate_last_error(), "boom"));
        CHECK_AGENT_ERROR_RESULT(&out, NULL, 1, 1, created);
        if (created[0]) {
            CHECK(count_messages(db, g_user, created) == 1);
            c.conversation_id = created;
            ctx.mode = AGENT_PLAIN;
            ctx.expect_conv = created;
            ctx.expect_history = "\"content\":\"create, then fail\"";
            CHECK_OK(convstate_turn(db, g_user, "continued", &c, test_agent, &ctx, &out));
            CHECK(ctx.saw_expected);
            CHECK(contains(out, "\"created\":false"));
            CHECK(json_int_field(out, "user_seq", -1) == 2);
            FREE(out);
            ctx.expect_history = NULL;
        }
        ctx.expect_conv = conv;
    }

    /* a keyed turn whose agent failed runs the agent again on retry, without a second user message */
    {
        char k3[160];
        snprintf(k3, sizeof k3, "retry-%s", g_unique);
        o.idempotency_key = k3;
        ctx.mode = AGENT_FAIL;
        before = count_messages(db, g_user, conv);
        CHECK_STATUS(CONVSTATE_AGENT_ERROR, convstate_turn(db, g_user, "flaky", &o, test_agent, &ctx, &out));
        CHECK_AGENT_ERROR_RESULT(&out, conv, before + 1, 0, NULL);
        CHECK(count_messages(db, g_user, conv) == before + 1);
        ctx.mode = AGENT_PLAIN;
        calls = ctx.calls;
        CHECK_OK(convstate_turn(db, g_user, "flaky", &o, test_agent, &ctx, &out));
        CHECK(ctx.calls == calls + 1);
        CHECK(contains(out, "\"replayed\":false"));
        CHECK(json_int_field(out, "user_seq", -1) == before + 1);
        CHECK(count_messages(db, g_user, conv) == before + 2);
        FREE(out);
        o.idempotency_key = NULL;
    }

    /* 6. NOT_FOUND: a missing conversation, another user's; the agent is not called */
    calls = ctx.calls;
    o.conversation_id = "00000000-0000-0000-0000-000000000000";
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn(db, g_user, "hello?", &o, test_agent, &ctx, &out));
    o.conversation_id = conv;
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn(db, g_other, "mine now", &o, test_agent, &ctx, &out));
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    CHECK(ctx.calls == calls);
    CHECK(out == NULL);
    {   /* on failures other than AGENT_ERROR, *out_json is left unchanged */
        char sentinel = 's';
        out = &sentinel;
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn(db, g_other, "mine now", &o, test_agent, &ctx, &out));
        CHECK(out == &sentinel);
        CHECK_INVALID("user_id", convstate_turn(db, "", "x", &o, test_agent, &ctx, &out));
        CHECK(out == &sentinel);
        out = NULL;
    }

    /* 7. bad options */
    o.version = 0;
    CHECK_INVALID("options.version", convstate_turn(db, g_user, "v0", &o, test_agent, &ctx, &out));
    o.version = 99;
    CHECK_INVALID("options.version", convstate_turn(db, g_user, "v99", &o, test_agent, &ctx, &out));
    o.version = CONVSTATE_TURN_OPTIONS_VERSION;
    o.message_metadata_json = "[1]";
    CHECK_INVALID("message_metadata_json", convstate_turn(db, g_user, "bad metadata", &o, test_agent, &ctx, &out));
    o.message_metadata_json = NULL;
    {
        convstate_turn_options c = CONVSTATE_TURN_OPTIONS_INIT;
        c.conversation_metadata_json = "not json";
        CHECK_INVALID("new_conversation.metadata", convstate_turn(db, g_user, "bad metadata", &c, test_agent, &ctx, &out));
    }
    CHECK(ctx.calls == calls);
    CHECK(out == NULL);

    /* 8. reject_concurrent: a single turn works; a competing turn during it is a CONFLICT */
    o.reject_concurrent = 1;
    ctx.mode = AGENT_PLAIN;
    CHECK_OK(convstate_turn(db, g_user, "alone", &o, test_agent, &ctx, &out));
    CHECK(contains(out, "\"reply\":\"reply "));
    FREE(out);
    ctx.mode = AGENT_NESTED;
    ctx.nested_status = CONVSTATE_OK;
    before = count_messages(db, g_user, conv);
    CHECK_OK(convstate_turn(db, g_user, "first", &o, test_agent, &ctx, &out));
    CHECK_STATUS(CONVSTATE_CONFLICT, ctx.nested_status);
    CHECK(ctx.nested_out == NULL);
    CHECK(ctx.nested_agent_calls == 0);
    FREE(ctx.nested_out);
    FREE(out);
    CHECK(count_messages(db, g_user, conv) == before + 2); /* the competing turn stored nothing */
    ctx.mode = AGENT_PLAIN;
    CHECK_OK(convstate_turn(db, g_user, "after", &o, test_agent, &ctx, &out)); /* the run was released */
    FREE(out);
}

/* ---- OUTCOME_UNKNOWN (PostgreSQL only) -------------------------------------------------------- */

static int pg_exec(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) fprintf(stderr, "libpq: %s\n    in: %s\n", PQresultErrorMessage(r), sql);
    PQclear(r);
    return ok;
}

static long long pg_number(PGconn *pg, const char *sql) {
    PGresult *r = PQexec(pg, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fprintf(stderr, "libpq: %s\n    in: %s\n", PQresultErrorMessage(r), sql);
    PQclear(r);
    return v;
}

static void test_outcome_unknown(convstate_db *db) {
    PGconn *pg;
    char sql[1024], suffix[80], content[160], message[256], id[128];
    char *out = NULL;
    int64_t before;
    const char *p;
    size_t n = 0;

    if (!g_postgres) {
        printf("CONVSTATE_OUTCOME_UNKNOWN: skipped on SQLite (not applicable: it needs a server connection "
               "lost during COMMIT)\n");
        return;
    }
    /* Names unique to this run, so concurrent runs on one database do not trip each other. */
    for (p = g_unique; *p && n + 1 < sizeof suffix; ++p) suffix[n++] = (*p >= '0' && *p <= '9') ? *p : '_';
    suffix[n] = '\0';

    pg = PQconnectdb(g_url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "libpq: %s", PQerrorMessage(pg));
        CHECK(!"a libpq connection to the test database");
        PQfinish(pg);
        return;
    }
    CHECK(pg_exec(pg, "SET client_min_messages TO warning")); /* no NOTICEs from IF [NOT] EXISTS */
    if (!create_conversation(db, g_user, "outcome unknown", id)) {
        PQfinish(pg);
        return;
    }
    /* A deferred constraint trigger runs inside COMMIT: it terminates its own backend the first
     * time it fires after the sequence is reset (nextval is not rolled back with the transaction). */
    snprintf(content, sizeof content, "die-%s", g_unique);
    snprintf(sql, sizeof sql, "CREATE SEQUENCE IF NOT EXISTS convstate_c_die_once_%s", suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql,
             "CREATE OR REPLACE FUNCTION convstate_c_die_at_commit_%s() RETURNS trigger LANGUAGE plpgsql AS $$\n"
             "BEGIN\n"
             "  IF NEW.content LIKE 'die-%s%%' AND nextval('convstate_c_die_once_%s') = 1 THEN\n"
             "    PERFORM pg_terminate_backend(pg_backend_pid());\n"
             "    PERFORM pg_sleep(5);\n"
             "  END IF;\n"
             "  RETURN NULL;\n"
             "END $$",
             suffix, g_unique, suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS convstate_c_die_%s ON convstate_messages", suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql,
             "CREATE CONSTRAINT TRIGGER convstate_c_die_%s AFTER INSERT ON convstate_messages"
             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION convstate_c_die_at_commit_%s()",
             suffix, suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql, "SELECT setval('convstate_c_die_once_%s', 1, false)", suffix);
    CHECK(pg_exec(pg, sql));

    /* Without an idempotency key the library cannot know whether the row is stored: it says so. */
    before = count_messages(db, g_user, id);
    snprintf(message, sizeof message, "{\"role\":\"user\",\"content\":\"%s\"}", content);
    CHECK_STATUS(CONVSTATE_OUTCOME_UNKNOWN, convstate_message_append(db, g_user, id, message, NULL, &out));
    CHECK(out == NULL);
    CHECK(convstate_last_error()[0] != '\0');
    CHECK(strcmp(convstate_last_error_field(), "") == 0);
    snprintf(sql, sizeof sql, "SELECT nextval('convstate_c_die_once_%s')", suffix);
    CHECK(pg_number(pg, sql) >= 2); /* the trigger really fired */

    /* The backend died before committing; the library recovers for the next call. */
    CHECK(count_messages(db, g_user, id) == before);
    CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"content\":\"after the outage\"}", NULL,
                                      &out));
    CHECK(has_seq(out, before + 1));
    FREE(out);

    snprintf(sql, sizeof sql, "DROP TRIGGER IF EXISTS convstate_c_die_%s ON convstate_messages", suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql, "DROP FUNCTION IF EXISTS convstate_c_die_at_commit_%s()", suffix);
    CHECK(pg_exec(pg, sql));
    snprintf(sql, sizeof sql, "DROP SEQUENCE IF EXISTS convstate_c_die_once_%s", suffix);
    CHECK(pg_exec(pg, sql));
    PQfinish(pg);
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Turn options version 2: run_lease_ms and duplicate_wait_ms. The agent of a keyed turn itself
 * starts the same keyed turn (nested: the agent runs with no connection held), which finds the
 * outer turn's run alive. */
typedef struct {
    convstate_db *db;
    const char *key;
    long long lease_ms, wait_ms;
    convstate_status nested;
    char *nested_out;
} nested_ctx;

static int plain_agent(void *context, const char *history_json, const char *user_id, const char *conversation_id,
                       convstate_reply *reply) {
    (void)context, (void)history_json, (void)user_id, (void)conversation_id;
    return convstate_reply_set_content(reply, "inner reply");
}

static int nesting_agent(void *context, const char *history_json, const char *user_id, const char *conversation_id,
                         convstate_reply *reply) {
    nested_ctx *n = (nested_ctx *)context;
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
    (void)history_json;
    o.conversation_id = conversation_id;
    o.idempotency_key = n->key;
    o.run_lease_ms = n->lease_ms;
    o.duplicate_wait_ms = n->wait_ms;
    n->nested = convstate_turn(n->db, user_id, "same question", &o, plain_agent, NULL, &n->nested_out);
    return convstate_reply_set_content(reply, "outer reply");
}

static void test_turn_options_v2(convstate_db *db) {
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;
    nested_ctx n;
    char key[96], conv[128], *out = NULL;
    time_t t0;
    CHECK(o.version == 2 && o.run_lease_ms == 0 && o.duplicate_wait_ms == 0);
    CHECK_OK(convstate_conversation_create(db, g_user, "options v2", NULL, &out));
    CHECK(json_string_field(out, "id", conv, sizeof conv));
    FREE(out);
    o.conversation_id = conv;

    /* Out of range: named. */
    o.run_lease_ms = -1;
    CHECK_INVALID("options.run_lease_ms", convstate_turn(db, g_user, "x", &o, plain_agent, NULL, &out));
    o.run_lease_ms = 0;
    o.duplicate_wait_ms = 86400001LL;
    CHECK_INVALID("options.duplicate_wait_ms", convstate_turn(db, g_user, "x", &o, plain_agent, NULL, &out));
    /* A version-1 caller's struct: the new fields are not read. */
    o.version = 1;
    CHECK_OK(convstate_turn(db, g_user, "v1 options", &o, plain_agent, NULL, &out));
    FREE(out);
    o.version = CONVSTATE_TURN_OPTIONS_VERSION;
    o.duplicate_wait_ms = 0;

    /* The outer run is alive: the nested duplicate waits duplicate_wait_ms, then CONFLICT. */
    snprintf(key, sizeof key, "nested-%s", g_unique);
    o.idempotency_key = key;
    n.db = db, n.key = key, n.lease_ms = 0, n.wait_ms = 200, n.nested_out = NULL;
    t0 = time(NULL);
    CHECK_OK(convstate_turn(db, g_user, "same question", &o, nesting_agent, &n, &out));
    CHECK(n.nested == CONVSTATE_CONFLICT);
    CHECK(time(NULL) - t0 < 5);
    CHECK(contains(out, "\"reply\":\"outer reply\""));
    FREE(out);

    /* With a 1 ms lease the nested duplicate takes the run over and stores its reply; the outer
     * turn then returns the stored one (one exchange, never two). */
    snprintf(key, sizeof key, "nested2-%s", g_unique);
    n.key = key, n.lease_ms = 1, n.wait_ms = 0;
    {
        struct timespec pause = {0, 5000000};
        nanosleep(&pause, NULL);
    }
    o.run_lease_ms = 1;
    CHECK_OK(convstate_turn(db, g_user, "same question", &o, nesting_agent, &n, &out));
    CHECK(n.nested == CONVSTATE_OK);
    CHECK(contains(n.nested_out, "\"reply\":\"inner reply\""));
    CHECK(contains(out, "\"reply\":\"inner reply\""));
    FREE(out);
    FREE(n.nested_out);
}

int main(int argc, char **argv) {
    convstate_db *db = NULL;
    convstate_db_options o = CONVSTATE_DB_OPTIONS_INIT;
    uint64_t n = 0;

    if (argc != 2 || argv[1][0] == '\0') {
        fprintf(stderr, "usage: %s URL   (sqlite3:///path.db or postgresql://…)\n", argc > 0 ? argv[0] : "test");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* keep stdout and stderr in order */
    g_url = argv[1];
    g_postgres = strncmp(g_url, "postgresql://", 13) == 0 || strncmp(g_url, "postgres://", 11) == 0;
    snprintf(g_unique, sizeof g_unique, "%ld-%ld", (long)getpid(), (long)time(NULL));
    snprintf(g_user, sizeof g_user, "c-user-%s", g_unique);
    snprintf(g_other, sizeof g_other, "c-other-%s", g_unique);
    snprintf(g_lister, sizeof g_lister, "c-lister-%s", g_unique);
    printf("convstate C API test on %s (%s), users *-%s\n", g_postgres ? "PostgreSQL" : "SQLite",
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
        test_messages(db);
        test_windows(db);
        test_turns(db);
        test_turn_options_v2(db);
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
