// Metrics and logs: per-operation latency histograms and pool waits in Database::stats(), and
// the DatabaseOptions::log hook (nothing by default, never a password, no content above debug).

#include <doctest/doctest.h>

#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::request;
using cstest::text_reply;

namespace {

std::uint64_t bucket_total(const LatencyHistogram& h) {
    return std::accumulate(h.counts.begin(), h.counts.end(), std::uint64_t{0});
}

struct Captured {
    std::mutex mu;
    std::vector<std::pair<LogLevel, std::string>> lines;
    LogHandler handler() {
        return [this](LogLevel level, std::string_view message) {
            const std::lock_guard lock(mu);
            lines.emplace_back(level, std::string(message));
        };
    }
    DatabaseOptions options(LogLevel level = LogLevel::info) {
        DatabaseOptions o;
        o.log = handler();
        o.log_level = level;
        return o;
    }
    bool any(LogLevel level, std::string_view needle) {
        const std::lock_guard lock(mu);
        for (const auto& [l, text] : lines)
            if (l == level && text.find(needle) != std::string::npos) return true;
        return false;
    }
};

} // namespace

TEST_CASE("stats: every public call is counted per operation, with its latency and whether it threw") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const DatabaseStats before = db.stats();
    CHECK(before[Operation::append].calls == 0);
    const Conversation c = store.create("u");
    for (int i = 0; i < 5; ++i) messages.append("u", c.id, cstest::msg(Role::user, "x"));
    CHECK_THROWS_AS(messages.append("u", "no-such-conversation", cstest::msg(Role::user, "x")), NotFound);
    chat.turn(request("u", c.id, "hello"), [](const AgentInput&) { return text_reply("hi"); });
    messages.load_all("u", c.id);
    store.list("u");

    const DatabaseStats s = db.stats();
    const OperationStats& append = s[Operation::append];
    CHECK(append.calls == 6);
    CHECK(append.errors == 1);
    CHECK(append.latency.count == 6);
    CHECK(bucket_total(append.latency) == 6);
    CHECK(append.latency.sum_us > 0);
    CHECK(s[Operation::create].calls == 1);
    CHECK(s[Operation::turn].calls == 1);
    CHECK(s[Operation::turn].errors == 0);
    CHECK(s[Operation::load].calls == 1);
    CHECK(s[Operation::list].calls == 1);
    CHECK(s[Operation::purge].calls == 0);
    CHECK(s.pool.acquisitions >= 9); // one lease per attempt at least
    CHECK(to_string(Operation::begin_turn) == "begin_turn");
    CHECK(to_string(Operation::export_conversations) == "export_conversations");

    // The JSON form carries the same numbers.
    const std::string j = json::to_json(s);
    CHECK(j.find("\"append\":{\"calls\":6,\"errors\":1,") != std::string::npos);
    CHECK(j.find("\"bounds_us\":[50,100,250,") != std::string::npos);
    CHECK(j.find("\"pool\":{\"acquisitions\":") != std::string::npos);
}

TEST_CASE("stats: a pool too small for its threads counts the waits and how long they took") {
    DatabaseOptions options;
    options.pool_size = 1;
    cstest::Fixture fx(options);
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    // Four threads on one connection: the others wait while one works.
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 50; ++i) messages.append("u", c.id, cstest::msg(Role::user, "x"));
        });
    for (std::thread& t : threads) t.join();
    const PoolStats pool = db.stats().pool;
    CHECK(pool.acquisitions >= 201);
    CHECK(pool.waits > 0);
    CHECK(pool.waits <= pool.acquisitions);
    CHECK(pool.wait.count == pool.waits);
    CHECK(bucket_total(pool.wait) == pool.waits);
    CHECK(pool.timeouts == 0);
    CHECK(messages.count("u", c.id) == 200);
}

TEST_CASE("logs: nothing by default; with a handler, open and migrate at info, levels filtered, no password") {
    SUBCASE("a handler at info") {
        Captured logs;
        const Database db = cstest::open_fresh(nullptr, logs.options());
        CHECK(logs.any(LogLevel::info, "opened the "));
        CHECK(logs.any(LogLevel::info, "migrated the "));
        // Content never reaches a level above debug.
        const ChatOrchestrator chat(db);
        chat.turn(request("u", std::nullopt, "TOP-SECRET-CONTENT"), [](const AgentInput&) { return text_reply("ok"); });
        CHECK_THROWS_AS(MessageRepository(db).append("u", "missing", cstest::msg(Role::user, "TOP-SECRET-CONTENT")),
                        NotFound);
        const std::lock_guard lock(logs.mu);
        for (const auto& [level, text] : logs.lines) {
            CHECK(level != LogLevel::debug);
            CHECK(text.find("TOP-SECRET-CONTENT") == std::string::npos);
        }
    }
    SUBCASE("a handler at warning sees no info") {
        Captured logs;
        const Database db = cstest::open_fresh(nullptr, logs.options(LogLevel::warning));
        ConversationStore(db).create("u");
        const std::lock_guard lock(logs.mu);
        for (const auto& [level, text] : logs.lines) CHECK(level >= LogLevel::warning);
    }
    SUBCASE("a throwing handler does not fail the operation") {
        DatabaseOptions options;
        options.log = [](LogLevel, std::string_view) { throw std::runtime_error("logger down"); };
        const Database db = cstest::open_fresh(nullptr, options);
        CHECK(ConversationStore(db).create("u").last_seq == 0);
    }
    SUBCASE("a URL's password never appears") {
        if (!cstest::is_postgres() || cstest::is_citus()) return;
        // The test server trusts local connections, so a password in the URL is accepted unused.
        cstest::FreshDb raw = cstest::fresh_db();
        std::string url = raw.url;
        const auto at = url.find("postgres@");
        REQUIRE(at != std::string::npos);
        url.replace(at, 9, "postgres:Sup3r-Secret@");
        Captured logs;
        const DatabaseOptions options = logs.options(LogLevel::debug);
        const Database db = Database::open(url, options);
        ConversationStore(db).create("u");
        CHECK_THROWS(Database::open(url + (url.find('?') == std::string::npos ? "?" : "&") + "dbname=no_such_database_here",
                                    options));
        const std::lock_guard lock(logs.mu);
        CHECK_FALSE(logs.lines.empty());
        for (const auto& [level, text] : logs.lines) CHECK(text.find("Sup3r-Secret") == std::string::npos);
    }
}
