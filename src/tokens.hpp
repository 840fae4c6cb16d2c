#pragma once
// Token arithmetic for windows: counts come from stored token_count values and from the host's
// TokenCounter, so a sum must neither overflow nor be pulled down by a negative count.

#include <cstdint>
#include <limits>

namespace convstate::detail {

/** sum + count, with a negative count taken as 0 and the result saturating at INT64_MAX. */
inline std::int64_t add_tokens(std::int64_t sum, std::int64_t count) noexcept {
    if (count <= 0) return sum;
    return sum > std::numeric_limits<std::int64_t>::max() - count ? std::numeric_limits<std::int64_t>::max()
                                                                   : sum + count;
}

} // namespace convstate::detail
