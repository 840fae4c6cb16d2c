// Retention: ConversationStore::purge deletes conversations not updated since a cutoff — whole,
// in batches, and never one that a turn updated meanwhile.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::request;
using cstest::text_reply;

namespace {

// Rows left in a table for one conversation, bypassing the library.
long long rows_of(const cstest::FreshDb& raw, const char* table, const char* column, const std::string& id) {
    return cstest::query_number(raw, std::string("SELECT COUNT(*) FROM ") + table + " WHERE " + column + " = '" + id + "'");
}

long long leftover_rows(const cstest::FreshDb& raw, const std::string& id) {
    return rows_of(raw, "convstate_conversations", "id", id) + rows_of(raw, "convstate_messages", "conversation_id", id) +
           rows_of(raw, "convstate_summaries", "conversation_id", id) +
           rows_of(raw, "convstate_usage", "conversation_id", id);
}

AgentReply reply_with_usage() {
    AgentReply r = text_reply("ok");
    r.usage = Usage{"m", 3, 4, std::nullopt, std::nullopt};
    return r;
}

void age(const cstest::FreshDb& raw, const std::string& id, std::int64_t updated_at_us) {
    cstest::exec(raw, "UPDATE convstate_conversations SET updated_at = " + std::to_string(updated_at_us) +
                          " WHERE id = '" + id + "'");
}

} // namespace

TEST_CASE("purge: deletes every conversation not updated since the cutoff, whole; dry runs count; per user") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    // Three old conversations of u1 (messages, a summary, usage), one of u2, and a recent one each.
    std::vector<std::string> old_u1;
    for (int i = 0; i < 3; ++i) {
        const TurnResult t = chat.turn(request("u1", std::nullopt, "hello"), [](const AgentInput&) {
            return reply_with_usage();
        });
        messages.append("u1", t.conversation_id, cstest::msg(Role::user, "more"));
        messages.add_summary("u1", t.conversation_id, 2, "the greeting");
        age(raw, t.conversation_id, 1000 + i);
        old_u1.push_back(t.conversation_id);
    }
    const std::string old_u2 = store.create("u2").id;
    messages.append("u2", old_u2, cstest::msg(Role::user, "x"));
    age(raw, old_u2, 1500);
    const std::string recent_u1 = store.create("u1").id;
    const std::string recent_u2 = store.create("u2").id;
    messages.append("u2", recent_u2, cstest::msg(Role::user, "y"));

    SUBCASE("every user") {
        const PurgeResult dry = store.purge(2000, {.user_id = std::nullopt, .batch_size = 100, .dry_run = true});
        CHECK(dry == PurgeResult{4, 10});
        for (const std::string& id : old_u1) CHECK(store.get("u1", id).last_seq == 3);

        std::vector<PurgeResult> progress;
        const PurgeResult done = store.purge(2000, {.user_id = std::nullopt, .batch_size = 1, .dry_run = false},
                                             [&](const PurgeResult& r) { progress.push_back(r); });
        CHECK(done == dry);
        REQUIRE(progress.size() >= 4); // one call per batch of one
        CHECK(progress[0] == PurgeResult{1, 3});
        CHECK(progress.back() == done);
        for (const std::string& id : old_u1) {
            CHECK_THROWS_AS(store.get("u1", id), NotFound);
            CHECK(leftover_rows(raw, id) == 0);
        }
        CHECK(leftover_rows(raw, old_u2) == 0);
        CHECK(store.get("u1", recent_u1).last_seq == 0);
        CHECK(messages.count("u2", recent_u2) == 1);
        CHECK(store.purge(2000) == PurgeResult{0, 0}); // nothing left to do
    }
    SUBCASE("one user") {
        CHECK(store.purge(2000, {.user_id = "u2", .batch_size = 2, .dry_run = true}) == PurgeResult{1, 1});
        CHECK(store.purge(2000, {.user_id = "u2", .batch_size = 2, .dry_run = false}) == PurgeResult{1, 1});
        CHECK(leftover_rows(raw, old_u2) == 0);
        CHECK(messages.count("u2", recent_u2) == 1);
        for (const std::string& id : old_u1) CHECK(messages.count("u1", id) == 3);
        // The cutoff is exclusive: updated_at 1000 is not older than 1000.
        CHECK(store.purge(1000, {.user_id = "u1", .batch_size = 100, .dry_run = false}) == PurgeResult{0, 0});
        CHECK(store.purge(1001, {.user_id = "u1", .batch_size = 100, .dry_run = false}) == PurgeResult{1, 3});
    }
}

TEST_CASE("purge: bad input names its field and deletes nothing") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const std::string id = store.create("u").id;
    age(raw, id, 10);
    CHECK(cstest::invalid_field([&] { store.purge(-1); }) == "older_than");
    CHECK(cstest::invalid_field([&] { store.purge(100, {.user_id = std::nullopt, .batch_size = 0, .dry_run = false}); }) ==
          "batch_size");
    CHECK(cstest::invalid_field([&] { store.purge(100, {.user_id = std::nullopt, .batch_size = 10001, .dry_run = false}); }) ==
          "batch_size");
    CHECK(cstest::invalid_field([&] { store.purge(100, {.user_id = "", .batch_size = 10, .dry_run = false}); }) ==
          "user_id");
    CHECK(cstest::invalid_field([&] { store.purge(100, {.user_id = "bad\xff", .batch_size = 10, .dry_run = false}); }) ==
          "user_id");
    CHECK(store.get("u", id).id == id);
}

TEST_CASE("purge: conversations that receive turns from other threads during a purge are kept; none is half-deleted") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    constexpr int conversations = 40;
    std::vector<std::string> ids;
    for (int i = 0; i < conversations; ++i) {
        const TurnResult t = chat.turn(request("u", std::nullopt, "first"), [](const AgentInput&) {
            return text_reply("r");
        });
        age(raw, t.conversation_id, 1000 + i);
        ids.push_back(t.conversation_id);
    }
    const std::int64_t cutoff = 5000;

    std::atomic<bool> stop{false};
    std::mutex mu;
    std::set<std::string> turned;  // a turn on it succeeded during the purge
    std::vector<std::string> other_errors;
    auto client = [&](unsigned seed) {
        std::mt19937 rng(seed);
        while (!stop.load()) {
            const std::string& id = ids[rng() % ids.size()];
            try {
                chat.turn(request("u", id, "again"), [](const AgentInput&) { return text_reply("r2"); });
                const std::lock_guard lock(mu);
                turned.insert(id);
            } catch (const NotFound&) {
                // purged before the turn reached it: a clean failure
            } catch (const std::exception& e) {
                const std::lock_guard lock(mu);
                other_errors.push_back(e.what());
            }
        }
    };
    std::thread a(client, 1), b(client, 2);
    // Some turns land before the purge starts (those conversations are recent: kept), the rest race it.
    for (;;) {
        {
            const std::lock_guard lock(mu);
            if (turned.size() >= 3 || !other_errors.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    PurgeResult r;
    try {
        r = store.purge(cutoff, {.user_id = "u", .batch_size = 1, .dry_run = false});
    } catch (...) {
        stop = true;
        a.join();
        b.join();
        throw;
    }
    stop = true;
    a.join();
    b.join();
    CHECK(other_errors.empty());
    long long kept = 0;
    for (const std::string& id : ids) {
        const bool exists = rows_of(raw, "convstate_conversations", "id", id) == 1;
        if (turned.count(id)) CHECK_MESSAGE(exists, id << " had a turn succeed, yet was purged");
        if (exists) {
            ++kept;
            const std::vector<Message> all = messages.load_all("u", id);
            cstest::check_dense(all);
            CHECK(static_cast<std::int64_t>(all.size()) == store.get("u", id).last_seq);
            CHECK(store.get("u", id).updated_at_us >= cutoff);
        } else {
            CHECK_MESSAGE(leftover_rows(raw, id) == 0, id << " was half-deleted");
        }
    }
    CHECK(kept >= 3);
    CHECK(r.conversations + kept == conversations);
}
