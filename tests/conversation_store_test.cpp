#include <doctest/doctest.h>

#include <set>
#include <string>
#include <thread>

#include "support.hpp"

using namespace convstate;

TEST_CASE("conversations: create, get, rename, set metadata") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("alice", {.title = "Trip", .metadata_json = R"({ "lang" : "en", "n": [1, 2] })"});
    CHECK(c.id.size() == 36);
    CHECK(c.user_id == "alice");
    CHECK(c.title == "Trip");
    CHECK(c.metadata_json == R"({"lang":"en","n":[1,2]})"); // stored compact
    CHECK(c.last_seq == 0);
    CHECK(c.created_at_us > 0);
    CHECK(store.get("alice", c.id) == c);

    const Conversation renamed = store.rename("alice", c.id, "Trip to Kyōto 🗾");
    CHECK(renamed.title == "Trip to Kyōto 🗾");
    CHECK(renamed.updated_at_us >= c.updated_at_us);
    CHECK(renamed.metadata_json == c.metadata_json);
    const Conversation annotated = store.set_metadata("alice", c.id, R"({"pinned":true})");
    CHECK(annotated.metadata_json == R"({"pinned":true})");
    CHECK(annotated.title == "Trip to Kyōto 🗾");
    CHECK(store.get("alice", c.id) == annotated);
    CHECK(store.create("alice").title.empty());
}

TEST_CASE("conversations: list is most recently updated first, with a keyset cursor") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    std::vector<std::string> ids;
    for (int i = 0; i < 25; ++i) ids.push_back(store.create("bob", {.title = "c" + std::to_string(i)}).id);
    store.create("carol");

    std::vector<Conversation> seen;
    std::string cursor;
    int pages = 0;
    do {
        const ConversationPage page = store.list("bob", {.cursor = cursor, .limit = 10});
        seen.insert(seen.end(), page.items.begin(), page.items.end());
        cursor = page.next_cursor;
        ++pages;
    } while (!cursor.empty());
    CHECK(pages == 3);
    REQUIRE(seen.size() == 25);
    std::set<std::string> unique_ids;
    for (std::size_t i = 0; i < seen.size(); ++i) {
        unique_ids.insert(seen[i].id);
        CHECK(seen[i].user_id == "bob");
        if (i > 0) {
            const bool ordered = seen[i - 1].updated_at_us > seen[i].updated_at_us ||
                                 (seen[i - 1].updated_at_us == seen[i].updated_at_us && seen[i - 1].id > seen[i].id);
            CHECK(ordered);
        }
    }
    CHECK(unique_ids.size() == 25);

    // Appending to the oldest conversation moves it to the top.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    messages.append("bob", ids.front(), {.role = Role::user, .content = "bump"});
    const ConversationPage first = store.list("bob", {.cursor = {}, .limit = 1});
    REQUIRE(first.items.size() == 1);
    CHECK(first.items[0].id == ids.front());
    CHECK(first.items[0].last_seq == 1);
    CHECK(store.list("nobody").items.empty());
    CHECK(store.list("nobody").next_cursor.empty());
}

TEST_CASE("conversations: list rejects a bad limit or cursor") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    for (int limit : {0, -1, 101}) {
        CAPTURE(limit);
        CHECK(cstest::invalid_field([&] { store.list("bob", {.cursor = {}, .limit = limit}); }) == "limit");
    }
    for (const char* cursor : {"garbage", ".x", "12.", "abc.def"}) {
        CAPTURE(cursor);
        CHECK(cstest::invalid_field([&] { store.list("bob", {.cursor = cursor, .limit = 10}); }) == "cursor");
    }
}

TEST_CASE("conversations: delete takes the messages along; delete-all is per user") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation a1 = store.create("alice"), a2 = store.create("alice"), b1 = store.create("bob");
    for (const auto* c : {&a1, &a2}) messages.append("alice", c->id, {.role = Role::user, .content = "hi"});
    messages.append("bob", b1.id, {.role = Role::user, .content = "hi"});

    store.remove("alice", a1.id);
    CHECK_THROWS_AS(store.get("alice", a1.id), NotFound);
    CHECK_THROWS_AS(messages.load_all("alice", a1.id), NotFound);
    CHECK_THROWS_AS(store.remove("alice", a1.id), NotFound);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages WHERE conversation_id = '" + a1.id + "'") == 0);

    CHECK(store.remove_all("alice") == 1);
    CHECK(store.remove_all("alice") == 0);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages WHERE user_id = 'alice'") == 0);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations WHERE user_id = 'alice'") == 0);
    CHECK(messages.count("bob", b1.id) == 1);
    CHECK(store.get("bob", b1.id).id == b1.id);
}

TEST_CASE("isolation: user B can neither read, list, append to, rename nor delete user A's conversation") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation a = store.create("user-a", {.title = "secret", .metadata_json = R"({"k":1})"});
    messages.append("user-a", a.id, {.role = Role::user, .content = "A's private words"});
    const Conversation before = store.get("user-a", a.id);
    const std::vector<Message> before_messages = messages.load_all("user-a", a.id);

    const std::string missing = "00000000-0000-4000-8000-000000000000";
    // Each attempt by B gives NotFound, with exactly the message a missing id gives.
    auto expect_not_found = [&](auto&& attempt) {
        std::string foreign_msg, missing_msg;
        try { attempt(a.id); FAIL("no error"); } catch (const NotFound& e) { foreign_msg = e.what(); }
        try { attempt(missing); FAIL("no error"); } catch (const NotFound& e) { missing_msg = e.what(); }
        std::string expected_foreign = missing_msg;
        expected_foreign.replace(expected_foreign.find(missing), missing.size(), a.id);
        CHECK(foreign_msg == expected_foreign);
    };
    expect_not_found([&](const std::string& id) { store.get("user-b", id); });
    expect_not_found([&](const std::string& id) { store.rename("user-b", id, "mine now"); });
    expect_not_found([&](const std::string& id) { store.set_metadata("user-b", id, "{}"); });
    expect_not_found([&](const std::string& id) { store.remove("user-b", id); });
    expect_not_found([&](const std::string& id) { messages.append("user-b", id, {.role = Role::user, .content = "x"}); });
    expect_not_found([&](const std::string& id) {
        messages.append_batch("user-b", id, {{.role = Role::user, .content = "x"}, {.role = Role::assistant, .content = "y"}});
    });
    expect_not_found([&](const std::string& id) { messages.load_all("user-b", id); });
    expect_not_found([&](const std::string& id) { messages.load_last("user-b", id, 5); });
    expect_not_found([&](const std::string& id) { messages.load_after("user-b", id, 0, 10); });
    expect_not_found([&](const std::string& id) { messages.load_before("user-b", id, 10, 10); });
    expect_not_found([&](const std::string& id) { messages.count("user-b", id); });
    CHECK(store.list("user-b").items.empty());
    CHECK(store.remove_all("user-b") == 0);

    CHECK(store.get("user-a", a.id) == before);
    CHECK(messages.load_all("user-a", a.id) == before_messages);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == 1);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations") == 1);
}
