/*
 * c_test_support.c: the check harness, the run's globals and the helpers every area of
 * convstate_c_test shares (declared in c_test.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_test.h"

/* ---- a tiny check harness ------------------------------------------------------------------ */

int g_passed = 0;
int g_failed = 0;

void check_at(int ok, const char *what, const char *file, int line) {
    if (ok) {
        ++g_passed;
        return;
    }
    ++g_failed;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
}

void check_status_at(convstate_status got, convstate_status want, const char *expr, const char *file, int line) {
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
void check_invalid_at(convstate_status got, const char *field, const char *expr, const char *file, int line) {
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

/* ---- minimal JSON probing (no JSON library: substring checks on what the library writes) ---- */

int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

/* Occurrences of needle in haystack; -1 when haystack is NULL. */
int count_of(const char *haystack, const char *needle) {
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
int message_count(const char *json) { return count_of(json, "\"seq\":"); }

/* Whether the JSON holds "seq":n (followed by , or }). */
int has_seq(const char *json, long long n) {
    char a[48], b[48];
    snprintf(a, sizeof a, "\"seq\":%lld,", n);
    snprintf(b, sizeof b, "\"seq\":%lld}", n);
    return contains(json, a) || contains(json, b);
}

/* Copies the string value of the first "key":"…" into out (raw, escapes kept). 1 on success. */
int json_string_field(const char *json, const char *key, char *out, size_t size) {
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
long long json_int_field(const char *json, const char *key, long long fallback) {
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
long position_of(const char *haystack, const char *needle) {
    const char *p = haystack ? strstr(haystack, needle) : NULL;
    return p ? (long)(p - haystack) : -1L;
}

/* ---- shared state ----------------------------------------------------------------------------- */

char g_unique[64];   /* pid-time, unique per run */
char g_user[96];     /* the main user */
char g_other[96];    /* another user, who must never see g_user's data */
char g_lister[96];   /* a user with exactly five conversations */
const char *g_url;
int g_postgres;
int g_mariadb;

/* Creates a conversation of `user` and copies its id into id (size 128). */
int create_conversation(convstate_db *db, const char *user, const char *title, char *id) {
    char *out = NULL;
    int ok;
    CHECK_OK(convstate_conversation_create(db, user, title, NULL, &out));
    ok = json_string_field(out, "id", id, 128);
    CHECK(ok);
    FREE(out);
    return ok;
}

int64_t count_messages(convstate_db *db, const char *user, const char *id) {
    int64_t n = -1;
    CHECK_OK(convstate_message_count(db, user, id, &n));
    return n;
}

/* An agent that must not run: counts its calls in the int `context` points to. */
int never_called_agent(void *context, const char *history_json, const char *user_id, const char *conversation_id,
                       convstate_reply *reply) {
    int *calls = (int *)context;
    (void)history_json;
    (void)user_id;
    (void)conversation_id;
    (void)reply;
    ++*calls;
    return CONVSTATE_OK;
}
