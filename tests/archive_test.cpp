// Export and import (Archive): random conversations round-trip byte for byte into an empty
// database; import is idempotent, atomic per conversation, and names the field of a bad line.

#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <convstate/convstate.hpp>

#include "support.hpp"

using namespace convstate;
using cstest::request;
using cstest::text_reply;

namespace {

// Text from a pool that stresses encoders: quotes, backslashes, control characters, a NUL-free
// mix of 1- to 4-byte UTF-8, JSON-looking text.
std::string random_text(std::mt19937& rng, std::size_t max_len, bool allow_empty = true) {
    static const std::vector<std::string> pieces = {
        "a", "Z", " ", "\"", "\\", "\n", "\t", "\r", "\x01", "\x1f", "\x7f", "é", "ß", "中", "文", "😀", "𝄞",
        "\xe2\x80\xa8", "{\"k\":1}", "<b>", "'", "/", "\\u0041", "0", "-1.5e3", "null"};
    const std::size_t len = std::uniform_int_distribution<std::size_t>(allow_empty ? 0 : 1, max_len)(rng);
    std::string s;
    for (std::size_t i = 0; i < len; ++i) s += pieces[rng() % pieces.size()];
    return s;
}

std::string random_id(std::mt19937& rng, const char* prefix) { return fmt::format("{}-{}", prefix, rng() % 1000000); }

// A JSON object with nested values: integers, doubles, strings, booleans, null, arrays.
std::string random_metadata(std::mt19937& rng, int depth = 0) {
    const int n = static_cast<int>(rng() % 4);
    std::string out = "{";
    for (int i = 0; i < n; ++i) {
        if (i) out += ",";
        out += fmt::format("\"k{}{}\":", i, rng() % 2 ? "é" : "");
        switch (rng() % (depth < 2 ? 7 : 5)) {
        case 0: out += std::to_string(static_cast<long long>(rng()) - 2000000000LL); break;
        case 1: out += fmt::format("{}", std::uniform_real_distribution<double>(-1e6, 1e6)(rng)); break;
        case 2: out += "\"" + std::string(rng() % 2 ? "x\\\"y\\n" : "\\u00e9\\ud83d\\ude00") + "\""; break;
        case 3: out += rng() % 2 ? "true" : "null"; break;
        case 4: out += "0.1"; break;
        case 5: out += random_metadata(rng, depth + 1); break;
        default: out += "[1,2.5,\"three\",[],{}]"; break;
        }
    }
    return out + "}";
}

Message random_message(std::mt19937& rng, Role role, int index) {
    Message m = cstest::msg(role, random_text(rng, 12));
    if (rng() % 3 == 0) m.metadata_json = random_metadata(rng);
    if (rng() % 4 == 0) m.name = random_id(rng, "name");
    if (rng() % 4 == 0) m.token_count = static_cast<std::int64_t>(rng() % 5000);
    if (rng() % 3 == 0) m.idempotency_key = fmt::format("key-{}-{}", index, rng() % 1000);
    if (role == Role::user && rng() % 5 == 0) {
        m.content.clear();
        m.content_parts_json = fmt::format(R"([{{"type":"text","text":"{}"}},{{"type":"image_url","image_url":{{"url":"https://example.com/{}.png"}}}}])",
                                           "part \\\"one\\\"", rng() % 100);
    }
    return m;
}

// A conversation with everything a host can store on it; returns its id.
std::string random_conversation(std::mt19937& rng, const Database& db, const std::string& user, int n) {
    const ConversationStore store(db);
    const MessageRepository messages(db);
    const ChatOrchestrator chat(db);
    std::string id;
    switch (rng() % 3) {
    case 0: {
        NewConversation spec;
        spec.title = random_text(rng, 8);
        spec.metadata_json = random_metadata(rng);
        if (rng() % 2) spec.external_key = fmt::format("ext-{}", n);
        id = store.create(user, spec).id;
        break;
    }
    default: {
        // Created by a keyed turn (its key makes a retry a replay), with a usage row.
        TurnRequest req = request(user, std::nullopt, random_text(rng, 10, false), fmt::format("turn-{}", n));
        id = chat.turn(req, [&](const AgentInput&) {
                     AgentReply r = text_reply(random_text(rng, 10));
                     r.usage = Usage{rng() % 2 ? std::optional<std::string>("gpt-é") : std::nullopt,
                                     static_cast<std::int64_t>(rng() % 900), std::nullopt,
                                     static_cast<std::int64_t>(rng() % 3), std::nullopt};
                     return r;
                 }).conversation_id;
        break;
    }
    }
    const int rounds = static_cast<int>(rng() % 4);
    for (int r = 0; r < rounds; ++r) {
        std::vector<Message> batch;
        batch.push_back(random_message(rng, rng() % 5 == 0 ? Role::system : Role::user, r * 10));
        if (rng() % 2) {
            Message call = random_message(rng, Role::assistant, r * 10 + 1);
            call.tool_calls = {ToolCall{fmt::format("call_{}", r), "function", "lookup", R"({ "q" : "é\n", "n": [1, 2.50] })"}};
            batch.push_back(call);
            Message result = random_message(rng, Role::tool, r * 10 + 2);
            result.tool_call_id = fmt::format("call_{}", r);
            result.content_parts_json.reset();
            batch.push_back(result);
        }
        batch.push_back(random_message(rng, Role::assistant, r * 10 + 3));
        for (Message& m : batch)
            if (m.role != Role::user) m.content_parts_json.reset();
        messages.append_batch(user, id, batch);
    }
    const std::int64_t last = store.get(user, id).last_seq;
    if (last >= 2 && rng() % 3 == 0) messages.add_summary(user, id, last - 1, random_text(rng, 10, false), random_metadata(rng));
    if (last >= 3 && rng() % 4 == 0) {
        // Truncating to after a tool call would split a group; only at a user message.
        const std::vector<Message> all = messages.load_all(user, id);
        for (std::int64_t at = last - 1; at >= 1; --at)
            if (all[static_cast<std::size_t>(at)].role == Role::user) {
                messages.truncate(user, id, at);
                break;
            }
    }
    if (last >= 1 && rng() % 5 == 0) {
        const std::vector<Message> all = messages.load_all(user, id);
        if (!all.empty() && all.size() >= 1 && (all.size() == 1 || all[1].role != Role::tool))
            store.fork(user, id, 1, {});
    }
    return id;
}

std::vector<std::string> export_all(const Archive& archive, const ExportOptions& options = {}) {
    std::vector<std::string> lines;
    archive.export_conversations(options, [&](std::string_view line) { lines.emplace_back(line); });
    return lines;
}

} // namespace

TEST_CASE("archive: random conversations round-trip byte for byte into an empty database; a second import stores nothing") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    cstest::FreshDb raw2;
    const Database target = cstest::open_fresh(&raw2);
    std::mt19937 rng(20261203);
    const int conversations = cstest::is_postgres() || cstest::is_mariadb() ? 60 : 200;
    std::vector<std::string> users = {"u-one", "u-two", "u-é", "u-three"};
    for (int i = 0; i < conversations; ++i) random_conversation(rng, db, users[rng() % users.size()], i);

    // One long conversation: import writes messages many rows per statement, the rest singly.
    {
        const std::string id = store.create("u-two").id;
        std::vector<Message> batch;
        for (int i = 0; i < 123; ++i) batch.push_back(random_message(rng, i % 2 ? Role::assistant : Role::user, 1000 + i));
        for (Message& m : batch)
            if (m.role != Role::user) m.content_parts_json.reset();
        messages.append_batch("u-two", id, batch);
    }
    const TurnResult known = ChatOrchestrator(db).turn(request("u-one", std::nullopt, "replay me", "known-key"),
                                                       [](const AgentInput&) { return text_reply("once"); });
    const std::vector<std::string> lines = export_all(Archive(db));
    REQUIRE(lines.size() == static_cast<std::size_t>(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations")));
    std::int64_t stored = 0;
    for (const std::string& line : lines) {
        const ImportResult r = Archive(target).import_conversation(line);
        CHECK(r.imported);
        stored += r.messages;
    }
    CHECK(stored == cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_messages"));
    MESSAGE(fmt::format("round trip on {}: {} conversations, {} messages", cstest::backend_name(), lines.size(), stored));
    const std::vector<std::string> again = export_all(Archive(target));
    REQUIRE(again.size() == lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) CHECK_MESSAGE(again[i] == lines[i], "line " << i);

    // Through the API too: every conversation, message, summary and usage report is equal.
    const ConversationStore store2(target);
    const MessageRepository messages2(target);
    for (const std::string& user : users) {
        ConversationPage page = store.list(user, {.cursor = "", .limit = 100});
        for (const Conversation& c : page.items) {
            CHECK(store2.get(user, c.id) == c);
            CHECK(messages2.load_all(user, c.id) == messages.load_all(user, c.id));
            CHECK(messages2.summaries(user, c.id) == messages.summaries(user, c.id));
            CHECK(store2.usage(user, c.id) == store.usage(user, c.id));
            if (c.external_key) CHECK(store2.get_by_key(user, *c.external_key).id == c.id);
        }
    }
    // The keyed turn that created a conversation replays on the imported copy.
    const ChatOrchestrator chat2(target);
    bool called = false;
    const TurnResult replay = chat2.turn(request("u-one", std::nullopt, "replay me", "known-key"), [&](const AgentInput&) {
        called = true;
        return text_reply("never");
    });
    CHECK_FALSE(called);
    CHECK(replay.replayed);
    CHECK(replay.conversation_id == known.conversation_id);

    // Idempotent: importing everything again stores nothing.
    for (const std::string& line : lines) CHECK_FALSE(Archive(target).import_conversation(line).imported);
    CHECK(cstest::query_number(raw2, "SELECT COUNT(*) FROM convstate_messages") == stored);

    // Filters: one user; updated since.
    const std::vector<std::string> one = export_all(Archive(db), {.user_id = "u-two", .updated_since_us = 0});
    CHECK(static_cast<long long>(one.size()) ==
          cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_conversations WHERE user_id = 'u-two'"));
    CHECK(export_all(Archive(db), {.user_id = std::nullopt, .updated_since_us = INT64_C(1) << 62}).empty());
}

TEST_CASE("archive: a bad line names its field, and nothing of its conversation is written") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    cstest::FreshDb raw2;
    const Database target = cstest::open_fresh(&raw2);
    const ChatOrchestrator chat(db);
    const TurnResult t = chat.turn(request("u", std::nullopt, "hello"), [](const AgentInput&) {
        AgentReply r = text_reply("hi");
        r.usage = Usage{"m", 1, 2, std::nullopt, std::nullopt};
        return r;
    });
    messages.append("u", t.conversation_id, cstest::msg(Role::user, "more"));
    messages.add_summary("u", t.conversation_id, 2, "greeting");
    const std::vector<std::string> lines = export_all(Archive(db));
    REQUIRE(lines.size() == 1);
    const std::string good = lines[0];

    auto replaced = [&](const std::string& from, const std::string& to) {
        std::string s = good;
        const auto at = s.find(from);
        REQUIRE_MESSAGE(at != std::string::npos, from);
        return s.replace(at, from.size(), to);
    };
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"{not json", "json"},
        {"[1,2]", "json"},
        {replaced("\"version\":1", "\"version\":2"), "version"},
        {replaced("\"version\":1,", "\"verzion\":1,\"version\":1,"), "verzion"},
        // Found by fuzz_import: an empty unknown key is named, not left as an empty field.
        {replaced("\"version\":1,", "\"\":{},\"version\":1,"), "\"\""},
        {replaced("\"version\":1,", "\"" + std::string(70, 'k') + "\":0,\"version\":1,"), std::string(64, 'k')},
        {replaced("\"title\":\"\"", "\"title\":5"), "conversation.title"},
        {replaced("\"last_seq\":3", "\"last_seq\":4"), "messages"},
        {replaced("\"role\":\"user\",\"content\":\"more\"", "\"role\":\"robot\",\"content\":\"more\""), "messages[2].role"},
        {replaced("\"seq\":2", "\"seq\":7"), "messages[1].seq"},
        {replaced("\"covers_through_seq\":2", "\"covers_through_seq\":9"), "summaries[0].covers_through_seq"},
        {replaced("\"prompt_tokens\":1", "\"prompt_tokens\":-1"), "usage[0].prompt_tokens"},
        {replaced("\"user_id\":\"u\"", "\"user_id\":\"\""), "user_id"},
        {replaced("\"truncations\":0", "\"truncations\":\"x\""), "truncations"},
    };
    for (const auto& [line, field] : bad) {
        CAPTURE(line);
        CHECK(cstest::invalid_field([&] { Archive(target).import_conversation(line); }) == field);
        CHECK(cstest::query_number(raw2, "SELECT COUNT(*) FROM convstate_conversations") == 0);
        CHECK(cstest::query_number(raw2, "SELECT COUNT(*) FROM convstate_messages") == 0);
        CHECK(cstest::query_number(raw2, "SELECT COUNT(*) FROM convstate_summaries") == 0);
        CHECK(cstest::query_number(raw2, "SELECT COUNT(*) FROM convstate_usage") == 0);
    }
    CHECK(Archive(target).import_conversation(good).imported);
    CHECK(cstest::invalid_field([&] { Archive(db).export_conversations({.user_id = "", .updated_since_us = 0}, [](auto) {}); }) ==
          "user_id");
    CHECK(cstest::invalid_field([&] { Archive(db).export_conversations({.user_id = std::nullopt, .updated_since_us = -1}, [](auto) {}); }) ==
          "updated_since");
}
