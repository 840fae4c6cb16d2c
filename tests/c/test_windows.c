/*
 * test_windows.c: history windows (all, last messages, token budget), bad windows, summaries.
 */
#include "c_test.h"

/* ---- history windows ------------------------------------------------------------------------- */

void test_windows(convstate_db *db) {
    char *out = NULL;
    char id[128];
    convstate_window init = CONVSTATE_WINDOW_INIT;
    convstate_window w = CONVSTATE_WINDOW_INIT;

    CHECK(init.version == CONVSTATE_WINDOW_VERSION);
    CHECK(init.kind == CONVSTATE_WINDOW_ALL);
    CHECK(init.keep_system == 1);
    CHECK(init.from_summary == 1 && init.summary_role == CONVSTATE_ROLE_SYSTEM);

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

/* Summaries: stored beside the transcript; windows (version 2 fields) start from the latest. */
void test_summaries(convstate_db *db) {
    char *out = NULL, id[128];
    convstate_window w = CONVSTATE_WINDOW_INIT;
    if (!create_conversation(db, g_user, "summaries", id)) return;
    CHECK_OK(convstate_message_append_batch(db, g_user, id,
                                            "[{\"role\":\"system\",\"content\":\"sys\"},"
                                            "{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"},"
                                            "{\"role\":\"user\",\"content\":\"c\"},{\"role\":\"assistant\",\"content\":\"d\"}]",
                                            NULL, NULL));
    CHECK_INVALID("content", convstate_summary_add(db, g_user, id, 3, "", NULL, &out));
    CHECK_INVALID("covers_through_seq", convstate_summary_add(db, g_user, id, 9, "x", NULL, &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_summary_add(db, g_other, id, 3, "x", NULL, &out));
    CHECK_OK(convstate_summary_add(db, g_user, id, 3, "a and b", "{\"n\":1}", &out));
    CHECK(contains(out, "\"covers_through_seq\":3") && contains(out, "\"metadata\":{\"n\":1}"));
    FREE(out);
    CHECK_OK(convstate_summary_list(db, g_user, id, &out));
    CHECK(contains(out, "\"content\":\"a and b\""));
    FREE(out);
    /* sys, the summary (no seq), then 4 and 5 */
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 3 && has_seq(out, 1) && has_seq(out, 4) && has_seq(out, 5) && !has_seq(out, 2));
    CHECK(contains(out, "\"content\":\"a and b\""));
    FREE(out);
    w.summary_role = CONVSTATE_ROLE_DEVELOPER;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(contains(out, "\"role\":\"developer\",\"content\":\"a and b\""));
    FREE(out);
    w.summary_role = 9;
    CHECK_INVALID("window.summary_role", convstate_window_load(db, g_user, id, &w, &out));
    w.summary_role = CONVSTATE_ROLE_SYSTEM;
    w.from_summary = 0;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 5);
    FREE(out);
    /* a version-1 struct: from_summary on */
    w.version = 1;
    CHECK_OK(convstate_window_load(db, g_user, id, &w, &out));
    CHECK(message_count(out) == 3);
    FREE(out);
}
