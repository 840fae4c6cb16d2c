#include "tx_steps.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "rows.hpp"
#include "util.hpp"
#include "validate.hpp"

namespace convstate::detail {

Conversation make_conversation(const DatabaseImpl& db, std::string_view user_id, const NewConversation& spec,
                               const std::string& field_prefix) {
    check_user_id(user_id, db.limits());
    check_text(spec.title, field_prefix + "title", db.limits().max_title_bytes);
    Conversation c;
    c.user_id = user_id;
    c.title = spec.title;
    c.metadata_json = normalize_metadata(spec.metadata_json, field_prefix + "metadata", db.limits());
    c.created_at_us = c.updated_at_us = now_us();
    if (spec.external_key) {
        check_key(*spec.external_key, field_prefix + "external_key", db.limits().max_id_bytes);
        c.external_key = spec.external_key;
        c.id = keyed_conversation_id(user_id, *spec.external_key);
    } else {
        c.id = new_uuid();
    }
    return c;
}

void insert_conversation(DatabaseImpl& db, soci::session& s, const Conversation& c,
                         const std::optional<std::string>& create_key) {
    const long long created = c.created_at_us;
    Stmt st(db, s, db.sql().conv_insert);
    const long long last_seq = c.last_seq;
    st.use(c.id).use(c.user_id).use(c.title).use(c.metadata_json).use(last_seq).use(created).use(created)
        .use(c.external_key)
        .use(c.forked_from ? std::optional(c.forked_from->conversation_id) : std::nullopt)
        .use(c.forked_from ? std::optional<long long>(c.forked_from->seq) : std::nullopt)
        .use(create_key);
    st.execute();
}

LockedConversation lock_conversation(DatabaseImpl& db, soci::session& s, const std::string& user,
                                     const std::string& id, bool for_truncate) {
    LockedConversation conv;
    std::string active;
    soci::indicator active_ind{}, since_ind{};
    Stmt st(db, s, for_truncate ? db.sql().conv_lock_truncate : db.sql().conv_lock);
    st.into(conv.last_seq).into(active, active_ind).into(conv.active_since, since_ind).use(user).use(id);
    if (!st.execute()) throw_not_found(id);
    if (active_ind == soci::i_ok) conv.active_turn = active;
    if (since_ind != soci::i_ok) conv.active_since = 0;
    return conv;
}

bool conversation_exists(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id) {
    long long last_seq = 0;
    Stmt st(db, s, db.sql().conv_exists);
    st.into(last_seq).use(user).use(id);
    return st.execute();
}

std::optional<std::string> find_conversation_by_create_key(DatabaseImpl& db, soci::session& s,
                                                           const std::string& user, const std::string& key) {
    std::string id;
    Stmt st(db, s, db.sql().conv_by_create_key);
    st.into(id).use(user).use(key);
    if (!st.execute()) return std::nullopt;
    return id;
}

std::optional<Message> find_by_key(DatabaseImpl& db, soci::session& s, const std::string& user,
                                   const std::string& id, const std::string& key) {
    MessageRow row(id);
    Stmt st(db, s, db.sql().msg_by_key);
    row.bind(st);
    st.use(user).use(id).use(key);
    if (!st.execute()) return std::nullopt;
    return row.take_message();
}

std::vector<Message> append_locked(DatabaseImpl& db, soci::session& s, const std::string& user,
                                   const std::string& id, LockedConversation& conv,
                                   const std::vector<Message>& batch,
                                   std::optional<std::int64_t> expected_last_seq) {
    std::vector<Message> out(batch.size());
    std::vector<bool> stored(batch.size(), false);
    std::size_t n_stored = 0;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!batch[i].idempotency_key) continue;
        if (auto found = find_by_key(db, s, user, id, *batch[i].idempotency_key)) {
            out[i] = std::move(*found);
            stored[i] = true;
            ++n_stored;
        }
    }
    if (n_stored == batch.size()) return out; // a replay: nothing to write
    if (expected_last_seq && *expected_last_seq != conv.last_seq)
        throw Conflict(fmt::format("conversation '{}' is at seq {}, not the expected {}", id, conv.last_seq,
                                   *expected_last_seq));
    const long long now = now_us();
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (stored[i]) continue;
        Message m = batch[i];
        m.conversation_id = id;
        m.seq = ++conv.last_seq;
        m.created_at_us = now;
        insert_message(db, s, user, m);
        out[i] = std::move(m);
    }
    Stmt bump(db, s, db.sql().conv_bump);
    bump.use(conv.last_seq).use(now).use(user).use(id);
    bump.execute();
    return out;
}

std::vector<Message> append(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                            const std::vector<Message>& batch, std::optional<std::int64_t> expected_last_seq) {
    const bool keyed = std::any_of(batch.begin(), batch.end(), [](const Message& m) { return m.idempotency_key; });
    if (keyed || expected_last_seq) {
        LockedConversation conv = lock_conversation(db, s, user, id);
        return append_locked(db, s, user, id, conv, batch, expected_last_seq);
    }
    const long long n = static_cast<long long>(batch.size()), now = now_us();
    const std::optional<long long> last_seq = reserve_seqs(db, s, user, id, n, now);
    if (!last_seq) throw_not_found(id);
    return insert_allocated(db, s, user, id, batch, *last_seq, now);
}

std::optional<long long> reserve_seqs(DatabaseImpl& db, soci::session& s, const std::string& user,
                                      const std::string& id, long long n, long long now) {
    long long last_seq = 0;
    Stmt reserve(db, s, db.sql().conv_reserve);
    const bool returning = db.policy().can().update_returning;
    if (returning) reserve.into(last_seq);
    reserve.use(n).use(now).use(user).use(id);
    if (returning) return reserve.execute() ? std::optional(last_seq) : std::nullopt;
    // Read back under the row lock the UPDATE took (n >= 1: a matched row always changed).
    reserve.execute();
    if (reserve.affected_rows() == 0) return std::nullopt;
    if (db.policy().can().reserve_sets_insert_id) return db.policy().insert_id(s);
    Stmt read(db, s, db.sql().conv_exists);
    read.into(last_seq).use(user).use(id);
    if (!read.execute()) return std::nullopt;
    return last_seq;
}

void check_group_boundary(DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id,
                          long long boundary, long long last_seq, const std::string& field, const std::string& what) {
    if (boundary < 1) return;
    const bool at_end = boundary >= last_seq;
    const long long probe_seq = at_end ? boundary : boundary + 1;
    std::string role;
    long long calls = 0;
    Stmt probe(db, s, db.sql().msg_role_at);
    probe.into(role).into(calls).use(user).use(id).use(probe_seq);
    if (!probe.execute()) return;
    if (!at_end && role == "tool")
        throw InvalidArgument(field, fmt::format("message {} is a tool result: {} would keep a tool call apart from "
                                                 "its results", probe_seq, what));
    if (at_end && calls != 0)
        throw InvalidArgument(field, fmt::format("message {} is a tool call whose results are not stored yet: {} "
                                                 "would keep it apart from them", probe_seq, what));
}

std::vector<Message> insert_allocated(DatabaseImpl& db, soci::session& s, const std::string& user,
                                      const std::string& id, const std::vector<Message>& batch, long long last_seq,
                                      long long now) {
    const long long n = static_cast<long long>(batch.size());
    std::vector<Message> out = batch;
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i].conversation_id = id;
        out[i].seq = last_seq - n + 1 + static_cast<long long>(i);
        out[i].created_at_us = now;
        insert_message(db, s, user, out[i]);
    }
    return out;
}

std::vector<Message> load_range(DatabaseImpl& db, soci::session& s, const std::string& user,
                                const std::string& id, long long lo, long long hi) {
    MessageRow row(id);
    Stmt st(db, s, db.sql().msg_range);
    row.bind(st);
    st.use(user).use(id).use(lo).use(hi);
    return fetch_messages(st, row, hi - lo);
}

} // namespace convstate::detail
