// Summary checkpoints: stored beside the transcript, windows start from the latest one, truncate
// removes those it outdates, writers never hold up turns; and a property test over random
// histories with tool groups, summaries and truncations.

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <soci/soci.h>

#include <convstate/convstate.hpp>

#include "demo_agents.hpp"
#include "support.hpp"
#include "undo.hpp"

using namespace convstate;
using cstest::msg;
using cstest::request;
using cstest::seqs;
using cstest::text_reply;

namespace {

std::vector<Message> dialogue(int n) {
    std::vector<Message> out{msg(Role::system, "be brief"), msg(Role::developer, "in French")};
    for (int i = 3; i <= n; ++i) out.push_back(msg(i % 2 ? Role::user : Role::assistant, "m" + std::to_string(i)));
    return out;
}

HistoryWindow without_summary(HistoryWindow w) {
    w.from_summary = false;
    return w;
}

} // namespace

TEST_CASE("summaries: add, list and replace; bad input names the field and stores nothing") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, {msg(Role::system, "s"), msg(Role::user, "q"), cstest::tool_calls_msg({"c1"}),
                                      cstest::tool_result("r", "c1"), msg(Role::assistant, "a"), msg(Role::user, "q2")});
    const auto field = [&](std::int64_t covers, std::string content, std::string metadata = "{}") {
        return cstest::invalid_field([&] { messages.add_summary("u", c.id, covers, content, metadata); });
    };
    CHECK(field(0, "x") == "covers_through_seq");
    CHECK(field(7, "x") == "covers_through_seq"); // past the last message
    CHECK(field(3, "x") == "covers_through_seq"); // message 4 answers the call at 3
    CHECK(field(5, "") == "content");
    CHECK(field(5, "x", "[1]") == "metadata");
    CHECK_THROWS_AS(messages.add_summary("intruder", c.id, 5, "x"), NotFound);
    CHECK(messages.summaries("u", c.id).empty());
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_summaries") == 0);

    const Summary s = messages.add_summary("u", c.id, 4, "asked, a tool answered", R"({"model": "m"})");
    CHECK(s.covers_through_seq == 4);
    CHECK(s.metadata_json == R"({"model":"m"})");
    CHECK(s.created_at_us > 0);
    CHECK(messages.add_summary("u", c.id, 2, "asked").covers_through_seq == 2); // before the group: fine
    messages.add_summary("u", c.id, 4, "replaced");
    const std::vector<Summary> all = messages.summaries("u", c.id);
    REQUIRE(all.size() == 2);
    CHECK(all[0].covers_through_seq == 2);
    CHECK(all[1].content == "replaced");
    // Nothing moved: the transcript and last_seq are as they were.
    CHECK(store.get("u", c.id).last_seq == 6);
    CHECK(messages.count("u", c.id) == 6);
    CHECK_THROWS_AS(messages.summaries("intruder", c.id), NotFound);

    // At the end, a tool call whose results are not stored yet: refused (summary and fork alike).
    messages.append("u", c.id, cstest::tool_calls_msg({"c2"}));
    CHECK(field(7, "x") == "covers_through_seq");
    CHECK(cstest::invalid_field([&] { store.fork("u", c.id, 7); }) == "at_seq");
    HistoryWindow as_tool = HistoryWindow::everything();
    as_tool.summary_role = Role::tool;
    CHECK(cstest::invalid_field([&] { ChatOrchestrator(db).window("u", c.id, as_tool); }) == "window.summary_role");
}

TEST_CASE("summaries: a window is the instructions, the latest summary, then the messages after it") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, dialogue(20));
    messages.add_summary("u", c.id, 6, "an older summary");
    messages.add_summary("u", c.id, 10, "messages 1-10 in brief", R"({"k":1})");
    const ChatOrchestrator chat(db);

    std::vector<std::int64_t> after10{1, 2, 0};
    for (int i = 11; i <= 20; ++i) after10.push_back(i);
    const std::vector<Message> all = chat.window("u", c.id, HistoryWindow::everything());
    CHECK(seqs(all) == after10);
    CHECK(all[2].role == Role::system);
    CHECK(all[2].content == "messages 1-10 in brief");
    CHECK(all[2].metadata_json == R"({"k":1})");
    CHECK(all[2].conversation_id == c.id);
    CHECK(seqs(chat.window("u", c.id, HistoryWindow::last(3))) == std::vector<std::int64_t>{1, 2, 0, 18, 19, 20});
    CHECK(seqs(chat.window("u", c.id, HistoryWindow::last(50))) == after10);
    // The budget pays for the instructions and the summary first.
    HistoryWindow tokens = HistoryWindow::tokens(4, [](const Message&) { return std::int64_t{1}; });
    CHECK(seqs(chat.window("u", c.id, tokens)) == std::vector<std::int64_t>{1, 2, 0, 20});
    HistoryWindow as_user = HistoryWindow::everything();
    as_user.summary_role = Role::user;
    as_user.keep_system = false;
    const std::vector<Message> w = chat.window("u", c.id, as_user);
    CHECK(w.front().role == Role::user);
    CHECK(w.front().seq == 0);
    CHECK(w.size() == 11);
    // Off: as if there were no summaries. The transcript is whole.
    CHECK(seqs(chat.window("u", c.id, without_summary(HistoryWindow::last(3)))) == std::vector<std::int64_t>{1, 2, 18, 19, 20});
    CHECK(messages.load_all("u", c.id).size() == 20);

    // A turn shows the same; on PostgreSQL it stays at 2 statements with a summary.
    const std::uint64_t before = db.stats().statements;
    std::vector<std::int64_t> seen;
    TurnRequest r = request("u", c.id, "next");
    r.window = HistoryWindow::last(4);
    chat.turn(r, [&](const AgentInput& in) {
        seen = seqs(in.history);
        return text_reply("ok");
    });
    if (cstest::pg_fast_path()) CHECK(db.stats().statements - before == 2);
    CHECK(seen == std::vector<std::int64_t>{1, 2, 0, 18, 19, 20, 21});
    const PendingTurn p = chat.begin_turn(request("u", c.id, "split"));
    CHECK(seqs(p.history).at(2) == 0);
    chat.complete_turn("u", p.token, text_reply("done"));

    // A summary through the last message: nothing after it.
    messages.add_summary("u", c.id, 24, "everything");
    CHECK(seqs(chat.window("u", c.id, HistoryWindow::everything())) == std::vector<std::int64_t>{1, 2, 0});
}

TEST_CASE("summaries: truncate removes those that cover removed messages") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, dialogue(12));
    messages.add_summary("u", c.id, 5, "to 5");
    messages.add_summary("u", c.id, 7, "to 7");
    messages.add_summary("u", c.id, 10, "to 10");
    CHECK(messages.truncate("u", c.id, 7) == 5);
    std::vector<std::int64_t> kept;
    for (const Summary& s : messages.summaries("u", c.id)) kept.push_back(s.covers_through_seq);
    CHECK(kept == std::vector<std::int64_t>{5, 7});
    const ChatOrchestrator chat(db);
    CHECK(seqs(chat.window("u", c.id, HistoryWindow::everything())) == std::vector<std::int64_t>{1, 2, 0});
    store.remove("u", c.id);
    CHECK(cstest::query_number(raw, "SELECT COUNT(*) FROM convstate_summaries") == 0);
}

TEST_CASE("summaries: a writer never invalidates expected_last_seq, and on PostgreSQL never blocks a turn") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    messages.append_batch("u", c.id, dialogue(6));
    messages.add_summary("u", c.id, 4, "s");
    AppendOptions expect;
    expect.expected_last_seq = 6;
    CHECK(messages.append("u", c.id, msg(Role::user, "still at 6"), expect).seq == 7);
    if (!cstest::is_postgres()) return; // SQLite serialises all writers

    // A summary writer mid-transaction holds what add_summary holds; a turn goes on regardless.
    soci::session held(raw.backend, raw.connect);
    held << "BEGIN";
    long long last = 0;
    held << "SELECT last_seq FROM convstate_conversations WHERE user_id = 'u' AND id = '" + c.id + "' FOR KEY SHARE",
        soci::into(last);
    const ChatOrchestrator chat(db);
    const auto t0 = std::chrono::steady_clock::now();
    std::atomic<bool> done{false};
    std::thread turn([&] {
        chat.turn(request("u", c.id, "not blocked"), [](const AgentInput&) { return text_reply("ok"); });
        done = true;
    });
    while (!done && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const bool finished_while_held = done;
    held << "COMMIT";
    turn.join();
    CHECK(finished_while_held);
}

TEST_CASE("summaries: turns racing summaries and undos keep every invariant") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    const Conversation c = store.create("u");
    messages.append("u", c.id, msg(Role::system, "be brief"));
    std::atomic<bool> stop{false};
    std::atomic<int> summaries_added{0}, undos{0}, turns_done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 5; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 12; ++i) {
                try {
                    chat.turn(request("u", c.id, "t" + std::to_string(t) + "-" + std::to_string(i)),
                              [](const AgentInput& in) {
                                  // The window: instructions, at most one summary, then a contiguous run.
                                  std::size_t k = 0;
                                  while (k < in.history.size() && in.history[k].seq != 0 &&
                                         is_instruction(in.history[k].role) && in.history[k].seq == static_cast<std::int64_t>(k) + 1)
                                      ++k;
                                  if (k < in.history.size() && in.history[k].seq == 0) ++k;
                                  for (std::size_t j = k + 1; j < in.history.size(); ++j)
                                      CHECK(in.history[j].seq == in.history[j - 1].seq + 1);
                                  return cstest::echo_agent(in, 3);
                              });
                    ++turns_done;
                } catch (const NotFound&) { // undone mid-run
                }
            }
        });
    for (int t = 0; t < 2; ++t)
        threads.emplace_back([&] {
            std::minstd_rand rng(std::random_device{}());
            while (!stop) {
                const std::int64_t last = store.get("u", c.id).last_seq;
                if (last < 2) continue;
                try {
                    messages.add_summary("u", c.id, 1 + static_cast<std::int64_t>(rng() % static_cast<unsigned>(last)), "s");
                    ++summaries_added;
                } catch (const InvalidArgument&) { // a tool-group boundary, or undone meanwhile
                }
            }
        });
    threads.emplace_back([&] {
        while (!stop) {
            if (cstest::undo_last_exchange(messages, "u", c.id, 1)) ++undos; // the system message stays
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });
    for (int t = 0; t < 5; ++t) threads[static_cast<std::size_t>(t)].join();
    stop = true;
    for (std::size_t t = 5; t < threads.size(); ++t) threads[t].join();
    MESSAGE(turns_done.load(), " turns, ", summaries_added.load(), " summaries, ", undos.load(), " undos");

    const std::vector<Message> all = messages.load_all("u", c.id);
    cstest::check_dense(all);
    const std::int64_t last = store.get("u", c.id).last_seq;
    CHECK(last == static_cast<std::int64_t>(all.size()));
    for (const Summary& s : messages.summaries("u", c.id)) {
        CHECK(s.covers_through_seq <= last); // none outlived the messages it stood for
        if (s.covers_through_seq < last) CHECK(all[static_cast<std::size_t>(s.covers_through_seq)].role != Role::tool);
    }
}

TEST_CASE("summaries: property — random histories, summaries and truncations give valid windows") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const ChatOrchestrator chat(db);
    std::mt19937 rng(20261202);
    const auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    int checked = 0;
    for (int round = 0; round < 40; ++round) {
        const Conversation c = store.create("prop");
        std::vector<Message> batch;
        for (int k = pick(0, 3); k > 0; --k) batch.push_back(msg(pick(0, 1) ? Role::developer : Role::system, "i"));
        int call = 0;
        for (int u = pick(1, 30); u > 0; --u) {
            const int kind = pick(0, 9);
            if (kind < 4) {
                batch.push_back(msg(Role::user, "u" + std::to_string(u)));
            } else if (kind < 7) {
                batch.push_back(msg(Role::assistant, "a" + std::to_string(u)));
            } else {
                std::vector<std::string> ids;
                for (int n = pick(1, 3); n > 0; --n) ids.push_back("c" + std::to_string(round) + "_" + std::to_string(call++));
                batch.push_back(cstest::tool_calls_msg(ids));
                for (const std::string& id : ids) batch.push_back(cstest::tool_result("r", id));
            }
        }
        messages.append_batch("prop", c.id, batch);
        for (int op = pick(1, 6); op > 0; --op) {
            const std::int64_t last = store.get("prop", c.id).last_seq;
            if (last == 0) break;
            const std::int64_t at = pick(1, static_cast<int>(last));
            try {
                if (pick(0, 3) == 0)
                    messages.truncate("prop", c.id, at - 1);
                else
                    messages.add_summary("prop", c.id, at, "summary through " + std::to_string(at));
            } catch (const InvalidArgument&) { // inside a tool group: refused, nothing changed
            }
        }

        const std::vector<Message> history = messages.load_all("prop", c.id);
        const std::vector<Summary> sums = messages.summaries("prop", c.id);
        const std::vector<Message> prefix = cstest::leading_system(history);
        std::map<std::string, std::int64_t> call_at; // tool call id -> seq of its assistant message
        for (const Message& m : history)
            for (const ToolCall& tc : m.tool_calls) call_at[tc.id] = m.seq;
        for (int variant = 0; variant < 6; ++variant) {
            HistoryWindow w = variant < 2   ? HistoryWindow::everything()
                              : variant < 4 ? HistoryWindow::last(static_cast<std::size_t>(pick(1, 8)))
                                            : HistoryWindow::tokens(pick(5, 60));
            w.from_summary = variant % 2 == 0;
            w.keep_system = pick(0, 3) != 0;
            CAPTURE(round);
            CAPTURE(variant);
            const std::vector<Message> got = chat.window("prop", c.id, w);
            std::size_t k = 0;
            if (w.keep_system) { // the instructions, whole
                REQUIRE(got.size() >= prefix.size());
                for (; k < prefix.size(); ++k) CHECK(got[k] == prefix[k]);
            }
            const Summary* s = w.from_summary && !sums.empty() ? &sums.back() : nullptr;
            if (s) { // then the latest summary, placed right
                REQUIRE(k < got.size());
                CHECK(got[k].seq == 0);
                CHECK(got[k].content == s->content);
                ++k;
            }
            for (std::size_t j = k; j < got.size(); ++j) CHECK(got[j].seq != 0);
            if (k == got.size()) continue;
            // The rest: a contiguous suffix ending at the last message, after the summary.
            CHECK(got.back().seq == static_cast<std::int64_t>(history.size()));
            CHECK(got[k].seq > (s ? s->covers_through_seq : 0));
            CHECK(got[k].role != Role::tool);
            for (std::size_t j = k + 1; j < got.size(); ++j) CHECK(got[j].seq == got[j - 1].seq + 1);
            // No tool group split: every result's call is in the window.
            for (std::size_t j = k; j < got.size(); ++j)
                if (got[j].role == Role::tool) CHECK(call_at.at(*got[j].tool_call_id) >= got[k].seq);
            if (w.kind == HistoryWindow::Kind::last_messages) CHECK(got.size() - k <= w.max_messages);
            ++checked;
        }
    }
    MESSAGE(checked, " windows checked");
}

TEST_CASE("summaries: processes running turns, undos, summaries and forks on one conversation") {
    cstest::Fixture fx;
    [[maybe_unused]] auto& [raw, db, store, messages] = fx;
    const Conversation c = store.create("u");
    std::vector<int> pids;
    for (int p = 0; p < 2; ++p)
        pids.push_back(cstest::spawn_worker({"undoable-turns", raw.url, "u", c.id, "p" + std::to_string(p), "20"}));
    pids.push_back(cstest::spawn_worker({"undo", raw.url, "u", c.id, "5"}));
    pids.push_back(cstest::spawn_worker({"summarize", raw.url, "u", c.id, "20"}));
    pids.push_back(cstest::spawn_worker({"fork", raw.url, "u", c.id, "10"}));
    for (int pid : pids) CHECK(cstest::wait_worker(pid) == 0);
    const std::vector<Conversation> forks = store.forks("u", c.id);
    CHECK(forks.size() == 10);
    for (const Conversation& f : forks) { // each a whole prefix, nothing else
        const std::vector<Message> copy = messages.load_all("u", f.id);
        CHECK(static_cast<std::int64_t>(copy.size()) == f.forked_from->seq);
        if (!copy.empty()) cstest::check_dense(copy);
    }
    const std::vector<Message> all = messages.load_all("u", c.id);
    cstest::check_dense(all);
    const std::int64_t last = store.get("u", c.id).last_seq;
    CHECK(last == static_cast<std::int64_t>(all.size()));
    for (const Summary& s : messages.summaries("u", c.id)) CHECK(s.covers_through_seq <= last);
    std::set<std::string> asked;
    for (const Message& m : all)
        if (m.role == Role::user) CHECK(asked.insert(m.content).second);
}
