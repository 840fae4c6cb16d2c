#pragma once
// What names a begun turn, and the turn token that carries it between begin_turn and
// complete_turn / fail_turn (see docs/design.md, "The split turn").

#include <cstdint>
#include <optional>
#include <string>

#include "convstate/types.hpp"

namespace convstate::detail {

/** What names a begun turn, enough to end it (store its output, or release its run) in any
 *  thread, process or instance: where its user message is and how its run marked it. */
struct TurnIdentity {
    std::string user_id;
    std::string conversation_id;
    std::int64_t user_seq = 0;
    bool created = false;
    std::optional<std::string> key; ///< the caller's idempotency key, on the user message
    std::string run_token;          ///< names the run: its reject mark and its claim on a keyed turn
    bool marked = false;            ///< holds a ConcurrentTurns::reject mark
    /** Base of the keys of the messages the turn stores: the caller's key; for a split turn
     *  without one, a key derived from run_token (so that completing twice stores once). */
    std::optional<std::string> outcome_key;
};

/** The turn token of a split turn: "cst1." and the identity as base64url-encoded JSON. It holds
 *  no secret: every use is checked against the caller's user id and the stored user message. */
std::string encode_turn_token(const TurnIdentity& turn);

/** The identity a token names, with outcome_key set as for a split turn.
 *  @throws InvalidArgument("turn_token") if it is not a token encode_turn_token made. */
TurnIdentity decode_turn_token(const std::string& token, const Limits& limits);

/** The outcome_key of a split turn with this caller's key and run token. */
std::string split_outcome_key(const std::optional<std::string>& key, const std::string& run_token);

} // namespace convstate::detail
