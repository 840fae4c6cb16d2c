#pragma once
// Input validation: every check throws InvalidArgument naming the field, before anything is
// written.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "convstate/types.hpp"

namespace convstate::detail {

/** Non-empty text (see check_text). */
void check_id(std::string_view value, const std::string& field, std::size_t max_bytes);

void check_user_id(std::string_view user_id, const Limits& limits);

/** A caller's idempotency key: an id (see check_id) without control characters (U+0000–U+001F,
 *  U+007F). The keys a turn derives for what it stores use U+001F as their separator, so no
 *  caller's key can ever equal one of them. */
void check_key(std::string_view key, const std::string& field, std::size_t max_bytes);

/** The separator of derived idempotency keys (see check_key). */
inline constexpr char derived_key_separator = '\x1f';
void check_conversation_id(std::string_view conversation_id, const Limits& limits);
/** check_user_id and check_conversation_id: the scope every call on a conversation takes. */
void check_scope(std::string_view user_id, std::string_view conversation_id, const Limits& limits);

/** Well-formed UTF-8, no NUL byte (PostgreSQL TEXT cannot hold one), at most max_bytes. */
void check_text(std::string_view value, const std::string& field, std::size_t max_bytes);

/** Checks that text is a JSON object within the size limit; returns it in compact form. */
std::string normalize_metadata(std::string_view text, const std::string& field, const Limits& limits);

/** The largest token_count a message may carry (no model's context comes near it). */
inline constexpr std::int64_t max_token_count = 1'000'000'000;

/** Checks a message to be appended and normalises its metadata in place. field_prefix is
 *  prepended to field names ("" or "messages[3]."). */
/** Whose idempotency keys a check accepts: a caller's (no control characters), or any the
 *  library stores (also the keys it derives for a turn's steps and reply; used by import). */
enum class KeyOrigin { caller, stored };

void check_message(Message& message, const std::string& field_prefix, const Limits& limits,
                   KeyOrigin keys = KeyOrigin::caller);

/** A content-part array checked (field names it: "content", "messages[0].content") and made
 *  compact. Only user messages may carry parts other than text. @throws InvalidArgument. */
std::string normalize_content_parts(std::string_view text, const std::string& field, Role role, const Limits& limits);

/** The text parts of a content-part array, joined by newlines ("" if none or not an array). */
std::string content_text(const std::string& parts_json);

/** Checks every message of a batch (fields named "<name>[i]." or, with an empty name, without a
 *  prefix) and rejects an idempotency key used twice. Returns whether every message has a key. */
bool check_batch(std::vector<Message>& batch, const std::string& name, const Limits& limits,
                 KeyOrigin keys = KeyOrigin::caller);

/** True when text parses as JSON (syntax only: used for tool-call arguments, which are stored
 *  and returned as the exact text given). */
bool is_json(std::string_view text) noexcept;

/** Deepest nesting of arrays and objects accepted in any JSON the library parses. */
inline constexpr std::size_t max_json_depth = 32;

/** Parses JSON that the library will store or act on, refusing with InvalidArgument what it
 *  could not keep exactly: an object with the same key twice, and a number that a double cannot
 *  hold exactly (out of range such as 1e400, underflowing such as 1e-400, or more digits than a
 *  double keeps such as a 30-digit integer); integers within 64 bits are exact. Those errors
 *  name the value's path below `base` ("metadata.n", "messages[2].role"; "json" for the whole
 *  text when base is empty). Invalid syntax and nesting deeper than max_json_depth name `field`. */
boost::json::value parse_strict(std::string_view text, const std::string& field, const std::string& base);

/** Parses JSON the library wrote (stored metadata, content parts) with every double read
 *  exactly as printed, so that what parse_strict accepted reads back unchanged however often it
 *  is parsed and printed again (Boost.JSON's own parse is off by one unit in the last place for
 *  some numbers). Sets ec on invalid JSON or nesting deeper than max_json_depth. */
boost::json::value parse_json(std::string_view text, boost::system::error_code& ec);

} // namespace convstate::detail
