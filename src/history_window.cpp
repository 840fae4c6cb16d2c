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
    units.reserve(ms.size());
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

namespace {

// What a window keeps of an in-memory history: whether the prefix goes first, the summary as a
// message, then these tail messages (indexes, in order).
struct Selection {
    bool prefix = false;
    std::optional<Message> summary;
    std::vector<std::size_t> tail;
};

Selection choose(const HistoryWindow& w, const std::vector<Message>& system_prefix, const std::vector<Message>& tail,
                 const std::optional<Summary>& summary) {
    using Kind = HistoryWindow::Kind;
    Selection out;
    const TokenCounter& count = w.token_counter ? w.token_counter : TokenCounter(estimate_tokens);
    out.prefix = w.keep_system;
    const std::int64_t prefix_end = w.keep_system && !system_prefix.empty() ? system_prefix.back().seq : 0;
    if (w.from_summary && summary) {
        out.summary.emplace();
        out.summary->role = w.summary_role;
        out.summary->content = summary->content;
        out.summary->metadata_json = summary->metadata_json;
        out.summary->conversation_id = summary->conversation_id;
        out.summary->created_at_us = summary->created_at_us;
    }
    const std::int64_t skip_to = std::max(prefix_end, out.summary ? summary->covers_through_seq : 0);

    std::vector<const Message*> rest;
    rest.reserve(tail.size());
    for (const Message& m : tail)
        if (m.seq > skip_to) rest.push_back(&m);
    const std::vector<Unit> units = split_units(rest);

    // Take whole units from the newest backwards while they fit.
    std::size_t first = units.size(); // index of the oldest unit taken
    if (w.kind == Kind::all) {
        first = 0;
    } else if (w.kind == Kind::last_messages) {
        std::size_t taken = 0;
        while (first > 0 && taken + (units[first - 1].end - units[first - 1].begin) <= w.max_messages) {
            --first;
            taken += units[first].end - units[first].begin;
        }
    } else {
        // Tokens spent so far, saturating (counts come from the host and from stored values).
        std::int64_t spent = 0;
        if (w.keep_system)
            for (const Message& m : system_prefix) spent = detail::add_tokens(spent, count(m));
        if (out.summary) spent = detail::add_tokens(spent, count(*out.summary));
        while (first > 0) {
            const Unit& u = units[first - 1];
            std::int64_t cost = 0;
            for (std::size_t k = u.begin; k < u.end; ++k) cost = detail::add_tokens(cost, count(*rest[k]));
            const std::int64_t after = detail::add_tokens(spent, cost);
            if (after > w.token_budget && first != units.size()) break; // the newest unit is always kept
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
    if (first < units.size()) out.tail.reserve(units.back().end - units[first].begin);
    for (std::size_t k = first; k < units.size(); ++k)
        for (std::size_t i = units[k].begin; i < units[k].end; ++i)
            out.tail.push_back(static_cast<std::size_t>(rest[i] - tail.data()));
    return out;
}

// The window of a selection, copying (const) or moving the messages out of prefix and tail.
template <class Prefix, class Tail>
std::vector<Message> assemble(Selection sel, Prefix& system_prefix, Tail& tail) {
    std::vector<Message> window;
    window.reserve((sel.prefix ? system_prefix.size() : 0) + (sel.summary ? 1 : 0) + sel.tail.size());
    if (sel.prefix)
        for (auto& m : system_prefix) window.push_back(std::move(m)); // a copy when const
    if (sel.summary) window.push_back(std::move(*sel.summary));
    for (std::size_t i : sel.tail) window.push_back(std::move(tail[i]));
    return window;
}

} // namespace

std::vector<Message> HistoryWindow::select(const std::vector<Message>& system_prefix, const std::vector<Message>& tail,
                                           const std::optional<Summary>& summary) const {
    return assemble(choose(*this, system_prefix, tail, summary), system_prefix, tail);
}

std::vector<Message> HistoryWindow::select(std::vector<Message>&& system_prefix, std::vector<Message>&& tail,
                                           const std::optional<Summary>& summary) const {
    return assemble(choose(*this, system_prefix, tail, summary), system_prefix, tail);
}

} // namespace convstate
