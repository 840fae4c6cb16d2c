#include "convstate/json.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json.hpp>

#include "convstate/chat_orchestrator.hpp"
#include "convstate/error.hpp"
#include "util.hpp"
#include "validate.hpp"

namespace convstate::json {
namespace {

namespace bj = boost::json;

// ---- encoding ----------------------------------------------------------------------------

bj::value metadata_value(const std::string& metadata_json) {
    boost::system::error_code ec;
    bj::value v = detail::parse_json(metadata_json, ec);
    if (ec || !v.is_object()) throw InvalidArgument("metadata", "is not a JSON object");
    return v;
}

template <class T, class Encode>
bj::array encode_all(const std::vector<T>& items, Encode encode) {
    bj::array out;
    out.reserve(items.size());
    for (const T& item : items) out.push_back(encode(item));
    return out;
}

bj::object tool_call_value(const ToolCall& call) {
    bj::object function;
    function["name"] = call.name;
    function["arguments"] = call.arguments; // stays JSON text, as in the OpenAI format
    bj::object o;
    o["id"] = call.id;
    o["type"] = call.type;
    o["function"] = std::move(function);
    return o;
}

bj::object message_value(const Message& m) {
    bj::object o;
    o["role"] = to_string(m.role);
    if (m.content_parts_json) {
        boost::system::error_code ec;
        bj::value parts = detail::parse_json(*m.content_parts_json, ec);
        if (ec) throw InvalidArgument("content", "content_parts_json is not JSON");
        o["content"] = std::move(parts);
    } else {
        o["content"] = m.content;
    }
    if (m.name) o["name"] = *m.name;
    if (!m.tool_calls.empty()) o["tool_calls"] = encode_all(m.tool_calls, tool_call_value);
    if (m.tool_call_id) o["tool_call_id"] = *m.tool_call_id;
    o["metadata"] = metadata_value(m.metadata_json);
    if (m.token_count) o["token_count"] = *m.token_count;
    if (m.idempotency_key) o["idempotency_key"] = *m.idempotency_key;
    if (!m.conversation_id.empty()) o["conversation_id"] = m.conversation_id;
    if (m.seq != 0) o["seq"] = m.seq;
    if (m.created_at_us != 0) o["created_at_us"] = m.created_at_us;
    return o;
}

bj::object conversation_value(const Conversation& c) {
    bj::object o;
    o["id"] = c.id;
    o["user_id"] = c.user_id;
    o["title"] = c.title;
    o["metadata"] = metadata_value(c.metadata_json);
    o["last_seq"] = c.last_seq;
    o["created_at_us"] = c.created_at_us;
    o["updated_at_us"] = c.updated_at_us;
    if (c.external_key)
        o["external_key"] = *c.external_key;
    else
        o["external_key"] = nullptr;
    if (c.forked_from)
        o["forked_from"] = bj::object{{"conversation_id", c.forked_from->conversation_id}, {"seq", c.forked_from->seq}};
    else
        o["forked_from"] = nullptr;
    return o;
}

// ---- decoding ----------------------------------------------------------------------------
// Field names in errors are paths: `prefix` is "" at the top level, else the enclosing path
// with a trailing dot ("messages[3].", "tool_calls[0].function.").

// Duplicate keys, numbers a double cannot hold and nesting over 32 levels are refused
// (detail::parse_strict): what is accepted is stored exactly as understood.
// base: the path the top-level value's fields are named by ("" for a message, whose fields are
// "role", "content"…; "messages" for a batch).
bj::value parse_text(std::string_view text, const std::string& base = {}) {
    return detail::parse_strict(text, "json", base);
}

const bj::object& as_object(const bj::value& v, const std::string& field) {
    if (!v.is_object()) throw InvalidArgument(field, "must be a JSON object");
    return v.get_object();
}

const bj::array& as_array(const bj::value& v, const std::string& field) {
    if (!v.is_array()) throw InvalidArgument(field, "must be a JSON array");
    return v.get_array();
}

// null counts as absent: OpenAI clients send e.g. "tool_calls": null for unset fields.
const bj::value* find(const bj::object& obj, std::string_view key) {
    const bj::value* v = obj.if_contains(key);
    return v && !v->is_null() ? v : nullptr;
}

const bj::value& require(const bj::object& obj, std::string_view key, const std::string& prefix) {
    const bj::value* v = find(obj, key);
    if (!v) throw InvalidArgument(prefix + std::string(key), "is required");
    return *v;
}

std::optional<std::string> get_string(const bj::object& obj, std::string_view key,
                                      const std::string& prefix = {}) {
    const bj::value* v = find(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw InvalidArgument(prefix + std::string(key), "must be a string");
    return std::string(v->get_string());
}

std::string require_string(const bj::object& obj, std::string_view key, const std::string& prefix) {
    if (auto s = get_string(obj, key, prefix)) return *std::move(s);
    throw InvalidArgument(prefix + std::string(key), "is required");
}

std::optional<std::int64_t> get_int(const bj::object& obj, std::string_view key,
                                    const std::string& prefix = {}) {
    const bj::value* v = find(obj, key);
    if (!v) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (v->is_uint64() && v->get_uint64() <= max) return static_cast<std::int64_t>(v->get_uint64());
    throw InvalidArgument(prefix + std::string(key), "must be an integer that fits in 64 signed bits");
}

std::string get_metadata(const bj::object& obj, const std::string& prefix = {}) {
    const bj::value* v = find(obj, "metadata");
    if (!v) return "{}";
    return bj::serialize(as_object(*v, prefix + "metadata"));
}

Role get_role(const bj::object& obj, const std::string& prefix) {
    const std::string name = require_string(obj, "role", prefix);
    try {
        return role_from_string(name);
    } catch (const InvalidArgument&) {
        // role_from_string names the bare field "role"; inside an array the path is longer.
        throw InvalidArgument(prefix + "role", "'" + detail::utf8_prefix(name) +
                                                   "' is not one of system, user, assistant, tool");
    }
}

// Decodes each element of an array; decode(element, field) gets the element's path.
template <class Decode>
auto decode_all(const bj::value& v, const std::string& field, Decode decode) {
    const bj::array& items = as_array(v, field);
    std::vector<decltype(decode(v, field))> out;
    out.reserve(items.size());
    for (std::size_t i = 0; i < items.size(); ++i)
        out.push_back(decode(items[i], field + "[" + std::to_string(i) + "]"));
    return out;
}

ToolCall decode_tool_call(const bj::value& v, const std::string& field) {
    const bj::object& obj = as_object(v, field);
    const std::string prefix = field + ".";
    ToolCall call;
    call.id = require_string(obj, "id", prefix);
    call.type = get_string(obj, "type", prefix).value_or("function");
    if (call.type != "function") throw InvalidArgument(prefix + "type", "must be \"function\"");
    const bj::object& function = as_object(require(obj, "function", prefix), prefix + "function");
    call.name = require_string(function, "name", prefix + "function.");
    call.arguments = require_string(function, "arguments", prefix + "function.");
    if (!detail::is_json(call.arguments))
        throw InvalidArgument(prefix + "function.arguments", "is not valid JSON text");
    return call;
}

std::vector<ToolCall> decode_tool_calls(const bj::value& v, const std::string& field) {
    return decode_all(v, field, decode_tool_call);
}

Message decode_message(const bj::object& obj, const std::string& prefix) {
    Message m;
    m.role = get_role(obj, prefix);
    if (const bj::value* c = find(obj, "content"); c && c->is_array())
        m.content_parts_json = bj::serialize(*c); // checked when stored (detail::check_message)
    else
        m.content = get_string(obj, "content", prefix).value_or("");
    m.name = get_string(obj, "name", prefix);
    if (const bj::value* calls = find(obj, "tool_calls"))
        m.tool_calls = decode_tool_calls(*calls, prefix + "tool_calls");
    m.tool_call_id = get_string(obj, "tool_call_id", prefix);
    m.metadata_json = get_metadata(obj, prefix);
    m.token_count = get_int(obj, "token_count", prefix);
    m.idempotency_key = get_string(obj, "idempotency_key", prefix);
    m.conversation_id = get_string(obj, "conversation_id", prefix).value_or("");
    m.seq = get_int(obj, "seq", prefix).value_or(0);
    m.created_at_us = get_int(obj, "created_at_us", prefix).value_or(0);
    return m;
}

std::vector<Message> decode_messages(const bj::value& v, const std::string& field) {
    return decode_all(v, field, [](const bj::value& item, const std::string& path) {
        return decode_message(as_object(item, path), path + ".");
    });
}

Usage usage_from_value(const bj::value& v) {
    const bj::object& obj = as_object(v, "reply.usage");
    for (const auto& field : obj)
        if (field.key() != "model" && field.key() != "prompt_tokens" && field.key() != "completion_tokens" &&
            field.key() != "cached_tokens" && field.key() != "reasoning_tokens")
            throw InvalidArgument("reply.usage." + detail::utf8_prefix(field.key()),
                                  "is not a usage field (model, prompt_tokens, completion_tokens, cached_tokens, "
                                  "reasoning_tokens)");
    Usage u;
    u.model = get_string(obj, "model", "reply.usage.");
    u.prompt_tokens = get_int(obj, "prompt_tokens", "reply.usage.");
    u.completion_tokens = get_int(obj, "completion_tokens", "reply.usage.");
    u.cached_tokens = get_int(obj, "cached_tokens", "reply.usage.");
    u.reasoning_tokens = get_int(obj, "reasoning_tokens", "reply.usage.");
    return u;
}

Conversation decode_conversation(const bj::object& obj) {
    Conversation c;
    c.id = get_string(obj, "id").value_or("");
    c.user_id = get_string(obj, "user_id").value_or("");
    c.title = get_string(obj, "title").value_or("");
    c.metadata_json = get_metadata(obj);
    c.last_seq = get_int(obj, "last_seq").value_or(0);
    c.created_at_us = get_int(obj, "created_at_us").value_or(0);
    c.updated_at_us = get_int(obj, "updated_at_us").value_or(0);
    c.external_key = get_string(obj, "external_key");
    if (const bj::value* f = obj.if_contains("forked_from"); f && f->is_object()) {
        const bj::object& fo = f->get_object();
        c.forked_from = ForkOrigin{get_string(fo, "conversation_id").value_or(""), get_int(fo, "seq").value_or(0)};
    }
    return c;
}

} // namespace

std::string to_json(const Message& message) {
    return bj::serialize(message_value(message));
}

std::string to_json(const std::vector<Message>& messages) {
    return bj::serialize(encode_all(messages, message_value));
}

std::string to_json(const Conversation& conversation) {
    return bj::serialize(conversation_value(conversation));
}

namespace {
bj::object usage_totals_value(const UsageTotals& t) {
    bj::object o;
    o["replies"] = t.replies;
    o["prompt_tokens"] = t.prompt_tokens;
    o["completion_tokens"] = t.completion_tokens;
    o["cached_tokens"] = t.cached_tokens;
    o["reasoning_tokens"] = t.reasoning_tokens;
    return o;
}
} // namespace

std::string to_json(const UsageReport& report) {
    bj::object o = usage_totals_value(report.total);
    o["by_model"] = encode_all(report.by_model, [](const UsageTotals& t) {
        bj::object m = usage_totals_value(t);
        if (t.model)
            m["model"] = *t.model;
        else
            m["model"] = nullptr;
        return m;
    });
    return bj::serialize(o);
}

std::string to_json(const DatabaseStats& stats) {
    const auto histogram = [](const LatencyHistogram& h) {
        bj::array counts;
        for (const std::uint64_t c : h.counts) counts.push_back(c);
        return bj::object{{"count", h.count}, {"sum_us", h.sum_us}, {"counts", std::move(counts)}};
    };
    bj::array bounds;
    for (const std::uint64_t b : LatencyHistogram::bounds_us) bounds.push_back(b);
    bj::object ops;
    for (std::size_t i = 0; i < operation_count; ++i) {
        const OperationStats& s = stats.operations[i];
        ops[to_string(static_cast<Operation>(i))] =
            bj::object{{"calls", s.calls}, {"errors", s.errors}, {"latency", histogram(s.latency)}};
    }
    bj::object o;
    o["statements"] = stats.statements;
    o["transactions"] = stats.transactions;
    o["retries"] = stats.retries;
    o["bounds_us"] = std::move(bounds);
    o["operations"] = std::move(ops);
    o["pool"] = bj::object{{"acquisitions", stats.pool.acquisitions},
                           {"waits", stats.pool.waits},
                           {"timeouts", stats.pool.timeouts},
                           {"wait", histogram(stats.pool.wait)}};
    return bj::serialize(o);
}

std::string to_json(const std::vector<Conversation>& conversations) {
    return bj::serialize(encode_all(conversations, conversation_value));
}

std::string to_json(const ConversationPage& page) {
    bj::object o;
    o["items"] = encode_all(page.items, conversation_value);
    if (page.next_cursor.empty())
        o["next_cursor"] = nullptr;
    else
        o["next_cursor"] = page.next_cursor;
    return bj::serialize(o);
}

namespace {
bj::object summary_value(const Summary& s) {
    bj::object o;
    o["conversation_id"] = s.conversation_id;
    o["covers_through_seq"] = s.covers_through_seq;
    o["content"] = s.content;
    o["metadata"] = metadata_value(s.metadata_json);
    o["created_at_us"] = s.created_at_us;
    return o;
}
} // namespace

std::string to_json(const Summary& summary) { return bj::serialize(summary_value(summary)); }

std::string to_json(const std::vector<Summary>& summaries) {
    return bj::serialize(encode_all(summaries, summary_value));
}

std::string to_json(const GetOrCreateResult& result) {
    bj::object o;
    o["conversation"] = conversation_value(result.conversation);
    o["created"] = result.created;
    return bj::serialize(o);
}

Message message_from_json(std::string_view text) {
    return decode_message(as_object(parse_text(text), "message"), "");
}

std::vector<Message> messages_from_json(std::string_view text) {
    return decode_messages(parse_text(text, "messages"), "messages");
}

Conversation conversation_from_json(std::string_view text) {
    return decode_conversation(as_object(parse_text(text), "conversation"));
}

std::string to_json(const TurnResult& r) {
    bj::object o;
    o["conversation_id"] = r.conversation_id;
    o["reply"] = r.reply;
    o["tool_calls"] = encode_all(r.tool_calls, tool_call_value);
    o["user_seq"] = r.user_seq;
    o["reply_seq"] = r.reply_seq;
    o["created"] = r.created;
    o["replayed"] = r.replayed;
    o["intermediate"] = encode_all(r.intermediate, message_value);
    return bj::serialize(o);
}

std::string to_json(const PendingTurn& t) {
    bj::object o;
    o["conversation_id"] = t.conversation_id;
    o["user_seq"] = t.user_seq;
    o["created"] = t.created;
    o["history"] = encode_all(t.history, message_value);
    if (t.completed) {
        o["token"] = nullptr;
        boost::system::error_code ec;
        o["completed"] = detail::parse_json(to_json(*t.completed), ec); // (the library's own JSON)
    } else {
        o["token"] = t.token;
        o["completed"] = nullptr;
    }
    return bj::serialize(o);
}

AgentReply reply_from_json(std::string_view text) {
    const bj::value parsed = parse_text(text, "reply");
    const bj::object& obj = as_object(parsed, "reply");
    for (const auto& field : obj)
        if (field.key() != "content" && field.key() != "tool_calls" && field.key() != "intermediate" &&
            field.key() != "metadata" && field.key() != "usage")
            throw InvalidArgument("reply." + detail::utf8_prefix(field.key()),
                                  "is not a reply field (content, tool_calls, intermediate, metadata, usage)");
    AgentReply reply;
    reply.content = get_string(obj, "content", "reply.").value_or("");
    if (const bj::value* calls = find(obj, "tool_calls")) reply.tool_calls = decode_tool_calls(*calls, "tool_calls");
    if (const bj::value* steps = find(obj, "intermediate"))
        reply.intermediate = decode_messages(*steps, "intermediate");
    reply.metadata_json = get_metadata(obj, "reply.");
    if (const bj::value* usage = find(obj, "usage")) reply.usage = usage_from_value(*usage);
    return reply;
}

Usage usage_from_json(std::string_view text) { return usage_from_value(parse_text(text, "usage")); }

std::string tool_calls_to_json(const std::vector<ToolCall>& calls) {
    return bj::serialize(encode_all(calls, tool_call_value));
}

std::vector<ToolCall> tool_calls_from_json(std::string_view text) {
    return decode_tool_calls(parse_text(text, "tool_calls"), "tool_calls");
}

} // namespace convstate::json
