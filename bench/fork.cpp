// convstate_bench_fork: the cost of ConversationStore::fork at a given conversation length.
//
//   convstate_bench_fork URL [MESSAGES] [ROUNDS]
//
// Builds one conversation of MESSAGES messages (default 10,000), then forks it at its last
// message ROUNDS times (default 20) and prints the median, minimum and maximum wall time of one
// fork (milliseconds) and the statements it sent. Each fork copies every message and summary in
// one INSERT ... SELECT on the server; nothing passes through the client.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <convstate/convstate.hpp>

int main(int argc, char** argv) try {
    if (argc < 2) {
        std::fprintf(stderr, "usage: convstate_bench_fork URL [MESSAGES] [ROUNDS]\n");
        return 2;
    }
    const long messages = argc > 2 ? std::atol(argv[2]) : 10000;
    const int rounds = argc > 3 ? std::atoi(argv[3]) : 20;
    convstate::Database db = convstate::Database::open(argv[1]);
    const convstate::ConversationStore store(db);
    const convstate::MessageRepository repo(db);
    const convstate::Conversation c = store.create("bench-fork");
    std::vector<convstate::Message> batch;
    for (long i = 0; i < messages; ++i) {
        convstate::Message m;
        m.role = i % 2 ? convstate::Role::assistant : convstate::Role::user;
        m.content = "message " + std::to_string(i) + " of a long conversation, about sixty bytes of text.";
        batch.push_back(std::move(m));
        if (batch.size() == 1000 || i + 1 == messages) {
            repo.append_batch("bench-fork", c.id, batch);
            batch.clear();
        }
    }
    repo.add_summary("bench-fork", c.id, messages / 2, "the first half, summarised");
    std::vector<double> ms;
    const std::uint64_t statements_before = db.stats().statements;
    for (int r = 0; r < rounds; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        const convstate::Conversation f = store.fork("bench-fork", c.id, messages);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (repo.count("bench-fork", f.id) != messages) throw std::runtime_error("the fork is incomplete");
    }
    const double statements = static_cast<double>(db.stats().statements - statements_before) / rounds - 1; // less count()
    std::sort(ms.begin(), ms.end());
    std::printf("fork of %ld messages on %s: median %.2f ms, min %.2f ms, max %.2f ms (%d forks, %.0f statements each)\n",
                messages, db.dialect() == convstate::Dialect::sqlite ? "SQLite" : "PostgreSQL", ms[ms.size() / 2],
                ms.front(), ms.back(), rounds, statements);
    store.remove_all("bench-fork");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "convstate_bench_fork: %s\n", e.what());
    return 1;
}
