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

/** True when text is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF). */
bool is_valid_utf8(std::string_view text) noexcept;

/** The one NotFound of a conversation: the same text whether it is missing or another user's. */
[[noreturn]] void throw_not_found(std::string_view conversation_id);

} // namespace convstate::detail
