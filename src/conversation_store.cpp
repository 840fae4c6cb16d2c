#include "convstate/conversation_store.hpp"

#include <charconv>
#include <functional>
#include <limits>

#include <fmt/format.h>

#include "db.hpp"
#include "rows.hpp"
#include "util.hpp"
#include "validate.hpp"
#include "tx_steps.hpp"

namespace convstate {

using detail::ConversationRow;
using detail::Stmt;
using detail::TxMode;

namespace {

// Cursor: "<updated_at_us>.<id>", opaque to callers.
std::string make_cursor(const Conversation& c) { return fmt::format("{}.{}", c.updated_at_us, c.id); }

std::pair<long long, std::string> parse_cursor(const std::string& cursor) {
    if (cursor.empty()) return {std::numeric_limits<long long>::max(), std::string{}};
    const auto dot = cursor.find('.');
    long long ts = 0;
    const auto [end, ec] = dot == std::string::npos ? std::from_chars_result{cursor.data(), std::errc::invalid_argument}
                                                     : std::from_chars(cursor.data(), cursor.data() + dot, ts);
    // The id part reaches SQL as text: it must be valid UTF-8 like every id.
    if (dot == std::string::npos || dot == 0 || dot + 1 == cursor.size() || ec != std::errc{} ||
        end != cursor.data() + dot || ts < 0 || !detail::is_valid_utf8(cursor) || cursor.find('\0') != std::string::npos)
        throw InvalidArgument("cursor", "is not a cursor returned by list()");
    return {ts, cursor.substr(dot + 1)};
}

} // namespace

namespace {

std::optional<Conversation> find_conversation(detail::DatabaseImpl& db, soci::session& s, const std::string& user,
                                              const std::string& id);

// What a deleted conversation row leaves: its messages, summaries and usage rows, deleted in the
// same transaction. Returns the number of messages.
long long delete_contents(detail::DatabaseImpl& db, soci::session& s, const std::string& user, const std::string& id) {
    Stmt msgs(db, s, db.sql().conv_delete_messages);
    msgs.use(user).use(id);
    msgs.execute();
    const long long messages = msgs.affected_rows(); // (SQLite counts per connection: read it now)
    for (const std::string* sql : {&db.sql().conv_delete_summaries, &db.sql().conv_delete_usage}) {
        Stmt rows(db, s, *sql);
        rows.use(user).use(id);
        rows.execute();
    }
    return messages;
}

// A keyed conversation's id is taken: Conflict.
void require_key_free(detail::DatabaseImpl& db, soci::session& s, const Conversation& c) {
    if (c.external_key && find_conversation(db, s, c.user_id, c.id))
        throw Conflict(fmt::format("the user already has a conversation with external_key '{}'", *c.external_key));
}

std::optional<Conversation> find_conversation(detail::DatabaseImpl& db, soci::session& s, const std::string& user,
                                              const std::string& id) {
    ConversationRow row;
    Stmt st(db, s, db.sql().conv_get);
    row.bind(st);
    st.use(user).use(id);
    if (!st.execute()) return std::nullopt;
    return row.to_conversation();
}

} // namespace

Conversation ConversationStore::create(std::string_view user_id, const NewConversation& spec) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::create);
    auto& db = db_.impl();
    const Conversation c = detail::make_conversation(db, user_id, spec);
    // A keyed id may be taken: look first (a racing creator makes the INSERT fail, and the retry
    // finds its row).
    db.run(TxMode::write, [&](soci::session& s) {
        require_key_free(db, s, c);
        detail::insert_conversation(db, s, c, std::nullopt);
        return 0;
    });
    return c;
}

GetOrCreateResult ConversationStore::get_or_create(std::string_view user_id, const NewConversation& spec) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::create);
    auto& db = db_.impl();
    if (!spec.external_key) throw InvalidArgument("external_key", "is required");
    const Conversation fresh = detail::make_conversation(db, user_id, spec);
    return db.run(TxMode::idempotent_write, [&](soci::session& s) {
        if (auto found = find_conversation(db, s, fresh.user_id, fresh.id)) return GetOrCreateResult{*found, false};
        detail::insert_conversation(db, s, fresh, std::nullopt);
        return GetOrCreateResult{fresh, true};
    });
}

Conversation ConversationStore::fork(std::string_view user_id, std::string_view conversation_id, std::int64_t at_seq,
                                     const ForkOptions& options) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::fork);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    if (at_seq < 0) throw InvalidArgument("at_seq", "must not be negative");
    NewConversation spec; // checked now; the source's title and metadata fill what is unset
    spec.title = options.title.value_or("");
    spec.metadata_json = options.metadata_json.value_or("{}");
    spec.external_key = options.external_key;
    Conversation fork = detail::make_conversation(db, user_id, spec);
    const std::string user{user_id}, source{conversation_id};
    const long long at = at_seq;
    db.run(TxMode::write, [&](soci::session& s) {
        // Messages up to at_seq change only by a truncate, which this lock keeps out.
        long long last_seq = 0;
        Stmt guard(db, s, db.sql().conv_summary_guard);
        guard.into(last_seq).use(user).use(source);
        if (!guard.execute()) detail::throw_not_found(source);
        if (at > last_seq)
            throw InvalidArgument("at_seq", fmt::format("is past the conversation's last message (seq {})", last_seq));
        detail::check_group_boundary(db, s, user, source, at, last_seq, "at_seq", fmt::format("a fork at {}", at));
        const Conversation from = *find_conversation(db, s, user, source);
        if (!options.title) fork.title = from.title;
        if (!options.metadata_json) fork.metadata_json = from.metadata_json;
        fork.last_seq = at;
        fork.forked_from = ForkOrigin{source, at};
        require_key_free(db, s, fork);
        detail::insert_conversation(db, s, fork, std::nullopt);
        for (const std::string* sql : {&db.sql().fork_messages, &db.sql().fork_summaries}) {
            Stmt copy(db, s, *sql);
            copy.use(fork.id).use(user).use(source).use(at);
            copy.execute();
        }
        return 0;
    });
    return fork;
}

namespace {
UsageReport read_usage(detail::DatabaseImpl& db, soci::session& s, const std::string& sql,
                       const std::function<void(Stmt&)>& bind) {
    UsageReport report;
    UsageTotals row;
    std::string model;
    soci::indicator model_ind{};
    long long replies = 0, prompt = 0, completion = 0, cached = 0, reasoning = 0;
    Stmt st(db, s, sql);
    st.into(model, model_ind).into(replies).into(prompt).into(completion).into(cached).into(reasoning);
    bind(st);
    if (st.execute()) {
        do {
            row = UsageTotals{model_ind == soci::i_ok ? std::optional(model) : std::nullopt, replies, prompt,
                              completion, cached, reasoning};
            report.by_model.push_back(row);
            report.total.replies += replies;
            report.total.prompt_tokens += prompt;
            report.total.completion_tokens += completion;
            report.total.cached_tokens += cached;
            report.total.reasoning_tokens += reasoning;
        } while (st.fetch());
    }
    return report;
}
} // namespace

UsageReport ConversationStore::usage(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::usage);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    return db.run(TxMode::read, [&](soci::session& s) {
        if (!detail::conversation_exists(db, s, user, id)) detail::throw_not_found(id);
        return read_usage(db, s, db.sql().usage_by_conversation, [&](Stmt& st) { st.use(user).use(id); });
    });
}

UsageReport ConversationStore::usage_since(std::string_view user_id, std::int64_t since_us) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::usage);
    auto& db = db_.impl();
    detail::check_user_id(user_id, db.limits());
    const std::string user{user_id};
    const long long since = since_us;
    return db.run(TxMode::read, [&](soci::session& s) {
        return read_usage(db, s, db.sql().usage_since, [&](Stmt& st) { st.use(user).use(since); });
    });
}

std::vector<Conversation> ConversationStore::forks(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::get);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    return db.run(TxMode::read, [&](soci::session& s) {
        if (!find_conversation(db, s, user, id)) detail::throw_not_found(id);
        std::vector<Conversation> out;
        ConversationRow row;
        Stmt st(db, s, db.sql().conv_forks);
        row.bind(st);
        st.use(user).use(id);
        if (st.execute()) {
            do out.push_back(row.to_conversation());
            while (st.fetch());
        }
        return out;
    });
}

Conversation ConversationStore::get_by_key(std::string_view user_id, std::string_view external_key) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::get);
    auto& db = db_.impl();
    detail::check_user_id(user_id, db.limits());
    detail::check_key(external_key, "external_key", db.limits().max_id_bytes);
    const std::string user{user_id}, id = detail::keyed_conversation_id(user_id, external_key);
    return db.run(TxMode::read, [&](soci::session& s) {
        auto found = find_conversation(db, s, user, id);
        if (!found) throw NotFound(fmt::format("no conversation with external_key '{}'", external_key));
        return std::move(*found);
    });
}

Conversation ConversationStore::get(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::get);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    return db.run(TxMode::read, [&](soci::session& s) {
        auto found = find_conversation(db, s, user, id);
        if (!found) detail::throw_not_found(id);
        return std::move(*found);
    });
}

ConversationPage ConversationStore::list(std::string_view user_id, const ListOptions& options) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::list);
    auto& db = db_.impl();
    detail::check_user_id(user_id, db.limits());
    if (options.limit < 1 || options.limit > 100) throw InvalidArgument("limit", "must be between 1 and 100");
    // (Not a structured binding: clang 14, which builds the fuzz targets, cannot capture one.)
    const std::pair<long long, std::string> after = parse_cursor(options.cursor);
    const long long after_ts = after.first;
    const std::string& after_id = after.second;
    const std::string user{user_id};
    const long long fetch = options.limit + 1; // one extra row tells whether a next page exists
    return db.run(TxMode::read, [&](soci::session& s) {
        ConversationPage page;
        ConversationRow row;
        Stmt st(db, s, db.sql().conv_list);
        row.bind(st);
        st.use(user).use(after_ts).use(after_id).use(fetch);
        if (st.execute()) {
            do page.items.push_back(row.to_conversation());
            while (st.fetch());
        }
        if (page.items.size() > static_cast<std::size_t>(options.limit)) {
            page.items.pop_back();
            page.next_cursor = make_cursor(page.items.back());
        }
        return page;
    });
}

namespace {
Conversation update_returning(detail::DatabaseImpl& db, const std::string& sql, const std::string& value,
                              std::string_view user_id, std::string_view conversation_id) {
    const std::string user{user_id}, id{conversation_id};
    const long long now = detail::now_us();
    return db.run(TxMode::write, [&](soci::session& s) {
        ConversationRow row;
        Stmt st(db, s, sql);
        const bool returning = db.policy().can().update_returning;
        if (returning) row.bind(st);
        st.use(value).use(now).use(user).use(id);
        if (returning) {
            if (!st.execute()) detail::throw_not_found(id);
            return row.to_conversation();
        }
        st.execute(); // then read back under the row lock the UPDATE took
        Stmt get(db, s, db.sql().conv_get);
        row.bind(get);
        get.use(user).use(id);
        if (!get.execute()) detail::throw_not_found(id);
        return row.to_conversation();
    });
}
} // namespace

Conversation ConversationStore::rename(std::string_view user_id, std::string_view conversation_id,
                                       std::string_view title) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::update);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    detail::check_text(title, "title", db.limits().max_title_bytes);
    return update_returning(db, db.sql().conv_rename, std::string(title), user_id, conversation_id);
}

Conversation ConversationStore::set_metadata(std::string_view user_id, std::string_view conversation_id,
                                             std::string_view metadata_json) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::update);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string metadata = detail::normalize_metadata(metadata_json, "metadata", db.limits());
    return update_returning(db, db.sql().conv_set_metadata, metadata, user_id, conversation_id);
}

void ConversationStore::remove(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::remove);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    db.run(TxMode::write, [&](soci::session& s) {
        Stmt del(db, s, db.sql().conv_delete);
        del.use(user).use(id);
        del.execute();
        if (del.affected_rows() == 0) detail::throw_not_found(id);
        delete_contents(db, s, user, id);
        return 0;
    });
}

std::size_t ConversationStore::remove_all(std::string_view user_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::remove);
    auto& db = db_.impl();
    detail::check_user_id(user_id, db.limits());
    const std::string user{user_id};
    return db.run(TxMode::write, [&](soci::session& s) {
        Stmt del(db, s, db.sql().user_delete_conversations);
        del.use(user);
        del.execute();
        const auto n = static_cast<std::size_t>(del.affected_rows());
        Stmt msgs(db, s, db.sql().user_delete_messages);
        msgs.use(user);
        msgs.execute();
        for (const std::string* sql : {&db.sql().user_delete_summaries, &db.sql().user_delete_usage}) {
            Stmt del_rows(db, s, *sql);
            del_rows.use(user);
            del_rows.execute();
        }
        return n;
    });
}

} // namespace convstate

namespace convstate {

StoreTotals ConversationStore::totals() const {
    const detail::OpTimer op_timer(db_.impl(), Operation::get);
    auto& db = db_.impl();
    return db.run(TxMode::read, [&](soci::session& s) {
        StoreTotals t;
        long long users = 0, conversations = 0, messages = 0;
        Stmt conv(db, s, db.sql().totals_conversations);
        conv.into(users).into(conversations);
        conv.execute();
        Stmt msgs(db, s, db.sql().totals_messages);
        msgs.into(messages);
        msgs.execute();
        t.users = users;
        t.conversations = conversations;
        t.messages = messages;
        return t;
    });
}

PurgeResult ConversationStore::purge(std::int64_t older_than_us, const PurgeOptions& options,
                                     const PurgeProgress& progress) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::purge);
    auto& db = db_.impl();
    if (older_than_us < 0) throw InvalidArgument("older_than", "must not be negative");
    if (options.batch_size < 1 || options.batch_size > 10000)
        throw InvalidArgument("batch_size", "must be 1..10000");
    if (options.user_id) detail::check_user_id(*options.user_id, db.limits());
    const long long cutoff = older_than_us;
    const auto limit = static_cast<long long>(options.batch_size);
    struct Key {
        long long updated_at = -1;
        std::string user, id;
    };
    PurgeResult total;
    Key after; // the last key of the previous page
    for (;;) {
        std::vector<Key> page = db.run(TxMode::read, [&](soci::session& s) {
            std::vector<Key> keys;
            Key k;
            Stmt st(db, s, options.user_id ? db.sql().conv_purge_page_user : db.sql().conv_purge_page);
            st.into(k.updated_at).into(k.user).into(k.id);
            if (options.user_id)
                st.use(*options.user_id).use(cutoff).use(after.updated_at).use(after.id).use(limit);
            else
                st.use(cutoff).use(after.updated_at).use(after.user).use(after.id).use(limit);
            for (bool row = st.execute(); row; row = st.fetch()) keys.push_back(k);
            return keys;
        });
        if (page.empty()) break;
        after = page.back();
        // Counted inside the transaction: db.run may run it again after a transient error.
        const PurgeResult batch = db.run(options.dry_run ? TxMode::read : TxMode::write, [&](soci::session& s) {
            PurgeResult r;
            for (const Key& k : page) {
                if (options.dry_run) {
                    long long n = 0;
                    Stmt count(db, s, db.sql().msg_count);
                    count.into(n).use(k.user).use(k.id);
                    count.execute();
                    r.conversations += 1;
                    r.messages += n;
                    continue;
                }
                Stmt del(db, s, db.sql().conv_purge_delete);
                del.use(k.user).use(k.id).use(cutoff);
                del.execute();
                if (del.affected_rows() == 0) continue; // updated (or deleted) since the page was read
                r.conversations += 1;
                r.messages += delete_contents(db, s, k.user, k.id);
            }
            return r;
        });
        total.conversations += batch.conversations;
        total.messages += batch.messages;
        if (progress) progress(total);
        if (static_cast<long long>(page.size()) < limit) break;
    }
    return total;
}

} // namespace convstate
