#pragma once
/** @file history_window.hpp What the agent sees of a conversation. */

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "convstate/export.hpp"
#include "convstate/types.hpp"

namespace convstate {

/** Counts the tokens of a message for a token-budget window. */
using TokenCounter = std::function<std::int64_t(const Message&)>;

/** The default token estimate: the stored token_count when known, else
 *  ceil(bytes / 4) over content (of a content-part array: its text parts), name and tool-call ids,
 *  names and arguments, plus 4 per message
 *  (role and framing). Cheap and model-agnostic; supply a real tokenizer for precision. */
CONVSTATE_API std::int64_t estimate_tokens(const Message& message);

/** Selects the messages an agent sees.
 *
 *  - kind all: every message; last_messages: the newest max_messages; token_budget: the newest
 *    messages whose tokens fit token_budget (the newest message is always kept, even over budget).
 *  - The conversation's leading system messages (those before its first message that is neither
 *    system nor developer; developer messages count as system) are always kept when keep_system
 *    is true; they do not count against max_messages and are
 *    subtracted from token_budget first.
 *  - Tool calls are never split: an assistant message carrying tool_calls and the tool messages
 *    answering it (which follow it) are kept together or dropped together, and a window never
 *    starts with a tool message. Where the history holds an incomplete group (a call without all
 *    its results, or a result without its call), the window starts after it.
 *  - Apart from the kept system messages (and a summary), the window is a suffix of the
 *    conversation, in seq order. Loading reads only about as many rows as the window holds, not
 *    the conversation.
 *  - from_summary (on by default): when the conversation has summaries
 *    (MessageRepository::add_summary), the latest one standing for messages 1..S (S at most the
 *    window's end) replaces them: the window is the kept system messages, then the summary as
 *    one message of role summary_role (seq 0, the summary's content and metadata), then the
 *    newest messages after S under the rules above. The summary does not count against
 *    max_messages and is subtracted from token_budget after the system messages. Without
 *    summaries, or with from_summary off, the window is as if there were none.
 *
 *  Thread-safety: a value; a const HistoryWindow may be shared between threads if its
 *  token_counter may. */
struct CONVSTATE_API HistoryWindow {
    /** How the window is chosen (see the list above). */
    enum class Kind {
        all,           ///< every message
        last_messages, ///< the newest max_messages
        token_budget   ///< the newest messages within token_budget
    };

    Kind kind = Kind::all;           ///< which selection; all by default
    std::size_t max_messages = 0;    ///< for last_messages (>= 1)
    std::int64_t token_budget = 0;   ///< for token_budget (>= 1)
    TokenCounter token_counter;      ///< empty: estimate_tokens
    bool keep_system = true;         ///< keep the leading system messages (see above)
    bool from_summary = true;        ///< start from the latest summary, if any (see above)
    Role summary_role = Role::system; ///< the role the summary message has in the window (not tool)

    /** Kind::all: every message. */
    static HistoryWindow everything() { return {}; }
    /** Kind::last_messages: the newest n messages (n must be >= 1 when the window is used). */
    static HistoryWindow last(std::size_t n) {
        HistoryWindow w;
        w.kind = Kind::last_messages;
        w.max_messages = n;
        return w;
    }
    /** Kind::token_budget: the newest messages within budget tokens (>= 1 when the window is
     *  used), counted by counter (empty: estimate_tokens). */
    static HistoryWindow tokens(std::int64_t budget, TokenCounter counter = {}) {
        HistoryWindow w;
        w.kind = Kind::token_budget;
        w.token_budget = budget;
        w.token_counter = std::move(counter);
        return w;
    }

    /** The selection itself, on an in-memory history: `system_prefix` holds the conversation's
     *  leading system messages, `tail` the newest messages in seq order (it may overlap the
     *  prefix; a loader passes at least as many as the window can keep), `summary` the latest
     *  summary at or below the tail's end, if any (used when from_summary; tail messages it
     *  covers are skipped). Returns the window. */
    std::vector<Message> select(const std::vector<Message>& system_prefix, const std::vector<Message>& tail,
                                const std::optional<Summary>& summary = std::nullopt) const;
    /** As above, moving the kept messages out of `system_prefix` and `tail` instead of copying
     *  them (what is left there is unspecified). */
    std::vector<Message> select(std::vector<Message>&& system_prefix, std::vector<Message>&& tail,
                                const std::optional<Summary>& summary = std::nullopt) const;
};

} // namespace convstate
