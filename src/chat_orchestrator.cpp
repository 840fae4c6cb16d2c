#include "convstate/chat_orchestrator.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "rows.hpp"
#include "util.hpp"
#include "validate.hpp"
#include "writes.hpp"

namespace convstate {

using detail::DatabaseImpl;
using detail::MessageRow;
using detail::Stmt;
using detail::TxMode;

namespace {

// Keys of what a keyed turn stores: the user message carries the turn's key itself.
std::string reply_key(const std::string& key) { return key + ":reply"; }
std::string step_key(const std::string& key, std::size_t i) { return fmt::format("{}:step:{}", key, i); }
constexpr std::size_t derived_key_room = 16;

void check_window(const HistoryWindow& w) {
    if (w.kind == HistoryWindow::Kind::last_messages && w.max_messages < 1)
        throw InvalidArgument("window.max_messages", "must be at least 1");
    if (w.kind == HistoryWindow::Kind::token_budget && w.token_budget < 1)
        throw InvalidArgument("window.token_budget", "must be at least 1");
}

std::vector<Message> leading_system(const std::vector<Message>& tail) {
    std::vector<Message> prefix;
    for (const Message& m : tail) {
        if (m.role != Role::system) break;
        prefix.push_back(m);
    }
    return prefix;
}

// Loads what the window can keep of the messages up to end_seq: rows in proportion to the
// window, never the whole conversation (unless the window is "all").
std::vector<Message> load_window(DatabaseImpl& db, soci::session& s, const std::string& user,
                                 const std::string& id, const HistoryWindow& w, long long end_seq) {
    if (end_seq <= 0) return {};
    std::vector<Message> tail;
    long long lo = 0;
    switch (w.kind) {
    case HistoryWindow::Kind::all:
        tail = detail::load_range(db, s, user, id, 0, end_seq);
        break;
    case HistoryWindow::Kind::last_messages:
        lo = std::max<long long>(0, end_seq - static_cast<long long>(std::min<std::size_t>(w.max_messages, INT64_MAX / 2)));
        tail = detail::load_range(db, s, user, id, lo, end_seq);
        break;
    case HistoryWindow::Kind::token_budget: {
        // Read backwards in growing chunks until the budget is spent. A chunk that starts inside
        // a tool-call group does not count that group (it may belong to the window whole).
        const TokenCounter& count = w.token_counter ? w.token_counter : TokenCounter(estimate_tokens);
        long long chunk = 64;
        lo = end_seq;
        while (lo > 0) {
            const long long next = std::max<long long>(0, lo - chunk);
            std::vector<Message> part = detail::load_range(db, s, user, id, next, lo);
            part.insert(part.end(), std::make_move_iterator(tail.begin()), std::make_move_iterator(tail.end()));
            tail = std::move(part);
            lo = next;
            std::int64_t tokens = 0;
            bool leading_tools = true;
            for (const Message& m : tail) {
                leading_tools = leading_tools && m.role == Role::tool;
                if (!leading_tools) tokens += count(m);
            }
            if (tokens > w.token_budget) break;
            chunk *= 2;
        }
        break;
    }
    }
    std::vector<Message> prefix;
    if (w.keep_system) {
        if (lo == 0) {
            prefix = leading_system(tail);
        } else {
            MessageRow row;
            Stmt st(s, db.sql().msg_system_prefix);
            row.bind(st);
            st.use(user).use(id).use(end_seq).use(user).use(id).use(end_seq);
            prefix = detail::fetch_messages(st, row);
        }
    }
    return w.select(prefix, tail);
}

struct Prepared {
    std::string conversation_id;
    bool created = false;
    Message user;
    std::optional<Message> reply; // set: a completed turn replayed
    std::vector<Message> window;
};

} // namespace

std::vector<Message> ChatOrchestrator::window(const std::string& user_id, const std::string& conversation_id,
                                              const HistoryWindow& w) const {
    auto& db = db_.impl();
    detail::check_user_id(user_id, db.limits());
    detail::check_conversation_id(conversation_id, db.limits());
    check_window(w);
    return db.run(TxMode::read, [&](soci::session& s) {
        long long last_seq = 0;
        Stmt st(s, db.sql().conv_exists);
        st.into(last_seq).use(user_id).use(conversation_id);
        if (!st.execute()) detail::throw_not_found(conversation_id);
        return load_window(db, s, user_id, conversation_id, w, last_seq);
    });
}

TurnResult ChatOrchestrator::turn(const TurnRequest& req, const Agent& agent) const {
    auto& db = db_.impl();
    const Limits& limits = db.limits();
    detail::check_user_id(req.user_id, limits);
    if (req.conversation_id) detail::check_conversation_id(*req.conversation_id, limits);
    detail::check_text(req.message, "message", limits.max_content_bytes);
    if (req.idempotency_key)
        detail::check_id(*req.idempotency_key, "idempotency_key", limits.max_id_bytes - derived_key_room);
    const HistoryWindow& w = req.window ? *req.window : options_.window;
    check_window(w);
    if (!agent) throw InvalidArgument("agent", "must be callable");

    Message user_msg;
    user_msg.role = Role::user;
    user_msg.content = req.message;
    user_msg.metadata_json = detail::normalize_metadata(req.message_metadata_json, "message_metadata", limits);
    user_msg.idempotency_key = req.idempotency_key;
    const std::optional<Conversation> fresh =
        req.conversation_id ? std::nullopt : std::optional(detail::make_conversation(db, req.user_id, req.new_conversation));
    const std::optional<std::string>& key = req.idempotency_key;
    const TxMode mode = key ? TxMode::idempotent_write : TxMode::write;
    const bool reject = options_.concurrency == ConcurrentTurns::reject;
    const std::string run_token = reject ? detail::new_uuid() : std::string{};

    // Steps 1-3: resolve the conversation, persist the user message, load the window; commit.
    Prepared p = db.run(mode, [&](soci::session& s) {
        Prepared out;
        detail::LockedConversation conv;
        std::optional<std::string> existing = req.conversation_id;
        if (!existing && key) { // a retried creating turn finds the conversation it created
            existing = detail::find_conversation_by_create_key(db, s, req.user_id, *key);
            out.created = existing.has_value();
        }
        if (existing) {
            out.conversation_id = *existing;
            conv = detail::lock_conversation(db, s, req.user_id, out.conversation_id);
        } else {
            detail::insert_conversation(db, s, *fresh, key);
            out.conversation_id = fresh->id;
            out.created = true;
        }
        const std::string& id = out.conversation_id;
        if (key) {
            if (auto stored = detail::find_by_key(db, s, req.user_id, id, *key)) {
                out.user = std::move(*stored);
                out.reply = detail::find_by_key(db, s, req.user_id, id, reply_key(*key));
                if (out.reply) return out;
            }
        }
        if (reject) {
            const long long now = detail::now_us();
            const long long lease = std::chrono::duration_cast<std::chrono::microseconds>(options_.run_lease).count();
            if (conv.active_turn && conv.active_since > now - lease)
                throw Conflict(fmt::format("a turn is already running on conversation '{}'", id));
            Stmt st(s, db.sql().conv_set_active);
            st.use(run_token).use(now).use(req.user_id).use(id);
            st.execute();
        }
        if (out.user.seq == 0) out.user = detail::append_locked(db, s, req.user_id, id, conv, {user_msg}).front();
        out.window = load_window(db, s, req.user_id, id, w, out.user.seq);
        return out;
    });
    const std::string& id = p.conversation_id;
    if (p.reply)
        return TurnResult{id, p.reply->content, p.reply->tool_calls, p.user.seq, p.reply->seq, p.created, true};

    // Ends this turn's run under ConcurrentTurns::reject. Best effort: if it fails, the lease
    // expires.
    auto release = [&] {
        if (!reject) return;
        try {
            db.run(TxMode::write, [&](soci::session& s) {
                Stmt st(s, db.sql().conv_clear_active);
                st.use(req.user_id).use(id).use(run_token);
                st.execute();
                return 0;
            });
        } catch (const Error&) {
        }
    };

    // Step 4: the agent, with no connection or lock held.
    AgentReply reply;
    try {
        reply = agent(AgentInput{req.user_id, id, p.window});
    } catch (const std::exception& e) {
        release();
        throw AgentError(e.what());
    } catch (...) {
        release();
        throw AgentError("the agent threw something that is not a std::exception");
    }

    std::vector<Message> output = std::move(reply.intermediate);
    Message final_msg;
    final_msg.role = Role::assistant;
    final_msg.content = std::move(reply.content);
    final_msg.tool_calls = std::move(reply.tool_calls);
    final_msg.metadata_json = std::move(reply.metadata_json);
    try {
        for (std::size_t i = 0; i < output.size(); ++i) {
            if (output[i].role != Role::assistant && output[i].role != Role::tool)
                throw InvalidArgument(fmt::format("intermediate[{}].role", i), "must be assistant or tool");
            output[i].idempotency_key = key ? std::optional(step_key(*key, i)) : std::nullopt;
        }
        detail::check_batch(output, "intermediate", limits);
        detail::check_message(final_msg, "reply.", limits);
    } catch (const InvalidArgument& e) {
        release();
        throw AgentError(std::string("the agent's output is invalid: ") + e.what());
    }
    if (key) final_msg.idempotency_key = reply_key(*key);
    output.push_back(std::move(final_msg));

    // Step 5: the agent's output, all or nothing.
    Message stored_reply = db.run(mode, [&](soci::session& s) {
        detail::LockedConversation conv = detail::lock_conversation(db, s, req.user_id, id);
        if (reject) {
            Stmt st(s, db.sql().conv_clear_active);
            st.use(req.user_id).use(id).use(run_token);
            st.execute();
        }
        // A racing duplicate of this keyed turn may have stored its reply first: keep that one.
        if (key)
            if (auto stored = detail::find_by_key(db, s, req.user_id, id, reply_key(*key))) return std::move(*stored);
        return detail::append_locked(db, s, req.user_id, id, conv, output).back();
    });
    return TurnResult{id, stored_reply.content, stored_reply.tool_calls, p.user.seq, stored_reply.seq, p.created, false};
}

} // namespace convstate
