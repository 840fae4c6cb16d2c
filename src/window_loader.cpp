#include "window_loader.hpp"

#include <algorithm>
#include <cstdint>

#include "convstate/error.hpp"
#include "rows.hpp"
#include "tokens.hpp"
#include "tx_steps.hpp"

namespace convstate::detail {
namespace {

std::vector<Message> leading_system(const std::vector<Message>& messages) {
    std::vector<Message> prefix;
    for (const Message& m : messages) {
        if (!is_instruction(m.role)) break;
        prefix.push_back(m);
    }
    return prefix;
}

// Tokens of a tail for deciding whether to read further back. A tail that starts inside a
// tool-call group does not count that group (the group may belong to the window whole).
std::int64_t tail_tokens(const std::vector<Message>& tail, const TokenCounter& count) {
    std::int64_t tokens = 0;
    bool leading_tools = true;
    for (const Message& m : tail) {
        leading_tools = leading_tools && m.role == Role::tool;
        if (!leading_tools) tokens = add_tokens(tokens, count(m));
    }
    return tokens;
}

} // namespace

void check_window(const HistoryWindow& w) {
    if (w.kind == HistoryWindow::Kind::last_messages && w.max_messages < 1)
        throw InvalidArgument("window.max_messages", "must be at least 1");
    if (w.kind == HistoryWindow::Kind::token_budget && w.token_budget < 1)
        throw InvalidArgument("window.token_budget", "must be at least 1");
    if (w.summary_role == Role::tool)
        throw InvalidArgument("window.summary_role", "must not be tool (a tool message answers a call)");
}

long long first_chunk(const HistoryWindow& w) {
    constexpr long long everything = INT64_MAX / 4;
    switch (w.kind) {
    case HistoryWindow::Kind::last_messages:
        return static_cast<long long>(std::min<std::size_t>(w.max_messages, everything));
    case HistoryWindow::Kind::token_budget: return 64;
    case HistoryWindow::Kind::all: break;
    }
    return everything;
}

WindowRows read_window_rows(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                            const HistoryWindow& w, long long end, bool for_turn) {
    WindowRows rows;
    rows.end = end;
    if (end <= 0) return rows;
    const long long below = std::max<long long>(0, end - first_chunk(w));
    if (!w.from_summary) {
        rows.lo = below;
        rows.tail = load_range(db, s, user, id, rows.lo, end);
        return rows;
    }
    MessageRow row(id);
    long long mark = 0;
    soci::indicator mark_ind{};
    Stmt st(db, s, db.sql().msg_window_chunk);
    row.bind(st);
    const long long summary_hi = for_turn ? end - 1 : end;
    st.into(mark, mark_ind).use(user).use(id).use(below).use(user).use(id).use(summary_hi).use(end).use(user).use(id)
        .use(user).use(id).use(summary_hi);
    rows.tail = fetch_messages_and_summary(st, row, mark, mark_ind, rows.summary, end - below, [](auto) {});
    rows.lo = std::max<long long>(below, rows.summary ? rows.summary->covers_through_seq : 0);
    return rows;
}

std::vector<Message> finish_window(DatabaseImpl& db, const std::string& user, const std::string& id,
                                   const HistoryWindow& w, WindowRows rows) {
    if (rows.end <= 0) return {};
    auto read = [&](auto&& fn) { return db.run(TxMode::read, fn); };
    // A summary stands for everything up to its seq: nothing below it is read.
    const long long floor = rows.summary ? rows.summary->covers_through_seq : 0;
    if (w.kind == HistoryWindow::Kind::token_budget) {
        const TokenCounter& count = w.token_counter ? w.token_counter : TokenCounter(estimate_tokens);
        for (long long chunk = 2 * first_chunk(w); rows.lo > floor; chunk *= 2) {
            if (tail_tokens(rows.tail, count) > w.token_budget) break;
            const long long next = std::max<long long>(floor, rows.lo - chunk);
            std::vector<Message> part =
                read([&](soci::session& s) { return load_range(db, s, user, id, next, rows.lo); });
            part.insert(part.end(), std::make_move_iterator(rows.tail.begin()), std::make_move_iterator(rows.tail.end()));
            rows.tail = std::move(part);
            rows.lo = next;
            rows.prefix.reset(); // a prefix below the old lo may now overlap the tail
        }
    }
    std::vector<Message> prefix;
    if (!w.keep_system) {
        // none
    } else if (rows.lo <= 0) {
        prefix = leading_system(rows.tail);
    } else if (rows.prefix && static_cast<long long>(rows.prefix->size()) == rows.lo) {
        // Every message up to lo is a system message: the leading run may go on into the tail.
        prefix = std::move(*rows.prefix);
        for (Message& m : leading_system(rows.tail)) prefix.push_back(std::move(m));
    } else if (rows.prefix) {
        prefix = std::move(*rows.prefix);
    } else {
        prefix = read([&](soci::session& s) {
            MessageRow row(id);
            Stmt st(db, s, db.sql().msg_system_prefix);
            row.bind(st);
            st.use(rows.end).use(user).use(id).use(rows.end).use(user).use(id);
            return fetch_messages(st, row);
        });
    }
    return w.select(std::move(prefix), std::move(rows.tail), rows.summary);
}

} // namespace convstate::detail
