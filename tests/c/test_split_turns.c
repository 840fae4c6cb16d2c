/* The split turn: convstate_turn_begin, then convstate_turn_complete or convstate_turn_fail. */
#include <stdio.h>
#include <string.h>

#include "c_test.h"

void test_split_turns(convstate_db *db) {
    char *begun = NULL, *out = NULL, *again = NULL;
    char token[1024], conv[128], key[160];
    convstate_turn_options o = CONVSTATE_TURN_OPTIONS_INIT;

    /* begin: the user message is stored and committed; the window comes back with a token. */
    CHECK_OK(convstate_turn_begin(db, g_user, "split hello", NULL, &begun));
    CHECK(contains(begun, "\"created\":true"));
    CHECK(contains(begun, "\"completed\":null"));
    CHECK(contains(begun, "\"content\":\"split hello\""));
    CHECK(json_string_field(begun, "token", token, sizeof token));
    CHECK(strncmp(token, "cst1.", 5) == 0);
    CHECK(json_string_field(begun, "conversation_id", conv, sizeof conv));
    CHECK(json_int_field(begun, "user_seq", 0) == 1);
    CHECK(count_messages(db, g_user, conv) == 1);
    FREE(begun);

    /* complete: the reply JSON an agent builds, stored after the user message. */
    CHECK_OK(convstate_turn_complete(db, g_user, token,
                                     "{\"content\":\"split reply\",\"intermediate\":[{\"role\":\"assistant\","
                                     "\"tool_calls\":[{\"id\":\"t1\",\"type\":\"function\",\"function\":{\"name\":"
                                     "\"f\",\"arguments\":\"{}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"t1\","
                                     "\"content\":\"42\"}],\"metadata\":{\"model\":\"m\"}}",
                                     &out));
    CHECK(contains(out, "\"reply\":\"split reply\""));
    CHECK(json_int_field(out, "reply_seq", 0) == 4);
    CHECK(contains(out, "\"replayed\":false"));
    /* Completing again stores nothing and returns the stored result. */
    CHECK_OK(convstate_turn_complete(db, g_user, token, "{\"content\":\"other\"}", &again));
    CHECK(contains(again, "\"replayed\":true"));
    CHECK(contains(again, "\"reply\":\"split reply\""));
    CHECK(count_messages(db, g_user, conv) == 4);
    FREE(out);
    FREE(again);

    /* Bad input names the field and writes nothing; another user's token is NOT_FOUND. */
    o.conversation_id = conv;
    CHECK_OK(convstate_turn_begin(db, g_user, "second", &o, &begun));
    CHECK(json_string_field(begun, "token", token, sizeof token));
    FREE(begun);
    CHECK_INVALID("reply.contents", convstate_turn_complete(db, g_user, token, "{\"contents\":\"typo\"}", &out));
    CHECK_INVALID("reply", convstate_turn_complete(db, g_user, token, "[1]", &out));
    CHECK_INVALID("intermediate[0].role",
                  convstate_turn_complete(db, g_user, token, "{\"content\":\"x\",\"intermediate\":[{\"role\":"
                                                             "\"user\",\"content\":\"no\"}]}", &out));
    CHECK_INVALID("turn_token", convstate_turn_complete(db, g_user, "cst1.garbage", "{\"content\":\"x\"}", &out));
    CHECK_INVALID("token", convstate_turn_complete(db, g_user, NULL, "{\"content\":\"x\"}", &out));
    CHECK_INVALID("reply_json", convstate_turn_complete(db, g_user, token, NULL, &out));
    CHECK_INVALID("out_json", convstate_turn_complete(db, g_user, token, "{\"content\":\"x\"}", NULL));
    CHECK(out == NULL);
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn_complete(db, g_other, token, "{\"content\":\"x\"}", &out));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn_fail(db, g_other, token, "no"));
    CHECK_INVALID("reason", convstate_turn_fail(db, g_user, token, "\xff"));
    CHECK(count_messages(db, g_user, conv) == 5);
    /* fail: the user message stays; failing is not completing. */
    CHECK_OK(convstate_turn_fail(db, g_user, token, "the model timed out"));
    CHECK_OK(convstate_turn_fail(db, g_user, token, NULL));
    CHECK(count_messages(db, g_user, conv) == 5);

    /* A keyed turn: after fail its retry begins at once; after complete it is replayed. */
    snprintf(key, sizeof key, "split-key-%s", g_unique);
    o.idempotency_key = key;
    o.duplicate_wait_ms = 100;
    CHECK_OK(convstate_turn_begin(db, g_user, "keyed", &o, &begun));
    CHECK(json_string_field(begun, "token", token, sizeof token));
    FREE(begun);
    CHECK_STATUS(CONVSTATE_CONFLICT, convstate_turn_begin(db, g_user, "keyed", &o, &begun)); /* still running */
    CHECK(begun == NULL);
    CHECK_OK(convstate_turn_fail(db, g_user, token, "retry me"));
    CHECK_OK(convstate_turn_begin(db, g_user, "keyed", &o, &begun));
    CHECK(json_int_field(begun, "user_seq", 0) == 6);
    CHECK(json_string_field(begun, "token", token, sizeof token));
    FREE(begun);
    CHECK_OK(convstate_turn_complete(db, g_user, token, "{\"content\":\"keyed reply\"}", &out));
    FREE(out);
    CHECK_OK(convstate_turn_begin(db, g_user, "keyed", &o, &begun));
    CHECK(contains(begun, "\"token\":null"));
    CHECK(contains(begun, "\"replayed\":true"));
    CHECK(contains(begun, "\"reply\":\"keyed reply\""));
    FREE(begun);
    CHECK(count_messages(db, g_user, conv) == 7);

    /* A deleted conversation: its token is NOT_FOUND. */
    o.idempotency_key = NULL;
    CHECK_OK(convstate_turn_begin(db, g_user, "doomed", &o, &begun));
    CHECK(json_string_field(begun, "token", token, sizeof token));
    FREE(begun);
    CHECK_OK(convstate_conversation_delete(db, g_user, conv));
    CHECK_STATUS(CONVSTATE_NOT_FOUND, convstate_turn_complete(db, g_user, token, "{\"content\":\"late\"}", &out));
    CHECK(out == NULL);
}
