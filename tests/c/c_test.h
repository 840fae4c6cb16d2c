/*
 * c_test.h: what the areas of convstate_c_test share. The check harness and the run's globals,
 * the JSON probes and the conversation helpers are defined in c_test_support.c; each area's test
 * function in its own file (test_open.c, test_conversations.c, test_messages.c, test_windows.c,
 * test_turns.c, test_split_turns.c); main() in main.c. Pure C99.
 */
#ifndef CONVSTATE_C_TEST_H
#define CONVSTATE_C_TEST_H

#include <stddef.h>
#include <stdint.h>

#include <convstate/convstate.h>

/* ---- a tiny check harness ------------------------------------------------------------------ */

extern int g_passed;
extern int g_failed;

void check_at(int ok, const char *what, const char *file, int line);
void check_status_at(convstate_status got, convstate_status want, const char *expr, const char *file, int line);
/* INVALID_ARGUMENT with the given field, a message, and the field readable afterwards. */
void check_invalid_at(convstate_status got, const char *field, const char *expr, const char *file, int line);

#define CHECK(cond) check_at((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_STATUS(want, call) check_status_at((call), (want), #call, __FILE__, __LINE__)
#define CHECK_OK(call) check_status_at((call), CONVSTATE_OK, #call, __FILE__, __LINE__)
#define CHECK_INVALID(field, call) check_invalid_at((call), (field), #call, __FILE__, __LINE__)
#define FREE(p) (convstate_free(p), (p) = NULL)

/* ---- minimal JSON probing (no JSON library: substring checks on what the library writes) ---- */

int contains(const char *haystack, const char *needle);
/* Occurrences of needle in haystack; -1 when haystack is NULL. */
int count_of(const char *haystack, const char *needle);
/* Messages in a JSON array of stored messages (each stored message has exactly one "seq"). */
int message_count(const char *json);
/* Whether the JSON holds "seq":n (followed by , or }). */
int has_seq(const char *json, long long n);
/* Copies the string value of the first "key":"…" into out (raw, escapes kept). 1 on success. */
int json_string_field(const char *json, const char *key, char *out, size_t size);
/* The integer value of the first "key":N; `fallback` when absent. */
long long json_int_field(const char *json, const char *key, long long fallback);
/* Position of needle in haystack, or -1. */
long position_of(const char *haystack, const char *needle);

/* ---- shared state ----------------------------------------------------------------------------- */

extern char g_unique[64];   /* pid-time, unique per run */
extern char g_user[96];     /* the main user */
extern char g_other[96];    /* another user, who must never see g_user's data */
extern char g_lister[96];   /* a user with exactly five conversations */
extern const char *g_url;
extern int g_postgres;
extern int g_mariadb;

/* Creates a conversation of `user` and copies its id into id (size 128). */
int create_conversation(convstate_db *db, const char *user, const char *title, char *id);
int64_t count_messages(convstate_db *db, const char *user, const char *id);

/* An agent that must not run: counts its calls in the int `context` points to. */
int never_called_agent(void *context, const char *history_json, const char *user_id, const char *conversation_id,
                       convstate_reply *reply);

/* ---- the areas, in the order main() runs them ------------------------------------------------- */

/* test_open.c */
void test_version_and_names(void);
void test_open(void);
void test_null_arguments(convstate_db *db);
/* test_conversations.c */
void test_conversations(convstate_db *db);
void test_conversation_keys(convstate_db *db);
void test_forks(convstate_db *db);
/* test_messages.c */
void test_messages(convstate_db *db);
void test_truncate(convstate_db *db);
/* test_windows.c */
void test_windows(convstate_db *db);
void test_summaries(convstate_db *db);
/* test_turns.c */
void test_turns(convstate_db *db);
void test_turn_options_v2(convstate_db *db);
void test_outcome_unknown(convstate_db *db);
/* test_split_turns.c */
void test_split_turns(convstate_db *db);
void test_usage(convstate_db *db);
void test_content_parts(convstate_db *db);

#endif /* CONVSTATE_C_TEST_H */
