// Editing a conversation's history: truncate (undo), on both backends, alone and racing turns.

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include <convstate/convstate.hpp>

#include "demo_agents.hpp"
#include "support.hpp"
#include "undo.hpp"

using namespace convstate;
using cstest::msg;
using cstest::request;
using cstest::seqs;
using cstest::text_reply;

namespace {

std::vector<Message> numbered(int n, const std::string& tag = "m") {
    std::vector<Message> out;
    for (int i = 1; i <= n; ++i) out.push_back(msg(i % 2 ? Role::user : Role::assistant, tag + std::to_string(i)));
    return out;
}

} // namespace

TEST_CASE("truncate: removes the tail, moves last_seq back, and the next message takes the freed seq") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, numbered(6));
    const Conversation before = store.get("u", c.id);

    CHECK(messages.truncate("u", c.id, 3) == 3);
    CHECK(seqs(messages.load_all("u", c.id)) == std::vector<std::int64_t>{1, 2, 3});
    const Conversation after = store.get("u", c.id);
    CHECK(after.last_seq == 3);
    CHECK(after.updated_at_us >= before.updated_at_us);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 3);

    // Nothing after the end: nothing to do, and not an error.
    CHECK(messages.truncate("u", c.id, 3) == 0);
    CHECK(messages.truncate("u", c.id, 99) == 0);
    CHECK(messages.append("u", c.id, msg(Role::user, "again")).seq == 4);
    cstest::check_dense(messages.load_all("u", c.id));

    // Down to nothing; the conversation stays.
    CHECK(messages.truncate("u", c.id, 0) == 4);
    CHECK(messages.count("u", c.id) == 0);
    CHECK(store.get("u", c.id).last_seq == 0);
    CHECK(messages.append("u", c.id, msg(Role::user, "fresh start")).seq == 1);
}

TEST_CASE("truncate: never inside a tool-call group; bad input names the field and removes nothing") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, {msg(Role::user, "q"), cstest::tool_calls_msg({"a", "b"}),
                                      cstest::tool_result("1", "a"), cstest::tool_result("2", "b"),
                                      msg(Role::assistant, "done")});
    // After the call (2) or after its first result (3): the call would lose results.
    CHECK(cstest::invalid_field([&] { messages.truncate("u", c.id, 2); }) == "after_seq");
    CHECK(cstest::invalid_field([&] { messages.truncate("u", c.id, 3); }) == "after_seq");
    CHECK(cstest::invalid_field([&] { messages.truncate("u", c.id, -1); }) == "after_seq");
    CHECK(cstest::invalid_field([&] { messages.truncate("u", c.id, 1, -2); }) == "expected_last_seq");
    CHECK(cstest::invalid_field([&] { messages.truncate("", c.id, 1); }) == "user_id");
    CHECK(messages.count("u", c.id) == 5);
    // After the whole group, or before it: fine.
    CHECK(messages.truncate("u", c.id, 4) == 1);
    CHECK(messages.truncate("u", c.id, 1) == 3);
    CHECK(seqs(messages.load_all("u", c.id)) == std::vector<std::int64_t>{1});
}

TEST_CASE("truncate: another user's conversation is NotFound and keeps its messages") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("owner");
    messages.append_batch("owner", c.id, numbered(4));
    CHECK_THROWS_AS(messages.truncate("intruder", c.id, 0), NotFound);
    CHECK_THROWS_AS(messages.truncate("intruder", c.id, 0, 4), NotFound);
    CHECK_THROWS_AS(messages.truncate("owner", "no-such-conversation", 0), NotFound);
    CHECK(messages.count("owner", c.id) == 4);
}

TEST_CASE("truncate: with expected_last_seq, K concurrent undos of one exchange remove it once") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, numbered(10));
    constexpr int k = 8;
    std::atomic<int> removed{0}, conflicts{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < k; ++t)
        threads.emplace_back([&] {
            try {
                removed += static_cast<int>(messages.truncate("u", c.id, 8, 10));
            } catch (const Conflict&) {
                ++conflicts;
            }
        });
    for (auto& t : threads) t.join();
    // The first removed 2; the others found last_seq 8, not 10.
    CHECK(removed == 2);
    CHECK(conflicts == k - 1);
    CHECK(store.get("u", c.id).last_seq == 8);
    CHECK_THROWS_AS(messages.truncate("u", c.id, 6, 10), Conflict);
    CHECK(messages.truncate("u", c.id, 6, 8) == 2);
}

TEST_CASE("truncate: removed idempotency keys are forgotten; a removed turn's token cannot complete") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const TurnResult first = chat.turn(request("u", std::nullopt, "one", "key-1"),
                                       [](const AgentInput&) { return text_reply("r1"); });
    CHECK(messages.truncate("u", first.conversation_id, 0) == 2);
    // The retry stores the exchange again, calling the agent (its record is gone).
    int calls = 0;
    const TurnResult again = chat.turn(request("u", first.conversation_id, "one", "key-1"), [&](const AgentInput&) {
        ++calls;
        return text_reply("r1 again");
    });
    CHECK(calls == 1);
    CHECK_FALSE(again.replayed);
    CHECK(again.user_seq == 1);
    CHECK(again.reply_seq == 2);

    const PendingTurn pending = chat.begin_turn(request("u", first.conversation_id, "two"));
    CHECK(messages.truncate("u", first.conversation_id, 2) == 1);
    CHECK_THROWS_AS(chat.complete_turn("u", pending.token, text_reply("too late")), NotFound);
    CHECK(messages.count("u", first.conversation_id) == 2);
    cstest::check_dense(messages.load_all("u", first.conversation_id));
}

TEST_CASE("truncate: racing turns on one conversation keeps seqs dense and every surviving message in place") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const Conversation c = store.create("u");
    // What each acknowledged turn stored, by its user message's content.
    struct Acked {
        std::int64_t user_seq, reply_seq;
        std::string reply;
    };
    std::mutex mu;
    std::map<std::string, Acked> acked;
    std::vector<std::int64_t> cuts; // after_seq of every truncate that removed something
    std::atomic<int> not_found{0};
    std::atomic<bool> turns_done{false};

    std::vector<std::thread> threads;
    constexpr int turn_threads = 6, turns_each = 15;
    for (int t = 0; t < turn_threads; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < turns_each; ++i) {
                const std::string text = "t" + std::to_string(t) + "-" + std::to_string(i);
                try {
                    // Windows read around the truncates; the agent checks what it is shown.
                    const TurnResult r = chat.turn(request("u", c.id, text), [&](const AgentInput& in) {
                        for (std::size_t j = 1; j < in.history.size(); ++j)
                            CHECK(in.history[j].seq == in.history[j - 1].seq + 1);
                        CHECK(in.history.back().content == text);
                        return cstest::echo_agent(in, 4);
                    });
                    std::lock_guard lock(mu);
                    acked[text] = {r.user_seq, r.reply_seq, r.reply};
                } catch (const NotFound&) {
                    ++not_found; // its user message was undone before the reply was stored
                }
            }
        });
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&] {
            // "Delete the last exchange": from the newest user message on, if nothing moved.
            for (int undos = 0; undos < 12 && !turns_done; ++undos) {
                if (const auto cut = cstest::undo_last_exchange(messages, "u", c.id)) {
                    std::lock_guard lock(mu);
                    cuts.push_back(*cut);
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(3));
            }
        });
    for (int t = 0; t < turn_threads; ++t) threads[static_cast<std::size_t>(t)].join();
    turns_done = true;
    for (std::size_t t = turn_threads; t < threads.size(); ++t) threads[t].join();

    const std::vector<Message> all = messages.load_all("u", c.id);
    cstest::check_dense(all);
    CHECK(store.get("u", c.id).last_seq == static_cast<std::int64_t>(all.size()));
    std::set<std::string> contents;
    for (const Message& m : all)
        if (m.role == Role::user) CHECK(contents.insert(m.content).second); // no duplicate
    MESSAGE(acked.size(), " turns acknowledged, ", cuts.size(), " undos, ", not_found.load(), " turns undone mid-run");
    CHECK(acked.size() + static_cast<std::size_t>(not_found) == turn_threads * turns_each);
    const std::int64_t lowest_cut = cuts.empty() ? INT64_MAX : *std::min_element(cuts.begin(), cuts.end());
    for (const auto& [text, a] : acked) {
        const bool present = contents.count(text) != 0;
        if (!present) {
            CHECK(a.user_seq > lowest_cut); // only an undo removes a message
            continue;
        }
        // A surviving message keeps its seq: truncation only ever removes a tail.
        REQUIRE(a.user_seq <= static_cast<std::int64_t>(all.size()));
        CHECK(all[static_cast<std::size_t>(a.user_seq - 1)].content == text);
        if (a.reply_seq <= static_cast<std::int64_t>(all.size()) &&
            all[static_cast<std::size_t>(a.reply_seq - 1)].content == a.reply)
            continue;
        CHECK(a.reply_seq > lowest_cut);
    }
}

TEST_CASE("truncate: processes undoing while others run turns keep the conversation dense") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    std::vector<int> pids;
    for (int p = 0; p < 2; ++p)
        pids.push_back(cstest::spawn_worker({"undoable-turns", raw.url, "u", c.id, "p" + std::to_string(p), "25"}));
    for (int p = 0; p < 2; ++p) pids.push_back(cstest::spawn_worker({"undo", raw.url, "u", c.id, "10"}));
    for (int pid : pids) CHECK(cstest::wait_worker(pid) == 0);
    const std::vector<Message> all = messages.load_all("u", c.id);
    cstest::check_dense(all);
    CHECK(store.get("u", c.id).last_seq == static_cast<std::int64_t>(all.size()));
    std::set<std::string> contents;
    for (const Message& m : all)
        if (m.role == Role::user) CHECK(contents.insert(m.content).second);
    // A reply follows its own user message: nothing of a removed turn survives out of place.
    for (std::size_t i = 0; i < all.size(); ++i)
        if (all[i].role == Role::assistant && all[i].tool_calls.empty() && all[i].content.rfind("echo: ", 0) == 0) {
            const std::string asked = all[i].content.substr(6);
            bool found = false;
            for (std::size_t j = 0; j < i; ++j) found = found || (all[j].role == Role::user && all[j].content == asked);
            CHECK_MESSAGE(found, "reply at seq ", all[i].seq, " answers '", asked, "', not stored before it");
        }
}
