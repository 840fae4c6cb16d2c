#pragma once
/** @file json.hpp Messages and conversations to and from OpenAI chat-format JSON.
 *
 *  A message is `{"role", "content", "name"?, "tool_calls"?, "tool_call_id"?}` as in the OpenAI
 *  chat API, plus convstate's fields when set: "metadata" (object), "token_count",
 *  "idempotency_key", "conversation_id", "seq", "created_at_us". Decoding accepts
 *  `"content": null` (as ""), treats null as absent for the other optional fields and ignores
 *  unknown fields. Every field round-trips exactly, metadata included when it is compact JSON
 *  as boost::json::serialize writes it, which is the form the library stores it in; other
 *  metadata text comes back in that normalised form. */

#include <string>
#include <string_view>
#include <vector>

#include "convstate/database.hpp"
#include "convstate/export.hpp"
#include "convstate/types.hpp"

namespace convstate {
struct TurnResult;
struct PendingTurn;
struct AgentReply; // chat_orchestrator.hpp
}

namespace convstate::json {

/** A message as a compact JSON object. "role", "content" and "metadata" are always written;
 *  "name", "tool_call_id", "token_count" and "idempotency_key" only when set, "tool_calls" when
 *  non-empty, "conversation_id", "seq" and "created_at_us" when non-empty / non-zero.
 *  @throws InvalidArgument naming "metadata" if metadata_json is not a JSON object. */
CONVSTATE_API std::string to_json(const Message& message);
/** Messages as a JSON array, in the given order (each as to_json(const Message&)). */
CONVSTATE_API std::string to_json(const std::vector<Message>& messages);
/** {"id","user_id","title","metadata","last_seq","created_at_us","updated_at_us","external_key",
 *  "forked_from"} (external_key a string or null; forked_from {"conversation_id","seq"} or null).
 *  @throws InvalidArgument naming "metadata" if metadata_json is not a JSON object. */
CONVSTATE_API std::string to_json(const Conversation& conversation);
/** {"replies","prompt_tokens","completion_tokens","cached_tokens","reasoning_tokens",
 *  "by_model": [{"model": string or null, "replies", …}]}. */
CONVSTATE_API std::string to_json(const UsageReport& report);
/** Database::stats() as {"statements","transactions","retries","bounds_us":[…],
 *  "operations":{"append":{"calls","errors","latency":{"count","sum_us","counts":[…]}},…},
 *  "pool":{"acquisitions","waits","timeouts","wait":{…}}}; each "counts" has one entry per
 *  bound and a last one for the samples above every bound (docs/json.md). */
CONVSTATE_API std::string to_json(const DatabaseStats& stats);
/** Conversations as a JSON array (each as to_json(const Conversation&)). */
CONVSTATE_API std::string to_json(const std::vector<Conversation>& conversations);
/** {"items": [conversations], "next_cursor": string, or null on the last page}. */
CONVSTATE_API std::string to_json(const ConversationPage& page);
/** {"conversation_id","covers_through_seq","content","metadata","created_at_us"}. */
CONVSTATE_API std::string to_json(const Summary& summary);
/** Summaries as a JSON array (each as to_json(const Summary&)). */
CONVSTATE_API std::string to_json(const std::vector<Summary>& summaries);
/** {"conversation": {…as to_json(const Conversation&)}, "created": bool}. */
CONVSTATE_API std::string to_json(const GetOrCreateResult& result);

/** {"conversation_id","reply","tool_calls","user_seq","reply_seq","created","replayed",
 *  "intermediate"}: tool_calls and intermediate (messages) are arrays. */
CONVSTATE_API std::string to_json(const TurnResult& result);
/** {"conversation_id","user_seq","created","history","token","completed"}: history is an
 *  array of messages, token a string (null when completed), completed a TurnResult object (as
 *  to_json(const TurnResult&)) or null. */
CONVSTATE_API std::string to_json(const PendingTurn& turn);
/** Decodes an agent's reply: `{"content", "tool_calls"?, "intermediate"?, "metadata"?, "usage"?}`
 *  — content a string (null or absent: ""), tool_calls an array in OpenAI format, intermediate
 *  an array of messages, metadata an object, usage an object (see usage_from_json). Unlike
 *  messages, an unknown field is refused (a typo would otherwise drop what it meant to say).
 *  @throws InvalidArgument naming the field ("reply.contnet", "intermediate[1].role", …). */
CONVSTATE_API AgentReply reply_from_json(std::string_view text);
/** Decodes a usage object {"model"?,"prompt_tokens"?,"completion_tokens"?,"cached_tokens"?,
 *  "reasoning_tokens"?} (as AgentReply::usage). @throws InvalidArgument naming the field. */
CONVSTATE_API Usage usage_from_json(std::string_view text);

/** Decodes one message (a JSON object); "role" is required.
 *  @throws InvalidArgument naming the field (e.g. "tool_calls[0].function.arguments"), or
 *          "json" / "message" when the text is not valid JSON / not an object. */
CONVSTATE_API Message message_from_json(std::string_view text);
/** Decodes a JSON array of messages, in order.
 *  @throws InvalidArgument naming the field by its path ("messages[2].role"). */
CONVSTATE_API std::vector<Message> messages_from_json(std::string_view text);
/** Decodes a conversation object (as to_json(const Conversation&) writes it); absent fields keep
 *  their defaults. @throws InvalidArgument naming the field. */
CONVSTATE_API Conversation conversation_from_json(std::string_view text);

/** Tool calls alone (a JSON array in OpenAI format). */
CONVSTATE_API std::string tool_calls_to_json(const std::vector<ToolCall>& calls);
/** Decodes a JSON array of tool calls in OpenAI format; each call's "arguments" must be JSON
 *  text. @throws InvalidArgument naming the field ("tool_calls[0].function.arguments"). */
CONVSTATE_API std::vector<ToolCall> tool_calls_from_json(std::string_view text);

} // namespace convstate::json
