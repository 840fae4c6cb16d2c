// Forks, edits and regenerated replies: a fork copies a prefix of its source server-side and is an
// ordinary conversation from then on.

#include <atomic>
#include <random>
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

TurnRequest regenerate(std::string user, std::string conversation) {
    TurnRequest r = request(std::move(user), std::move(conversation), "");
    r.regenerate = true;
    return r;
}

} // namespace

TEST_CASE("fork: copies messages 1..at and their summaries; both sides live on independently") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    NewConversation spec;
    spec.title = "source";
    spec.metadata_json = R"({"topic":"x"})";
    const Conversation src = store.create("u", spec);
    Message keyed = msg(Role::user, "keyed");
    keyed.idempotency_key = "k-1";
    messages.append_batch("u", src.id, {msg(Role::system, "s"), keyed, cstest::tool_calls_msg({"c1"}),
                                        cstest::tool_result("r", "c1"), msg(Role::assistant, "a"), msg(Role::user, "u6"),
                                        msg(Role::assistant, "a7")});
    messages.add_summary("u", src.id, 2, "to 2");
    messages.add_summary("u", src.id, 6, "to 6");

    const Conversation f = store.fork("u", src.id, 5);
    CHECK(f.id != src.id);
    CHECK(f.title == "source");
    CHECK(f.metadata_json == src.metadata_json);
    CHECK(f.last_seq == 5);
    REQUIRE(f.forked_from);
    CHECK(f.forked_from->conversation_id == src.id);
    CHECK(f.forked_from->seq == 5);
    CHECK(store.get("u", f.id) == f);
    const std::vector<Message> copied = messages.load_all("u", f.id), original = messages.load_all("u", src.id);
    REQUIRE(copied.size() == 5);
    for (std::size_t i = 0; i < copied.size(); ++i) {
        Message expect = original[i];
        expect.conversation_id = f.id;
        CHECK(copied[i] == expect);
    }
    REQUIRE(messages.summaries("u", f.id).size() == 1);
    CHECK(messages.summaries("u", f.id)[0].covers_through_seq == 2);
    REQUIRE(store.forks("u", src.id).size() == 1);
    CHECK(store.forks("u", src.id)[0].id == f.id);
    CHECK(store.forks("u", f.id).empty());

    // Its own seqs and keys: the copied key is the fork's; the source is untouched.
    CHECK(messages.append("u", f.id, msg(Role::user, "in the fork")).seq == 6);
    CHECK(messages.append("u", f.id, keyed).seq == 2);
    CHECK(messages.count("u", src.id) == 7);
    // Deleting either leaves the other.
    store.remove("u", src.id);
    CHECK(messages.count("u", f.id) == 6);
    CHECK(store.get("u", f.id).forked_from->conversation_id == src.id);
    CHECK_THROWS_AS(store.forks("u", src.id), NotFound);
    const Conversation f2 = store.fork("u", f.id, 0, {.title = "empty", .metadata_json = std::nullopt, .external_key = "fk"});
    CHECK(f2.title == "empty");
    CHECK(f2.last_seq == 0);
    CHECK(f2.external_key == "fk");
    CHECK(messages.count("u", f2.id) == 0);
    store.remove("u", f.id);
    CHECK(store.get("u", f2.id).forked_from->seq == 0);
}

TEST_CASE("fork: bad input names the field and creates nothing; another user's is NotFound") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation src = store.create("u");
    messages.append_batch("u", src.id, {msg(Role::user, "q"), cstest::tool_calls_msg({"c1"}), cstest::tool_result("r", "c1")});
    CHECK(cstest::invalid_field([&] { store.fork("u", src.id, -1); }) == "at_seq");
    CHECK(cstest::invalid_field([&] { store.fork("u", src.id, 4); }) == "at_seq");
    CHECK(cstest::invalid_field([&] { store.fork("u", src.id, 2); }) == "at_seq"); // the call without its result
    CHECK(cstest::invalid_field([&] { store.fork("u", src.id, 1, {.title = std::nullopt, .metadata_json = "[]", .external_key = std::nullopt}); }) ==
          "metadata");
    CHECK_THROWS_AS(store.fork("intruder", src.id, 1), NotFound);
    CHECK_THROWS_AS(store.forks("intruder", src.id), NotFound);
    CHECK(store.list("u").items.size() == 1);
    CHECK(store.list("intruder").items.empty());
    CHECK(store.fork("u", src.id, 3).last_seq == 3);
}

TEST_CASE("fork: edit a message, regenerate a reply") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const auto echo = [](const AgentInput& in) { return text_reply("re: " + in.history.back().content); };
    const TurnResult first = chat.turn(request("u", std::nullopt, "what is 2+2?"), echo);
    chat.turn(request("u", first.conversation_id, "and 3+3?"), echo);

    // Edit message 3: fork before it, run the edited turn there.
    const Conversation edited = store.fork("u", first.conversation_id, 2);
    const TurnResult e = chat.turn(request("u", edited.id, "and 4+4?"), echo);
    CHECK(e.user_seq == 3);
    CHECK(e.reply == "re: and 4+4?");
    CHECK(messages.load_all("u", first.conversation_id)[2].content == "and 3+3?");

    // Regenerate reply 4: fork at its user message, run the turn without a new one.
    const Conversation regen = store.fork("u", first.conversation_id, 3);
    std::vector<std::int64_t> seen;
    const TurnResult r = chat.turn(regenerate("u", regen.id), [&](const AgentInput& in) {
        seen = seqs(in.history);
        return text_reply("another answer to " + in.history.back().content);
    });
    CHECK(seen == std::vector<std::int64_t>{1, 2, 3});
    CHECK(r.user_seq == 3);
    CHECK(r.reply_seq == 4);
    CHECK_FALSE(r.created);
    CHECK(r.reply == "another answer to and 3+3?");
    // A split turn can regenerate too; a failed turn is retried in place.
    const Conversation again = store.fork("u", first.conversation_id, 3);
    const PendingTurn p = chat.begin_turn(regenerate("u", again.id));
    CHECK(p.user_seq == 3);
    CHECK(chat.complete_turn("u", p.token, text_reply("split")).reply_seq == 4);
    CHECK_THROWS_AS(chat.turn(request("u", first.conversation_id, "fails"),
                              [](const AgentInput&) -> AgentReply { throw std::runtime_error("model down"); }),
                    AgentError);
    CHECK(chat.turn(regenerate("u", first.conversation_id), echo).reply == "re: fails");

    // A summary through the user message being regenerated is not used: the window ends with it.
    const Conversation summarized = store.fork("u", first.conversation_id, 3);
    messages.add_summary("u", summarized.id, 3, "everything so far");
    std::vector<std::int64_t> shown;
    chat.turn(regenerate("u", summarized.id), [&](const AgentInput& in) {
        shown = seqs(in.history);
        return text_reply("ok");
    });
    CHECK(shown == std::vector<std::int64_t>{1, 2, 3});

    // Refused, naming the field, writing nothing.
    CHECK(cstest::invalid_field([&] { chat.turn(regenerate("u", first.conversation_id), echo); }) == "regenerate");
    CHECK(cstest::invalid_field([&] {
              TurnRequest bad = regenerate("u", regen.id);
              bad.message = "new text";
              chat.turn(bad, echo);
          }) == "message");
    CHECK(cstest::invalid_field([&] {
              TurnRequest bad = regenerate("u", regen.id);
              bad.idempotency_key = "k";
              chat.turn(bad, echo);
          }) == "idempotency_key");
    CHECK(cstest::invalid_field([&] {
              TurnRequest bad = regenerate("u", regen.id);
              bad.conversation_id.reset();
              chat.turn(bad, echo);
          }) == "regenerate");
    CHECK_THROWS_AS(chat.turn(regenerate("intruder", regen.id), echo), NotFound);
    CHECK(messages.count("u", regen.id) == 4);
}

TEST_CASE("fork: forks racing turns and undos on their source are consistent copies") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const Conversation src = store.create("u");
    std::atomic<bool> stop{false};
    std::atomic<int> forks{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 5; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 12; ++i) try {
                    chat.turn(request("u", src.id, "t" + std::to_string(t) + "-" + std::to_string(i)),
                              [](const AgentInput& in) { return cstest::echo_agent(in, 4); });
                } catch (const NotFound&) {
                }
        });
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&] {
            std::minstd_rand rng(std::random_device{}());
            while (!stop) {
                const std::int64_t last = store.get("u", src.id).last_seq;
                try {
                    store.fork("u", src.id, static_cast<std::int64_t>(rng() % static_cast<unsigned>(last + 1)));
                    ++forks;
                } catch (const InvalidArgument&) { // a tool group, or undone meanwhile
                }
            }
        });
    threads.emplace_back([&] {
        while (!stop) {
            cstest::undo_last_exchange(messages, "u", src.id, 1);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    for (int t = 0; t < 5; ++t) threads[static_cast<std::size_t>(t)].join();
    stop = true;
    for (std::size_t t = 5; t < threads.size(); ++t) threads[t].join();
    MESSAGE(forks.load(), " forks");
    cstest::check_dense(messages.load_all("u", src.id));
    for (const Conversation& f : store.forks("u", src.id)) {
        const std::vector<Message> copy = messages.load_all("u", f.id);
        CHECK(static_cast<std::int64_t>(copy.size()) == f.forked_from->seq); // a whole prefix, nothing else
        CHECK(f.last_seq == f.forked_from->seq);
        if (!copy.empty()) cstest::check_dense(copy);
        if (!copy.empty()) CHECK(copy.front().role == Role::user);
        for (std::size_t i = 0; i + 1 < copy.size(); ++i)
            if (copy[i].role == Role::assistant && !copy[i].tool_calls.empty())
                CHECK(copy[i + 1].role == Role::tool); // no call cut from its result
    }
}
