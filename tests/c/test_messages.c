/*
 * test_messages.c: append (idempotency keys, expected_last_seq), append_batch, malformed
 * input, loading (all, last, after, before), count, truncate, NOT_FOUND.
 */
#include <stdint.h>
#include <string.h>

#include "c_test.h"

/* ---- messages -------------------------------------------------------------------------------- */

void test_messages(convstate_db *db) {
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
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_truncate(db, g_other, id, 0, NULL, &n));
        CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_message_load_all(db, g_user, other_id, &out));
        CHECK(out == NULL);
        CHECK(count_messages(db, g_user, id) == 9);
    }
}

/* truncate: undo from the end, with and without expected_last_seq; never inside a tool group */
void test_truncate(convstate_db *db) {
    char id[128];
    int64_t removed = -1, expected = 4;
    const char *batch =
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"r\"},"
        "{\"role\":\"assistant\",\"content\":\"a\"}]";
    if (!create_conversation(db, g_user, "undo", id)) return;
    CHECK_OK(convstate_message_append_batch(db, g_user, id, batch, NULL, NULL));
    CHECK_INVALID("after_seq", convstate_message_truncate(db, g_user, id, 2, NULL, &removed));
    CHECK_INVALID("after_seq", convstate_message_truncate(db, g_user, id, -1, NULL, &removed));
    CHECK(count_messages(db, g_user, id) == 4);
    expected = 9;
    CHECK_STATUS(CONVSTATE_CONFLICT, convstate_message_truncate(db, g_user, id, 3, &expected, &removed));
    expected = 4;
    CHECK_OK(convstate_message_truncate(db, g_user, id, 3, &expected, &removed));
    CHECK(removed == 1);
    CHECK_OK(convstate_message_truncate(db, g_user, id, 3, NULL, &removed));
    CHECK(removed == 0);
    CHECK_OK(convstate_message_truncate(db, g_user, id, 1, NULL, NULL));
    CHECK(count_messages(db, g_user, id) == 1);
    CHECK_OK(convstate_message_append(db, g_user, id, "{\"role\":\"user\",\"content\":\"next\"}", NULL, NULL));
    CHECK(count_messages(db, g_user, id) == 2);
}
