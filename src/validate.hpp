#pragma once
// Input validation: every check throws InvalidArgument naming the field, before anything is
// written.

#include <string>
#include <string_view>
#include <vector>

#include "convstate/types.hpp"

namespace convstate::detail {

/** Non-empty text (see check_text). */
void check_id(std::string_view value, const std::string& field, std::size_t max_bytes);

void check_user_id(std::string_view user_id, const Limits& limits);
void check_conversation_id(std::string_view conversation_id, const Limits& limits);

/** Well-formed UTF-8, no NUL byte (PostgreSQL TEXT cannot hold one), at most max_bytes. */
void check_text(std::string_view value, const std::string& field, std::size_t max_bytes);

/** Checks that text is a JSON object within the size limit; returns it in compact form. */
std::string normalize_metadata(std::string_view text, const std::string& field, const Limits& limits);

/** Checks a message to be appended and normalises its metadata in place. field_prefix is
 *  prepended to field names ("" or "messages[3]."). */
void check_message(Message& message, const std::string& field_prefix, const Limits& limits);

/** Checks every message of a batch (fields named "<name>[i]." or, with an empty name, without a
 *  prefix) and rejects an idempotency key used twice. Returns whether every message has a key. */
bool check_batch(std::vector<Message>& batch, const std::string& name, const Limits& limits);

/** True when text parses as JSON. */
bool is_json(std::string_view text) noexcept;

} // namespace convstate::detail
