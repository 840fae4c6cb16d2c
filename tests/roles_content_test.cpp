// Roles and content: the developer role (kept like system), and content-part arrays.

#include <doctest/doctest.h>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::msg;
using cstest::seqs;
using cstest::text_reply;

TEST_CASE("roles: developer messages are accepted and kept with the leading system messages") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    std::vector<Message> history{msg(Role::system, "be brief"), msg(Role::developer, "answer in French"),
                                 msg(Role::system, "no emoji")};
    for (int i = 0; i < 30; ++i) history.push_back(msg(i % 2 ? Role::assistant : Role::user, "m" + std::to_string(i)));
    history.push_back(msg(Role::developer, "a later instruction is an ordinary message"));
    messages.append_batch("u", c.id, history);
    CHECK(messages.load_all("u", c.id)[1].role == Role::developer);
    CHECK(json::to_json(messages.load_all("u", c.id)[1]).find(R"("role":"developer")") != std::string::npos);

    const ChatOrchestrator chat(db);
    CHECK(seqs(chat.window("u", c.id, HistoryWindow::last(3))) == std::vector<std::int64_t>{1, 2, 3, 32, 33, 34});
    // The turn's own read (on PostgreSQL, its one statement) keeps the same prefix.
    TurnRequest r = cstest::request("u", c.id, "bonjour");
    r.window = HistoryWindow::last(2);
    std::vector<std::int64_t> seen;
    chat.turn(r, [&](const AgentInput& in) {
        seen = seqs(in.history);
        return text_reply("salut");
    });
    CHECK(seen == std::vector<std::int64_t>{1, 2, 3, 34, 35});
    CHECK(cstest::invalid_field([&] { role_from_string("wizard"); }) == "role");
    CHECK(role_from_string("developer") == Role::developer);
}
