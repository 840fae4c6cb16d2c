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

TEST_CASE("content parts: stored and returned exactly, validated by path, counted by their text") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const std::string data_url = "data:image/png;base64," + std::string(3000, 'A') + "+/=";
    const std::string parts = R"([{"type":"text","text":"what is in these? é 🌍"},)"
                              R"({"type":"image_url","image_url":{"url":")" + data_url + R"(","detail":"high"}},)"
                              R"({"type":"image_url","image_url":{"url":"https://example.com/a.png?x=1&y=2"}},)"
                              R"({"type":"input_audio","input_audio":{"data":"UklGRg==","format":"wav"}},)"
                              R"({"type":"file","file":{"file_data":"JVBERi0=","filename":"a.pdf"}}])";
    Message m = msg(Role::user);
    m.content_parts_json = parts;
    const Message stored = messages.append("u", c.id, m);
    CHECK(stored.content_parts_json == parts); // already compact: byte for byte
    CHECK(messages.load_all("u", c.id).at(0).content_parts_json == parts);
    const std::string as_json = json::to_json(stored);
    CHECK(as_json.find(R"("content":[{"type":"text")") != std::string::npos);
    CHECK(json::message_from_json(as_json).content_parts_json == parts);
    // Spacing is normalised, strings are not.
    Message spaced = msg(Role::user);
    spaced.content_parts_json = R"([ {"type" : "text", "text" : "  two  spaces  "} ])";
    CHECK(messages.append("u", c.id, spaced).content_parts_json == R"([{"type":"text","text":"  two  spaces  "}])");
    // The estimate counts text parts only: 29 bytes of text + 4.
    Message counted = msg(Role::user);
    counted.content_parts_json = R"([{"type":"text","text":"0123456789012345678901234567"},)"
                                 R"({"type":"image_url","image_url":{"url":"https://x.test/big.png"}}])";
    CHECK(estimate_tokens(counted) == (28 + 3) / 4 + 4);

    const auto field = [&](Role role, std::string p, std::string content = {}) {
        return cstest::invalid_field([&] {
            Message bad = msg(role, content);
            bad.content_parts_json = p;
            messages.append_batch("u", c.id, {msg(Role::user, "fine"), bad});
        });
    };
    CHECK(field(Role::user, R"([{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"ftp://x"}}])") ==
          "messages[1].content[1].image_url.url");
    CHECK(field(Role::user, R"([{"type":"video"}])") == "messages[1].content[0].type");
    CHECK(field(Role::user, R"([{"type":"input_audio","input_audio":{"data":"x","format":"ogg"}}])") ==
          "messages[1].content[0].input_audio.format");
    CHECK(field(Role::user, R"([{"type":"file","file":{}}])") == "messages[1].content[0].file");
    CHECK(field(Role::user, "[]") == "messages[1].content");
    CHECK(field(Role::user, R"([{"type":"text","text":"a"}])", "and text") == "messages[1].content");
    CHECK(field(Role::assistant, R"([{"type":"image_url","image_url":{"url":"https://x"}}])") ==
          "messages[1].content[0].type");
    CHECK(field(Role::developer, R"([{"type":"text","text":1}])") == "messages[1].content[0].text");
    CHECK(messages.count("u", c.id) == 2);

    // A turn's user message as parts; a keyed retry with other parts is a Conflict.
    const ChatOrchestrator chat(db);
    TurnRequest r = cstest::request("u", c.id, "", "k-img");
    r.message_parts_json = R"([{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"https://x/1.png"}}])";
    std::string seen;
    const TurnResult t = chat.turn(r, [&](const AgentInput& in) {
        seen = in.history.back().content_parts_json.value_or("");
        return text_reply("a picture");
    });
    CHECK(seen == *r.message_parts_json);
    CHECK(chat.turn(r, [](const AgentInput&) { return text_reply("again"); }).replayed);
    r.message_parts_json = R"([{"type":"text","text":"other"}])";
    CHECK_THROWS_AS(chat.turn(r, [](const AgentInput&) { return text_reply("x"); }), Conflict);
    TurnRequest both = cstest::request("u", c.id, "text too");
    both.message_parts_json = R"([{"type":"text","text":"x"}])";
    CHECK(cstest::invalid_field([&] { chat.turn(both, [](const AgentInput&) { return text_reply("x"); }); }) == "message");
    TurnRequest bad = cstest::request("u", c.id, "");
    bad.message_parts_json = R"([{"type":"image_url","image_url":{"url":"http://plain"}}])";
    CHECK(cstest::invalid_field([&] { chat.turn(bad, [](const AgentInput&) { return text_reply("x"); }); }) ==
          "message_parts_json[0].image_url.url");
    CHECK(messages.load_all("u", c.id).at(t.user_seq - 1).content_parts_json.has_value());
}
