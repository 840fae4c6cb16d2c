#pragma once
// Small private helpers: clock, random ids, UTF-8.

#include <cstdint>
#include <string>
#include <string_view>

namespace convstate::detail {

/** UTC microseconds since the epoch. */
std::int64_t now_us() noexcept;

/** A random RFC 4122 version-4 UUID in canonical lowercase text form. */
std::string new_uuid();

/** The id of the user's conversation with an external key: the RFC 4122 version-5 UUID of
 *  "<bytes of user_id>:<user_id><key>" in convstate's namespace, lowercase text. Never equal to a
 *  new_uuid() (another version nibble). */
std::string keyed_conversation_id(std::string_view user_id, std::string_view external_key);

/** True when text is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool is_valid_utf8(std::string_view text) noexcept;

/** At most max_bytes of text, for quoting input in an error: cut on a UTF-8 character boundary
 *  (the error stays valid UTF-8 when the input was). */
std::string utf8_prefix(std::string_view text, std::size_t max_bytes = 64);

/** The one NotFound of a conversation: the same text whether it is missing or another user's. */
[[noreturn]] void throw_not_found(std::string_view conversation_id);

} // namespace convstate::detail
