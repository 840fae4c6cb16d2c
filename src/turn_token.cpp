#include "turn_token.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <string_view>

#include <boost/json.hpp>

#include "convstate/error.hpp"
#include "validate.hpp"

namespace convstate::detail {
namespace {

namespace bj = boost::json;

constexpr std::string_view prefix = "cst1.";
constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Base64url without padding (RFC 4648 §5). Written here because Boost offers it only in
// detail namespaces; it is twenty lines.
std::string base64url(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    for (std::size_t i = 0; i < bytes.size(); i += 3) {
        const std::size_t n = std::min<std::size_t>(3, bytes.size() - i);
        unsigned v = 0;
        for (std::size_t j = 0; j < 3; ++j) v = v << 8 | (j < n ? static_cast<unsigned char>(bytes[i + j]) : 0u);
        for (std::size_t j = 0; j <= n; ++j) out += alphabet[(v >> (18 - 6 * j)) & 63];
    }
    return out;
}

std::optional<std::string> from_base64url(std::string_view text) {
    std::array<int, 256> value{};
    value.fill(-1);
    for (std::size_t i = 0; i < alphabet.size(); ++i) value[static_cast<unsigned char>(alphabet[i])] = static_cast<int>(i);
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    unsigned v = 0;
    int bits = 0;
    for (char c : text) {
        const int d = value[static_cast<unsigned char>(c)];
        if (d < 0) return std::nullopt;
        v = (v << 6 | static_cast<unsigned>(d)) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((v >> bits) & 0xff);
        }
    }
    return out;
}

[[noreturn]] void not_a_token(const std::string& why) {
    throw InvalidArgument("turn_token", "is not a turn token from begin_turn (" + why + ")");
}

const bj::value& member(const bj::object& o, std::string_view name) {
    const bj::value* v = o.if_contains(name);
    if (!v) not_a_token(std::string("no ") + std::string(name));
    return *v;
}

std::string text_member(const bj::object& o, std::string_view name) {
    const bj::value& v = member(o, name);
    if (!v.is_string()) not_a_token(std::string(name) + " is not a string");
    return std::string(v.get_string());
}

} // namespace

std::string split_outcome_key(const std::optional<std::string>& key, const std::string& run_token) {
    return key ? *key : std::string(1, derived_key_separator) + "run:" + run_token;
}

std::string encode_turn_token(const TurnIdentity& turn) {
    bj::object o;
    o["u"] = turn.user_id;
    o["c"] = turn.conversation_id;
    o["s"] = turn.user_seq;
    o["n"] = turn.created;
    if (turn.key) o["k"] = *turn.key;
    o["r"] = turn.run_token;
    o["m"] = turn.marked;
    return std::string(prefix) + base64url(bj::serialize(o));
}

TurnIdentity decode_turn_token(const std::string& token, const Limits& limits) {
    if (token.compare(0, prefix.size(), prefix) != 0) not_a_token("it does not start with cst1.");
    const std::optional<std::string> json = from_base64url(std::string_view(token).substr(prefix.size()));
    if (!json) not_a_token("not base64url");
    boost::system::error_code ec;
    const bj::value parsed = bj::parse(*json, ec);
    if (ec || !parsed.is_object()) not_a_token("not a JSON object");
    const bj::object& o = parsed.get_object();
    TurnIdentity turn;
    turn.user_id = text_member(o, "u");
    turn.conversation_id = text_member(o, "c");
    const bj::value& seq = member(o, "s");
    if (!seq.is_int64() || seq.get_int64() < 1) not_a_token("s is not a seq");
    turn.user_seq = seq.get_int64();
    const bj::value &created = member(o, "n"), &marked = member(o, "m");
    if (!created.is_bool() || !marked.is_bool()) not_a_token("n or m is not a boolean");
    turn.created = created.get_bool();
    turn.marked = marked.get_bool();
    if (o.contains("k")) turn.key = text_member(o, "k");
    turn.run_token = text_member(o, "r");
    try {
        check_user_id(turn.user_id, limits);
        check_conversation_id(turn.conversation_id, limits);
        if (turn.key) check_key(*turn.key, "idempotency_key", limits.max_id_bytes);
        check_key(turn.run_token, "run_token", 64);
    } catch (const InvalidArgument& e) {
        not_a_token(e.what());
    }
    turn.outcome_key = split_outcome_key(turn.key, turn.run_token);
    return turn;
}

} // namespace convstate::detail
