#include "jwt.hpp"

#include <array>

#include <boost/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace http_server {
namespace bj = boost::json;

namespace {

constexpr std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int sextet(char c) {
    const auto pos = alphabet.find(c);
    return pos == std::string_view::npos ? -1 : static_cast<int>(pos);
}

// How many object members JSON text writes (the text is valid JSON): each key is a string
// followed by ':'. Compared with what the parsed tree holds, this reveals duplicate keys, which
// the parser would silently resolve (the last one wins).
std::size_t keys_in_text(std::string_view text) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '"') continue;
        for (++i; i < text.size() && text[i] != '"'; ++i)
            if (text[i] == '\\') ++i;
        std::size_t j = i + 1;
        while (j < text.size() && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r')) ++j;
        if (j < text.size() && text[j] == ':') ++n;
        i = j - 1;
    }
    return n;
}

std::size_t keys_in_value(const bj::value& v) {
    std::size_t n = 0;
    if (const bj::object* o = v.if_object()) {
        n = o->size();
        for (const auto& member : *o) n += keys_in_value(member.value());
    } else if (const bj::array* a = v.if_array()) {
        for (const bj::value& element : *a) n += keys_in_value(element);
    }
    return n;
}

// A JSON object from base64url text, or nullopt with the reason (bad encoding, bad JSON, not an
// object, too deep, a duplicate key).
std::optional<bj::object> decode_object(std::string_view part, const char*& why) {
    why = "malformed";
    const auto text = base64url_decode(part);
    if (!text) return std::nullopt;
    bj::parse_options opts;
    opts.max_depth = 8;
    boost::system::error_code ec;
    bj::value v = bj::parse(*text, ec, {}, opts);
    if (ec || !v.is_object()) return std::nullopt;
    if (keys_in_text(*text) != keys_in_value(v)) {
        why = "duplicate key in";
        return std::nullopt;
    }
    return std::move(v.as_object());
}

// A NumericDate claim: an integer in [min, 2^53) (the range a double holds exactly, far beyond
// any real date), or nullopt (a fraction, a string, a huge or negative number).
std::optional<std::int64_t> numeric_date(const bj::value& v, std::int64_t min) {
    constexpr std::int64_t limit = std::int64_t{1} << 53;
    if (!v.is_int64()) return std::nullopt; // integers >= 2^63 parse as uint64: out of range too
    const std::int64_t n = v.as_int64();
    if (n < min || n >= limit) return std::nullopt;
    return n;
}

// "aud" holds the audience: the string itself, or an array of strings with it among them.
bool audience_matches(const bj::value& aud, std::string_view audience) {
    if (const bj::string* s = aud.if_string()) return *s == audience;
    const bj::array* a = aud.if_array();
    if (!a) return false;
    bool found = false;
    for (const bj::value& e : *a) {
        const bj::string* s = e.if_string();
        if (!s) return false; // a malformed array is refused whatever it holds
        found = found || *s == audience;
    }
    return found;
}

} // namespace

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        const int v = sextet(c);
        if (v < 0) return std::nullopt; // padding, whitespace, '+', '/' …: not base64url
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    // The leftover bits must be zero, so that each byte string has exactly one encoding.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alphabet[(acc >> bits) & 0x3F]);
        }
    }
    if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3F]);
    return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &len))
        return {};
    return std::string(reinterpret_cast<const char*>(md.data()), len);
}

std::variant<JwtClaims, JwtError> verify_hs256(std::string_view token, std::string_view secret, std::int64_t now_s,
                                               const JwtPolicy& policy) {
    if (token.size() > 8192) return JwtError{"token too long"};
    const auto d1 = token.find('.');
    if (d1 == std::string_view::npos) return JwtError{"malformed token"};
    const auto d2 = token.find('.', d1 + 1);
    if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
        return JwtError{"malformed token"};
    const std::string_view header_part = token.substr(0, d1);
    const std::string_view payload_part = token.substr(d1 + 1, d2 - d1 - 1);
    const std::string_view signature_part = token.substr(d2 + 1);

    const char* why = "";
    const auto header = decode_object(header_part, why);
    if (!header) return JwtError{std::string(why) + " token header"};
    const bj::value* alg = header->if_contains("alg");
    if (!alg || !alg->is_string() || alg->as_string() != "HS256") return JwtError{"unsupported alg"};
    if (header->contains("crit")) return JwtError{"unsupported crit header"};

    const auto signature = base64url_decode(signature_part);
    if (!signature || signature->size() != 32) return JwtError{"malformed signature"};
    const std::string expected = hmac_sha256(secret, token.substr(0, d2));
    if (expected.size() != 32 || CRYPTO_memcmp(expected.data(), signature->data(), 32) != 0)
        return JwtError{"bad signature"};

    // Only a token we signed gets its claims read.
    const auto payload = decode_object(payload_part, why);
    if (!payload) return JwtError{std::string(why) + " token payload"};
    const bj::value* exp = payload->if_contains("exp");
    if (!exp) return JwtError{"exp missing"};
    const auto exp_s = numeric_date(*exp, 1);
    if (!exp_s) return JwtError{"exp is not an integer in 1..2^53-1"};
    if (now_s >= *exp_s) return JwtError{"token expired"};
    if (const bj::value* nbf = payload->if_contains("nbf")) {
        const auto nbf_s = numeric_date(*nbf, 0);
        if (!nbf_s) return JwtError{"nbf is not an integer in 0..2^53-1"};
        if (now_s < *nbf_s) return JwtError{"token not yet valid"};
    }
    if (const bj::value* iat = payload->if_contains("iat"); iat && !numeric_date(*iat, 0))
        return JwtError{"iat is not an integer in 0..2^53-1"};
    if (!policy.audience.empty()) {
        const bj::value* aud = payload->if_contains("aud");
        if (!aud) return JwtError{"aud missing"};
        if (!audience_matches(*aud, policy.audience)) return JwtError{"wrong aud"};
    }
    if (!policy.issuer.empty()) {
        const bj::value* iss = payload->if_contains("iss");
        if (!iss) return JwtError{"iss missing"};
        if (!iss->is_string() || iss->as_string() != policy.issuer) return JwtError{"wrong iss"};
    }
    const bj::value* sub = payload->if_contains("sub");
    if (!sub || !sub->is_string() || sub->as_string().empty()) return JwtError{"sub missing"};
    return JwtClaims{.sub = std::string(sub->as_string()), .exp = *exp_s};
}

} // namespace http_server
