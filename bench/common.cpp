#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "bench.hpp"

namespace bench {

void fail(const std::string& what) {
    static std::mutex m;
    std::lock_guard lock(m);
    std::fflush(stdout);
    std::fprintf(stderr, "\nconvstate_bench: FAILED: %s\n", what.c_str());
    std::fflush(stderr);
    std::_Exit(1);
}

long long now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string random_uuid() {
    thread_local std::mt19937_64 rng{std::random_device{}() ^
                                     std::hash<std::thread::id>{}(std::this_thread::get_id())};
    const std::uint64_t a = rng(), b = rng();
    return fmt::format("{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xfff,
                       0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffffULL);
}

const std::string& reply_text() {
    static const std::string text = [] {
        std::string s = "Here is a fixed stub reply from the benchmark agent. ";
        while (s.size() < 300) s += "The quick brown fox jumps over the lazy dog. ";
        s.resize(300);
        return s;
    }();
    return text;
}

std::string user_text(const std::string& tag) {
    std::string s = tag + " | ";
    while (s.size() < 120) s += "please tell me more about it. ";
    s.resize(120);
    return s;
}

const std::vector<std::string>& raw_schema() {
    // Mirrors convstate's migration 1 (src/sql.cpp): same columns, keys and indexes.
    static const std::vector<std::string> ddl = {
        "CREATE TABLE IF NOT EXISTS raw_conversations ("
        " user_id TEXT NOT NULL, id TEXT NOT NULL, title TEXT NOT NULL, metadata_json TEXT NOT NULL,"
        " last_seq BIGINT NOT NULL, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
        " create_key TEXT, active_turn TEXT, active_since BIGINT,"
        " PRIMARY KEY (user_id, id))",
        "CREATE INDEX IF NOT EXISTS raw_conversations_recent ON raw_conversations (user_id, updated_at DESC, id DESC)",
        "CREATE UNIQUE INDEX IF NOT EXISTS raw_conversations_create_key ON raw_conversations"
        " (user_id, create_key) WHERE create_key IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS raw_messages ("
        " user_id TEXT NOT NULL, conversation_id TEXT NOT NULL, seq BIGINT NOT NULL,"
        " role TEXT NOT NULL, content TEXT NOT NULL, name TEXT, tool_calls_json TEXT,"
        " tool_call_id TEXT, metadata_json TEXT NOT NULL, token_count BIGINT,"
        " idempotency_key TEXT, created_at BIGINT NOT NULL,"
        " PRIMARY KEY (user_id, conversation_id, seq))",
        "CREATE UNIQUE INDEX IF NOT EXISTS raw_messages_idempotency ON raw_messages"
        " (user_id, conversation_id, idempotency_key) WHERE idempotency_key IS NOT NULL",
    };
    return ddl;
}

std::string store_conv_id(long long k) { return fmt::format("{:08d}-5a3e-4f0b-9c1d-{:012d}", k, k * 7919); }
std::string store_user(long long k, long long users) { return fmt::format("user{:05d}", k % users); }

} // namespace bench

// --- heap allocations ----------------------------------------------------------------------
// The program replaces the global operator new, so every C++ allocation in the process — the
// library's, SOCI's, the floor's — is counted. (C allocations inside libpq and sqlite3 are not.)

namespace bench {
namespace {
std::atomic<std::uint64_t> allocations{0};
} // namespace

std::uint64_t heap_allocations() { return allocations.load(std::memory_order_relaxed); }

} // namespace bench

namespace {
void* counted(std::size_t n) {
    bench::allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* counted_aligned(std::size_t n, std::align_val_t a) {
    bench::allocations.fetch_add(1, std::memory_order_relaxed);
    const std::size_t al = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
    throw std::bad_alloc();
}
} // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try { return counted(n); } catch (...) { return nullptr; }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    try { return counted(n); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
