// The split turn: begin_turn, then complete_turn or fail_turn with the turn token — from another
// thread or another Database handle (as another instance would), with every guarantee of turn().

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include <convstate/convstate.hpp>

#include "support.hpp"
#include "turn_token.hpp"

using namespace convstate;
using cstest::request;
using cstest::seqs;
using cstest::text_reply;

namespace {

// Another instance: its own Database handle (its own pool) on the same database.
Database another_instance(const cstest::FreshDb& raw, DatabaseOptions options = {}) {
    options.migrate_on_open = false;
    return Database::open(raw.url, options);
}

} // namespace

TEST_CASE("split turn: begin stores the user message; complete, on another instance, stores the reply") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const PendingTurn first = chat.begin_turn(request("u", std::nullopt, "hello"));
    CHECK(first.created);
    CHECK(first.user_seq == 1);
    CHECK_FALSE(first.completed);
    REQUIRE(first.history.size() == 1);
    CHECK(first.history[0].content == "hello");
    CHECK(first.token.rfind("cst1.", 0) == 0);
    // Committed before the model runs: visible to anyone now.
    CHECK(messages.count("u", first.conversation_id) == 1);

    const ChatOrchestrator elsewhere(another_instance(raw));
    const TurnResult r = elsewhere.complete_turn("u", first.token, text_reply("hi there"));
    CHECK(r.conversation_id == first.conversation_id);
    CHECK(r.user_seq == 1);
    CHECK(r.reply_seq == 2);
    CHECK(r.reply == "hi there");
    CHECK(r.created);
    CHECK_FALSE(r.replayed);

    const PendingTurn second = chat.begin_turn(request("u", first.conversation_id, "again"));
    CHECK_FALSE(second.created);
    CHECK(seqs(second.history) == std::vector<std::int64_t>{1, 2, 3});
    CHECK(second.history.back().content == "again");
    CHECK(chat.complete_turn("u", second.token, text_reply("ok")).reply_seq == 4);
    cstest::check_dense(messages.load_all("u", first.conversation_id));
}

TEST_CASE("split turn: completing twice stores once and returns the stored result") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    for (const bool keyed : {false, true}) {
        const auto key = keyed ? std::optional<std::string>("k1") : std::nullopt;
        const PendingTurn p = chat.begin_turn(request("u", std::nullopt, "hello", key));
        AgentReply reply = text_reply("answer");
        reply.intermediate = {cstest::tool_calls_msg({"c1"}), cstest::tool_result("42", "c1")};
        const TurnResult once = chat.complete_turn("u", p.token, reply);
        const TurnResult again = ChatOrchestrator(another_instance(raw)).complete_turn("u", p.token, text_reply("other"));
        CHECK(again.replayed);
        CHECK(again.reply == "answer");
        CHECK(again.reply_seq == once.reply_seq);
        CHECK(seqs(again.intermediate) == seqs(once.intermediate));
        CHECK(messages.count("u", p.conversation_id) == 4);
    }
}

TEST_CASE("split turn: racing completions of one token store one reply") {
    DatabaseOptions options;
    options.pool_size = 4;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    for (int round = 0; round < 5; ++round) {
        const PendingTurn p = chat.begin_turn(request("u", std::nullopt, "hello"));
        std::atomic<int> fresh{0};
        std::set<std::int64_t> reply_seqs;
        std::mutex m;
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                const TurnResult r = chat.complete_turn("u", p.token, text_reply("from " + std::to_string(t)));
                if (!r.replayed) ++fresh;
                const std::lock_guard lock(m);
                reply_seqs.insert(r.reply_seq);
            });
        for (auto& t : threads) t.join();
        CHECK(fresh == 1);
        CHECK(reply_seqs.size() == 1);
        CHECK(messages.count("u", p.conversation_id) == 2);
    }
}

TEST_CASE("split turn: a foreign, forged or stale token is NotFound; garbage is InvalidArgument") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const PendingTurn p = chat.begin_turn(request("alice", std::nullopt, "hello", std::string("ka")));

    CHECK_THROWS_AS(chat.complete_turn("mallory", p.token, text_reply("x")), NotFound);
    CHECK_THROWS_AS(chat.fail_turn("mallory", p.token), NotFound);

    // Well-formed tokens that name what is not there: another seq, another key, no key.
    Limits limits;
    const detail::TurnIdentity real = detail::decode_turn_token(p.token, limits);
    auto forged = [&](auto change) {
        detail::TurnIdentity t = real;
        change(t);
        return detail::encode_turn_token(t);
    };
    for (const std::string& token : {forged([](auto& t) { t.user_seq = 7; }), forged([](auto& t) { t.key = "kb"; }),
                                     forged([](auto& t) { t.key.reset(); }),
                                     forged([](auto& t) { t.conversation_id = "not-there"; })}) {
        CHECK_THROWS_AS(chat.complete_turn("alice", token, text_reply("x")), NotFound);
        CHECK_THROWS_AS(chat.fail_turn("alice", token), NotFound);
    }
    for (const std::string& token : {std::string(), std::string("cst1."), std::string("cst1.!!!"), std::string("x") + p.token,
                                     p.token.substr(0, p.token.size() - 6), std::string("cst1.e30")}) {
        CHECK(cstest::invalid_field([&] { chat.complete_turn("alice", token, text_reply("x")); }) == "turn_token");
        CHECK(cstest::invalid_field([&] { chat.fail_turn("alice", token); }) == "turn_token");
    }
    CHECK(messages.count("alice", p.conversation_id) == 1);

    // The conversation deleted while the model ran.
    store.remove("alice", p.conversation_id);
    CHECK_THROWS_AS(chat.complete_turn("alice", p.token, text_reply("late")), NotFound);
    CHECK_THROWS_AS(chat.fail_turn("alice", p.token), NotFound);
}

TEST_CASE("split turn: an invalid reply is refused naming the field, and the turn stays pending") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const PendingTurn p = chat.begin_turn(request("u", std::nullopt, "hello"));
    CHECK(cstest::invalid_field([&] { chat.complete_turn("u", p.token, text_reply(std::string("a\0b", 3))); }) ==
          "reply.content");
    AgentReply bad = text_reply("x");
    bad.intermediate = {cstest::msg(Role::user, "not the agent's")};
    CHECK(cstest::invalid_field([&] { chat.complete_turn("u", p.token, bad); }) == "intermediate[0].role");
    bad = text_reply("x");
    bad.metadata_json = "[1]";
    CHECK(cstest::invalid_field([&] { chat.complete_turn("u", p.token, bad); }).rfind("reply.metadata", 0) == 0);
    CHECK(messages.count("u", p.conversation_id) == 1);
    CHECK(chat.complete_turn("u", p.token, text_reply("fine")).reply_seq == 2);
    CHECK(cstest::invalid_field([&] { chat.fail_turn("u", p.token, std::string("\xff")); }) == "reason");
}

TEST_CASE("split turn: fail_turn clears the reject mark and releases a keyed turn for its retry") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    OrchestratorOptions options;
    options.concurrency = ConcurrentTurns::reject;
    options.duplicate_wait = std::chrono::milliseconds(200);
    const ChatOrchestrator chat(db, options);
    const Conversation c = store.create("u");

    const PendingTurn p = chat.begin_turn(request("u", c.id, "one"));
    CHECK_THROWS_AS(chat.begin_turn(request("u", c.id, "two")), Conflict);
    chat.fail_turn("u", p.token, "the model timed out");
    const PendingTurn q = chat.begin_turn(request("u", c.id, "two"));
    // The mark is the token's: an orchestrator without the reject policy clears it too.
    ChatOrchestrator(db).complete_turn("u", q.token, text_reply("done"));
    const PendingTurn keyed = chat.begin_turn(request("u", c.id, "three", std::string("k3")));
    chat.fail_turn("u", keyed.token);

    // A keyed turn: while it is pending an identical retry waits, then is Conflict; after
    // fail_turn the retry begins at once (same user message); after completion it is replayed.
    const ChatOrchestrator plain(db, OrchestratorOptions{.duplicate_wait = std::chrono::milliseconds(200)});
    const PendingTurn k = plain.begin_turn(request("u", c.id, "four", std::string("k4")));
    CHECK_THROWS_AS(plain.begin_turn(request("u", c.id, "four", std::string("k4"))), Conflict);
    plain.fail_turn("u", k.token);
    const auto started = std::chrono::steady_clock::now();
    const PendingTurn retry = plain.begin_turn(request("u", c.id, "four", std::string("k4")));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(200));
    CHECK(retry.user_seq == k.user_seq);
    CHECK_FALSE(retry.completed);
    const TurnResult done = plain.complete_turn("u", retry.token, text_reply("four done"));
    const PendingTurn replay = plain.begin_turn(request("u", c.id, "four", std::string("k4")));
    REQUIRE(replay.completed);
    CHECK(replay.completed->replayed);
    CHECK(replay.completed->reply_seq == done.reply_seq);
    CHECK(replay.token.empty());
    // The stale token of the failed attempt completes nothing new.
    CHECK(plain.complete_turn("u", k.token, text_reply("late")).replayed);
    // Failing a completed turn changes nothing.
    plain.fail_turn("u", retry.token);
    CHECK(messages.count("u", c.id) == 6); // one, two, done, three, four, four done
}

TEST_CASE("split turn: concurrent split turns on one conversation each store after their own message") {
    DatabaseOptions options;
    options.pool_size = 4;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const Conversation c = store.create("u");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const std::string text = std::to_string(t) + ":" + std::to_string(i);
                const PendingTurn p = chat.begin_turn(request("u", c.id, text));
                REQUIRE(p.history.back().seq == p.user_seq);
                const TurnResult r = chat.complete_turn("u", p.token, text_reply("re " + text));
                CHECK(r.reply_seq > p.user_seq);
            }
        });
    for (auto& t : threads) t.join();
    const std::vector<Message> all = messages.load_all("u", c.id);
    REQUIRE(all.size() == 80);
    cstest::check_dense(all);
    for (const Message& m : all)
        if (m.role == Role::assistant) {
            const std::string text = m.content.substr(3);
            bool after_own = false;
            for (const Message& u : all)
                if (u.role == Role::user && u.content == text) after_own = u.seq < m.seq;
            CHECK(after_own);
        }
}

TEST_CASE("split turn: round trips") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    OrchestratorOptions o;
    o.window = HistoryWindow::last(50);
    const ChatOrchestrator chat(db, o);
    const PendingTurn first = chat.begin_turn(request("u", std::nullopt, "create"));
    chat.complete_turn("u", first.token, text_reply("r"));
    std::uint64_t begin = 0, complete = 0;
    for (int i = 0; i < 10; ++i) {
        const std::uint64_t s0 = db.stats().statements;
        const PendingTurn p = chat.begin_turn(request("u", first.conversation_id, "again"));
        const std::uint64_t s1 = db.stats().statements;
        chat.complete_turn("u", p.token, text_reply("r"));
        begin += s1 - s0;
        complete += db.stats().statements - s1;
    }
    MESSAGE("statements per begin/complete on " << std::string(cstest::backend_name()) << ": " << begin / 10.0 << "/"
                                                << complete / 10.0);
    if (cstest::pg_fast_path()) {
        CHECK(begin == 10); // one statement for steps 1-3
        CHECK(complete == 10); // one for the reply
    } else {
        // BEGIN, UPDATE … RETURNING, INSERT, SELECT window, COMMIT (MariaDB: UPDATE with the new
        // last_seq as its insert id).
        CHECK(begin == 50);
        // BEGIN, lock, the user message checked, the reply key looked up, seqs allocated, INSERT,
        // last_seq updated, COMMIT.
        CHECK(complete == 80);
    }
}

TEST_CASE("split turn: the window never splits a tool-call group and keeps the system prefix") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    OrchestratorOptions o;
    o.window = HistoryWindow::last(4);
    const ChatOrchestrator chat(db, o);
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, {cstest::msg(Role::system, "rules"), cstest::msg(Role::user, "weather?")});
    const PendingTurn first = chat.begin_turn(request("u", c.id, "in Paris?"));
    AgentReply reply = text_reply("sunny");
    reply.intermediate = {cstest::tool_calls_msg({"a", "b"}), cstest::tool_result("18C", "a"),
                          cstest::tool_result("rain 0%", "b")};
    chat.complete_turn("u", first.token, reply); // seqs 3 user, 4 calls, 5-6 results, 7 reply
    // The last 4 before this turn's message would start inside the group (5, 6, 7, 8): the group
    // is dropped whole; the system message stays first.
    const PendingTurn second = chat.begin_turn(request("u", c.id, "and tomorrow?"));
    CHECK(seqs(second.history) == std::vector<std::int64_t>{1, 7, 8});
    CHECK(seqs(second.history) == seqs(chat.window("u", c.id, o.window)));
    chat.fail_turn("u", second.token);
}
