#pragma once
// The names and column lists every dialect's SQL text (src/sql*.cpp) is written with.
// (Macros: they are pasted into string literals.)

// Table names carry a prefix so the schema can live beside the host application's own tables.
#define CS_CONV "convstate_conversations"
#define CS_MSG "convstate_messages"
#define CS_VERSION "convstate_schema_version"
#define CS_SUM "convstate_summaries"
#define CS_USAGE "convstate_usage"
#define CS_USAGE_FIELDS "model, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens"
#define CS_USAGE_SUMS "COUNT(*), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(completion_tokens), 0)" \
    " AS BIGINT), CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT), CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT)"
#define CS_SUM_COLS "conversation_id, covers_through_seq, content, metadata_json, created_at"
#define CS_CONV_COLS "id, user_id, title, metadata_json, last_seq, created_at, updated_at, external_key, forked_from_id, forked_from_seq"
// A message's own fields, in the order rows.cpp's use_message_fields binds them.
#define CS_MSG_FIELDS "role, content, name, tool_calls_json, tool_call_id, metadata_json, token_count, idempotency_key," \
    " content_parts_json"
// What a read returns of a message (rows.cpp's MessageRow): the columns but the conversation id,
// which every read names in its WHERE clause (one column less per row to produce and send).
#define CS_MSG_READ "seq, " CS_MSG_FIELDS ", created_at"
#define CS_MSG_COLS "conversation_id, " CS_MSG_READ
#define CS_SCOPE "user_id = :user_id AND conversation_id = :conversation_id"
// The user message a turn stored (alias u): at its seq, with its key — or, unkeyed, recorded with
// its run's token, which no other message carries (a truncate may free the seq for another one).
// Binds user, conversation, seq, key, key, run token (detail::use_turn_user).
#define CS_TURN_USER                                                                                           \
    "u.user_id = :tu_user AND u.conversation_id = :tu_id AND u.seq = :tu_seq AND u.role = 'user' AND"          \
    " (u.idempotency_key = :tu_key OR (CAST(:tu_key2 AS TEXT) IS NULL AND u.idempotency_key IS NULL"           \
    " AND u.run_owner = :tu_run))"
#define CS_DEFER_FLUSH                                                                                         \
    "set_config('synchronous_commit', CASE WHEN CAST(:defer_flush AS INTEGER) = 1 THEN 'off'"                  \
    " ELSE current_setting('synchronous_commit') END, true)"
