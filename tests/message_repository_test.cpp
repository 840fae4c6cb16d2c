#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace convstate;

namespace {

Message user_msg(std::string content) { return {.role = Role::user, .content = std::move(content)}; }

using cstest::check_dense;
using cstest::seqs;

} // namespace

TEST_CASE("messages: append allocates dense seqs and moves last_seq and updated_at") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const Message sys = messages.append("u", c.id, {.role = Role::system, .content = "be brief"});
    CHECK(sys.seq == 1);
    CHECK(sys.conversation_id == c.id);
    CHECK(sys.created_at_us >= c.created_at_us);
    const Message asst = messages.append("u", c.id, {
        .role = Role::assistant, .content = "",
        .tool_calls = {{.id = "call_1", .type = "function", .name = "add", .arguments = R"({"a":1,"b":2})"},
                       {.id = "call_2", .type = "function", .name = "now", .arguments = "{}"}},
        .metadata_json = R"({"model": "demo"})", .token_count = 17});
    const Message tool = messages.append("u", c.id, {.role = Role::tool, .content = "3", .name = "add", .tool_call_id = "call_1"});
    CHECK(asst.seq == 2);
    CHECK(tool.seq == 3);
    const Conversation after = store.get("u", c.id);
    CHECK(after.last_seq == 3);
    CHECK(after.updated_at_us >= tool.created_at_us);

    const std::vector<Message> all = messages.load_all("u", c.id);
    REQUIRE(all.size() == 3);
    CHECK(all[0] == sys);
    CHECK(all[1] == asst);
    CHECK(all[1].metadata_json == R"({"model":"demo"})");
    CHECK(all[1].token_count == 17);
    CHECK(all[2] == tool);
    CHECK(messages.count("u", c.id) == 3);
}

TEST_CASE("messages: a batch is atomic and consecutive") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append("u", c.id, user_msg("first"));
    const auto stored = messages.append_batch("u", c.id, {user_msg("a"), user_msg("b"), user_msg("c")});
    REQUIRE(stored.size() == 3);
    CHECK(stored[0].seq == 2);
    CHECK(stored[2].seq == 4);
    // One bad message: nothing of the batch is written.
    CHECK(cstest::invalid_field([&] { messages.append_batch("u", c.id, {user_msg("ok"), {.role = Role::tool, .content = "no call id"}}); }) == "messages[1].tool_call_id");
    CHECK(messages.count("u", c.id) == 4);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 4);
    check_dense(messages.load_all("u", c.id));
}

TEST_CASE("messages: an idempotency key stores a message once") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    Message m = user_msg("hello");
    m.idempotency_key = "req-1";
    const Message first = messages.append("u", c.id, m);
    m.content = "hello, retried with other content";
    const Message again = messages.append("u", c.id, m);
    CHECK(again == first); // the stored message, not the new content
    CHECK(messages.count("u", c.id) == 1);

    // A replayed batch returns what was stored and writes nothing.
    Message k2 = user_msg("two"), k3 = user_msg("three");
    k2.idempotency_key = "req-2";
    k3.idempotency_key = "req-3";
    const auto batch = messages.append_batch("u", c.id, {k2, k3});
    CHECK(messages.append_batch("u", c.id, {k2, k3}) == batch);
    CHECK(messages.count("u", c.id) == 3);
    // Keys are per conversation: the same key elsewhere is a different message.
    const Conversation other = store.create("u");
    CHECK(messages.append("u", other.id, m).seq == 1);
    // A duplicate key inside one batch is a caller bug.
    CHECK(cstest::invalid_field([&] { messages.append_batch("u", c.id, {k2, k2}); }) == "messages[1].idempotency_key");
}

TEST_CASE("messages: the same key appended from several threads at once stores one message") {
    DatabaseOptions options;
    options.pool_size = 8;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    for (int round = 0; round < 5; ++round) {
        const Conversation c = store.create("u");
        std::vector<Message> results(8);
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                Message m = user_msg("racing " + std::to_string(t));
                m.idempotency_key = "same-key";
                results[static_cast<std::size_t>(t)] = messages.append("u", c.id, m);
            });
        for (auto& t : threads) t.join();
        CHECK(messages.count("u", c.id) == 1);
        for (const Message& r : results) CHECK(r == results.front());
    }
}

TEST_CASE("messages: compare-and-append") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    CHECK(messages.append("u", c.id, user_msg("a"), {.expected_last_seq = 0}).seq == 1);
    CHECK(messages.append("u", c.id, user_msg("b"), {.expected_last_seq = 1}).seq == 2);
    try {
        messages.append("u", c.id, user_msg("stale"), {.expected_last_seq = 1});
        FAIL("no error");
    } catch (const Conflict& e) {
        CHECK(std::string(e.what()).find("seq 2") != std::string::npos);
    }
    CHECK_THROWS_AS(messages.append_batch("u", c.id, {user_msg("x"), user_msg("y")}, {.expected_last_seq = 5}), Conflict);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 2);
    CHECK(store.get("u", c.id).last_seq == 2);
}

TEST_CASE("messages: loading all, the last n, and pages by seq") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const Conversation empty = store.create("u");
    std::vector<Message> batch;
    for (int i = 1; i <= 30; ++i) batch.push_back(user_msg("m" + std::to_string(i)));
    messages.append_batch("u", c.id, batch);

    CHECK(seqs(messages.load_last("u", c.id, 3)) == std::vector<std::int64_t>{28, 29, 30});
    CHECK(messages.load_last("u", c.id, 100).size() == 30);
    CHECK(messages.load_last("u", c.id, 0).empty());
    CHECK(seqs(messages.load_after("u", c.id, 10, 3)) == std::vector<std::int64_t>{11, 12, 13});
    CHECK(seqs(messages.load_after("u", c.id, 28, 10)) == std::vector<std::int64_t>{29, 30});
    CHECK(messages.load_after("u", c.id, 30, 10).empty());
    CHECK(seqs(messages.load_before("u", c.id, 11, 3)) == std::vector<std::int64_t>{8, 9, 10});
    CHECK(seqs(messages.load_before("u", c.id, 3, 10)) == std::vector<std::int64_t>{1, 2});
    CHECK(messages.load_before("u", c.id, 1, 10).empty());
    // Past the end: the last page; extreme values neither overflow nor fail.
    CHECK(seqs(messages.load_before("u", c.id, INT64_MAX, 2)) == std::vector<std::int64_t>{29, 30});
    CHECK(seqs(messages.load_before("u", c.id, 31, 2)) == std::vector<std::int64_t>{29, 30});
    CHECK(messages.load_before("u", c.id, INT64_MIN, 10).empty());
    CHECK(seqs(messages.load_after("u", c.id, INT64_MIN, 2)) == std::vector<std::int64_t>{1, 2});
    CHECK(messages.load_after("u", c.id, INT64_MAX, 2).empty());
    CHECK(messages.load_last("u", c.id, SIZE_MAX).size() == 30);
    CHECK(messages.load_last("u", c.id, 1).front().content == "m30");

    CHECK(messages.load_all("u", empty.id).empty());
    CHECK(messages.load_last("u", empty.id, 5).empty());
    CHECK(messages.count("u", empty.id) == 0);
    CHECK_THROWS_AS(messages.load_last("u", "no-such-conversation", 0), NotFound);
    CHECK_THROWS_AS(messages.count("u", "no-such-conversation"), NotFound);
    for (std::size_t bad : {std::size_t{0}, std::size_t{10001}}) {
        CHECK(cstest::invalid_field([&] { messages.load_after("u", c.id, 0, bad); }) == "limit");
    }
}

TEST_CASE("messages: 1,000 appends in quick succession read back in exact append order") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) messages.append("u", c.id, user_msg(std::to_string(i)));
    const auto elapsed = std::chrono::steady_clock::now() - start;
    MESSAGE("1000 appends took " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms");
    const auto all = messages.load_all("u", c.id);
    REQUIRE(all.size() == 1000);
    check_dense(all);
    std::set<std::int64_t> timestamps;
    for (std::size_t i = 0; i < all.size(); ++i) {
        CHECK(all[i].content == std::to_string(i));
        timestamps.insert(all[i].created_at_us / 1000000);
    }
    // Many messages share a second: the order cannot have come from timestamps.
    CHECK(timestamps.size() < 1000);
}

TEST_CASE("messages: unicode and 1 MiB content round-trip byte-exact") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const std::vector<std::string> texts{
        "emoji 😀👍🏽👨‍👩‍👧‍👦", "CJK 漢字かなカナ한국어", "combining e\xCC\x81 a\xCC\x8A n\xCC\x83",
        "rtl עברית العربية", "quotes ' \" \\ ; -- /* */", std::string("tab\tnewline\nCR\r"),
    };
    for (const auto& t : texts) messages.append("u", c.id, user_msg(t));
    std::string big;
    big.reserve(1 << 20);
    while (big.size() + 5 <= (1u << 20)) big += "€ab"; // a 3-byte character among ASCII
    while (big.size() < (1u << 20)) big.push_back('.');
    REQUIRE(big.size() == (1u << 20));
    messages.append("u", c.id, user_msg(big));
    const auto all = messages.load_all("u", c.id);
    REQUIRE(all.size() == texts.size() + 1);
    for (std::size_t i = 0; i < texts.size(); ++i) CHECK(all[i].content == texts[i]);
    CHECK(all.back().content == big);
}

TEST_CASE("concurrency: 8 threads appending 200 messages each to one conversation") {
    DatabaseOptions options;
    options.pool_size = 8;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 200; ++i) messages.append("u", c.id, user_msg("t" + std::to_string(t) + "-" + std::to_string(i)));
        });
    for (auto& t : threads) t.join();
    const auto all = messages.load_all("u", c.id);
    REQUIRE(all.size() == 1600);
    check_dense(all);
    std::map<std::string, int> seen;
    for (const auto& m : all) ++seen[m.content];
    CHECK(seen.size() == 1600);
    // Each thread's own messages keep their order.
    std::map<int, int> next;
    for (const auto& m : all) {
        const int t = std::stoi(m.content.substr(1));
        const int i = std::stoi(m.content.substr(m.content.find('-') + 1));
        CHECK(i == next[t]++);
    }
    CHECK(store.get("u", c.id).last_seq == 1600);
}

TEST_CASE("concurrency: 4 processes appending 200 messages each to one conversation") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    std::vector<int> pids;
    for (int p = 0; p < 4; ++p) pids.push_back(cstest::spawn_worker({"append", raw.url, "u", c.id, "200", "p" + std::to_string(p)}));
    for (int pid : pids) CHECK(cstest::wait_worker(pid) == 0);
    const auto all = messages.load_all("u", c.id);
    REQUIRE(all.size() == 800);
    check_dense(all);
    std::set<std::string> seen;
    for (const auto& m : all) seen.insert(m.content);
    CHECK(seen.size() == 800);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 800);
}
