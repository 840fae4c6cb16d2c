// libFuzzer target: the C ABI's JSON-taking functions against a real SQLite database (a file in
// a temporary directory, removed at exit).
//
// Each input runs on a conversation of its own, seeded with a few messages, and picks one
// operation: append, append_batch, a turn whose agent builds its reply from the input, a split
// turn completed with a reply decoded from the input, a turn with fuzzed options and window, or
// a conversation listing with a fuzzed cursor. After each, what is stored is read back and
// checked against what the call reported:
//  - CONVSTATE_OK: exactly the messages it names were added, dense seqs, every field as sent
//    (the C++ decoder of the same text says what was sent), byte for byte;
//  - CONVSTATE_INVALID_ARGUMENT: a field is named, and nothing was written;
//  - CONVSTATE_AGENT_ERROR: only the turn's user message was written;
//  - CONVSTATE_CONFLICT: only for an expected_last_seq that is not the conversation's;
//  - anything else is a defect.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <fuzzer/FuzzedDataProvider.h>

#include "convstate/chat_orchestrator.hpp"
#include "convstate/convstate.h"
#include "convstate/error.hpp"
#include "convstate/json.hpp"
#include "temp_dir.hpp"

namespace {

namespace json = convstate::json;
using convstate::Message;

convstate_db* db = nullptr;
std::filesystem::path dir;
const char* const user = "fuzz-user";

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_c_api: %s (last error: %s, field: %s)\n", what.c_str(), convstate_last_error(),
                 convstate_last_error_field());
    std::abort();
}

void remove_dir() {
    convstate_db_close(db);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// The text a call returned, freed; the pointer is reset for the next call (a failing call
// leaves it as it was).
std::string take(char*& p) {
    std::string s = p ? p : "";
    convstate_free(p);
    p = nullptr;
    return s;
}

std::vector<Message> stored(const std::string& id) {
    char* out = nullptr;
    if (convstate_message_load_all(db, user, id.c_str(), &out) != CONVSTATE_OK) fail("load_all failed");
    std::vector<Message> all = json::messages_from_json(take(out));
    for (std::size_t i = 0; i < all.size(); ++i)
        if (all[i].seq != static_cast<std::int64_t>(i + 1)) fail("seqs are not dense");
    return all;
}

// The fields a caller sends, as stored: everything but what the library sets.
bool same_as_sent(const Message& sent, const Message& got) {
    return sent.role == got.role && sent.content == got.content && sent.content_parts_json == got.content_parts_json &&
           sent.name == got.name && sent.tool_calls == got.tool_calls && sent.tool_call_id == got.tool_call_id &&
           sent.metadata_json == got.metadata_json && sent.token_count == got.token_count &&
           sent.idempotency_key == got.idempotency_key;
}

void expect_unchanged(const std::string& id, std::size_t before, const char* op) {
    if (stored(id).size() != before) fail(std::string(op) + ": refused, yet something was written");
}

void expect_refusal(convstate_status st, const std::string& id, std::size_t before, const char* op) {
    if (st != CONVSTATE_INVALID_ARGUMENT)
        fail(std::string(op) + ": unexpected status " + convstate_status_name(st));
    if (!convstate_last_error_field() || !*convstate_last_error_field())
        fail(std::string(op) + ": INVALID_ARGUMENT without a field");
    expect_unchanged(id, before, op);
}

// What the C++ decoder makes of a text, or nullopt if it refuses it.
template <class T, class Decode>
std::optional<T> decoded(const std::string& text, Decode decode) {
    try {
        return decode(text);
    } catch (const convstate::InvalidArgument&) {
        return std::nullopt;
    }
}

std::optional<std::int64_t> expected_seq(FuzzedDataProvider& in, std::int64_t last_seq) {
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
    case 0: return std::nullopt;
    case 1: return last_seq;
    default: return in.ConsumeIntegral<std::int64_t>();
    }
}

void check_append(convstate_status st, const std::string& id, const std::vector<Message>& before,
                  const std::optional<std::vector<Message>>& sent, const std::optional<std::int64_t>& expect,
                  const char* op) {
    const auto last_seq = static_cast<std::int64_t>(before.size());
    if (st == CONVSTATE_CONFLICT) {
        if (!expect || *expect == last_seq) fail(std::string(op) + ": CONFLICT without a stale expected_last_seq");
        return expect_unchanged(id, before.size(), op);
    }
    if (st != CONVSTATE_OK) return expect_refusal(st, id, before.size(), op);
    if (!sent) fail(std::string(op) + ": accepted what the JSON decoder refuses");
    if (expect && *expect != last_seq) fail(std::string(op) + ": stored despite a stale expected_last_seq");
    const std::vector<Message> after = stored(id);
    if (after.size() != before.size() + sent->size()) fail(std::string(op) + ": wrong number of messages stored");
    for (std::size_t i = 0; i < sent->size(); ++i)
        if (!same_as_sent((*sent)[i], after[before.size() + i])) fail(std::string(op) + ": a field changed on the way");
}

void append(FuzzedDataProvider& in, const std::string& id, const std::vector<Message>& before) {
    const std::optional<std::int64_t> expect = expected_seq(in, static_cast<std::int64_t>(before.size()));
    const std::string text = in.ConsumeRemainingBytesAsString();
    const auto sent = decoded<Message>(text.c_str(), json::message_from_json);
    char* out = nullptr;
    const convstate_status st =
        convstate_message_append(db, user, id.c_str(), text.c_str(), expect ? &*expect : nullptr, &out);
    take(out);
    check_append(st, id, before, sent ? std::optional(std::vector<Message>{*sent}) : std::nullopt, expect, "append");
}

void append_batch(FuzzedDataProvider& in, const std::string& id, const std::vector<Message>& before) {
    const std::optional<std::int64_t> expect = expected_seq(in, static_cast<std::int64_t>(before.size()));
    const std::string text = in.ConsumeRemainingBytesAsString();
    const auto sent = decoded<std::vector<Message>>(text.c_str(), json::messages_from_json);
    char* out = nullptr;
    const convstate_status st =
        convstate_message_append_batch(db, user, id.c_str(), text.c_str(), expect ? &*expect : nullptr, &out);
    take(out);
    check_append(st, id, before, sent, expect, "append_batch");
}

// The agent's reply, built through the convstate_reply_ functions from the input.
struct ReplyPlan {
    std::string content;
    std::optional<std::string> tool_calls, metadata, usage;
    std::vector<std::string> intermediate;
    bool fail_agent = false;
    int added = 0; // intermediate messages the reply took
};

int plan_agent(void* context, const char* history, const char*, const char*, convstate_reply* reply) {
    auto& plan = *static_cast<ReplyPlan*>(context);
    if (!history || !*history) fail("agent: no history");
    if (convstate_reply_set_content(reply, plan.content.c_str()) != CONVSTATE_OK) fail("agent: set_content refused");
    if (plan.tool_calls)
        if (const convstate_status st = convstate_reply_set_tool_calls(reply, plan.tool_calls->c_str()); st != CONVSTATE_OK)
            return st;
    for (const std::string& m : plan.intermediate) {
        if (const convstate_status st = convstate_reply_add_message(reply, m.c_str()); st != CONVSTATE_OK) return st;
        ++plan.added;
    }
    if (plan.metadata)
        if (const convstate_status st = convstate_reply_set_metadata(reply, plan.metadata->c_str()); st != CONVSTATE_OK)
            return st;
    if (plan.usage)
        if (const convstate_status st = convstate_reply_set_usage(reply, plan.usage->c_str()); st != CONVSTATE_OK)
            return st;
    return plan.fail_agent ? CONVSTATE_INTERNAL_ERROR : CONVSTATE_OK;
}

std::optional<std::string> maybe_string(FuzzedDataProvider& in, std::size_t max) {
    if (!in.ConsumeBool()) return std::nullopt;
    return in.ConsumeRandomLengthString(max);
}

// After a turn: what the status says was written, was.
void check_turn(convstate_status st, const std::string& id, const std::vector<Message>& before,
                const std::string& user_text, bool new_user_message, std::size_t outputs,
                const std::optional<std::string>& reply_content) {
    if (st == CONVSTATE_INVALID_ARGUMENT) return expect_refusal(st, id, before.size(), "turn");
    const std::vector<Message> after = stored(id);
    const std::size_t users = new_user_message ? 1 : 0;
    if (users && (after.size() <= before.size() || after[before.size()].role != convstate::Role::user ||
                  after[before.size()].content != user_text))
        fail("turn: the user message was not stored as sent");
    if (st == CONVSTATE_AGENT_ERROR) {
        if (after.size() != before.size() + users) fail("turn: a failed agent's output was stored");
        return;
    }
    if (st != CONVSTATE_OK) fail(std::string("turn: unexpected status ") + convstate_status_name(st));
    if (after.size() != before.size() + users + outputs) fail("turn: wrong number of messages stored");
    if (reply_content && after.back().content != *reply_content) fail("turn: the reply changed on the way");
}

void turn(FuzzedDataProvider& in, const std::string& id, const std::vector<Message>& before) {
    ReplyPlan plan;
    plan.fail_agent = in.ConsumeIntegralInRange<int>(0, 7) == 0;
    plan.tool_calls = maybe_string(in, 200);
    plan.metadata = maybe_string(in, 100);
    plan.usage = maybe_string(in, 100);
    for (int i = in.ConsumeIntegralInRange<int>(0, 3); i > 0; --i) plan.intermediate.push_back(in.ConsumeRandomLengthString(200));
    plan.content = in.ConsumeRandomLengthString(200);
    const std::string message = in.ConsumeRemainingBytesAsString();
    convstate_turn_options options = CONVSTATE_TURN_OPTIONS_INIT;
    options.conversation_id = id.c_str();
    char* out = nullptr;
    const convstate_status st = convstate_turn(db, user, message.c_str(), &options, plan_agent, &plan, &out);
    take(out);
    // (The C ABI takes C strings: what it got ends at the first NUL.)
    check_turn(st, id, before, message.c_str(), true, static_cast<std::size_t>(plan.added) + 1,
               std::string(plan.content.c_str()));
}

void split_turn(FuzzedDataProvider& in, const std::string& id, const std::vector<Message>& before) {
    const std::string message = in.ConsumeRandomLengthString(100);
    const std::string reply = in.ConsumeRemainingBytesAsString();
    convstate_turn_options options = CONVSTATE_TURN_OPTIONS_INIT;
    options.conversation_id = id.c_str();
    char* out = nullptr;
    convstate_status st = convstate_turn_begin(db, user, message.c_str(), &options, &out);
    const std::string begun = take(out);
    if (st == CONVSTATE_INVALID_ARGUMENT) return expect_refusal(st, id, before.size(), "turn_begin");
    if (st != CONVSTATE_OK) fail(std::string("turn_begin: unexpected status ") + convstate_status_name(st));
    const std::string token(boost::json::parse(begun).as_object().at("token").as_string());
    const auto sent = decoded<convstate::AgentReply>(reply.c_str(), json::reply_from_json);
    st = convstate_turn_complete(db, user, token.c_str(), reply.c_str(), &out);
    take(out);
    const std::vector<Message> after = stored(id);
    if (st == CONVSTATE_INVALID_ARGUMENT) {
        if (after.size() != before.size() + 1) fail("turn_complete: refused, yet something was written");
        if (convstate_turn_fail(db, user, token.c_str(), nullptr) != CONVSTATE_OK) fail("turn_fail failed");
        return;
    }
    if (st != CONVSTATE_OK) fail(std::string("turn_complete: unexpected status ") + convstate_status_name(st));
    if (!sent) fail("turn_complete: accepted a reply the JSON decoder refuses");
    if (after.size() != before.size() + 2 + sent->intermediate.size()) fail("turn_complete: wrong number stored");
    if (after.back().content != sent->content || after.back().tool_calls != sent->tool_calls)
        fail("turn_complete: the reply changed on the way");
}

void turn_with_options(FuzzedDataProvider& in, const std::string& id, const std::vector<Message>& before) {
    convstate_window window = CONVSTATE_WINDOW_INIT;
    window.version = in.ConsumeIntegralInRange<unsigned>(0, 3);
    window.kind = in.ConsumeIntegralInRange<int>(-1, 3);
    window.max_messages = in.ConsumeIntegral<std::uint64_t>();
    window.token_budget = in.ConsumeIntegral<std::int64_t>();
    window.keep_system = in.ConsumeBool();
    window.from_summary = in.ConsumeBool();
    window.summary_role = in.ConsumeIntegralInRange<int>(-1, 6);
    convstate_turn_options options = CONVSTATE_TURN_OPTIONS_INIT;
    options.version = in.ConsumeIntegralInRange<unsigned>(0, CONVSTATE_TURN_OPTIONS_VERSION + 1);
    options.conversation_id = id.c_str();
    const auto key = maybe_string(in, 40), metadata = maybe_string(in, 80), parts = maybe_string(in, 200);
    options.idempotency_key = key ? key->c_str() : nullptr;
    options.message_metadata_json = metadata ? metadata->c_str() : nullptr;
    options.message_parts_json = parts ? parts->c_str() : nullptr;
    options.window = in.ConsumeBool() ? &window : nullptr;
    options.reject_concurrent = in.ConsumeBool();
    options.run_lease_ms = in.ConsumeIntegralInRange<long long>(-2, 100000000);
    options.duplicate_wait_ms = in.ConsumeIntegralInRange<long long>(-2, 100000000);
    options.flush_user_message = in.ConsumeBool();
    options.regenerate = in.ConsumeIntegralInRange<int>(0, 3) == 0;
    const std::string message = in.ConsumeRemainingBytesAsString();
    ReplyPlan plan;
    plan.content = "ok";
    char* out = nullptr;
    const convstate_status st = convstate_turn(db, user, message.c_str(), &options, plan_agent, &plan, &out);
    take(out);
    if (st == CONVSTATE_OK && options.window == &window && window.version == 0) fail("turn: window version 0 accepted");
    // A regenerated turn (version 5 on) adds no user message. With content parts the text must
    // be "", so an accepted user message's text is the message as sent either way.
    const bool new_user = !(options.regenerate && options.version >= 5);
    check_turn(st, id, before, message.c_str(), new_user, 1, "ok");
}

void list(FuzzedDataProvider& in) {
    const int limit = in.ConsumeIntegralInRange<int>(-1, 102);
    const std::string cursor = in.ConsumeRemainingBytesAsString();
    char* out = nullptr;
    const convstate_status st = convstate_conversation_list(db, user, cursor.c_str(), limit, &out);
    take(out);
    if (st == CONVSTATE_OK) {
        if (limit < 1 || limit > 100) fail("list: accepted a limit out of range");
        return;
    }
    if (st != CONVSTATE_INVALID_ARGUMENT) fail(std::string("list: unexpected status ") + convstate_status_name(st));
    const std::string field = convstate_last_error_field() ? convstate_last_error_field() : "";
    if (field != "cursor" && field != "limit") fail("list: refused naming " + field);
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    dir = fuzz::make_temp_dir();
    const std::string url = "sqlite3://" + (dir / "fuzz.db").string();
    if (convstate_db_open(url.c_str(), nullptr, &db) != CONVSTATE_OK) fail("open failed");
    if (convstate_db_migrate(db) != CONVSTATE_OK) fail("migrate failed");
    std::atexit(remove_dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    char* out = nullptr;
    if (convstate_conversation_create(db, user, nullptr, nullptr, &out) != CONVSTATE_OK) fail("create failed");
    const std::string id = json::conversation_from_json(take(out)).id;
    // A few messages first, so that windows, regenerate and tool groups have something to act on.
    static const char* const seeds[] = {R"({"role":"system","content":"be brief"})",
                                        R"({"role":"user","content":"hello"})",
                                        R"({"role":"assistant","content":"hi"})"};
    for (int i = in.ConsumeIntegralInRange<int>(0, 3), k = 0; k < i; ++k)
        if (convstate_message_append(db, user, id.c_str(), seeds[k], nullptr, nullptr) != CONVSTATE_OK)
            fail("seeding failed");
    const std::vector<Message> before = stored(id);
    switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: append(in, id, before); break;
    case 1: append_batch(in, id, before); break;
    case 2: turn(in, id, before); break;
    case 3: split_turn(in, id, before); break;
    case 4: turn_with_options(in, id, before); break;
    default: list(in); break;
    }
    return 0;
}
