// Regression tests for defects found by review and attack (each failed before its fix).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <convstate/json.hpp>

#include "support.hpp"
#include "url.hpp"

using namespace convstate;

namespace {

using cstest::msg;
using cstest::request;
using cstest::text_reply;
using cstest::tool_result;

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

using cstest::invalid_field;

const std::vector<std::string> inexact_numbers = {
    R"({"n":1e400})", R"({"n":-1e400})", R"({"n":1e-400})", R"({"n":123456789012345678901234567890})",
    R"({"n":0.10000000000000000000001})", "{\"n\":" + std::string(400, '9') + "}", R"({"a":{"b":[1,2,1e999]}})"};

} // namespace

TEST_CASE("defect: metadata a double cannot hold is refused before anything is written") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [fresh, db, store, messages] = fx;
    ChatOrchestrator chat(db);
    const Conversation c = store.create("alice", {.title = "t", .metadata_json = R"({"keep":1})"});
    const auto conversations = [&] { return cstest::query_number(fresh, "SELECT COUNT(*) FROM convstate_conversations"); };
    const auto rows = [&] { return cstest::query_number(fresh, "SELECT COUNT(*) FROM convstate_messages"); };

    for (const std::string& bad : inexact_numbers) {
        CAPTURE(bad);
        CHECK(starts_with(invalid_field([&] { store.create("alice", {.title = "x", .metadata_json = bad}); }), "metadata."));
        CHECK(starts_with(invalid_field([&] { store.set_metadata("alice", c.id, bad); }), "metadata."));
        Message m = msg(Role::user, "hi");
        m.metadata_json = bad;
        CHECK(starts_with(invalid_field([&] { messages.append("alice", c.id, m); }), "metadata."));
        TurnRequest r = request("alice", c.id, "hi");
        r.message_metadata_json = bad;
        CHECK(starts_with(invalid_field([&] { chat.turn(r, [](const AgentInput&) { return text_reply("x"); }); }),
                          "message_metadata_json."));
        TurnRequest fresh_conv = request("alice", std::nullopt, "hi");
        fresh_conv.new_conversation.metadata_json = bad;
        CHECK(starts_with(invalid_field([&] { chat.turn(fresh_conv, [](const AgentInput&) { return text_reply("x"); }); }),
                          "new_conversation.metadata."));
        CHECK(conversations() == 1);
        CHECK(rows() == 0);
        CHECK(store.get("alice", c.id).metadata_json == R"({"keep":1})");
    }

    // An agent's reply metadata: the turn fails as the agent's, only the user message stays, and
    // the conversation still reads, lists and takes turns.
    for (const std::string& bad : inexact_numbers) {
        CAPTURE(bad);
        const std::int64_t before = rows();
        CHECK_THROWS_AS(chat.turn(request("alice", c.id, "q"),
                                  [&](const AgentInput&) {
                                      AgentReply r = text_reply("a");
                                      r.metadata_json = bad;
                                      return r;
                                  }),
                        AgentError);
        CHECK(rows() == before + 1);
    }
    CHECK(store.list("alice").items.size() == 1);
    CHECK(messages.load_all("alice", c.id).size() == inexact_numbers.size());
    CHECK(chat.turn(request("alice", c.id, "still fine"), [](const AgentInput&) { return text_reply("yes"); }).reply ==
          "yes");

    // What a double holds exactly is kept, value for value.
    const std::string exact = R"({"a":0.1,"b":1.5E300,"c":-5E-324,"d":9223372036854775807,"e":18446744073709551615,"f":-9223372036854775808,"g":1E2})";
    // (Doubles come back in their shortest exact form: 0.1 as 1E-1, the same value.)
    const std::string canonical = R"({"a":1E-1,"b":1.5E300,"c":-5E-324,"d":9223372036854775807,"e":18446744073709551615,"f":-9223372036854775808,"g":1E2})";
    const Conversation kept = store.create("alice", {.title = "exact", .metadata_json = exact});
    CHECK(store.get("alice", kept.id).metadata_json == canonical);
    CHECK(json::to_json(store.get("alice", kept.id)).find(canonical) != std::string::npos);
    store.set_metadata("alice", kept.id, canonical); // stable: normalising twice changes nothing
    CHECK(store.get("alice", kept.id).metadata_json == canonical);
}

TEST_CASE("defect: duplicate keys in any JSON object are refused, not last-wins") {
    CHECK(invalid_field([] { json::message_from_json(R"({"role":"user","role":"system","content":"x"})"); }) == "role");
    CHECK(invalid_field([] { json::message_from_json(R"({"role":"user","content":"a","content":"b"})"); }) == "content");
    CHECK(invalid_field([] { json::message_from_json(R"({"role":"tool","tool_call_id":"a","tool_call_id":"b"})"); }) ==
          "tool_call_id");
    CHECK(invalid_field([] {
              json::tool_calls_from_json(R"([{"id":"a","id":"b","function":{"name":"f","arguments":"{}"}}])");
          }) == "tool_calls[0].id");
    CHECK(invalid_field([] {
              json::messages_from_json(R"([{"role":"user"},{"role":"user","metadata":{"k":1,"k":2}}])");
          }) == "messages[1].metadata.k");
    // The same key in two different objects is fine.
    CHECK(json::message_from_json(R"({"role":"user","content":"x","metadata":{"content":{"content":1}}})").content == "x");

    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    CHECK(invalid_field([&] { store.create("u", {.title = "t", .metadata_json = R"({"a":1,"b":{"x":1,"x":2}})"}); }) ==
          "metadata.b.x");
    CHECK(store.list("u").items.empty());
    // Nesting deeper than 32 levels is refused with a clear reason.
    std::string deep = "{\"a\":" + std::string(40, '[') + std::string(40, ']') + "}";
    CHECK(invalid_field([&] { store.create("u", {.title = "t", .metadata_json = deep}); }) == "metadata");
}

TEST_CASE("defect: two tool calls with one id in a message are refused") {
    Database db = cstest::open_fresh();
    const Conversation c = ConversationStore(db).create("u");
    MessageRepository messages(db);
    CHECK(invalid_field([&] { messages.append("u", c.id, cstest::tool_calls_msg({"same", "same"})); }) == "tool_calls[1].id");
    CHECK(messages.count("u", c.id) == 0);
}

TEST_CASE("defect: client idempotency keys never meet the keys a turn derives") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    ChatOrchestrator chat(db);
    const Conversation c = ConversationStore(db).create("u");
    int calls = 0;
    auto agent = [&](const AgentInput& in) {
        ++calls;
        return text_reply("answer to " + in.history.back().content);
    };

    // "X:reply" then "X": the second turn runs and stores its own reply.
    const TurnResult a = chat.turn(request("u", c.id, "first question", "X:reply"), agent);
    const TurnResult b = chat.turn(request("u", c.id, "second question", "X"), agent);
    CHECK(calls == 2);
    CHECK(b.reply == "answer to second question");
    CHECK(b.reply_seq > b.user_seq);
    CHECK_FALSE(b.replayed);
    // "K" then "K:reply".
    const TurnResult k1 = chat.turn(request("u", c.id, "k one", "K"), agent);
    const TurnResult k2 = chat.turn(request("u", c.id, "k two", "K:reply"), agent);
    CHECK(k2.reply == "answer to k two");
    CHECK(k2.user_seq > k1.reply_seq);
    // A message appended with a step-like key, then a turn whose agent stores a tool call.
    Message step = msg(Role::user, "just a note");
    step.idempotency_key = "Y:step:0";
    messages.append("u", c.id, step);
    const TurnResult y = chat.turn(request("u", c.id, "use a tool", "Y"), [](const AgentInput&) {
        AgentReply r = text_reply("done");
        r.intermediate = {cstest::tool_calls_msg({"c1"}), tool_result("r", "c1")};
        return r;
    });
    const auto after = messages.load_after("u", c.id, y.user_seq, 10);
    REQUIRE(after.size() == 3);
    CHECK(after[0].tool_calls.size() == 1);
    CHECK(after[1].role == Role::tool);
    CHECK(after[2].content == "done");
    cstest::check_dense(messages.load_all("u", c.id));

    // Keys with control characters are refused (derived keys use one as their separator).
    CHECK(invalid_field([&] { chat.turn(request("u", c.id, "x", std::string("Z\x1freply")), agent); }) ==
          "idempotency_key");
    Message ctl = msg(Role::user, "x");
    ctl.idempotency_key = std::string("a\nb");
    CHECK(invalid_field([&] { messages.append("u", c.id, ctl); }) == "idempotency_key");
    // A key reused for a different message is a Conflict, not a replay of someone else's turn.
    CHECK_THROWS_AS(chat.turn(request("u", c.id, "not the first question", "X:reply"), agent), Conflict);
    CHECK(chat.turn(request("u", c.id, "first question", "X:reply"), agent).replayed);
    (void)a;
}

TEST_CASE("defect: a turn's window equals window() on every path (leading system messages kept)") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    OrchestratorOptions reject_options;
    reject_options.concurrency = ConcurrentTurns::reject;
    const ChatOrchestrator fast(db), general(db, reject_options);

    // The case found by hand: two leading system messages and an unanswered tool call.
    for (const ChatOrchestrator* chat : {&fast, &general}) {
        const Conversation c = store.create("u");
        Message lost = cstest::tool_calls_msg({"lost"});
        messages.append_batch("u", c.id,
                              {msg(Role::system, "rule 0"), msg(Role::system, "rule 1"), msg(Role::user, "u1"), lost,
                               msg(Role::user, "u2"), msg(Role::assistant, "a2")});
        std::vector<std::int64_t> seen;
        TurnRequest r = request("u", c.id, "u3");
        r.window = HistoryWindow::last(6);
        chat->turn(r, [&](const AgentInput& in) {
            seen = cstest::seqs(in.history);
            return text_reply("a3");
        });
        CHECK(seen == std::vector<std::int64_t>{1, 2, 5, 6, 7});
    }

    // Property: random histories and windows; the agent's window is HistoryWindow::select over
    // the whole history, on both paths.
    std::mt19937 rng(20261201);
    auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    for (int round = 0; round < 120; ++round) {
        const ChatOrchestrator& chat = round % 2 ? general : fast;
        const Conversation c = store.create("u");
        std::vector<Message> history;
        for (int i = pick(20); i > 0; --i) history.push_back(msg(Role::system, "s"));
        for (int i = 40 + pick(100); i > 0; --i) {
            const int kind = pick(10);
            if (kind < 4) {
                history.push_back(msg(Role::user, std::string(static_cast<std::size_t>(pick(200)), 'u')));
            } else if (kind < 7) {
                history.push_back(msg(Role::assistant, std::string(static_cast<std::size_t>(pick(200)), 'a')));
            } else {
                const std::string id = "call" + std::to_string(history.size());
                history.push_back(cstest::tool_calls_msg({id}));
                if (kind < 9) history.push_back(tool_result("r", id)); // else: unanswered
            }
        }
        messages.append_batch("u", c.id, history);
        HistoryWindow w = pick(2) ? HistoryWindow::last(static_cast<std::size_t>(1 + pick(80)))
                                  : HistoryWindow::tokens(1 + pick(3000));
        if (pick(5) == 0) w.keep_system = false;
        std::vector<std::int64_t> seen;
        TurnRequest r = request("u", c.id, "question");
        r.window = w;
        chat.turn(r, [&](const AgentInput& in) {
            seen = cstest::seqs(in.history);
            return text_reply("answer");
        });
        std::vector<Message> all = messages.load_all("u", c.id);
        all.pop_back(); // the reply; the window was taken with the user message last
        CAPTURE(round);
        CHECK(seen == cstest::seqs(w.select(cstest::leading_system(all), all)));
    }
}

TEST_CASE("defect: token counts are bounded and window sums saturate") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    ChatOrchestrator chat(db);
    const Conversation c = ConversationStore(db).create("u");
    Message big = msg(Role::user, "x");
    big.token_count = std::numeric_limits<std::int64_t>::max();
    CHECK(invalid_field([&] { messages.append("u", c.id, big); }) == "token_count");
    big.token_count = -1;
    CHECK(invalid_field([&] { messages.append("u", c.id, big); }) == "token_count");
    big.token_count = 1'000'000'000;
    messages.append("u", c.id, big);
    messages.append("u", c.id, big);
    messages.append("u", c.id, msg(Role::assistant, "y"));

    // A counter answering INT64_MAX (or negative) must not overflow: a budget of 1 keeps only the
    // newest message.
    for (const std::int64_t answer : {std::numeric_limits<std::int64_t>::max(), std::int64_t{-5}}) {
        HistoryWindow w = HistoryWindow::tokens(1, [=](const Message& m) { return m.seq == 3 ? 1 : answer; });
        const auto window = chat.window("u", c.id, w);
        CAPTURE(answer);
        CHECK(cstest::seqs(window) == (answer < 0 ? std::vector<std::int64_t>{1, 2, 3} : std::vector<std::int64_t>{3}));
    }
}

TEST_CASE("defect: a cursor that is not UTF-8 or whose number overflows is refused naming cursor") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    store.create("u");
    for (const std::string& bad : {std::string("1.\xFF"), std::string("99999999999999999999.x"), std::string("-5.x"),
                                  std::string("1.a\0b", 5)}) {
        CAPTURE(bad);
        CHECK(invalid_field([&] { store.list("u", {.cursor = bad, .limit = 5}); }) == "cursor");
    }
}

TEST_CASE("defect: a PostgreSQL password may hold ? / @ and is never quoted in an error") {
    const DatabaseOptions options;
    const detail::ConnectionTarget t = detail::parse_url("postgresql://app:Sup3r?s/cr@t@127.0.0.1:5433/chat?sslmode=disable", options);
    CHECK(t.connect_string.find("password='Sup3r?s/cr@t'") != std::string::npos);
    CHECK(t.connect_string.find("host='127.0.0.1'") != std::string::npos);
    CHECK(t.connect_string.find("port='5433'") != std::string::npos);
    CHECK(t.connect_string.find("dbname='chat'") != std::string::npos);
    CHECK(t.connect_string.find("sslmode='disable'") != std::string::npos);
    // The caller's own server options keep the statement timeout.
    const detail::ConnectionTarget own = detail::parse_url("postgresql://h/db?options=-c%20search_path%3Dx", options);
    CHECK(own.connect_string.find("options='-c search_path=x -c statement_timeout=30000'") != std::string::npos);
    // An unescaped '@' in the query is refused rather than taken as the end of the user info.
    CHECK(invalid_field([&] { detail::parse_url("postgresql://app@h/db?sslrootcert=/etc/ca@2024.pem", options); }) ==
          "url");
    for (const char* url : {"postgresql://app:Sup3r/secret@127.0.0.1:99999/db", "postgresql://app:Sup3r?x%zz@h/db",
                                  "postgresql://app:Sup3r@h:port/db"}) {
        CAPTURE(url);
        try {
            detail::parse_url(url, options);
            FAIL("accepted");
        } catch (const InvalidArgument& e) {
            CHECK(std::string(e.what()).find("Sup3r") == std::string::npos);
        }
    }
}

TEST_CASE("defect: a token counter may call the library (no connection or lock is held while it runs)") {
    DatabaseOptions options;
    options.pool_size = 1;
    options.pool_timeout = std::chrono::milliseconds(2000);
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    const Conversation other = store.create("u");
    for (int i = 0; i < 100; ++i) messages.append("u", c.id, msg(i % 2 ? Role::assistant : Role::user, "m"));
    // The counter reads and writes through the same one-connection pool (and, on SQLite, would
    // wait for the write lock if a turn's transaction were still open).
    int calls = 0;
    const TokenCounter counter = [&](const Message& m) {
        ++calls;
        if (calls % 25 == 1) messages.append("u", other.id, msg(Role::user, "counted"));
        return messages.count("u", other.id) > 0 ? std::int64_t{3} : estimate_tokens(m);
    };
    OrchestratorOptions reject_options;
    reject_options.concurrency = ConcurrentTurns::reject;
    for (const OrchestratorOptions& o : {OrchestratorOptions{}, reject_options}) {
        ChatOrchestrator chat(db, o);
        TurnRequest r = request("u", c.id, "go");
        r.window = HistoryWindow::tokens(60, counter);
        std::size_t seen = 0;
        const TurnResult t = chat.turn(r, [&](const AgentInput& in) {
            seen = in.history.size();
            return text_reply("ok");
        });
        CHECK(t.reply == "ok");
        CHECK(seen == 20); // 60 tokens at 3 each
        CHECK(cstest::seqs(chat.window("u", c.id, HistoryWindow::tokens(9, counter))).size() == 3);
    }
    CHECK(calls > 0);
}

TEST_CASE("defect: identical keyed turns racing each other run the agent once") {
    DatabaseOptions options;
    options.pool_size = 8;
    cstest::Fixture fx{options};
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    std::atomic<int> calls{0};
    auto slow = [&](const AgentInput& in) {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return text_reply("answer to " + in.history.back().content);
    };
    OrchestratorOptions reject_options;
    reject_options.concurrency = ConcurrentTurns::reject;
    for (const OrchestratorOptions& o : {OrchestratorOptions{}, reject_options}) {
        for (const bool creating : {false, true}) {
            CAPTURE(creating);
            calls = 0;
            const ChatOrchestrator chat(db, o);
            const std::optional<std::string> conv = creating ? std::nullopt : std::optional(store.create("u").id);
            const std::string key = cstest::unique("race");
            std::vector<TurnResult> results(8);
            std::vector<std::thread> threads;
            for (int t = 0; t < 8; ++t)
                threads.emplace_back([&, t] { results[t] = chat.turn(request("u", conv, "same question", key), slow); });
            for (std::thread& t : threads) t.join();
            CHECK(calls == 1);
            int replayed = 0;
            for (const TurnResult& r : results) {
                CHECK(r.conversation_id == results[0].conversation_id);
                CHECK(r.reply_seq == results[0].reply_seq);
                CHECK(r.reply == "answer to same question");
                replayed += r.replayed;
            }
            CHECK(replayed == 7);
            CHECK(messages.count("u", results[0].conversation_id) == 2);
        }
    }
}

TEST_CASE("defect: a keyed duplicate waits a bounded time, and a failed or dead run is taken over") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [fresh, db, store, messages] = fx;
    const Conversation c = store.create("u");
    OrchestratorOptions o;
    o.duplicate_wait = std::chrono::milliseconds(300);
    const ChatOrchestrator chat(db, o);
    std::atomic<int> calls{0};

    // Still running after duplicate_wait: Conflict, and the agent ran once.
    std::thread first([&] {
        chat.turn(request("u", c.id, "slow one", "k-slow"), [&](const AgentInput&) {
            ++calls;
            std::this_thread::sleep_for(std::chrono::milliseconds(1500));
            return text_reply("finally");
        });
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto t0 = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(chat.turn(request("u", c.id, "slow one", "k-slow"),
                              [&](const AgentInput&) {
                                  ++calls;
                                  return text_reply("second");
                              }),
                    Conflict);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
    first.join();
    CHECK(calls == 1);
    CHECK(chat.turn(request("u", c.id, "slow one", "k-slow"), [&](const AgentInput&) { return text_reply("x"); }).reply ==
          "finally");

    // A failed run gives up its claim: the retry runs the agent at once.
    CHECK_THROWS_AS(chat.turn(request("u", c.id, "flaky", "k-fail"),
                              [](const AgentInput&) -> AgentReply { throw std::runtime_error("model down"); }),
                    AgentError);
    const auto t1 = std::chrono::steady_clock::now();
    CHECK(chat.turn(request("u", c.id, "flaky", "k-fail"), [](const AgentInput&) { return text_reply("ok now"); }).reply ==
          "ok now");
    CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::milliseconds(250));

    // A run whose process died (its claim still set) is taken over after the lease.
    const std::int64_t before = messages.count("u", c.id);
    Message orphan = msg(Role::user, "orphaned");
    orphan.idempotency_key = "k-dead";
    messages.append("u", c.id, orphan);
    cstest::exec(fresh, "UPDATE convstate_messages SET run_owner = 'dead-process', run_started_at = 1"
                        " WHERE idempotency_key = 'k-dead'");
    const TurnResult taken = chat.turn(request("u", c.id, "orphaned", "k-dead"),
                                       [](const AgentInput&) { return text_reply("taken over"); });
    CHECK(taken.reply == "taken over");
    CHECK(taken.user_seq == before + 1);
    CHECK(messages.count("u", c.id) == before + 2);
}

TEST_CASE("defect: a turn reports the agent-loop messages it stored, never a concurrent turn's") {
    DatabaseOptions options;
    options.pool_size = 4;
    Database db = cstest::open_fresh(nullptr, options);
    const Conversation c = ConversationStore(db).create("u");
    const ChatOrchestrator chat(db);
    auto tool_agent = [](const AgentInput& in) {
        const std::string id = "call-" + in.history.back().content;
        AgentReply r = text_reply("done " + in.history.back().content);
        r.intermediate = {cstest::tool_calls_msg({id}), tool_result("r", id)};
        return r;
    };
    std::atomic<int> bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 15; ++i) {
                const std::string text = std::to_string(t) + "-" + std::to_string(i);
                const std::optional<std::string> key = i % 2 ? std::optional("k" + text) : std::nullopt;
                const TurnResult r = chat.turn(request("u", c.id, text, key), tool_agent);
                const bool ok = r.intermediate.size() == 2 && r.intermediate[0].tool_calls.size() == 1 &&
                                r.intermediate[0].tool_calls[0].id == "call-" + text &&
                                r.intermediate[1].tool_call_id == "call-" + text &&
                                r.intermediate[0].seq > r.user_seq && r.intermediate[1].seq < r.reply_seq;
                bad += !ok;
                if (key) { // a replay reports the same
                    const TurnResult again = chat.turn(request("u", c.id, text, key), tool_agent);
                    bad += !(again.replayed && again.intermediate.size() == 2 &&
                             again.intermediate[0].seq == r.intermediate[0].seq &&
                             again.intermediate[1].seq == r.intermediate[1].seq);
                }
            }
        });
    for (std::thread& t : threads) t.join();
    CHECK(bad == 0);
    cstest::check_dense(MessageRepository(db).load_all("u", c.id));
}

TEST_CASE("defect: an agent's output over the batch limit is an AgentError on every backend, before writing") {
    Database db = cstest::open_fresh();
    const Conversation c = ConversationStore(db).create("u");
    MessageRepository messages(db);
    const ChatOrchestrator chat(db);
    auto agent_with = [](std::size_t steps) {
        return [steps](const AgentInput&) {
            AgentReply r = text_reply("done");
            for (std::size_t i = 0; i < steps / 2; ++i) {
                const std::string id = "c" + std::to_string(i);
                r.intermediate.push_back(cstest::tool_calls_msg({id}));
                r.intermediate.push_back(tool_result("r", id));
            }
            return r;
        };
    };
    try {
        chat.turn(request("u", c.id, "too much"), agent_with(7300));
        FAIL("accepted");
    } catch (const AgentError& e) {
        CHECK(std::string(e.what()).find("max_batch") != std::string::npos);
    }
    CHECK(messages.count("u", c.id) == 1); // only the user message
    const TurnResult ok = chat.turn(request("u", c.id, "just enough"), agent_with(998));
    CHECK(ok.intermediate.size() == 998);
    CHECK(ok.reply_seq == ok.user_seq + 999);
    cstest::check_dense(messages.load_all("u", c.id));
}
