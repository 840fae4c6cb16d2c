// HS256 JSON Web Tokens: verification (and signing, for tools and tests).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace http_server {

/** Why a token was refused; every case maps to 401. */
struct JwtError {
    std::string reason;
};

/** The claims the server uses. */
struct JwtClaims {
    std::string sub;
    std::int64_t exp = 0;
};

/** Optional claim checks, each off when empty. */
struct JwtPolicy {
    std::string audience; ///< "aud" must be this string, or an array of strings holding it
    std::string issuer;   ///< "iss" must be this string
};

/** Strict base64url (RFC 4648 §5, no padding, canonical trailing bits); nullopt if malformed. */
std::optional<std::string> base64url_decode(std::string_view text);
std::string base64url_encode(std::string_view bytes);

/** HMAC-SHA256 of data under key (32 raw bytes). */
std::string hmac_sha256(std::string_view key, std::string_view data);

/** Verifies a compact JWS: exactly three parts, header {"alg":"HS256"} (anything else is
 *  refused, "none" included), signature compared in constant time, "exp" required and in the
 *  future, "nbf" (if present) not in the future, "sub" a non-empty string, and the policy's
 *  "aud"/"iss" when it sets them. A header or payload with a duplicate key (at any level) is
 *  refused, so that no two parsers can read different claims from one token; "exp" must be an
 *  integer in 1..2^53-1 and "nbf"/"iat" (if present) integers in 0..2^53-1 (no fractions,
 *  strings or huge numbers). Returns the claims or a JwtError. now_s: seconds since the epoch. */
std::variant<JwtClaims, JwtError> verify_hs256(std::string_view token, std::string_view secret, std::int64_t now_s,
                                               const JwtPolicy& policy = {});

} // namespace http_server
