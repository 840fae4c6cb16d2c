#include "convstate/message_repository.hpp"

#include <algorithm>


#include <fmt/format.h>

#include "db.hpp"
#include "rows.hpp"
#include "util.hpp"
#include "validate.hpp"
#include "tx_steps.hpp"

namespace convstate {

using detail::MessageRow;
using detail::Stmt;
using detail::TxMode;

namespace {

constexpr std::size_t max_page = 10000;

void check_page_limit(std::size_t limit) {
    if (limit < 1 || limit > max_page)
        throw InvalidArgument("limit", fmt::format("must be between 1 and {}", max_page));
}

// An empty result needs one more look to tell "no messages" from "no such conversation".
void require_conversation(detail::DatabaseImpl& db, soci::session& s, const std::string& user,
                          const std::string& id) {
    if (!detail::conversation_exists(db, s, user, id)) detail::throw_not_found(id);
}

template <class Bind>
std::vector<Message> load(detail::DatabaseImpl& db, const std::string& sql, const std::string& user,
                          const std::string& id, Bind&& bind_rest) {
    return db.run(TxMode::read, [&](soci::session& s) {
        MessageRow row(id);
        Stmt st(db, s, sql);
        row.bind(st);
        st.use(user).use(id);
        bind_rest(st);
        std::vector<Message> out = detail::fetch_messages(st, row);
        if (out.empty()) require_conversation(db, s, user, id);
        return out;
    });
}

// Fields are named "messages[i]." in a batch and without a prefix for a single append.
std::vector<Message> append_messages(detail::DatabaseImpl& db, std::string_view user_id,
                                     std::string_view conversation_id, const std::vector<Message>& messages,
                                     const AppendOptions& options, const char* field_name) {
    detail::check_scope(user_id, conversation_id, db.limits());
    if (messages.empty()) throw InvalidArgument("messages", "must not be empty");
    if (messages.size() > db.limits().max_batch)
        throw InvalidArgument("messages", fmt::format("holds {} messages, over the limit of {}", messages.size(),
                                                      db.limits().max_batch));
    std::vector<Message> batch = messages;
    const bool all_keyed = detail::check_batch(batch, field_name, db.limits());
    const std::string user{user_id}, id{conversation_id};
    // A keyed write may be retried even when a COMMIT's outcome is unknown: the retry finds the
    // stored rows by key instead of storing them twice.
    const TxMode mode = all_keyed ? TxMode::idempotent_write : TxMode::write;

    return db.run(mode, [&](soci::session& s) {
        return detail::append(db, s, user, id, batch, options.expected_last_seq);
    });
}

} // namespace

Message MessageRepository::append(std::string_view user_id, std::string_view conversation_id,
                                  const Message& message, const AppendOptions& options) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::append);
    return append_messages(db_.impl(), user_id, conversation_id, {message}, options, "").front();
}

std::vector<Message> MessageRepository::append_batch(std::string_view user_id, std::string_view conversation_id,
                                                     const std::vector<Message>& messages,
                                                     const AppendOptions& options) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::append);
    return append_messages(db_.impl(), user_id, conversation_id, messages, options, "messages");
}

std::vector<Message> MessageRepository::load_all(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    return load(db, db.sql().msg_all, std::string(user_id), std::string(conversation_id), [](Stmt&) {});
}

std::vector<Message> MessageRepository::load_last(std::string_view user_id, std::string_view conversation_id,
                                                  std::size_t n) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    const long long count = static_cast<long long>(std::min<std::size_t>(n, INT64_MAX));
    if (n == 0) {
        db.run(TxMode::read, [&](soci::session& s) { require_conversation(db, s, user, id); return 0; });
        return {};
    }
    return load(db, db.sql().msg_last, user, id, [&](Stmt& st) { st.use(user).use(id).use(count); });
}

std::vector<Message> MessageRepository::load_after(std::string_view user_id, std::string_view conversation_id,
                                                   std::int64_t after_seq, std::size_t limit) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    check_page_limit(limit);
    const long long after = after_seq, lim = static_cast<long long>(limit);
    return load(db, db.sql().msg_after, std::string(user_id), std::string(conversation_id),
                [&](Stmt& st) { st.use(after).use(lim); });
}

std::vector<Message> MessageRepository::load_before(std::string_view user_id, std::string_view conversation_id,
                                                    std::int64_t before_seq, std::size_t limit) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    check_page_limit(limit);
    // Seqs start at 1 and are below 2^62 in practice: clamping keeps the SQL arithmetic exact.
    const long long before = std::clamp<std::int64_t>(before_seq, 1, std::int64_t{1} << 62);
    const long long lim = static_cast<long long>(limit);
    const std::string user{user_id}, id{conversation_id};
    return load(db, db.sql().msg_before, user, id,
                [&](Stmt& st) { st.use(before).use(before).use(user).use(id).use(lim); });
}

std::int64_t MessageRepository::truncate(std::string_view user_id, std::string_view conversation_id,
                                         std::int64_t after_seq, std::optional<std::int64_t> expected_last_seq) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::truncate);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    if (after_seq < 0) throw InvalidArgument("after_seq", "must not be negative");
    if (expected_last_seq && *expected_last_seq < 0) throw InvalidArgument("expected_last_seq", "must not be negative");
    const std::string user{user_id}, id{conversation_id};
    const long long after = after_seq;
    // Without expected_last_seq a retry after an unknown COMMIT outcome is harmless: it finds
    // last_seq at after_seq already, or removes what is still there.
    return db.run(expected_last_seq ? TxMode::write : TxMode::idempotent_write, [&](soci::session& s) {
        const detail::LockedConversation conv = detail::lock_conversation(db, s, user, id, true);
        if (expected_last_seq && *expected_last_seq != conv.last_seq)
            throw Conflict(fmt::format("conversation '{}' is at seq {}, not the expected {}", id, conv.last_seq,
                                       *expected_last_seq));
        if (after >= conv.last_seq) return std::int64_t{0};
        detail::check_group_boundary(db, s, user, id, after, conv.last_seq, "after_seq",
                                     fmt::format("truncating after {}", after));
        Stmt del(db, s, db.sql().msg_delete_after);
        del.use(user).use(id).use(after);
        del.execute();
        Stmt summaries(db, s, db.sql().sum_delete_after); // they stood for removed messages
        summaries.use(user).use(id).use(after);
        summaries.execute();
        const long long now = detail::now_us();
        Stmt bump(db, s, db.sql().conv_truncate_to);
        bump.use(after).use(now).use(user).use(id);
        bump.execute();
        return static_cast<std::int64_t>(conv.last_seq - after);
    });
}

Summary MessageRepository::add_summary(std::string_view user_id, std::string_view conversation_id,
                                       std::int64_t covers_through_seq, std::string_view content,
                                       std::string_view metadata_json) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::summary);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    if (covers_through_seq < 1) throw InvalidArgument("covers_through_seq", "must be at least 1");
    if (content.empty()) throw InvalidArgument("content", "must not be empty");
    detail::check_text(content, "content", db.limits().max_content_bytes);
    Summary summary{std::string(conversation_id), covers_through_seq, std::string(content),
                    detail::normalize_metadata(metadata_json, "metadata", db.limits()), detail::now_us()};
    const std::string user{user_id};
    const long long covers = covers_through_seq;
    // The same summary again replaces it: a retry is harmless.
    db.run(TxMode::idempotent_write, [&](soci::session& s) {
        long long last_seq = 0;
        Stmt guard(db, s, db.sql().conv_summary_guard);
        guard.into(last_seq).use(user).use(summary.conversation_id);
        if (!guard.execute()) detail::throw_not_found(summary.conversation_id);
        if (covers > last_seq)
            throw InvalidArgument("covers_through_seq",
                                  fmt::format("is past the conversation's last message (seq {})", last_seq));
        detail::check_group_boundary(db, s, user, summary.conversation_id, covers, last_seq, "covers_through_seq",
                                     fmt::format("a summary through {}", covers));
        Stmt st(db, s, db.sql().sum_upsert);
        st.use(user).use(summary.conversation_id).use(covers).use(summary.content).use(summary.metadata_json)
            .use(static_cast<long long>(summary.created_at_us));
        st.execute();
        return 0;
    });
    return summary;
}

std::vector<Summary> MessageRepository::summaries(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::summary);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    return db.run(TxMode::read, [&](soci::session& s) {
        std::vector<Summary> out;
        detail::SummaryRow row;
        Stmt st(db, s, db.sql().sum_all);
        row.bind(st);
        st.use(user).use(id);
        if (st.execute()) {
            do out.push_back(row.to_summary());
            while (st.fetch());
        }
        if (out.empty()) require_conversation(db, s, user, id);
        return out;
    });
}

std::int64_t MessageRepository::count(std::string_view user_id, std::string_view conversation_id) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::load);
    auto& db = db_.impl();
    detail::check_scope(user_id, conversation_id, db.limits());
    const std::string user{user_id}, id{conversation_id};
    return db.run(TxMode::read, [&](soci::session& s) {
        long long n = 0;
        Stmt st(db, s, db.sql().msg_count);
        st.into(n).use(user).use(id);
        st.execute();
        if (n == 0) require_conversation(db, s, user, id);
        return static_cast<std::int64_t>(n);
    });
}

} // namespace convstate
