#include <doctest/doctest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <convstate/error.hpp>
#include <convstate/json.hpp>
#include <convstate/types.hpp>

#include "support.hpp"

using namespace convstate;

namespace {

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

using cstest::msg;
using cstest::tool_result;
Message full_message() {
    return Message{
        .role = Role::assistant,
        .content = "Emoji 👋🏽 🇫🇷 👨‍👩‍👧, CJK 你好世界 日本語 𠀋, combining e\u0301 a\u0308\u0323, RTL שלום, "
                   "\"quotes\", back\\slash, tab\t, newline\n, bell\x07, " +
                   std::string("nul\0byte", 8),
        .name = "helper-bot",
        .tool_calls = {{.id = "call_1",
                        .type = "function",
                        .name = "search",
                        .arguments = R"({"query":{"text":"寿司 🍣","filters":[{"field":"year","gte":2020},)"
                                     R"({"tags":["a","b"]}],"limit":null,"exact":true,"score":0.5}})"},
                       {.id = "call_2", .type = "function", .name = "noop", .arguments = "{ \"spaced\" : [ 1, 2 ] }"}},
        .tool_call_id = "call_0",
        .metadata_json = R"({"source":"test","nested":{"list":[1,2,{"deep":"✓"}],"flag":false,"none":null}})",
        .token_count = 42,
        .idempotency_key = "req-7f3a",
        .conversation_id = "0b8f3c1e-2d4a-4f6b-9c8d-7e6f5a4b3c2d",
        .seq = std::numeric_limits<std::int64_t>::max(),
        .created_at_us = 1'717'171'717'171'717,
    };
}

} // namespace

TEST_CASE("json: a message with every field set round-trips exactly") {
    const Message m = full_message();
    const std::string text = json::to_json(m);

    const Message back = json::message_from_json(text);
    CHECK(back.content == m.content);
    CHECK(back.tool_calls == m.tool_calls);
    CHECK(back.metadata_json == m.metadata_json);
    CHECK(back.seq == m.seq);
    CHECK(back == m);
    CHECK(json::to_json(back) == text);

    // OpenAI layout: arguments stay a JSON string, verbatim; UTF-8 is written as is.
    CHECK(text.starts_with(R"({"role":"assistant","content":"Emoji 👋🏽 🇫🇷)"));
    CHECK(contains(text, R"("tool_calls":[{"id":"call_1","type":"function","function":{"name":"search",)"
                         R"("arguments":"{\"query\":{\"text\":\"寿司 🍣\",)"));
    CHECK(contains(text, R"("arguments":"{ \"spaced\" : [ 1, 2 ] }")"));
    CHECK(contains(text, R"("metadata":{"source":"test",)"));
    CHECK(contains(text, R"("seq":9223372036854775807,"created_at_us":1717171717171717})"));

    CHECK(json::tool_calls_from_json(json::tool_calls_to_json(m.tool_calls)) == m.tool_calls);
    CHECK(json::tool_calls_to_json({m.tool_calls[1]}) ==
          R"([{"id":"call_2","type":"function","function":{"name":"noop","arguments":"{ \"spaced\" : [ 1, 2 ] }"}}])");
}

TEST_CASE("json: a minimal message round-trips and omits unset fields") {
    const Message m = msg(Role::user, "hi");
    const std::string text = json::to_json(m);
    CHECK(text == R"({"role":"user","content":"hi","metadata":{}})");
    CHECK(json::message_from_json(text) == m);
    CHECK(json::message_from_json(R"({"role":"system"})") == msg(Role::system));
}

TEST_CASE("json: optionals set to zero or empty are kept apart from unset ones") {
    Message m = msg(Role::user);
    m.name = "";
    m.token_count = 0;
    m.idempotency_key = "";
    const std::string text = json::to_json(m);
    CHECK(text == R"({"role":"user","content":"","name":"","metadata":{},"token_count":0,"idempotency_key":""})");
    CHECK(json::message_from_json(text) == m);
}

TEST_CASE("json: a tool message round-trips") {
    const Message m = tool_result(R"({"temperature":18,"unit":"celsius"})", "call_abc123");
    const std::string text = json::to_json(m);
    CHECK(text == R"({"role":"tool","content":"{\"temperature\":18,\"unit\":\"celsius\"}",)"
                  R"("tool_call_id":"call_abc123","metadata":{}})");
    CHECK(json::message_from_json(text) == m);
}

TEST_CASE("json: a list of messages round-trips") {
    const std::vector<Message> list{full_message(), msg(Role::user, "hi"), tool_result("ok", "call_1")};
    CHECK(json::messages_from_json(json::to_json(list)) == list);
    CHECK(json::to_json(std::vector<Message>{}) == "[]");
    CHECK(json::messages_from_json("[]").empty());
}

TEST_CASE("json: conversations and pages round-trip") {
    const Conversation a{.id = "c-1",
                         .user_id = "user 👤",
                         .title = "Trip to 東京",
                         .metadata_json = R"({"tags":["travel"],"pinned":true})",
                         .last_seq = 12,
                         .created_at_us = 1'700'000'000'000'000,
                         .updated_at_us = 1'700'000'000'123'456};
    Conversation b;
    b.id = "c-2";
    b.user_id = "u";

    const std::string text = json::to_json(a);
    CHECK(text == R"({"id":"c-1","user_id":"user 👤","title":"Trip to 東京","metadata":{"tags":["travel"],"pinned":true},)"
                  R"("last_seq":12,"created_at_us":1700000000000000,"updated_at_us":1700000000123456,"external_key":null,"forked_from":null})");
    CHECK(json::conversation_from_json(text) == a);
    CHECK(json::conversation_from_json(json::to_json(b)) == b);

    // There is no page decoder: a page is exactly its items' encodings plus the cursor.
    CHECK(json::to_json(ConversationPage{.items = {a, b}, .next_cursor = "cur-9"}) ==
          R"({"items":[)" + text + "," + json::to_json(b) + R"(],"next_cursor":"cur-9"})");
    CHECK(json::to_json(ConversationPage{}) == R"({"items":[],"next_cursor":null})");
}

TEST_CASE("json: null or missing content decodes as empty; null optionals as unset") {
    const Message call = json::message_from_json(
        R"({"role":"assistant","content":null,"tool_calls":[{"id":"call_1","function":{"name":"f","arguments":"{}"}}]})");
    CHECK(call.content == "");
    REQUIRE(call.tool_calls.size() == 1);
    CHECK(call.tool_calls[0] == ToolCall{.id = "call_1", .type = "function", .name = "f", .arguments = "{}"});
    CHECK(contains(json::to_json(call), R"("content":"")"));

    CHECK(json::message_from_json(R"({"role":"assistant"})").content == "");

    // What the OpenAI Python SDK's model_dump() produces for a plain reply.
    const Message dumped = json::message_from_json(
        R"({"content":"Hello!","refusal":null,"role":"assistant","annotations":[],"audio":null,)"
        R"("function_call":null,"tool_calls":null,"name":null,"metadata":null,"token_count":null})");
    CHECK(dumped == msg(Role::assistant, "Hello!"));
}

TEST_CASE("json: decodes a real OpenAI chat request's messages") {
    const std::string request = R"([
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "name": "alice", "content": "What's the weather in Paris? ☔"},
        {"role": "assistant", "content": null, "refusal": null, "tool_calls": [
            {"id": "call_abc123", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris, France\",\"unit\":\"celsius\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temperature\": 18}"},
        {"role": "assistant", "content": "It is 18 °C in Paris.", "annotations": []}
    ])";
    Message user = msg(Role::user, "What's the weather in Paris? ☔");
    user.name = "alice";
    Message call = msg(Role::assistant);
    call.tool_calls = {{.id = "call_abc123",
                        .type = "function",
                        .name = "get_weather",
                        .arguments = R"({"location":"Paris, France","unit":"celsius"})"}};
    const std::vector<Message> expected{
        msg(Role::system, "You are a helpful assistant."),
        user,
        call,
        tool_result(R"({"temperature": 18})", "call_abc123"),
        msg(Role::assistant, "It is 18 °C in Paris."),
    };
    const std::vector<Message> got = json::messages_from_json(request);
    REQUIRE(got.size() == expected.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        CAPTURE(i);
        CHECK(got[i] == expected[i]);
    }
}

TEST_CASE("json: metadata is normalised to compact JSON as boost::json::serialize writes it") {
    const Message m = json::message_from_json(R"({"role":"user","metadata": { "b" : [ 1, 2 ], "a" : {"x" : "y"} }})");
    CHECK(m.metadata_json == R"({"b":[1,2],"a":{"x":"y"}})");
    Message spaced = msg(Role::user);
    spaced.metadata_json = "{ \"a\" : 1 }";
    CHECK(json::message_from_json(json::to_json(spaced)).metadata_json == R"({"a":1})");
    CHECK(json::conversation_from_json(R"({"id":"c","metadata":{ "k" : "v" }})").metadata_json == R"({"k":"v"})");
    CHECK(json::conversation_from_json(R"({"id":"c"})").metadata_json == "{}");
}

// Found by tests/fuzz/fuzz_json.cpp: Boost.JSON 1.81 reads "6.66666E37" one unit in the last
// place off, so metadata drifted on every decode/encode pass, and the library refused the text
// it had printed itself as "cannot be stored exactly".
TEST_CASE("json: numbers in metadata read back exactly, however often they pass through") {
    const Message first = json::message_from_json(R"({"role":"user","content":"x","metadata":{"a":6666660e31}})");
    CHECK(first.metadata_json == R"({"a":6.66666E37})");
    Message m = first;
    for (int i = 0; i < 3; ++i) m = json::message_from_json(json::to_json(m));
    CHECK(m == first);
    // The printed form is accepted as input too.
    CHECK(json::message_from_json(R"({"role":"user","metadata":{"a":6.66666E37,"b":[0.1,1e-300,-2.5E-7]}})")
              .metadata_json == R"({"a":6.66666E37,"b":[1E-1,1E-300,-2.5E-7]})");
    // Stored and loaded, the number is the one sent.
    cstest::Fixture fx;
    const Conversation c = fx.store.create("u");
    fx.messages.append("u", c.id, first);
    CHECK(fx.messages.load_all("u", c.id).front().metadata_json == first.metadata_json);
}

TEST_CASE("json: malformed input is InvalidArgument naming the exact field") {
    const auto message = [](std::string text) { return [text] { json::message_from_json(text); }; };
    const auto messages = [](std::string text) { return [text] { json::messages_from_json(text); }; };
    const auto calls = [](std::string text) { return [text] { json::tool_calls_from_json(text); }; };
    const auto conversation = [](std::string text) { return [text] { json::conversation_from_json(text); }; };
    const auto with_call = [](const std::string& call) {
        return R"({"role":"assistant","tool_calls":[)" + call + "]}";
    };
    const std::string good_call = R"({"id":"c0","type":"function","function":{"name":"f","arguments":"{}"}})";

    struct Case {
        const char* name;
        std::function<void()> attempt;
        std::string field;
    };
    const std::vector<Case> cases{
        {"bad JSON text", message(R"({"role": "user",)"), "json"},
        {"trailing garbage", message(R"({"role":"user"} x)"), "json"},
        {"empty text", message(""), "json"},
        {"non-object", message(R"(["user"])"), "message"},
        {"missing role", message(R"({"content":"hi"})"), "role"},
        {"unknown role", message(R"({"role":"wizard"})"), "role"},
        {"role a number", message(R"({"role":1})"), "role"},
        {"content a number", message(R"({"role":"user","content":42})"), "content"},
        {"name a number", message(R"({"role":"user","name":7})"), "name"},
        {"tool_call_id a bool", message(R"({"role":"tool","tool_call_id":true})"), "tool_call_id"},
        {"idempotency_key a number", message(R"({"role":"user","idempotency_key":1})"), "idempotency_key"},
        {"conversation_id an object", message(R"({"role":"user","conversation_id":{}})"), "conversation_id"},
        {"tool_calls not an array", message(R"({"role":"assistant","tool_calls":{}})"), "tool_calls"},
        {"tool call not an object", message(with_call(good_call + R"(,"c1")")), "tool_calls[1]"},
        {"tool call missing id", message(with_call(R"({"function":{"name":"f","arguments":"{}"}})")), "tool_calls[0].id"},
        {"tool call missing function", message(with_call(R"({"id":"c0","type":"function"})")), "tool_calls[0].function"},
        {"tool call function a string", message(with_call(R"({"id":"c0","function":"f"})")), "tool_calls[0].function"},
        {"second tool call name a number",
         message(with_call(good_call + R"(,{"id":"c1","function":{"name":5,"arguments":"{}"}})")),
         "tool_calls[1].function.name"},
        {"arguments not valid JSON",
         message(with_call(R"({"id":"c0","function":{"name":"f","arguments":"{\"a\": "}})")),
         "tool_calls[0].function.arguments"},
        {"arguments an object, not a string",
         message(with_call(R"({"id":"c0","function":{"name":"f","arguments":{}}})")),
         "tool_calls[0].function.arguments"},
        {"arguments missing", message(with_call(R"({"id":"c0","function":{"name":"f"}})")),
         "tool_calls[0].function.arguments"},
        {"type other",
         message(with_call(R"({"id":"c0","type":"other","function":{"name":"f","arguments":"{}"}})")),
         "tool_calls[0].type"},
        {"metadata an array", message(R"({"role":"user","metadata":[1,2]})"), "metadata"},
        {"metadata a string", message(R"({"role":"user","metadata":"{}"})"), "metadata"},
        {"seq a string", message(R"({"role":"user","seq":"3"})"), "seq"},
        {"token_count a float", message(R"({"role":"user","token_count":1.5})"), "token_count"},
        {"token_count an integral float", message(R"({"role":"user","token_count":12.0})"), "token_count"},
        {"seq just past int64", message(R"({"role":"user","seq":9223372036854775808})"), "seq"},
        {"created_at_us past uint64", message(R"({"role":"user","created_at_us":18446744073709551616})"),
         "created_at_us"},
        {"messages not an array", messages(R"({"role":"user"})"), "messages"},
        {"messages bad JSON", messages("[{]"), "json"},
        {"message element not an object", messages(R"([{"role":"user"},3])"), "messages[1]"},
        {"message element role unknown", messages(R"([{"role":"user"},{"role":"x"}])"), "messages[1].role"},
        {"message element nested tool call",
         messages("[" + with_call(good_call + R"(,{"id":"c1","function":{"arguments":"{}"}})") + "]"),
         "messages[0].tool_calls[1].function.name"},
        {"tool calls not an array", calls(good_call), "tool_calls"},
        {"tool calls id a number", calls(R"([{"id":1,"function":{"name":"f","arguments":"{}"}}])"), "tool_calls[0].id"},
        {"conversation not an object", conversation("[]"), "conversation"},
        {"conversation bad JSON", conversation("{"), "json"},
        {"conversation title a number", conversation(R"({"id":"c","title":3})"), "title"},
        {"conversation metadata an array", conversation(R"({"id":"c","metadata":[]})"), "metadata"},
        {"conversation last_seq a float", conversation(R"({"id":"c","last_seq":2.5})"), "last_seq"},
        {"encoding metadata that is not an object",
         [] {
             Message m = msg(Role::user);
             m.metadata_json = "[1]";
             json::to_json(m);
         },
         "metadata"},
    };
    for (const Case& k : cases) {
        CAPTURE(k.name);
        CHECK(cstest::invalid_field([&] { k.attempt(); }) == k.field);
    }
}

TEST_CASE("json: invalid JSON text reports the parser's message") {
    try {
        json::message_from_json(R"({"role": )");
        FAIL_CHECK("no error");
    } catch (const InvalidArgument& e) {
        CHECK(e.field() == "json");
        const std::string what = e.what();
        CHECK(what.starts_with("invalid json: "));
        CHECK(what.size() > std::string("invalid json: ").size());
    }
}
