#include "rows.hpp"

#include <algorithm>

#include "convstate/json.hpp"

namespace convstate::detail {

void MessageRow::bind(Stmt& st) {
    st.into(seq).into(role).into(content).into(name, name_ind)
        .into(tool_calls_json, tool_calls_ind).into(tool_call_id, tool_call_id_ind).into(metadata_json)
        .into(token_count, token_count_ind).into(key, key_ind).into(parts, parts_ind).into(created_at);
}

void MessageRow::take_into(Message& m) {
    m.role = role_from_string(role);
    m.content = std::move(content);
    if (name_ind == soci::i_ok) m.name = std::move(name);
    if (tool_calls_ind == soci::i_ok) m.tool_calls = json::tool_calls_from_json(tool_calls_json);
    if (tool_call_id_ind == soci::i_ok) m.tool_call_id = std::move(tool_call_id);
    m.metadata_json = std::move(metadata_json);
    if (token_count_ind == soci::i_ok) m.token_count = token_count;
    if (key_ind == soci::i_ok) m.idempotency_key = std::move(key);
    if (parts_ind == soci::i_ok) m.content_parts_json = std::move(parts);
    m.conversation_id = conversation_id;
    m.seq = seq;
    m.created_at_us = created_at;
}

void ConversationRow::bind(Stmt& st) {
    st.into(id).into(user_id).into(title).into(metadata_json).into(last_seq).into(created_at).into(updated_at)
        .into(external_key, external_key_ind).into(forked_from_id, forked_from_id_ind)
        .into(forked_from_seq, forked_from_seq_ind);
}

Conversation ConversationRow::to_conversation() const {
    Conversation c{id, user_id, title, metadata_json, last_seq, created_at, updated_at, std::nullopt, std::nullopt};
    if (external_key_ind == soci::i_ok) c.external_key = external_key;
    if (forked_from_id_ind == soci::i_ok && forked_from_seq_ind == soci::i_ok)
        c.forked_from = ForkOrigin{forked_from_id, forked_from_seq};
    return c;
}

void SummaryRow::bind(Stmt& st) {
    st.into(conversation_id).into(covers).into(content).into(metadata_json).into(created_at);
}

Summary SummaryRow::to_summary() const {
    return Summary{conversation_id, covers, content, metadata_json, created_at};
}

std::vector<Message> fetch_messages(Stmt& st, MessageRow& row, long long expected) {
    std::vector<Message> out;
    out.reserve(static_cast<std::size_t>(std::clamp<long long>(expected, 0, max_reserved_rows)));
    if (st.execute()) {
        do row.take_into(out);
        while (st.fetch());
    }
    return out;
}

void use_message_fields(Stmt& st, const Message& m) {
    // Stmt copies each value into its own buffer, so temporaries are fine here.
    st.use(std::string(to_string(m.role)))
        .use(m.content)
        .use(m.name)
        .use(m.tool_calls.empty() ? std::nullopt : std::optional(json::tool_calls_to_json(m.tool_calls)))
        .use(m.tool_call_id)
        .use(m.metadata_json)
        .use(m.token_count ? std::optional<long long>(*m.token_count) : std::nullopt)
        .use(m.idempotency_key)
        .use(m.content_parts_json);
}

void use_usage_fields(Stmt& st, const Usage& u) {
    const auto number = [](const std::optional<std::int64_t>& v) {
        return v ? std::optional<long long>(*v) : std::nullopt;
    };
    st.use(u.model).use(number(u.prompt_tokens)).use(number(u.completion_tokens)).use(number(u.cached_tokens))
        .use(number(u.reasoning_tokens));
}

void insert_message(DatabaseImpl& db, soci::session& session, const std::string& user_id, const Message& m) {
    Stmt st(db, session, db.sql().msg_insert);
    st.use(user_id).use(m.conversation_id).use(static_cast<long long>(m.seq));
    use_message_fields(st, m);
    st.use(static_cast<long long>(m.created_at_us));
    st.execute();
}

} // namespace convstate::detail
