#include "validate.hpp"

#include <set>

#include <boost/json.hpp>
#include <fmt/format.h>

#include "convstate/error.hpp"
#include "util.hpp"

namespace convstate::detail {

void check_text(std::string_view value, const std::string& field, std::size_t max_bytes) {
    if (value.size() > max_bytes)
        throw InvalidArgument(field, fmt::format("is {} bytes, over the configured limit of {} bytes",
                                                 value.size(), max_bytes));
    if (value.find('\0') != std::string_view::npos)
        throw InvalidArgument(field, "contains a NUL byte");
    if (!is_valid_utf8(value)) throw InvalidArgument(field, "is not valid UTF-8");
}

void check_id(std::string_view value, const std::string& field, std::size_t max_bytes) {
    if (value.empty()) throw InvalidArgument(field, "must not be empty");
    check_text(value, field, max_bytes);
}

void check_user_id(std::string_view user_id, const Limits& limits) {
    check_id(user_id, "user_id", limits.max_user_id_bytes);
}

void check_conversation_id(std::string_view conversation_id, const Limits& limits) {
    check_id(conversation_id, "conversation_id", limits.max_id_bytes);
}

bool is_json(std::string_view text) noexcept {
    boost::system::error_code ec;
    boost::json::parse(text, ec);
    return !ec;
}

std::string normalize_metadata(std::string_view text, const std::string& field, const Limits& limits) {
    check_text(text, field, limits.max_metadata_bytes);
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec) throw InvalidArgument(field, "is not valid JSON: " + ec.message());
    if (!v.is_object()) throw InvalidArgument(field, "must be a JSON object");
    return boost::json::serialize(v);
}

void check_message(Message& m, const std::string& prefix, const Limits& limits) {
    switch (m.role) {
    case Role::system: case Role::user: case Role::assistant: case Role::tool: break;
    default: throw InvalidArgument(prefix + "role", "is not one of system, user, assistant, tool");
    }
    check_text(m.content, prefix + "content", limits.max_content_bytes);
    if (m.name) check_id(*m.name, prefix + "name", limits.max_id_bytes);
    if (m.role == Role::tool) {
        if (!m.tool_call_id)
            throw InvalidArgument(prefix + "tool_call_id", "is required on a tool message");
        check_id(*m.tool_call_id, prefix + "tool_call_id", limits.max_id_bytes);
    } else if (m.tool_call_id) {
        throw InvalidArgument(prefix + "tool_call_id", "is only allowed on tool messages");
    }
    if (!m.tool_calls.empty() && m.role != Role::assistant)
        throw InvalidArgument(prefix + "tool_calls", "only assistant messages carry tool calls");
    if (m.tool_calls.size() > limits.max_tool_calls)
        throw InvalidArgument(prefix + "tool_calls",
                              fmt::format("has {} calls, over the limit of {}", m.tool_calls.size(),
                                          limits.max_tool_calls));
    for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
        const ToolCall& call = m.tool_calls[i];
        const std::string f = fmt::format("{}tool_calls[{}].", prefix, i);
        check_id(call.id, f + "id", limits.max_id_bytes);
        if (call.type != "function") throw InvalidArgument(f + "type", "must be \"function\"");
        check_id(call.name, f + "function.name", limits.max_id_bytes);
        check_text(call.arguments, f + "function.arguments", limits.max_content_bytes);
        if (!is_json(call.arguments))
            throw InvalidArgument(f + "function.arguments", "is not valid JSON text");
    }
    m.metadata_json = normalize_metadata(m.metadata_json, prefix + "metadata", limits);
    if (m.token_count && *m.token_count < 0)
        throw InvalidArgument(prefix + "token_count", "must not be negative");
    if (m.idempotency_key) check_id(*m.idempotency_key, prefix + "idempotency_key", limits.max_id_bytes);
}

bool check_batch(std::vector<Message>& batch, const std::string& name, const Limits& limits) {
    std::set<std::string> keys;
    bool all_keyed = true;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const std::string prefix = name.empty() ? std::string{} : fmt::format("{}[{}].", name, i);
        check_message(batch[i], prefix, limits);
        all_keyed &= batch[i].idempotency_key.has_value();
        if (batch[i].idempotency_key && !keys.insert(*batch[i].idempotency_key).second)
            throw InvalidArgument(prefix + "idempotency_key", "appears twice in one batch");
    }
    return all_keyed;
}

} // namespace convstate::detail
