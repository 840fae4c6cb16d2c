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

#include "convstate/export.hpp"
#include "convstate/chat_orchestrator.hpp"
#include "convstate/types.hpp"

namespace convstate::json {

CONVSTATE_API std::string to_json(const Message& message);
CONVSTATE_API std::string to_json(const std::vector<Message>& messages);
CONVSTATE_API std::string to_json(const Conversation& conversation);
CONVSTATE_API std::string to_json(const ConversationPage& page);

/** {"conversation_id","reply","tool_calls","user_seq","reply_seq","created","replayed"}. */
CONVSTATE_API std::string to_json(const TurnResult& result);

/** @throws InvalidArgument naming the field (e.g. "tool_calls[0].function.arguments"). */
CONVSTATE_API Message message_from_json(std::string_view text);
CONVSTATE_API std::vector<Message> messages_from_json(std::string_view text);
CONVSTATE_API Conversation conversation_from_json(std::string_view text);

/** Tool calls alone (a JSON array in OpenAI format). */
CONVSTATE_API std::string tool_calls_to_json(const std::vector<ToolCall>& calls);
CONVSTATE_API std::vector<ToolCall> tool_calls_from_json(std::string_view text);

} // namespace convstate::json
