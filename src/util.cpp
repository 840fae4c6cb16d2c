#include "util.hpp"

#include <algorithm>
#include <chrono>
#include <random>

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid_io.hpp>

namespace convstate::detail {

std::int64_t now_us() noexcept {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

std::string new_uuid() {
    thread_local std::mt19937_64 rng{[] {
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
        return std::mt19937_64(seq);
    }()};
    std::uint64_t hi = rng(), lo = rng();
    hi = (hi & ~0xF000ULL) | 0x4000ULL;                        // version 4
    lo = (lo & ~(0xC0ULL << 56)) | (0x80ULL << 56);            // RFC 4122 variant
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    auto put = [&](std::uint64_t v, int nibbles) {
        for (int i = nibbles - 1; i >= 0; --i) out.push_back(hex[(v >> (i * 4)) & 0xF]);
    };
    put(hi >> 32, 8); out.push_back('-');
    put(hi >> 16, 4); out.push_back('-');
    put(hi, 4);       out.push_back('-');
    put(lo >> 48, 4); out.push_back('-');
    put(lo, 12);
    return out;
}

std::string keyed_conversation_id(std::string_view user_id, std::string_view external_key) {
    // convstate's namespace for keyed conversations (a fixed random UUID).
    static const boost::uuids::uuid ns{{0x5b, 0x0e, 0x3c, 0x8d, 0x9a, 0x41, 0x4f, 0x62, 0xb1, 0x7e, 0x2d, 0xc4, 0x90,
                                        0x13, 0x6a, 0xf5}};
    // The user id's length first: no two (user, key) pairs give the same name.
    std::string name = std::to_string(user_id.size());
    name += ':';
    name += user_id;
    name += external_key;
    return boost::uuids::to_string(boost::uuids::name_generator_sha1(ns)(name.data(), name.size()));
}

std::string utf8_prefix(std::string_view text, std::size_t max_bytes) {
    std::size_t n = std::min(text.size(), max_bytes);
    if (n < text.size())
        while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n; // not inside a character
    return std::string(text.substr(0, n));
}

bool is_valid_utf8(std::string_view text) noexcept {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = s[i];
        if (c < 0x80) { ++i; continue; }
        int len;
        std::uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + static_cast<std::size_t>(len) > n) return false;
        for (int k = 1; k < len; ++k) {
            const unsigned char cc = s[i + static_cast<std::size_t>(k)];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += static_cast<std::size_t>(len);
    }
    return true;
}

} // namespace convstate::detail
