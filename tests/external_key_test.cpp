// Caller-chosen conversation keys: the store's get-or-create and turns addressed by key.

#include <atomic>
#include <set>
#include <thread>

#include <doctest/doctest.h>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::request;
using cstest::text_reply;

namespace {

NewConversation keyed(std::string key, std::string title = {}) {
    NewConversation spec;
    spec.title = std::move(title);
    spec.external_key = std::move(key);
    return spec;
}

TurnRequest keyed_turn(std::string user, std::string conversation_key, std::string text,
                       std::optional<std::string> idempotency_key = std::nullopt) {
    TurnRequest r = request(std::move(user), std::nullopt, std::move(text), std::move(idempotency_key));
    r.conversation_key = std::move(conversation_key);
    return r;
}

} // namespace

TEST_CASE("external keys: create, get_by_key and get_or_create address one conversation per user and key") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u", keyed("thread-42", "support"));
    CHECK(c.external_key == "thread-42");
    CHECK(c.id.size() == 36);
    CHECK(c.id[14] == '5'); // a derived (version 5) id, never a random one's
    CHECK(store.get("u", c.id) == c);
    CHECK(store.get_by_key("u", "thread-42") == c);
    CHECK_THROWS_AS(store.create("u", keyed("thread-42")), Conflict);

    const GetOrCreateResult again = store.get_or_create("u", keyed("thread-42", "ignored"));
    CHECK_FALSE(again.created);
    CHECK(again.conversation == c);
    const GetOrCreateResult fresh = store.get_or_create("u", keyed("thread-43", "new"));
    CHECK(fresh.created);
    CHECK(fresh.conversation.title == "new");
    CHECK(fresh.conversation.id != c.id);

    // Another user's key is another conversation; theirs is NotFound for us.
    const Conversation theirs = store.create("v", keyed("thread-42"));
    CHECK(theirs.id != c.id);
    CHECK_THROWS_AS(store.get_by_key("w", "thread-42"), NotFound);
    CHECK(store.list("u").items.size() == 2);
    CHECK(store.create("u").external_key == std::nullopt);

    CHECK(cstest::invalid_field([&] { store.get_or_create("u", {}); }) == "external_key");
    CHECK(cstest::invalid_field([&] { store.get_or_create("u", keyed("")); }) == "external_key");
    CHECK(cstest::invalid_field([&] { store.create("u", keyed("tab\there")); }) == "external_key");
    CHECK(cstest::invalid_field([&] { store.get_by_key("u", std::string(300, 'k')); }) == "external_key");
    CHECK(store.list("u").items.size() == 3);
    CHECK(json::to_json(c).find(R"("external_key":"thread-42")") != std::string::npos);
    CHECK(json::conversation_from_json(json::to_json(c)) == c);
}

TEST_CASE("external keys: a turn addressed by key creates the conversation once, then continues it") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const auto reply = [](const AgentInput& in) { return text_reply("seen " + std::to_string(in.history.size())); };
    TurnRequest first = keyed_turn("u", "session-1", "hello");
    first.new_conversation.title = "from a framework";
    const TurnResult a = chat.turn(first, reply);
    CHECK(a.created);
    CHECK(a.conversation_id == store.get_by_key("u", "session-1").id);
    CHECK(store.get("u", a.conversation_id).title == "from a framework");
    const TurnResult b = chat.turn(keyed_turn("u", "session-1", "again"), reply);
    CHECK_FALSE(b.created);
    CHECK(b.conversation_id == a.conversation_id);
    CHECK(b.reply == "seen 3");

    // A keyed retry replays; a split turn addresses it by key too.
    const TurnResult k1 = chat.turn(keyed_turn("u", "session-1", "once", "idem-1"), reply);
    const TurnResult k2 = chat.turn(keyed_turn("u", "session-1", "once", "idem-1"), reply);
    CHECK(k2.replayed);
    CHECK(k2.reply_seq == k1.reply_seq);
    const PendingTurn p = chat.begin_turn(keyed_turn("u", "session-1", "split"));
    CHECK(p.conversation_id == a.conversation_id);
    CHECK(chat.complete_turn("u", p.token, text_reply("done")).reply_seq == 8);

    // Bad requests name the field and write nothing.
    CHECK(cstest::invalid_field([&] {
              TurnRequest both = keyed_turn("u", "session-1", "x");
              both.conversation_id = a.conversation_id;
              chat.turn(both, reply);
          }) == "conversation_key");
    CHECK(cstest::invalid_field([&] { chat.turn(keyed_turn("u", "", "x"), reply); }) == "conversation_key");
    CHECK(cstest::invalid_field([&] {
              TurnRequest r = request("u", std::nullopt, "x");
              r.new_conversation.external_key = "session-1";
              chat.turn(r, reply);
          }) == "new_conversation.external_key");
    CHECK(cstest::invalid_field([&] { chat.turn(keyed_turn("u", "bad\nkey", "x"), reply); }) == "conversation_key");
    CHECK(messages.count("u", a.conversation_id) == 8);
    CHECK(store.list("u").items.size() == 1);
    // On PostgreSQL a turn addressed by key takes the same 2 statements as one addressed by id.
    const std::uint64_t before = db.stats().statements;
    chat.turn(keyed_turn("u", "session-1", "counted"), reply);
    if (cstest::pg_fast_path()) CHECK(db.stats().statements - before == 2);
    CHECK(messages.count("u", a.conversation_id) == 10);
    // Another user with the same key gets their own conversation.
    CHECK(chat.turn(keyed_turn("v", "session-1", "mine"), reply).conversation_id != a.conversation_id);
}

TEST_CASE("external keys: 32 concurrent first turns with one new key store 32 exchanges in one conversation") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    constexpr int n = 32;
    std::atomic<int> created{0}, failed{0};
    std::vector<std::string> ids(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            try {
                const TurnResult r = chat.turn(keyed_turn("u", "brand-new", "m" + std::to_string(i)),
                                               [](const AgentInput&) { return text_reply("ok"); });
                ids[static_cast<std::size_t>(i)] = r.conversation_id;
                if (r.created) ++created;
            } catch (const std::exception& e) {
                ++failed;
                MESSAGE("turn failed: ", e.what());
            }
        });
    for (auto& t : threads) t.join();
    CHECK(failed == 0);
    CHECK(created == 1);
    CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == 1);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations") == 1);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 2 * n);
    const std::vector<Message> all = messages.load_all("u", ids[0]);
    cstest::check_dense(all);
    std::set<std::string> asked;
    for (const Message& m : all)
        if (m.role == Role::user) asked.insert(m.content);
    CHECK(asked.size() == n);

    // The same through the store: one conversation, one creator.
    std::atomic<int> store_created{0};
    threads.clear();
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&] {
            if (store.get_or_create("u", keyed("raced")).created) ++store_created;
        });
    for (auto& t : threads) t.join();
    CHECK(store_created == 1);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations") == 2);
}
