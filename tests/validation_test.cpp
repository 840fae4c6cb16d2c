#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "support.hpp"

using namespace convstate;

TEST_CASE("validation: bad input is InvalidArgument naming the field, and nothing is written") {
    DatabaseOptions options;
    options.limits.max_content_bytes = 1000;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u", {.title = "t"});
    messages.append("u", c.id, {.role = Role::user, .content = "existing"});

    auto msg = [](Role role, std::string content) { return Message{.role = role, .content = std::move(content)}; };
    auto with = [&](auto&& edit) {
        Message m = msg(Role::user, "fine");
        edit(m);
        return m;
    };
    auto append = [&](Message m) { return [&, m] { messages.append("u", c.id, m); }; };
    const std::string invalid_utf8 = "bad \xC3\x28 utf8", overlong = "\xC0\xAF", surrogate = "\xED\xA0\x80";
    const std::string with_nul("nul\0byte", 8);

    struct Case {
        const char* name;
        std::function<void()> attempt;
        std::string field;
    };
    const std::vector<Case> cases{
        {"empty user id", [&] { messages.append("", c.id, msg(Role::user, "x")); }, "user_id"},
        {"over-long user id", [&] { messages.append(std::string(256, 'u'), c.id, msg(Role::user, "x")); }, "user_id"},
        {"user id with invalid UTF-8", [&] { store.create(invalid_utf8); }, "user_id"},
        {"empty conversation id", [&] { messages.append("u", "", msg(Role::user, "x")); }, "conversation_id"},
        {"unknown role name", [&] { role_from_string("wizard"); }, "role"},
        {"out-of-range role value", append(msg(static_cast<Role>(42), "x")), "role"},
        {"tool message without tool_call_id", append(msg(Role::tool, "42")), "tool_call_id"},
        {"tool_call_id on a user message", append(with([](Message& m) { m.tool_call_id = "call_1"; })), "tool_call_id"},
        {"tool calls on a user message",
         append(with([](Message& m) { m.tool_calls = {{.id = "c", .type = "function", .name = "f", .arguments = "{}"}}; })),
         "tool_calls"},
        {"tool-call arguments that are not JSON",
         append(with([](Message& m) {
             m.role = Role::assistant;
             m.tool_calls = {{.id = "c", .type = "function", .name = "f", .arguments = "{\"a\": "}};
         })),
         "tool_calls[0].function.arguments"},
        {"tool call without a name",
         append(with([](Message& m) {
             m.role = Role::assistant;
             m.tool_calls = {{.id = "c1", .type = "function", .name = "f", .arguments = "{}"},
                             {.id = "c2", .type = "function", .name = "", .arguments = "{}"}};
         })),
         "tool_calls[1].function.name"},
        {"tool call of another type",
         append(with([](Message& m) {
             m.role = Role::assistant;
             m.tool_calls = {{.id = "c", .type = "retrieval", .name = "f", .arguments = "{}"}};
         })),
         "tool_calls[0].type"},
        {"tool calls JSON that is malformed", [&] { json::tool_calls_from_json(R"([{"id": "c", "function": 3}])"); },
         "tool_calls[0].function"},
        {"message metadata that is an array", append(with([](Message& m) { m.metadata_json = "[1,2]"; })), "metadata"},
        {"message metadata that is not JSON", append(with([](Message& m) { m.metadata_json = "{oops"; })), "metadata"},
        {"conversation metadata that is a number", [&] { store.create("u", {.title = "", .metadata_json = "3"}); }, "metadata"},
        {"set_metadata with a string", [&] { store.set_metadata("u", c.id, "\"s\""); }, "metadata"},
        {"content with invalid UTF-8", append(msg(Role::user, invalid_utf8)), "content"},
        {"content with an overlong encoding", append(msg(Role::user, overlong)), "content"},
        {"content with a UTF-16 surrogate", append(msg(Role::user, surrogate)), "content"},
        {"content with a NUL byte", append(msg(Role::user, with_nul)), "content"},
        {"content over the configured limit", append(msg(Role::user, std::string(1001, 'x'))), "content"},
        {"title with a NUL byte", [&] { store.rename("u", c.id, with_nul); }, "title"},
        {"title with invalid UTF-8", [&] { store.create("u", {.title = invalid_utf8}); }, "title"},
        {"name that is empty", append(with([](Message& m) { m.name = ""; })), "name"},
        {"negative token count", append(with([](Message& m) { m.token_count = -1; })), "token_count"},
        {"empty idempotency key", append(with([](Message& m) { m.idempotency_key = ""; })), "idempotency_key"},
        {"empty batch", [&] { messages.append_batch("u", c.id, {}); }, "messages"},
        {"second message of a batch", [&] { messages.append_batch("u", c.id, {msg(Role::user, "ok"), msg(Role::user, with_nul)}); },
         "messages[1].content"},
    };
    const long long messages_before = cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages");
    const long long conversations_before = cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations");
    for (const Case& k : cases) {
        CAPTURE(k.name);
        try {
            k.attempt();
            FAIL("no error");
        } catch (const InvalidArgument& e) {
            CHECK(e.field() == k.field);
            CHECK(std::string(e.what()).find(k.field) != std::string::npos);
        }
    }
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages") == messages_before);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations") == conversations_before);
    CHECK(store.get("u", c.id).title == "t");
    CHECK(store.get("u", c.id).last_seq == 1);
}
