#include "convstate/chat_orchestrator.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "convstate/json.hpp"
#include "rows.hpp"
#include "tokens.hpp"
#include "turn_token.hpp"
#include "util.hpp"
#include "validate.hpp"
#include "window_loader.hpp"
#include "tx_steps.hpp"

namespace convstate {

using detail::DatabaseImpl;
using detail::MessageRow;
using detail::Stmt;
using detail::TurnIdentity;
using detail::TxMode;
using detail::use_usage_fields;

namespace {

// Keys of what a keyed turn stores: the user message carries the turn's key itself; the reply
// and the agent's steps carry keys derived with a separator that no caller's key may contain
// (detail::check_key), so they never meet a key a caller chose.
std::string reply_key(const std::string& key) { return key + detail::derived_key_separator + "reply"; }
std::string step_key(const std::string& key, std::size_t i) {
    return fmt::format("{}{}step:{}", key, detail::derived_key_separator, i);
}
constexpr std::size_t derived_key_room = 16;

// Steps 1-3 done and committed: where the user message is, and the rows its window is chosen
// from (finished and selected with no connection held).
struct BegunTurn {
    std::string conversation_id;
    bool created = false;
    Message user;
    std::optional<Message> reply; // set: a completed turn replayed
    std::vector<Message> steps;   // with reply: its agent-loop messages
    bool running_elsewhere = false; // an identical keyed turn is running its agent: wait for it
    detail::WindowRows window_rows;
};

// A keyed turn's claim on running its agent (see migration 2 in sql.cpp).
struct RunClaim {
    std::optional<std::string> owner;
    long long started = 0;
};

RunClaim read_run(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                  const std::string& key) {
    RunClaim claim;
    std::string owner;
    soci::indicator owner_ind{}, started_ind{};
    Stmt st(db, s, db.sql().msg_run_state);
    st.into(owner, owner_ind).into(claim.started, started_ind).use(user).use(id).use(key);
    if (st.execute() && owner_ind == soci::i_ok) claim.owner = owner;
    return claim;
}

// The agent-loop messages a keyed turn stored between its user message and its reply.
std::vector<Message> stored_steps(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                                  const std::string& key, std::int64_t user_seq, std::int64_t reply_seq) {
    std::vector<Message> steps;
    if (reply_seq <= user_seq + 1) return steps;
    const std::string prefix = key + detail::derived_key_separator + "step:";
    for (Message& m : detail::load_range(db, s, user, id, user_seq, reply_seq - 1))
        if (m.idempotency_key && m.idempotency_key->rfind(prefix, 0) == 0) steps.push_back(std::move(m));
    return steps;
}

void claim_run(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
               const std::string& key, const std::string& owner, long long now) {
    Stmt st(db, s, db.sql().msg_claim_run);
    st.use(owner).use(now).use(user).use(id).use(key);
    st.execute();
}

// A reply's usage row, in the transaction that stores the reply (at seq).
void insert_usage(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id, long long seq,
                  const Usage& usage) {
    Stmt st(db, s, db.sql().usage_insert);
    st.use(user).use(detail::new_uuid()).use(id).use(seq);
    use_usage_fields(st, usage);
    st.use(static_cast<long long>(detail::now_us()));
    st.execute();
}

// Binds sql.cpp's CS_TURN_USER: the user message the turn stored.
void use_turn_user(Stmt& st, const TurnIdentity& turn) {
    st.use(turn.user_id).use(turn.conversation_id).use(static_cast<long long>(turn.user_seq)).use(turn.key)
        .use(turn.key).use(turn.run_token);
}

// How many leading system messages turn_begin returns at most (more are loaded separately).
constexpr long long prefix_cap = 16;

// PostgreSQL, steps 1-3 in one autocommit statement: create `fresh` with the user message, or
// (fresh null) continue conversation `id`. nullopt: an idempotency key of this turn is stored
// already (or a racing creator won) — the general path replays or resumes the turn.
// @throws NotFound (continuing a conversation that is not there).
std::optional<BegunTurn> pg_begin_turn(DatabaseImpl& db, const TurnRequest& req, const Message& user_msg,
                                      const Conversation* fresh, const std::string& id, const HistoryWindow& w,
                                      const std::string& run_token, bool defer_flush) {
    const long long defer = defer_flush ? 1 : 0;
    const std::optional<std::string>& key = req.idempotency_key;
    const std::optional<std::string> run_owner = run_token;
    const std::string& user = req.user_id;
    return db.run(key ? TxMode::idempotent_single_write : TxMode::single_write,
                  [&](soci::session& s) -> std::optional<BegunTurn> {
        const long long now = detail::now_us();
        const std::optional<long long> run_started = key ? std::optional(now) : std::nullopt;
        BegunTurn out;
        MessageRow row(fresh ? fresh->id : id);
        try {
            if (fresh) {
                Stmt st(db, s, db.sql().turn_create);
                row.bind(st);
                st.use(fresh->id).use(user).use(fresh->title).use(fresh->metadata_json).use(now).use(now)
                    .use(fresh->external_key).use(key)
                    .use(user).use(user_msg.content).use(user_msg.content_parts_json).use(user_msg.metadata_json).use(key).use(now)
                    .use(run_owner)
                    .use(run_started).use(defer);
                st.execute();
                out.conversation_id = fresh->id;
                out.created = true;
                out.user = row.take_message();
                out.window_rows = {1, 0, {out.user}, std::nullopt};
                return out;
            }
            
            const long long n = detail::first_chunk(w), keep = w.keep_system ? 1 : 0,
                            from_summary = w.from_summary ? 1 : 0;
            long long current = 0, snapshot_current_flag = 0;
            soci::indicator current_ind{};
            Stmt st(db, s, db.sql().turn_begin);
            row.bind(st);
            st.into(current, current_ind);
            st.use(now).use(user).use(id).use(defer).use(user).use(id).use(user_msg.content).use(user_msg.content_parts_json)
                .use(user_msg.metadata_json).use(key)
                .use(now).use(run_owner).use(run_started).use(user).use(id).use(n).use(from_summary).use(user).use(id)
                .use(keep).use(user).use(id).use(prefix_cap).use(n).use(user).use(id).use(user).use(id)
                .use(from_summary).use(user).use(id);
            std::optional<Summary> summary;
            bool inserted = false; // the new message's row (the only one marked 0 or 1)
            std::vector<Message> rows = detail::fetch_messages_and_summary(
                st, row, current, current_ind, summary, n + 1, [&](std::optional<long long> mark) {
                    if (!mark) return;
                    snapshot_current_flag = *mark;
                    inserted = true;
                });
            // Without it the UPDATE matched nothing (other arms may still return snapshot rows).
            if (!inserted) detail::throw_not_found(id);
            out.conversation_id = id;
            out.user = rows.back(); // the new message has the highest seq
            const long long end = out.user.seq, below = std::max<long long>(0, end - n);
            // The range arm starts above the summary; the prefix arm ends at `below`.
            const long long lo = std::max<long long>(below, summary ? summary->covers_through_seq : 0);
            // Rows come in seq order (ORDER BY 2): the prefix arm's, at or below lo, first.
            const auto mid = std::partition_point(rows.begin(), rows.end(), [&](const Message& m) { return m.seq <= lo; });
            std::vector<Message> prefix(std::make_move_iterator(rows.begin()), std::make_move_iterator(mid));
            rows.erase(rows.begin(), mid);
            std::vector<Message> tail = std::move(rows);
            // A writer that committed while we waited for the row lock is missing from the
            // statement's snapshot, and a truncate may have replaced rows the snapshot still
            // shows: unless the snapshot is current (nobody wrote in between), re-read the range
            // (a new statement sees it all), with the summary. The prefix arm read that snapshot
            // too, so it is used only when the snapshot is current; otherwise finish_window reads
            // the prefix afresh.
            // (A leading run of instructions filling 1..below may go on above it, where a summary
            // kept the range arm from reading: then the prefix is read afresh too.)
            const bool prefix_complete = static_cast<long long>(prefix.size()) < prefix_cap &&
                                         (lo == below || static_cast<long long>(prefix.size()) < below);
            if (snapshot_current_flag != 1 || static_cast<long long>(tail.size()) != end - lo) {
                out.window_rows = detail::read_window_rows(db, s, user, id, w, end, true);
                return out;
            }
            const bool use_prefix = w.keep_system && lo > 0 && prefix_complete;
            out.window_rows = {end, lo, std::move(tail), use_prefix ? std::optional(std::move(prefix)) : std::nullopt,
                               std::move(summary)};
            return out;
        } catch (const soci::soci_error& e) {
            if (db.policy().unique_violation(e)) return std::nullopt;
            throw;
        }
    });
}

// PostgreSQL, step 5 in one autocommit statement: the agent's messages after last_seq.
// nullopt: this keyed turn's reply is stored already (a racing duplicate finished first), or the
// statement stored nothing (see pg_turn_finish): the locked path takes over.
std::optional<std::vector<Message>> pg_finish_turn(DatabaseImpl& db, const TurnIdentity& turn,
                                                   const std::vector<Message>& output, const std::optional<Usage>& usage) {
    const std::string& user = turn.user_id;
    const std::string& id = turn.conversation_id;
    const std::string sql = detail::pg_turn_finish(output.size(), usage.has_value());
    const std::string usage_id = usage ? detail::new_uuid() : std::string{};
    return db.run(turn.outcome_key ? TxMode::idempotent_single_write : TxMode::single_write,
                  [&](soci::session& s) -> std::optional<std::vector<Message>> {
        const long long now = detail::now_us(), k = static_cast<long long>(output.size());
        long long seq = 0, last = 0;
        Stmt st(db, s, sql);
        st.into(seq).use(k).use(now).use(user).use(id);
        use_turn_user(st, turn);
        st.use(user).use(id);
        if (usage) {
            st.use(user).use(usage_id).use(id);
            use_usage_fields(st, *usage);
            st.use(now);
        }
        st.use(user).use(id).use(k).use(now);
        for (std::size_t i = 0; i < output.size(); ++i) {
            st.use(static_cast<long long>(i + 1));
            detail::use_message_fields(st, output[i]);
        }
        try {
            // No row: the conversation was deleted while the agent ran, a token names a user
            // message that is not there, or a truncate came in between — the locked path tells.
            if (!st.execute()) return std::nullopt;
            do last = std::max(last, seq);
            while (st.fetch());
        } catch (const soci::soci_error& e) {
            if (db.policy().unique_violation(e)) return std::nullopt;
            throw;
        }
        std::vector<Message> stored = output; // seqs last-k+1 .. last, in order
        for (std::size_t i = 0; i < stored.size(); ++i) {
            stored[i].conversation_id = id;
            stored[i].seq = last - k + 1 + static_cast<long long>(i);
            stored[i].created_at_us = now;
        }
        return stored;
    });
}

} // namespace

std::vector<Message> ChatOrchestrator::window(const std::string& user_id, const std::string& conversation_id,
                                              const HistoryWindow& w) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    detail::check_window(w);
    detail::WindowRows rows = db.run(TxMode::read, [&](soci::session& s) {
        long long last_seq = 0;
        Stmt st(db, s, db.sql().conv_exists);
        st.into(last_seq).use(user_id).use(conversation_id);
        if (!st.execute()) detail::throw_not_found(conversation_id);
        return detail::read_window_rows(db, s, user_id, conversation_id, w, last_seq, false);
    });
    return detail::finish_window(db, user_id, conversation_id, w, std::move(rows));
}

namespace {

// The start of one turn, as named steps: its input checked, then steps 1-3. Holds only what this
// call needs; nothing outlives it.
class TurnRun {
public:
    /** split: begun by begin_turn, ended by a turn token (the run is always named, and what it
     *  stores is keyed, so that completing twice stores once). */
    TurnRun(DatabaseImpl& database, const OrchestratorOptions& options, const TurnRequest& request, bool split_turn)
        : db(database), req(request), w(request.window ? *request.window : options.window),
          key(request.idempotency_key),
          mode(key ? TxMode::idempotent_write : TxMode::write),
          reject(options.concurrency == ConcurrentTurns::reject),
          // PostgreSQL takes steps 1-3 in one statement; the general path (other dialects, Citus,
          // ConcurrentTurns::reject, replays of keyed turns) a transaction.
          fast(database.one_statement_turns() && !reject && !request.regenerate),
          // Names this call's run: its user message (see CS_TURN_USER in sql.cpp), its
          // ConcurrentTurns::reject mark and its claim on a keyed turn.
          split(split_turn), run_token(detail::new_uuid()),
          lease_us(std::chrono::duration_cast<std::chrono::microseconds>(options.run_lease).count()),
          duplicate_wait(options.duplicate_wait), defer_flush(!options.flush_user_message) {}

    /** Step 0: every input checked, nothing written yet. */
    void validate() {
        const Limits& limits = db.limits();
        detail::check_user_id(req.user_id, limits);
        if (req.conversation_id) detail::check_conversation_id(*req.conversation_id, limits);
        detail::check_text(req.message, "message", limits.max_content_bytes);
        if (key) detail::check_key(*key, "idempotency_key", limits.max_id_bytes - derived_key_room);
        detail::check_window(w);
        user_msg.role = Role::user;
        user_msg.content = req.message;
        if (req.message_parts_json) {
            if (!req.message.empty())
                throw InvalidArgument("message", "must be empty when the content is given as message_parts_json");
            user_msg.content_parts_json =
                detail::normalize_content_parts(*req.message_parts_json, "message_parts_json", Role::user, limits);
        }
        user_msg.metadata_json =
            detail::normalize_metadata(req.message_metadata_json, "message_metadata_json", limits);
        user_msg.idempotency_key = key;
        if (req.regenerate) {
            if (!req.conversation_id && !req.conversation_key)
                throw InvalidArgument("regenerate", "needs conversation_id or conversation_key");
            if (!req.message.empty() || req.message_parts_json)
                throw InvalidArgument("message", "must be empty with regenerate: the user message is stored already");
            if (key) throw InvalidArgument("idempotency_key", "must be unset with regenerate: the user message keeps its own");
        }
        if (req.new_conversation.external_key)
            throw InvalidArgument("new_conversation.external_key", "address a conversation by key with "
                                                                   "TurnRequest::conversation_key");
        if (req.conversation_key) {
            if (req.conversation_id)
                throw InvalidArgument("conversation_key", "give conversation_id or conversation_key, not both");
            detail::check_key(*req.conversation_key, "conversation_key", limits.max_id_bytes);
            NewConversation spec = req.new_conversation;
            spec.external_key = req.conversation_key;
            fresh = detail::make_conversation(db, req.user_id, spec, "new_conversation.");
        } else if (!req.conversation_id) {
            fresh = detail::make_conversation(db, req.user_id, req.new_conversation, "new_conversation.");
        }
    }

    /** Steps 1-3, committed: resolve the conversation, persist the user message, read the
     *  window's rows — or find the turn completed (a replay). An identical keyed turn running
     *  elsewhere is waited for. A storage failure may leave this run's claim stored (a commit
     *  whose answer was lost): the run is then given up (DatabaseImpl::abandon_run). */
    BegunTurn begin() {
        try {
            return begin_steps();
        } catch (const StorageError&) {
            if (key) db.abandon_run(run_token);
            throw;
        }
    }

    BegunTurn begin_steps() {
        if (req.regenerate) return begin_regenerate();
        std::optional<BegunTurn> begun;
        if (fast && req.conversation_key) {
            // Get-or-create: continue the keyed conversation, or create it if there is none (a
            // racing creator's row makes the INSERT fail: the general path then continues it).
            try {
                begun = pg_begin_turn(db, req, user_msg, nullptr, fresh->id, w, run_token, defer_flush);
            } catch (const NotFound&) {
                begun = pg_begin_turn(db, req, user_msg, &*fresh, fresh->id, w, run_token, defer_flush);
            }
        } else if (fast) {
            begun = pg_begin_turn(db, req, user_msg, fresh ? &*fresh : nullptr,
                                  req.conversation_id.value_or(std::string{}), w, run_token, defer_flush);
        }
        const auto wait_until = std::chrono::steady_clock::now() + duplicate_wait;
        for (int attempt = 0; !begun || begun->running_elsewhere; ++attempt) {
            if (begun) {
                if (std::chrono::steady_clock::now() >= wait_until)
                    throw Conflict(fmt::format("a turn with idempotency_key '{}' is still running on conversation "
                                               "'{}'; retry later with the same key",
                                               key->substr(0, 255), begun->conversation_id));
                std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 << std::min(attempt, 5), 100)));
            }
            begun = begin_general();
        }
        return std::move(*begun);
    }

    /** What names the begun turn p, for ending it. */
    TurnIdentity identity(const BegunTurn& p) const {
        // The user message's own key: the request's, or (regenerate) the stored message's.
        const std::optional<std::string>& user_key = p.user.idempotency_key;
        return TurnIdentity{req.user_id, p.conversation_id, p.user.seq, p.created, user_key, run_token, reject,
                            split ? std::optional(detail::split_outcome_key(user_key, run_token)) : user_key};
    }

    const HistoryWindow& window() const { return w; }

private:
    // A turn without a new user message: the last message is the user message it answers, and
    // this run claims it (its token names the run, as for a message it stored itself).
    BegunTurn begin_regenerate() {
        const std::string id = req.conversation_id ? *req.conversation_id : fresh->id;
        return db.run(TxMode::write, [&](soci::session& s) {
            BegunTurn out;
            out.conversation_id = id;
            detail::LockedConversation conv = detail::lock_conversation(db, s, req.user_id, id);
            std::vector<Message> last = detail::load_range(db, s, req.user_id, id, conv.last_seq - 1, conv.last_seq);
            if (last.empty() || last.front().role != Role::user)
                throw InvalidArgument("regenerate", "the conversation's last message is not a user message");
            out.user = std::move(last.front());
            const long long now = detail::now_us(), seq = out.user.seq;
            mark_active(s, conv, id);
            Stmt st(db, s, db.sql().msg_set_run);
            st.use(run_token).use(out.user.idempotency_key ? std::optional(now) : std::nullopt).use(req.user_id).use(id)
                .use(seq);
            st.execute();
            out.window_rows = detail::read_window_rows(db, s, req.user_id, id, w, out.user.seq, true);
            return out;
        });
    }

    // ConcurrentTurns::reject: fail if another live turn holds the conversation, else mark it.
    void mark_active(soci::session& s, const detail::LockedConversation& conv, const std::string& id) {
        if (!reject) return;
        const long long now = detail::now_us();
        if (conv.active_turn && conv.active_since > now - lease_us)
            throw Conflict(fmt::format("a turn is already running on conversation '{}'", id));
        Stmt st(db, s, db.sql().conv_set_active);
        st.use(run_token).use(now).use(req.user_id).use(id);
        st.execute();
    }

    BegunTurn begin_general() {
        return db.run(mode, [&](soci::session& s) {
            BegunTurn out;
            detail::LockedConversation conv;
            std::optional<std::string> existing = req.conversation_id;
            if (!existing && key) { // a retried creating turn finds the conversation it created
                existing = detail::find_conversation_by_create_key(db, s, req.user_id, *key);
                out.created = existing.has_value();
            }
            if (!existing && req.conversation_key && detail::conversation_exists(db, s, req.user_id, fresh->id))
                existing = fresh->id; // get-or-create: it is there
            // Keys and the active-run mark are checked under the conversation's row lock; a plain turn
            // takes the lock with the seq allocation itself (detail::append).
            const bool lock_first = key || reject;
            if (existing) {
                out.conversation_id = *existing;
                if (lock_first) conv = detail::lock_conversation(db, s, req.user_id, out.conversation_id);
            } else {
                detail::insert_conversation(db, s, *fresh, key);
                out.conversation_id = fresh->id;
                out.created = true;
            }
            const std::string& id = out.conversation_id;
            if (key) {
                if (auto stored = detail::find_by_key(db, s, req.user_id, id, *key)) {
                    // A retry repeats its request; a key that names some other message is a mistake.
                    if (stored->role != Role::user || stored->content != user_msg.content ||
                        stored->content_parts_json != user_msg.content_parts_json)
                        throw Conflict(fmt::format("idempotency_key '{}' is already used on conversation '{}' by a "
                                                   "different message (seq {})", key->substr(0, 255), id, stored->seq));
                    out.user = std::move(*stored);
                    out.reply = detail::find_by_key(db, s, req.user_id, id, reply_key(*key));
                    if (out.reply) {
                        out.steps = stored_steps(db, s, req.user_id, id, *key, out.user.seq, out.reply->seq);
                        return out;
                    }
                    // Not completed: a live run of this turn elsewhere owns the agent call.
                    const RunClaim claim = read_run(db, s, req.user_id, id, *key);
                    // (This call's own claim, from an attempt whose answer was lost, is not a rival;
                    // nor is a run this process gave up on.)
                    if (claim.owner && *claim.owner != run_token && !db.abandoned_run(*claim.owner) &&
                        claim.started > detail::now_us() - lease_us) {
                        out.running_elsewhere = true;
                        return out;
                    }
                }
            }
            mark_active(s, conv, id);
            if (out.user.seq == 0)
                out.user = insert_user_message(s, id, existing && !lock_first ? nullptr : &conv);
            else // resuming a keyed turn whose run ended: this call claims it
                claim_run(db, s, req.user_id, id, *key, run_token, detail::now_us());
            out.window_rows = detail::read_window_rows(db, s, req.user_id, id, w, out.user.seq, true);
            return out;
        });
    }

    // Stores the turn's user message with its run's token (and, keyed, its claim on the run):
    // after locked->last_seq, or (nullptr) at a seq allocated by the UPDATE that locks the row.
    Message insert_user_message(soci::session& s, const std::string& id, detail::LockedConversation* locked) {
        Message m = user_msg;
        m.conversation_id = id;
        m.created_at_us = detail::now_us();
        const long long now = m.created_at_us;
        if (locked) {
            m.seq = ++locked->last_seq;
            Stmt bump(db, s, db.sql().conv_bump);
            bump.use(locked->last_seq).use(now).use(req.user_id).use(id);
            bump.execute();
        } else {
            const std::optional<long long> last_seq = detail::reserve_seqs(db, s, req.user_id, id, 1, now);
            if (!last_seq) detail::throw_not_found(id);
            m.seq = *last_seq;
        }
        Stmt st(db, s, db.sql().msg_insert_run);
        st.use(req.user_id).use(id).use(static_cast<long long>(m.seq));
        detail::use_message_fields(st, m);
        st.use(now).use(run_token).use(key ? std::optional(now) : std::nullopt);
        st.execute();
        return m;
    }

    DatabaseImpl& db;
    const TurnRequest& req;
    const HistoryWindow& w;
    const std::optional<std::string>& key;
    const TxMode mode;
    const bool reject, fast, split;
    const std::string run_token;
    const long long lease_us;
    const std::chrono::milliseconds duplicate_wait;
    const bool defer_flush;
    Message user_msg;
    std::optional<Conversation> fresh;
};

// The end of a begun turn, from what names it: the window it shows, the output checked and
// stored (step 5), or the run released after a failure.
class TurnEnd {
public:
    /** The user message the identity names is checked to be there before anything is written:
     *  a token may name one that never was, and a truncate may have removed it since. */
    TurnEnd(DatabaseImpl& database, TurnIdentity identity)
        : db(database), turn(std::move(identity)),
          // PostgreSQL stores the output in one statement; the general path (other dialects, a
          // turn holding a ConcurrentTurns::reject mark, a racing duplicate's reply) a transaction.
          fast(database.one_statement_turns() && !turn.marked) {}

    /** Step 4a: the window chosen from the rows begin read, with no connection held (the host's
     *  token counter may call the library). The run is released if this fails. */
    std::vector<Message> window(const HistoryWindow& w, detail::WindowRows rows, const Message& user) {
        try {
            std::vector<Message> out = detail::finish_window(db, turn.user_id, turn.conversation_id, w, std::move(rows));
            // The window ends with the turn's user message — unless a truncate removed it since it
            // was stored: then the turn cannot complete, and the agent is not called.
            const Message* last = out.empty() ? nullptr : &out.back();
            if (!last || last->seq != user.seq || last->role != Role::user || last->content != user.content ||
                last->created_at_us != user.created_at_us)
                detail::throw_not_found(turn.conversation_id);
            return out;
        } catch (...) {
            release();
            throw;
        }
    }

    /** Step 4c: the agent's reply as the messages to store, checked, the reply last.
     *  @throws InvalidArgument naming the field (nothing is released). */
    std::vector<Message> checked_output(AgentReply reply) {
        const Limits& limits = db.limits();
        if (reply.usage) {
            const Usage& u = *reply.usage;
            if (u.model) detail::check_text(*u.model, "reply.usage.model", limits.max_id_bytes);
            const std::pair<const char*, const std::optional<std::int64_t>*> counts[] = {
                {"prompt_tokens", &u.prompt_tokens}, {"completion_tokens", &u.completion_tokens},
                {"cached_tokens", &u.cached_tokens}, {"reasoning_tokens", &u.reasoning_tokens}};
            for (const auto& [name, value] : counts)
                if (*value && **value < 0)
                    throw InvalidArgument(std::string("reply.usage.") + name, "must not be negative");
        }
        usage = std::move(reply.usage);
        const std::optional<std::string>& base = turn.outcome_key;
        std::vector<Message> output = std::move(reply.intermediate);
        Message final_msg;
        final_msg.role = Role::assistant;
        final_msg.content = std::move(reply.content);
        final_msg.tool_calls = std::move(reply.tool_calls);
        final_msg.metadata_json = std::move(reply.metadata_json);
        // The same bound as append_batch on every backend (PostgreSQL's one-statement finish
        // could not bind many thousands of messages).
        if (output.size() + 1 > limits.max_batch)
            throw InvalidArgument("intermediate", fmt::format("holds {} messages; with the reply that is over the "
                                                              "limit of {} messages a turn stores (Limits::max_batch)",
                                                              output.size(), limits.max_batch));
        for (std::size_t i = 0; i < output.size(); ++i) {
            if (output[i].role != Role::assistant && output[i].role != Role::tool)
                throw InvalidArgument(fmt::format("intermediate[{}].role", i), "must be assistant or tool");
            output[i].idempotency_key.reset(); // the turn's own keys are set below
        }
        detail::check_batch(output, "intermediate", limits);
        detail::check_message(final_msg, "reply.", limits);
        for (std::size_t i = 0; base && i < output.size(); ++i) output[i].idempotency_key = step_key(*base, i);
        if (base) final_msg.idempotency_key = reply_key(*base);
        output.push_back(std::move(final_msg));
        return output;
    }

    /** Step 5: the output stored, all or nothing. Returns what this turn stored (or, for a turn
     *  whose reply is stored already — a racing duplicate's — what that one stored), the reply
     *  last. If it fails, the run is released so that a retry with the key is not kept waiting
     *  (a stored reply is found before the claim is looked at, so this is safe after
     *  OutcomeUnknown too). *found_stored tells whether the reply was stored already.
     *  @throws NotFound if the conversation or the user message is gone. */
    std::vector<Message> store(const std::vector<Message>& output, bool* found_stored = nullptr) {
        const std::string& user = turn.user_id;
        const std::string& id = turn.conversation_id;
        const std::optional<std::string>& base = turn.outcome_key;
        try {
            std::optional<std::vector<Message>> stored;
            if (fast) stored = pg_finish_turn(db, turn, output, usage);
            if (!stored) stored = db.run(base ? TxMode::idempotent_write : TxMode::write, [&](soci::session& s) {
                const auto with_usage = [&](std::vector<Message> messages) {
                    if (usage) insert_usage(db, s, user, id, messages.back().seq, *usage);
                    return messages;
                };
                if (!base && !turn.marked) return with_usage(append_checked(s, output));
                detail::LockedConversation conv = detail::lock_conversation(db, s, user, id);
                check_user_message(s);
                if (turn.marked) {
                    Stmt st(db, s, db.sql().conv_clear_active);
                    st.use(user).use(id).use(turn.run_token);
                    st.execute();
                }
                // A racing duplicate of this keyed turn may have stored its reply first: keep that one.
                if (base)
                    if (auto theirs = detail::find_by_key(db, s, user, id, reply_key(*base))) {
                        std::vector<Message> messages = stored_steps(db, s, user, id, *base, turn.user_seq, theirs->seq);
                        messages.push_back(std::move(*theirs));
                        if (found_stored) *found_stored = true;
                        return messages;
                    }
                return with_usage(detail::append_locked(db, s, user, id, conv, output));
            });
            return std::move(*stored);
        } catch (...) {
            release();
            throw;
        }
    }

    // Ends this run after a failure: its ConcurrentTurns::reject mark, and its claim on a keyed
    // turn (so that a retry runs the agent again at once). Best effort: if it fails, the lease
    // expires.
    void release() noexcept {
        if (!turn.marked && !turn.key) return;
        try {
            db.run(TxMode::write, [&](soci::session& s) {
                end_run(s);
                return 0;
            });
        } catch (...) {
            try {
                db.abandon_run(turn.run_token);
            } catch (...) { // out of memory: the lease expires instead
            }
        }
    }

    /** A failure reported by the host (fail_turn): the run released like release(), but the
     *  turn is checked to exist and errors are thrown.
     *  @throws NotFound, StorageError. */
    void fail() {
        db.run(TxMode::write, [&](soci::session& s) {
            detail::lock_conversation(db, s, turn.user_id, turn.conversation_id);
            check_user_message(s);
            end_run(s);
            return 0;
        });
    }

    const TurnIdentity& identity() const { return turn; }

private:
    // The user message the identity names is there (CS_TURN_USER in sql.cpp).
    void check_user_message(soci::session& s) {
        long long found = 0;
        Stmt st(db, s, db.sql().msg_turn_user);
        st.into(found);
        use_turn_user(st, turn);
        st.execute();
        if (found == 0) detail::throw_not_found(turn.conversation_id);
    }

    // Step 5 of an unkeyed turn without a mark: the UPDATE that locks the row and allocates the
    // seqs, the user message checked, the inserts. With a single writer, one UPDATE checks the
    // message too. Where writers run side by side, that UPDATE's check would read its
    // statement's snapshot, which a truncate committed while it waited for the lock may have
    // outdated: the check is then a statement of its own, after the lock (its snapshot is
    // newer than anything committed before the lock was granted).
    std::vector<Message> append_checked(soci::session& s, const std::vector<Message>& output) {
        const long long n = static_cast<long long>(output.size()), now = detail::now_us();
        long long last_seq = 0;
        if (db.policy().can().single_writer) {
            Stmt st(db, s, db.sql().conv_reserve_turn);
            st.into(last_seq).use(n).use(now).use(turn.user_id).use(turn.conversation_id);
            use_turn_user(st, turn);
            if (!st.execute()) detail::throw_not_found(turn.conversation_id);
        } else {
            const std::optional<long long> reserved =
                detail::reserve_seqs(db, s, turn.user_id, turn.conversation_id, n, now);
            if (!reserved) detail::throw_not_found(turn.conversation_id);
            check_user_message(s);
            last_seq = *reserved;
        }
        return detail::insert_allocated(db, s, turn.user_id, turn.conversation_id, output, last_seq, now);
    }

    void end_run(soci::session& s) {
        if (turn.marked) {
            Stmt st(db, s, db.sql().conv_clear_active);
            st.use(turn.user_id).use(turn.conversation_id).use(turn.run_token);
            st.execute();
        }
        if (turn.key) {
            Stmt st(db, s, db.sql().msg_end_run);
            st.use(turn.user_id).use(turn.conversation_id).use(*turn.key).use(turn.run_token);
            st.execute();
        }
    }

    DatabaseImpl& db;
    const TurnIdentity turn;
    const bool fast;
    std::optional<Usage> usage; // the checked reply's, stored with it
};

TurnResult result_of(const TurnIdentity& turn, std::vector<Message> stored, bool replayed) {
    Message reply = std::move(stored.back());
    stored.pop_back();
    return TurnResult{turn.conversation_id, std::move(reply.content), std::move(reply.tool_calls), turn.user_seq,
                      reply.seq, turn.created, replayed, std::move(stored)};
}

// A completed keyed turn found by begin: its stored result.
TurnResult replayed_result(const TurnIdentity& turn, BegunTurn& p) {
    std::vector<Message> stored = std::move(p.steps);
    stored.push_back(std::move(*p.reply));
    return result_of(turn, std::move(stored), true);
}

} // namespace

TurnResult ChatOrchestrator::turn(const TurnRequest& req, const Agent& agent) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::turn);
    TurnRun run(db_.impl(), options_, req, false);
    run.validate();
    if (!agent) throw InvalidArgument("agent", "must be callable");
    BegunTurn p = run.begin();
    if (p.reply) return replayed_result(run.identity(p), p);
    TurnEnd end(db_.impl(), run.identity(p));
    const std::vector<Message> window = end.window(run.window(), std::move(p.window_rows), p.user);
    const auto failed = [&](const std::string& why) {
        end.release();
        return AgentError(why, p.conversation_id, p.user.seq, p.created);
    };
    AgentReply reply;
    try {
        reply = agent(AgentInput{req.user_id, p.conversation_id, window});
    } catch (const std::exception& e) {
        throw failed(e.what());
    } catch (...) {
        throw failed("the agent threw something that is not a std::exception");
    }
    std::vector<Message> output;
    try {
        output = end.checked_output(std::move(reply));
    } catch (const InvalidArgument& e) {
        throw failed(std::string("the agent's output is invalid: ") + e.what());
    }
    return result_of(end.identity(), end.store(output), false);
}

PendingTurn ChatOrchestrator::begin_turn(const TurnRequest& req) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::begin_turn);
    TurnRun run(db_.impl(), options_, req, true);
    run.validate();
    BegunTurn p = run.begin();
    const TurnIdentity turn = run.identity(p);
    if (p.reply) return PendingTurn{p.conversation_id, p.user.seq, p.created, {}, {}, replayed_result(turn, p)};
    TurnEnd end(db_.impl(), turn);
    std::vector<Message> window = end.window(run.window(), std::move(p.window_rows), p.user);
    return PendingTurn{p.conversation_id, p.user.seq, p.created, std::move(window), detail::encode_turn_token(turn),
                       std::nullopt};
}

namespace {

// The identity a caller's token names; a token of another user is a foreign conversation.
TurnIdentity identity_for(DatabaseImpl& db, const std::string& user_id, const std::string& token) {
    detail::check_user_id(user_id, db.limits());
    TurnIdentity turn = detail::decode_turn_token(token, db.limits());
    if (turn.user_id != user_id) detail::throw_not_found(turn.conversation_id);
    return turn;
}

} // namespace

TurnResult ChatOrchestrator::complete_turn(const std::string& user_id, const std::string& token,
                                           AgentReply reply) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::complete_turn);
    TurnEnd end(db_.impl(), identity_for(db_.impl(), user_id, token));
    const std::vector<Message> output = end.checked_output(std::move(reply));
    bool found_stored = false;
    std::vector<Message> stored = end.store(output, &found_stored);
    return result_of(end.identity(), std::move(stored), found_stored);
}

void ChatOrchestrator::fail_turn(const std::string& user_id, const std::string& token, const std::string& reason) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::fail_turn);
    DatabaseImpl& db = db_.impl();
    TurnEnd end(db, identity_for(db, user_id, token));
    detail::check_text(reason, "reason", db.limits().max_content_bytes);
    end.fail();
}

} // namespace convstate
