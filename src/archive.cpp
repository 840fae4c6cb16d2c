// Archive: whole conversations as JSON lines (docs/export-format.md).
//
// A line is built from the public JSON codec's pieces (to_json of the conversation, its
// messages and summaries) and read back with the same codec, so export and import agree with
// every other JSON the library reads and writes.

#include "convstate/archive.hpp"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "convstate/error.hpp"
#include "convstate/json.hpp"
#include "db.hpp"
#include "rows.hpp"
#include "tx_steps.hpp"
#include "util.hpp"
#include "validate.hpp"

namespace convstate {

using detail::Stmt;
using detail::TxMode;

namespace {

namespace bj = boost::json;

constexpr int kFormatVersion = 1;
constexpr long long kPageSize = 100;

// A conversation row as export reads it: the public fields and the two a host can observe only
// through behaviour (the creating turn's key, which makes its retry a replay; the truncate count).
struct ExportRow {
    detail::ConversationRow conv;
    std::string create_key;
    soci::indicator create_key_ind{};
    long long truncations = 0;

    void bind(Stmt& st) {
        conv.bind(st);
        st.into(create_key, create_key_ind).into(truncations);
    }
};

struct UsageRecord {
    std::string id;
    long long seq = 0, created_at = 0;
    Usage usage;
};

std::vector<UsageRecord> read_usage(detail::DatabaseImpl& db, soci::session& s, const std::string& user,
                                    const std::string& id) {
    std::vector<UsageRecord> out;
    UsageRecord r;
    std::string model;
    long long tokens[4] = {};
    soci::indicator model_ind{}, ind[4] = {};
    Stmt st(db, s, db.sql().export_usage);
    st.into(r.id).into(r.seq).into(model, model_ind);
    for (int i = 0; i < 4; ++i) st.into(tokens[i], ind[i]);
    st.into(r.created_at);
    st.use(user).use(id);
    for (bool row = st.execute(); row; row = st.fetch()) {
        r.usage.model = model_ind == soci::i_ok ? std::optional(model) : std::nullopt;
        std::optional<std::int64_t>* fields[4] = {&r.usage.prompt_tokens, &r.usage.completion_tokens,
                                                  &r.usage.cached_tokens, &r.usage.reasoning_tokens};
        for (int i = 0; i < 4; ++i) *fields[i] = ind[i] == soci::i_ok ? std::optional<std::int64_t>(tokens[i]) : std::nullopt;
        out.push_back(r);
    }
    return out;
}

bj::value optional_value(const std::optional<std::string>& v) { return v ? bj::value(*v) : bj::value(nullptr); }
bj::value optional_value(const std::optional<std::int64_t>& v) { return v ? bj::value(*v) : bj::value(nullptr); }

std::string usage_json(const std::vector<UsageRecord>& rows) {
    bj::array out;
    for (const UsageRecord& r : rows) {
        out.push_back(bj::object{{"id", r.id},
                                 {"seq", r.seq},
                                 {"model", optional_value(r.usage.model)},
                                 {"prompt_tokens", optional_value(r.usage.prompt_tokens)},
                                 {"completion_tokens", optional_value(r.usage.completion_tokens)},
                                 {"cached_tokens", optional_value(r.usage.cached_tokens)},
                                 {"reasoning_tokens", optional_value(r.usage.reasoning_tokens)},
                                 {"created_at_us", r.created_at}});
    }
    return bj::serialize(out);
}

// One conversation's line, read as of one moment: the messages are those of 1..last_seq of the
// row read first. A truncate between the reads can leave fewer; then the whole is read again.
std::string export_line(detail::DatabaseImpl& db, ExportRow row) {
    const std::string user = row.conv.user_id, id = row.conv.id;
    for (int attempt = 0;; ++attempt) {
        auto [messages, summaries, usage] = db.run(TxMode::read, [&](soci::session& s) {
            std::vector<Message> m = detail::load_range(db, s, user, id, 0, row.conv.last_seq);
            std::vector<Summary> sums;
            detail::SummaryRow sr;
            Stmt st(db, s, db.sql().sum_all);
            sr.bind(st);
            st.use(user).use(id);
            for (bool r = st.execute(); r; r = st.fetch())
                if (sr.covers <= row.conv.last_seq) sums.push_back(sr.to_summary());
            return std::tuple(std::move(m), std::move(sums), read_usage(db, s, user, id));
        });
        if (static_cast<long long>(messages.size()) == row.conv.last_seq || attempt == 20) {
            if (static_cast<long long>(messages.size()) != row.conv.last_seq)
                throw StorageError(fmt::format("conversation '{}' kept changing while it was exported", id));
            return fmt::format(R"({{"version":{},"conversation":{},"create_key":{},"truncations":{},)"
                               R"("messages":{},"summaries":{},"usage":{}}})",
                               kFormatVersion, json::to_json(row.conv.to_conversation()),
                               bj::serialize(optional_value(row.create_key_ind == soci::i_ok
                                                                ? std::optional(row.create_key)
                                                                : std::nullopt)),
                               row.truncations, json::to_json(messages), json::to_json(summaries), usage_json(usage));
        }
        // Truncated meanwhile: read the row again.
        const bool found = db.run(TxMode::read, [&](soci::session& s) {
            Stmt st(db, s, db.sql().export_conversation);
            row.bind(st);
            st.use(user).use(id);
            return st.execute();
        });
        if (!found) return {}; // deleted meanwhile: not exported
    }
}

// ---- import: every field checked, named by its path in the line ----------------------------

[[noreturn]] void rethrow_under(const InvalidArgument& e, const std::string& prefix) {
    const std::string what = e.what();
    const std::string head = "invalid " + e.field() + ": ";
    throw InvalidArgument(prefix + e.field(), what.rfind(head, 0) == 0 ? what.substr(head.size()) : what);
}

const bj::value& member(const bj::object& o, std::string_view key, const std::string& field) {
    const bj::value* v = o.if_contains(key);
    if (!v) throw InvalidArgument(field, "is required");
    return *v;
}

std::int64_t int_member(const bj::object& o, std::string_view key, const std::string& field, std::int64_t min) {
    const bj::value& v = member(o, key, field);
    if (!v.is_int64() && !v.is_uint64()) throw InvalidArgument(field, "must be an integer");
    if (v.is_uint64() && v.get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) throw InvalidArgument(field, "is too large");
    const std::int64_t n = v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
    if (n < min) throw InvalidArgument(field, fmt::format("must be at least {}", min));
    return n;
}

std::optional<std::int64_t> optional_int(const bj::object& o, std::string_view key, const std::string& field) {
    const bj::value* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    return int_member(o, key, field, 0);
}

std::optional<std::string> optional_string(const bj::object& o, std::string_view key, const std::string& field) {
    const bj::value* v = o.if_contains(key);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw InvalidArgument(field, "must be a string or null");
    return std::string(v->get_string());
}

const bj::array& array_member(const bj::object& o, std::string_view key) {
    const bj::value& v = member(o, key, std::string(key));
    if (!v.is_array()) throw InvalidArgument(std::string(key), "must be an array");
    return v.get_array();
}

struct Parsed {
    Conversation conv;
    std::optional<std::string> create_key;
    long long truncations = 0;
    std::vector<Message> messages;
    std::vector<Summary> summaries;
    std::vector<UsageRecord> usage;
};

// An unknown key named as the field of an error: `""` when empty (a field is never empty).
std::string key_as_field(std::string_view key) { return key.empty() ? "\"\"" : detail::utf8_prefix(key); }

Parsed parse_line(std::string_view line, const Limits& limits) {
    const bj::value root = detail::parse_strict(line, "json", "");
    if (!root.is_object()) throw InvalidArgument("json", "a line must be a JSON object");
    const bj::object& o = root.get_object();
    for (const auto& kv : o) {
        static const std::string_view known[] = {"version", "conversation", "create_key", "truncations",
                                                 "messages", "summaries", "usage"};
        if (std::find(std::begin(known), std::end(known), kv.key()) == std::end(known))
            throw InvalidArgument(key_as_field(kv.key()), "is not a field of an exported conversation");
    }
    if (int_member(o, "version", "version", 1) != kFormatVersion)
        throw InvalidArgument("version", fmt::format("must be {} (this library's export format)", kFormatVersion));

    Parsed p;
    const bj::value& conv = member(o, "conversation", "conversation");
    if (!conv.is_object()) throw InvalidArgument("conversation", "must be an object");
    try {
        p.conv = json::conversation_from_json(bj::serialize(conv));
    } catch (const InvalidArgument& e) {
        rethrow_under(e, "conversation.");
    }
    Conversation& c = p.conv;
    const bj::object& co = conv.get_object();
    for (const char* required : {"id", "user_id", "last_seq", "created_at_us", "updated_at_us"})
        member(co, required, std::string("conversation.") + required);
    detail::check_user_id(c.user_id, limits);
    try {
        detail::check_conversation_id(c.id, limits);
    } catch (const InvalidArgument& e) {
        rethrow_under(e, "conversation.");
    }
    detail::check_text(c.title, "conversation.title", limits.max_title_bytes);
    c.metadata_json = detail::normalize_metadata(c.metadata_json, "conversation.metadata", limits);
    int_member(co, "last_seq", "conversation.last_seq", 0);
    int_member(co, "created_at_us", "conversation.created_at_us", 0);
    int_member(co, "updated_at_us", "conversation.updated_at_us", 0);
    if (c.external_key) {
        detail::check_key(*c.external_key, "conversation.external_key", limits.max_id_bytes);
        if (detail::keyed_conversation_id(c.user_id, *c.external_key) != c.id)
            throw InvalidArgument("conversation.external_key", "does not match the conversation's id");
    }
    if (c.forked_from) {
        detail::check_id(c.forked_from->conversation_id, "conversation.forked_from.conversation_id", limits.max_id_bytes);
        if (c.forked_from->seq < 0) throw InvalidArgument("conversation.forked_from.seq", "must not be negative");
    }
    p.create_key = optional_string(o, "create_key", "create_key");
    if (p.create_key) detail::check_key(*p.create_key, "create_key", limits.max_id_bytes);
    p.truncations = int_member(o, "truncations", "truncations", 0);

    array_member(o, "messages");
    p.messages = json::messages_from_json(bj::serialize(o.at("messages")));
    detail::check_batch(p.messages, "messages", limits, detail::KeyOrigin::stored);
    if (static_cast<long long>(p.messages.size()) != c.last_seq)
        throw InvalidArgument("messages", fmt::format("holds {} messages, but conversation.last_seq is {}",
                                                      p.messages.size(), c.last_seq));
    for (std::size_t i = 0; i < p.messages.size(); ++i) {
        Message& m = p.messages[i];
        if (m.seq != static_cast<std::int64_t>(i) + 1)
            throw InvalidArgument(fmt::format("messages[{}].seq", i), fmt::format("must be {} (seqs are 1, 2, 3…)", i + 1));
        if (m.created_at_us < 0) throw InvalidArgument(fmt::format("messages[{}].created_at_us", i), "must not be negative");
        if (!m.conversation_id.empty() && m.conversation_id != c.id)
            throw InvalidArgument(fmt::format("messages[{}].conversation_id", i), "is not the conversation's id");
        m.conversation_id = c.id;
    }

    const bj::array& sums = array_member(o, "summaries");
    long long previous = 0;
    for (std::size_t i = 0; i < sums.size(); ++i) {
        const std::string f = fmt::format("summaries[{}].", i);
        if (!sums[i].is_object()) throw InvalidArgument(fmt::format("summaries[{}]", i), "must be an object");
        const bj::object& so = sums[i].get_object();
        Summary s;
        s.conversation_id = c.id;
        s.covers_through_seq = int_member(so, "covers_through_seq", f + "covers_through_seq", 1);
        if (s.covers_through_seq > c.last_seq || s.covers_through_seq <= previous)
            throw InvalidArgument(f + "covers_through_seq", "must increase, within 1..conversation.last_seq");
        previous = s.covers_through_seq;
        s.content = optional_string(so, "content", f + "content").value_or("");
        if (s.content.empty()) throw InvalidArgument(f + "content", "must not be empty");
        detail::check_text(s.content, f + "content", limits.max_content_bytes);
        const bj::value* meta = so.if_contains("metadata");
        s.metadata_json = detail::normalize_metadata(meta ? bj::serialize(*meta) : "{}", f + "metadata", limits);
        s.created_at_us = int_member(so, "created_at_us", f + "created_at_us", 0);
        p.summaries.push_back(std::move(s));
    }

    const bj::array& usage = array_member(o, "usage");
    for (std::size_t i = 0; i < usage.size(); ++i) {
        const std::string f = fmt::format("usage[{}].", i);
        if (!usage[i].is_object()) throw InvalidArgument(fmt::format("usage[{}]", i), "must be an object");
        const bj::object& uo = usage[i].get_object();
        UsageRecord r;
        r.id = optional_string(uo, "id", f + "id").value_or("");
        detail::check_id(r.id, f + "id", limits.max_id_bytes);
        r.seq = int_member(uo, "seq", f + "seq", 1);
        r.usage.model = optional_string(uo, "model", f + "model");
        if (r.usage.model) detail::check_text(*r.usage.model, f + "model", limits.max_id_bytes);
        r.usage.prompt_tokens = optional_int(uo, "prompt_tokens", f + "prompt_tokens");
        r.usage.completion_tokens = optional_int(uo, "completion_tokens", f + "completion_tokens");
        r.usage.cached_tokens = optional_int(uo, "cached_tokens", f + "cached_tokens");
        r.usage.reasoning_tokens = optional_int(uo, "reasoning_tokens", f + "reasoning_tokens");
        r.created_at = int_member(uo, "created_at_us", f + "created_at_us", 0);
        p.usage.push_back(std::move(r));
    }
    return p;
}

} // namespace

std::int64_t Archive::export_conversations(const ExportOptions& options,
                                           const std::function<void(std::string_view)>& write) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::export_conversations);
    auto& db = db_.impl();
    if (options.user_id) detail::check_user_id(*options.user_id, db.limits());
    if (options.updated_since_us < 0) throw InvalidArgument("updated_since", "must not be negative");
    const long long since = options.updated_since_us;
    std::int64_t written = 0;
    std::string after_user, after_id;
    for (;;) {
        std::vector<ExportRow> page = db.run(TxMode::read, [&](soci::session& s) {
            std::vector<ExportRow> rows;
            ExportRow row;
            Stmt st(db, s, options.user_id ? db.sql().export_page_user : db.sql().export_page);
            row.bind(st);
            if (options.user_id)
                st.use(*options.user_id).use(after_id).use(since).use(kPageSize);
            else
                st.use(after_user).use(after_id).use(since).use(kPageSize);
            for (bool r = st.execute(); r; r = st.fetch()) rows.push_back(row);
            return rows;
        });
        for (ExportRow& row : page) {
            after_user = row.conv.user_id;
            after_id = row.conv.id;
            const std::string line = export_line(db, std::move(row));
            if (line.empty()) continue;
            write(line);
            ++written;
        }
        if (static_cast<long long>(page.size()) < kPageSize) return written;
    }
}

ImportResult Archive::import_conversation(std::string_view line) const {
    const detail::OpTimer op_timer(db_.impl(), Operation::import_conversation);
    auto& db = db_.impl();
    const Parsed p = parse_line(line, db.limits());
    const Conversation& c = p.conv;
    ImportResult result{c.user_id, c.id, false, 0};
    // Idempotent: the existence check and the writes share one transaction, so a retry after an
    // unknown commit outcome finds the conversation and writes nothing.
    const bool imported = db.run(TxMode::idempotent_write, [&](soci::session& s) {
        ExportRow existing;
        Stmt probe(db, s, db.sql().export_conversation);
        existing.bind(probe);
        probe.use(c.user_id).use(c.id);
        if (probe.execute()) return false;
        Stmt ins(db, s, db.sql().import_conversation);
        ins.use(c.id).use(c.user_id).use(c.title).use(c.metadata_json).use(static_cast<long long>(c.last_seq))
            .use(static_cast<long long>(c.created_at_us)).use(static_cast<long long>(c.updated_at_us)).use(c.external_key)
            .use(c.forked_from ? std::optional(c.forked_from->conversation_id) : std::nullopt)
            .use(c.forked_from ? std::optional<long long>(c.forked_from->seq) : std::nullopt)
            .use(p.create_key)
            .use(p.truncations);
        ins.execute();
        // Messages in statements of msg_insert_rows rows (one round trip each), the rest one by one.
        std::size_t i = 0;
        for (; i + detail::msg_insert_rows <= p.messages.size(); i += detail::msg_insert_rows) {
            Stmt st(db, s, db.sql().msg_insert_many);
            for (std::size_t k = i; k < i + detail::msg_insert_rows; ++k) {
                const Message& m = p.messages[k];
                st.use(c.user_id).use(c.id).use(static_cast<long long>(m.seq));
                detail::use_message_fields(st, m);
                st.use(static_cast<long long>(m.created_at_us));
            }
            st.execute();
        }
        for (; i < p.messages.size(); ++i) detail::insert_message(db, s, c.user_id, p.messages[i]);
        for (const Summary& sum : p.summaries) {
            Stmt st(db, s, db.sql().sum_upsert);
            st.use(c.user_id).use(c.id).use(static_cast<long long>(sum.covers_through_seq)).use(sum.content)
                .use(sum.metadata_json).use(static_cast<long long>(sum.created_at_us));
            st.execute();
        }
        for (const UsageRecord& u : p.usage) {
            Stmt st(db, s, db.sql().usage_insert);
            st.use(c.user_id).use(u.id).use(c.id).use(u.seq);
            detail::use_usage_fields(st, u.usage);
            st.use(u.created_at);
            st.execute();
        }
        return true;
    });
    if (imported) {
        result.imported = true;
        result.messages = static_cast<std::int64_t>(p.messages.size());
    }
    return result;
}

} // namespace convstate
