#include "convstate/history_window.hpp"

#include <algorithm>
#include <set>
#include <string>

#include "tokens.hpp"
#include "validate.hpp"

namespace convstate {

std::int64_t estimate_tokens(const Message& m) {
    if (m.token_count) return *m.token_count;
    std::size_t bytes = m.content.size() + (m.name ? m.name->size() : 0);
    if (m.content_parts_json) bytes += detail::content_text(*m.content_parts_json).size(); // text parts only
    for (const ToolCall& call : m.tool_calls) bytes += call.name.size() + call.arguments.size() + call.id.size();
    return static_cast<std::int64_t>((bytes + 3) / 4) + 4;
}

namespace {

// A unit is what a window keeps or drops whole: one plain message, or an assistant message
// carrying tool_calls together with the tool messages that follow it. A run of tool messages
// with no call before it is an invalid unit, as is a call group whose results do not answer
// exactly its calls.
struct Unit {
    std::size_t begin, end; // indexes into the candidate list
    bool valid;
};

std::vector<Unit> split_units(const std::vector<const Message*>& ms) {
    std::vector<Unit> units;
    std::size_t i = 0;
    while (i < ms.size()) {
        const Message& m = *ms[i];
        std::size_t j = i + 1;
        bool valid = true;
        if (m.role == Role::tool) {
            while (j < ms.size() && ms[j]->role == Role::tool) ++j;
            valid = false;
        } else if (m.role == Role::assistant && !m.tool_calls.empty()) {
            std::set<std::string> calls, answered;
            for (const ToolCall& c : m.tool_calls) calls.insert(c.id);
            std::size_t results = 0;
            while (j < ms.size() && ms[j]->role == Role::tool) {
                answered.insert(ms[j]->tool_call_id.value_or(std::string{}));
                ++results, ++j;
            }
            valid = calls.size() == m.tool_calls.size() && results == calls.size() && answered == calls;
        }
        units.push_back({i, j, valid});
        i = j;
    }
    return units;
}

} // namespace

std::vector<Message> HistoryWindow::select(const std::vector<Message>& system_prefix, const std::vector<Message>& tail,
                                           const std::optional<Summary>& summary) const {
    const TokenCounter& count = token_counter ? token_counter : TokenCounter(estimate_tokens);
    const std::int64_t prefix_end = keep_system && !system_prefix.empty() ? system_prefix.back().seq : 0;
    std::optional<Message> summary_msg;
    if (from_summary && summary) {
        summary_msg.emplace();
        summary_msg->role = summary_role;
        summary_msg->content = summary->content;
        summary_msg->metadata_json = summary->metadata_json;
        summary_msg->conversation_id = summary->conversation_id;
        summary_msg->created_at_us = summary->created_at_us;
    }
    const std::int64_t skip_to = std::max(prefix_end, summary_msg ? summary->covers_through_seq : 0);

    std::vector<const Message*> rest;
    for (const Message& m : tail)
        if (m.seq > skip_to) rest.push_back(&m);
    const std::vector<Unit> units = split_units(rest);

    // Take whole units from the newest backwards while they fit.
    std::size_t first = units.size(); // index of the oldest unit taken
    if (kind == Kind::all) {
        first = 0;
    } else if (kind == Kind::last_messages) {
        std::size_t taken = 0;
        while (first > 0 && taken + (units[first - 1].end - units[first - 1].begin) <= max_messages) {
            --first;
            taken += units[first].end - units[first].begin;
        }
    } else {
        // Tokens spent so far, saturating (counts come from the host and from stored values).
        std::int64_t spent = 0;
        if (keep_system)
            for (const Message& m : system_prefix) spent = detail::add_tokens(spent, count(m));
        if (summary_msg) spent = detail::add_tokens(spent, count(*summary_msg));
        while (first > 0) {
            const Unit& u = units[first - 1];
            std::int64_t cost = 0;
            for (std::size_t k = u.begin; k < u.end; ++k) cost = detail::add_tokens(cost, count(*rest[k]));
            const std::int64_t after = detail::add_tokens(spent, cost);
            if (after > token_budget && first != units.size()) break; // the newest unit is always kept
            spent = after;
            --first;
        }
    }
    // Never keep anything before an incomplete group: start after the last invalid unit.
    for (std::size_t k = units.size(); k > first; --k)
        if (!units[k - 1].valid) {
            first = k;
            break;
        }

    std::vector<Message> window;
    if (keep_system) window = system_prefix;
    if (summary_msg) window.push_back(std::move(*summary_msg));
    for (std::size_t k = first; k < units.size(); ++k)
        for (std::size_t i = units[k].begin; i < units[k].end; ++i) window.push_back(*rest[i]);
    return window;
}

} // namespace convstate
