// The usage ledger: what each reply's model reported, stored with the reply, summed per
// conversation and per user since a time.

#include <doctest/doctest.h>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::request;
using cstest::text_reply;

namespace {

AgentReply reply_with(std::optional<std::string> model, std::int64_t prompt, std::int64_t completion,
                      std::optional<std::int64_t> cached = std::nullopt) {
    AgentReply r = text_reply("ok");
    r.usage = Usage{std::move(model), prompt, completion, cached, std::nullopt};
    return r;
}

} // namespace

TEST_CASE("usage: stored with each reply, summed per conversation, per model and per user since") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const std::int64_t start = store.create("u").created_at_us;
    const TurnResult a = chat.turn(request("u", std::nullopt, "one"), [](const AgentInput&) {
        return reply_with("gpt-x", 100, 20, 60);
    });
    const std::uint64_t before = db.stats().statements;
    chat.turn(request("u", a.conversation_id, "two"), [](const AgentInput&) { return reply_with("gpt-x", 150, 30); });
    if (cstest::pg_fast_path()) CHECK(db.stats().statements - before == 2); // usage rides in the reply's statement
    const PendingTurn p = chat.begin_turn(request("u", a.conversation_id, "three", "k-3"));
    chat.complete_turn("u", p.token, reply_with(std::nullopt, 10, 5));
    chat.complete_turn("u", p.token, reply_with(std::nullopt, 10, 5)); // a replay records nothing more
    chat.turn(request("u", a.conversation_id, "three", "k-3"), [](const AgentInput&) -> AgentReply {
        throw std::runtime_error("not called: replayed");
    });
    chat.turn(request("u", a.conversation_id, "no usage"), [](const AgentInput&) { return text_reply("ok"); });

    const UsageReport r = store.usage("u", a.conversation_id);
    CHECK(r.total == UsageTotals{std::nullopt, 3, 260, 55, 60, 0});
    REQUIRE(r.by_model.size() == 2);
    CHECK(r.by_model[0] == UsageTotals{std::nullopt, 1, 10, 5, 0, 0}); // the unnamed model first
    CHECK(r.by_model[1] == UsageTotals{std::string("gpt-x"), 2, 250, 50, 60, 0});
    CHECK(json::to_json(r).find(R"("by_model":[{"replies":1,)") != std::string::npos);

    const TurnResult other = chat.turn(request("u", std::nullopt, "elsewhere"), [](const AgentInput&) {
        return reply_with("gpt-y", 7, 3);
    });
    CHECK(store.usage_since("u", start).total.replies == 4);
    CHECK(store.usage_since("u", start).total.prompt_tokens == 267);
    CHECK(store.usage_since("u", INT64_MAX).total.replies == 0);
    CHECK(store.usage_since("nobody", start).by_model.empty());
    CHECK_THROWS_AS(store.usage("intruder", a.conversation_id), NotFound);

    // Undoing a reply keeps its usage (the tokens were spent); a fork starts with none; deleting
    // the conversation removes it.
    CHECK(messages.truncate("u", a.conversation_id, 0) > 0);
    CHECK(store.usage("u", a.conversation_id).total.replies == 3);
    chat.turn(request("u", a.conversation_id, "after undo"), [](const AgentInput&) { return reply_with("gpt-x", 1, 1); });
    CHECK(store.usage("u", a.conversation_id).total.replies == 4);
    CHECK(store.usage("u", store.fork("u", a.conversation_id, 2).id).total.replies == 0);
    store.remove("u", a.conversation_id);
    CHECK(store.usage_since("u", start).total.replies == 1);
    store.remove_all("u");
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_usage") == 0);
    (void)other;
}

TEST_CASE("usage: invalid counts name the field and store nothing") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const PendingTurn p = chat.begin_turn(request("u", std::nullopt, "q"));
    CHECK(cstest::invalid_field([&] { chat.complete_turn("u", p.token, reply_with("m", -1, 0)); }) ==
          "reply.usage.prompt_tokens");
    AgentReply bad_model = reply_with(std::string(300, 'm'), 1, 1);
    CHECK(cstest::invalid_field([&] { chat.complete_turn("u", p.token, bad_model); }) == "reply.usage.model");
    CHECK_THROWS_AS(chat.turn(request("u", p.conversation_id, "x"), [](const AgentInput&) { return reply_with("m", 1, -5); }),
                    AgentError);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_usage") == 0);
    CHECK(cstest::invalid_field([] { json::reply_from_json(R"({"content":"x","usage":{"prompt":1}})"); }) ==
          "reply.usage.prompt");
    const AgentReply parsed = json::reply_from_json(R"({"content":"x","usage":{"model":"m","prompt_tokens":3}})");
    REQUIRE(parsed.usage);
    CHECK(parsed.usage->prompt_tokens == 3);
    chat.complete_turn("u", p.token, parsed);
    CHECK(store.usage("u", p.conversation_id).total.prompt_tokens == 3);
}
