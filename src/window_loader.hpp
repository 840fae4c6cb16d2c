#pragma once
// Loading a history window: the one place that reads what HistoryWindow::select chooses from.
//
// A window is read in two parts. read_window_rows runs inside the caller's transaction (a turn's
// begin, or a plain read) and reads the newest messages, sized to the window. finish_window runs
// with no connection held — the host's TokenCounter and the selection never run while a pooled
// connection or a database lock is held — and reads further back, each read a short read of its
// own, only while a token budget is not spent and for the leading system messages when they are
// not known yet. Messages at or below the window's end change only when a truncate removes them
// — and with them the turn's own user message, so such a turn cannot store a reply (NotFound) —
// so the later reads see the same history as the first.

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "convstate/history_window.hpp"
#include "db.hpp"
#include "rows.hpp"

namespace convstate::detail {

/** Throws InvalidArgument for a window that cannot select anything (max_messages or token_budget 0). */
void check_window(const HistoryWindow& w);

/** The rows read so far for a window ending at seq `end`: every message in (lo, end], the
 *  conversation's leading system messages when known (messages up to lo only), and — for a
 *  window from_summary — the latest summary at or below end, which lo never goes below. */
struct WindowRows {
    long long end = 0;
    long long lo = 0;
    std::vector<Message> tail;
    std::optional<std::vector<Message>> prefix;
    std::optional<Summary> summary;
};

/** Collects the rows of a statement that returns messages and, marked 2 in a last column bound
 *  to `mark` (sql.cpp's msg_window_chunk, turn_begin), a summary: the messages in seq order
 *  (sorted here if the statement returned them otherwise); the summary into `summary`;
 *  `expected` message rows are reserved for. on_row sees each message row's mark. */
template <class OnRow>
std::vector<Message> fetch_messages_and_summary(Stmt& st, MessageRow& row, const long long& mark,
                                                const soci::indicator& mark_ind, std::optional<Summary>& summary,
                                                long long expected, OnRow&& on_row) {
    std::vector<Message> out;
    out.reserve(static_cast<std::size_t>(std::clamp<long long>(expected, 0, max_reserved_rows)));
    if (st.execute()) {
        do {
            if (mark_ind == soci::i_ok && mark == 2) {
                summary = Summary{row.conversation_id, row.token_count, row.content, row.metadata_json, row.created_at};
                continue;
            }
            row.take_into(out);
            on_row(mark_ind == soci::i_ok ? std::optional(mark) : std::nullopt);
        } while (st.fetch());
    }
    // A statement without ORDER BY (msg_window_chunk) may return its rows in any order.
    const auto by_seq = [](const Message& a, const Message& b) { return a.seq < b.seq; };
    if (!std::is_sorted(out.begin(), out.end(), by_seq)) std::sort(out.begin(), out.end(), by_seq);
    return out;
}

/** How far back the first read reaches: the window's size, or a first chunk of a token budget. */
long long first_chunk(const HistoryWindow& w);

/** The first read, in the caller's transaction: messages (end - first_chunk(w), end] (above the
 *  latest summary, for a window from_summary). for_turn: the window ends with a turn's user
 *  message at `end`, so a summary covering it is not used. */
WindowRows read_window_rows(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                            const HistoryWindow& w, long long end, bool for_turn);

/** Completes rows (reading more with their own reads, no connection held otherwise) and selects
 *  the window. @throws StorageError. */
std::vector<Message> finish_window(DatabaseImpl& db, const std::string& user, const std::string& id,
                                   const HistoryWindow& w, WindowRows rows);

} // namespace convstate::detail
