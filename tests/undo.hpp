#pragma once
// "Delete the last exchange", as the undo tests and the test worker do it while turns run.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <convstate/convstate.hpp>

namespace cstest {

/** Truncates the conversation from its newest user message (among the last 6 messages) on, if
 *  no message arrived meanwhile (expected_last_seq). Returns the after_seq it cut at when it
 *  removed something; nullopt when there was nothing to undo at or above lowest_cut, or another
 *  writer got in first (Conflict). */
inline std::optional<std::int64_t> undo_last_exchange(const convstate::MessageRepository& messages,
                                                      const std::string& user, const std::string& id,
                                                      std::int64_t lowest_cut = 0) {
    const std::vector<convstate::Message> recent = messages.load_last(user, id, 6);
    std::int64_t from = 0;
    for (const convstate::Message& m : recent)
        if (m.role == convstate::Role::user) from = m.seq;
    if (from == 0 || from - 1 < lowest_cut) return std::nullopt;
    try {
        if (messages.truncate(user, id, from - 1, recent.back().seq) > 0) return from - 1;
    } catch (const convstate::Conflict&) {
    }
    return std::nullopt;
}

} // namespace cstest
