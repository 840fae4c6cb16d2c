#include "validate.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
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

void check_key(std::string_view key, const std::string& field, std::size_t max_bytes) {
    check_id(key, field, max_bytes);
    for (const char c : key)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            throw InvalidArgument(field, "must not contain control characters");
}

void check_user_id(std::string_view user_id, const Limits& limits) {
    check_id(user_id, "user_id", limits.max_user_id_bytes);
}

void check_conversation_id(std::string_view conversation_id, const Limits& limits) {
    check_id(conversation_id, "conversation_id", limits.max_id_bytes);
}

void check_scope(std::string_view user_id, std::string_view conversation_id, const Limits& limits) {
    check_user_id(user_id, limits);
    check_conversation_id(conversation_id, limits);
}

bool is_json(std::string_view text) noexcept {
    boost::system::error_code ec;
    boost::json::parse(text, ec);
    return !ec;
}

namespace {

namespace bj = boost::json;

// A number's decimal value in canonical form: sign, significant digits without leading or
// trailing zeros, and the exponent of the last digit. Zero is {false, "", 0}.
struct Decimal {
    bool negative = false;
    std::string digits;
    long long exponent = 0;
    bool operator==(const Decimal&) const = default;
};

// `text` is a JSON number (the parser has checked its syntax) or a double as Boost.JSON prints it.
Decimal decimal_of(std::string_view text) {
    Decimal d;
    std::size_t i = 0;
    if (i < text.size() && text[i] == '-') d.negative = true, ++i;
    long long point_shift = 0;
    bool after_point = false;
    for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
        if (text[i] == '.') {
            after_point = true;
            continue;
        }
        if (d.digits.empty() && text[i] == '0') {
            if (after_point) --point_shift;
            continue;
        }
        d.digits.push_back(text[i]);
        if (after_point) --point_shift;
    }
    long long exp = 0;
    if (i < text.size()) { // exponent; its size is bounded by the parser, clamp anyway
        ++i;
        bool neg = false;
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) neg = text[i++] == '-';
        for (; i < text.size(); ++i) exp = std::min<long long>(exp * 10 + (text[i] - '0'), 1LL << 40);
        if (neg) exp = -exp;
    }
    std::size_t end = d.digits.size();
    while (end > 0 && d.digits[end - 1] == '0') --end;
    d.exponent = exp + point_shift + static_cast<long long>(d.digits.size() - end);
    d.digits.resize(end);
    if (d.digits.empty()) d = Decimal{};
    return d;
}

// The digits of a JSON number as a double, correctly rounded (std::from_chars). Boost.JSON
// 1.81's own conversion is off by one unit in the last place for some inputs ("6.66666E37"),
// so a value it printed could read back as a different one: text parsed twice drifted.
double exact_double(const std::string& number, double fallback) {
    double d = fallback;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), d);
    return ec == std::errc{} && end == number.data() + number.size() ? d : fallback;
}

// Boost.JSON's basic_parser handler that builds the value, with doubles read exactly. Strict,
// it also refuses what the value would silently change (duplicate keys keep the last;
// out-of-range numbers become inf or 0; long numbers are rounded), and names where: the path
// below `base` ("metadata.n", "[2].id").
class Reader {
public:
    static constexpr std::size_t max_object_size = bj::object::max_size();
    static constexpr std::size_t max_array_size = bj::array::max_size();
    static constexpr std::size_t max_key_size = bj::string::max_size();
    static constexpr std::size_t max_string_size = bj::string::max_size();

    Reader(bool strict, std::string base) : strict_(strict), base_(std::move(base)) {}

    std::string problem, where; // set when a strict check failed
    bj::value_stack st;         // the value, once the document ends

    bool on_document_begin(boost::system::error_code&) { return true; }
    bool on_document_end(boost::system::error_code&) { return true; }
    bool on_array_begin(boost::system::error_code&) {
        frames_.push_back({true, 0, {}, {}});
        return true;
    }
    bool on_array_end(std::size_t n, boost::system::error_code&) {
        frames_.pop_back();
        st.push_array(n);
        return value_done();
    }
    bool on_object_begin(boost::system::error_code&) {
        frames_.push_back({false, 0, {}, {}});
        return true;
    }
    bool on_object_end(std::size_t n, boost::system::error_code&) {
        frames_.pop_back();
        st.push_object(n);
        return value_done();
    }
    bool on_string_part(bj::string_view s, std::size_t, boost::system::error_code&) {
        st.push_chars(s);
        return true;
    }
    bool on_string(bj::string_view s, std::size_t, boost::system::error_code&) {
        st.push_string(s);
        return value_done();
    }
    bool on_key_part(bj::string_view s, std::size_t, boost::system::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(bj::string_view s, std::size_t, boost::system::error_code& ec) {
        key_.append(s.data(), s.size());
        st.push_key(key_);
        Frame& f = frames_.back();
        f.key = std::move(key_);
        key_.clear();
        if (!strict_ || f.keys.insert(f.key).second) return true;
        fail(ec, "appears twice in one object");
        return false;
    }
    bool on_number_part(bj::string_view s, boost::system::error_code&) {
        number_.append(s.data(), s.size());
        return true;
    }
    bool on_int64(std::int64_t i, bj::string_view, boost::system::error_code&) {
        st.push_int64(i);
        return end_number();
    }
    bool on_uint64(std::uint64_t u, bj::string_view, boost::system::error_code&) {
        st.push_uint64(u);
        return end_number();
    }
    bool on_double(double boost_d, bj::string_view s, boost::system::error_code& ec) {
        number_.append(s.data(), s.size());
        const double d = exact_double(number_, boost_d);
        if (strict_ && !(std::isfinite(d) && decimal_of(number_) == decimal_of(bj::serialize(bj::value(d))))) {
            fail(ec, fmt::format("is the number {} which cannot be stored exactly (a double keeps about 17 "
                                 "significant digits, magnitudes up to 1.8e308 and down to 4.9e-324)",
                                 number_.substr(0, 40) + (number_.size() > 40 ? "..." : "")));
            return false;
        }
        st.push_double(d);
        return end_number();
    }
    bool on_bool(bool b, boost::system::error_code&) {
        st.push_bool(b);
        return value_done();
    }
    bool on_null(boost::system::error_code&) {
        st.push_null();
        return value_done();
    }
    bool on_comment_part(bj::string_view, boost::system::error_code&) { return true; }
    bool on_comment(bj::string_view, boost::system::error_code&) { return true; }

private:
    struct Frame {
        bool array;
        std::size_t index; // arrays: of the current element
        std::string key;   // objects: of the current member
        std::unordered_set<std::string> keys;
    };

    bool value_done() {
        if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
        return true;
    }
    bool end_number() {
        number_.clear();
        return value_done();
    }
    void fail(boost::system::error_code& ec, std::string why) {
        where = base_;
        for (const Frame& f : frames_) {
            if (f.array) where += fmt::format("[{}]", f.index);
            else where += (where.empty() ? "" : ".") + f.key;
        }
        if (where.empty()) where = "json";
        problem = std::move(why);
        ec = bj::error::syntax; // stops the parser; `problem` says why
    }

    bool strict_;
    std::string base_;
    std::vector<Frame> frames_;
    std::string key_, number_;
};

// One document: the value, or ec set (and, strict, the reader's problem).
bj::value read_json(bj::basic_parser<Reader>& reader, std::string_view text, boost::system::error_code& ec) {
    reader.handler().st.reset();
    const std::size_t used = reader.write_some(false, text.data(), text.size(), ec);
    if (!ec && used != text.size()) ec = bj::error::extra_data;
    if (ec) return nullptr;
    return reader.handler().st.release();
}

bj::parse_options depth_limited() {
    bj::parse_options options;
    options.max_depth = max_json_depth;
    return options;
}

} // namespace

bj::value parse_json(std::string_view text, boost::system::error_code& ec) {
    bj::basic_parser<Reader> reader(depth_limited(), false, std::string());
    return read_json(reader, text, ec);
}

bj::value parse_strict(std::string_view text, const std::string& field, const std::string& base) {
    bj::basic_parser<Reader> reader(depth_limited(), true, base);
    boost::system::error_code ec;
    bj::value v = read_json(reader, text, ec);
    if (!reader.handler().problem.empty()) throw InvalidArgument(reader.handler().where, reader.handler().problem);
    if (ec == bj::error::too_deep)
        throw InvalidArgument(field, fmt::format("is nested deeper than {} levels", max_json_depth));
    if (ec == bj::error::extra_data) throw InvalidArgument(field, "is not valid JSON: text after the value");
    if (ec) throw InvalidArgument(field, "is not valid JSON: " + ec.message());
    return v;
}

std::string normalize_metadata(std::string_view text, const std::string& field, const Limits& limits) {
    if (text == "{}") return std::string(text); // the common case, already normal
    check_text(text, field, limits.max_metadata_bytes);
    const bj::value v = parse_strict(text, field, field);
    if (!v.is_object()) throw InvalidArgument(field, "must be a JSON object");
    return bj::serialize(v);
}

namespace {

const bj::string& part_string(const bj::object& o, std::string_view key, const std::string& path, bool required = true) {
    static const bj::string none;
    const bj::value* v = o.if_contains(key);
    if (!v) {
        if (required) throw InvalidArgument(path + "." + std::string(key), "is required");
        return none;
    }
    if (!v->is_string()) throw InvalidArgument(path + "." + std::string(key), "must be a string");
    return v->get_string();
}

const bj::object& part_object(const bj::object& o, std::string_view key, const std::string& path) {
    const bj::value* v = o.if_contains(key);
    if (!v || !v->is_object()) throw InvalidArgument(path + "." + std::string(key), "must be an object");
    return v->get_object();
}

void check_part(const bj::value& part, const std::string& path, Role role) {
    if (!part.is_object()) throw InvalidArgument(path, "must be a content part object");
    const bj::object& o = part.get_object();
    const bj::string& type = part_string(o, "type", path);
    if (type == "text") {
        part_string(o, "text", path);
        return;
    }
    if (type != "image_url" && type != "input_audio" && type != "file")
        throw InvalidArgument(path + ".type", "must be text, image_url, input_audio or file");
    if (role != Role::user)
        throw InvalidArgument(path + ".type", "only user messages carry image, audio or file parts");
    const std::string inner = path + "." + std::string(type);
    const bj::object& body = part_object(o, type, path);
    if (type == "image_url") {
        const std::string_view url = part_string(body, "url", inner);
        if (url.rfind("https://", 0) != 0 && url.rfind("data:", 0) != 0)
            throw InvalidArgument(inner + ".url", "must be an https: or data: URL");
        const bj::string& detail = part_string(body, "detail", inner, false);
        if (!detail.empty() && detail != "auto" && detail != "low" && detail != "high")
            throw InvalidArgument(inner + ".detail", "must be auto, low or high");
    } else if (type == "input_audio") {
        if (part_string(body, "data", inner).empty()) throw InvalidArgument(inner + ".data", "must not be empty");
        const bj::string& format = part_string(body, "format", inner);
        if (format != "wav" && format != "mp3") throw InvalidArgument(inner + ".format", "must be wav or mp3");
    } else {
        if (part_string(body, "file_id", inner, false).empty() && part_string(body, "file_data", inner, false).empty())
            throw InvalidArgument(inner, "needs file_id or file_data");
        part_string(body, "filename", inner, false);
    }
}

} // namespace

std::string normalize_content_parts(std::string_view text, const std::string& field, Role role, const Limits& limits) {
    check_text(text, field, limits.max_content_bytes);
    const bj::value v = parse_strict(text, field, field);
    if (!v.is_array() || v.get_array().empty()) throw InvalidArgument(field, "must be a non-empty array of content parts");
    const bj::array& parts = v.get_array();
    for (std::size_t i = 0; i < parts.size(); ++i) check_part(parts[i], fmt::format("{}[{}]", field, i), role);
    return bj::serialize(v);
}

std::string content_text(const std::string& parts_json) {
    std::string text;
    boost::system::error_code ec;
    const bj::value v = parse_json(parts_json, ec);
    if (ec || !v.is_array()) return text;
    for (const bj::value& part : v.get_array()) {
        const bj::object* o = part.if_object();
        if (!o) continue;
        const bj::value* type = o->if_contains("type");
        const bj::value* t = o->if_contains("text");
        if (type && type->is_string() && type->get_string() == "text" && t && t->is_string()) {
            if (!text.empty()) text += '\n';
            text.append(t->get_string().data(), t->get_string().size());
        }
    }
    return text;
}

void check_message(Message& m, const std::string& prefix, const Limits& limits, KeyOrigin keys) {
    switch (m.role) {
    case Role::system: case Role::user: case Role::assistant: case Role::tool: case Role::developer: break;
    default: throw InvalidArgument(prefix + "role", "is not one of system, developer, user, assistant, tool");
    }
    check_text(m.content, prefix + "content", limits.max_content_bytes);
    if (m.content_parts_json) {
        if (!m.content.empty())
            throw InvalidArgument(prefix + "content", "must be empty when the content is given as parts");
        // Errors name the parts as the JSON does: content[2].image_url.url.
        m.content_parts_json = normalize_content_parts(*m.content_parts_json, prefix + "content", m.role, limits);
    }
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
    std::set<std::string_view> call_ids;
    for (std::size_t i = 0; i < m.tool_calls.size(); ++i) {
        const ToolCall& call = m.tool_calls[i];
        const std::string f = fmt::format("{}tool_calls[{}].", prefix, i);
        check_id(call.id, f + "id", limits.max_id_bytes);
        // Results name their call by id: two calls with one id could not be told apart.
        if (!call_ids.insert(call.id).second)
            throw InvalidArgument(f + "id", "is the id of an earlier tool call of this message");
        if (call.type != "function") throw InvalidArgument(f + "type", "must be \"function\"");
        check_id(call.name, f + "function.name", limits.max_id_bytes);
        check_text(call.arguments, f + "function.arguments", limits.max_content_bytes);
        if (!is_json(call.arguments))
            throw InvalidArgument(f + "function.arguments", "is not valid JSON text");
    }
    m.metadata_json = normalize_metadata(m.metadata_json, prefix + "metadata", limits);
    if (m.token_count && (*m.token_count < 0 || *m.token_count > max_token_count))
        throw InvalidArgument(prefix + "token_count", fmt::format("must be between 0 and {}", max_token_count));
    if (m.idempotency_key) {
        if (keys == KeyOrigin::caller)
            check_key(*m.idempotency_key, prefix + "idempotency_key", limits.max_id_bytes);
        else
            check_id(*m.idempotency_key, prefix + "idempotency_key", limits.max_id_bytes);
    }
}

bool check_batch(std::vector<Message>& batch, const std::string& name, const Limits& limits, KeyOrigin origin) {
    std::set<std::string> keys;
    bool all_keyed = true;
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const std::string prefix = name.empty() ? std::string{} : fmt::format("{}[{}].", name, i);
        check_message(batch[i], prefix, limits, origin);
        all_keyed &= batch[i].idempotency_key.has_value();
        if (batch[i].idempotency_key && !keys.insert(*batch[i].idempotency_key).second)
            throw InvalidArgument(prefix + "idempotency_key", "appears twice in one batch");
    }
    return all_keyed;
}

} // namespace convstate::detail
