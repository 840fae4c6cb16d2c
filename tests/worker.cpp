// A child process for the multi-process tests:
//   worker migrate URL
//   worker append URL USER CONVERSATION COUNT TAG    appends "TAG-0" … "TAG-(COUNT-1)"
//   worker turn URL USER CONVERSATION KEY            one keyed turn "racing"
//   worker turns URL USER CONV1,CONV2,… FIRST COUNT  turns FIRST…FIRST+COUNT-1: turn i goes to
//       conversation i % n with message "turn-i" and key "k-i"; prints "done i" after each
//   worker undoable-turns URL USER CONVERSATION TAG COUNT   turns "TAG-0"…; a turn whose user
//       message another process undid (NotFound) is skipped
//   worker undo URL USER CONVERSATION COUNT   COUNT times, removes the last exchange (from the
//       newest user message on) with expected_last_seq, retrying conflicts
//   worker summarize URL USER CONVERSATION COUNT   COUNT summaries, each through last_seq - 2
//   worker fork URL USER CONVERSATION COUNT   COUNT forks, each at last_seq - 1
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include <convstate/convstate.hpp>

#include "demo_agents.hpp"
#include "undo.hpp"

namespace {
convstate::Database open(const char* url) {
    convstate::DatabaseOptions options;
    options.pool_size = 1;
    // CONVSTATE_TEST_PREPARED=0: behind a transaction-pooling proxy (tests/pgbouncer_test.sh).
    if (const char* prepared = std::getenv("CONVSTATE_TEST_PREPARED"); prepared && std::string(prepared) == "0")
        options.prepared_statements = false;
    return convstate::Database::open(url, options);
}
} // namespace

int main(int argc, char** argv) try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "migrate" && argc == 3) {
        convstate::Database::open(argv[2]);
        return 0;
    }
    if (cmd == "append" && argc == 7) {
        convstate::MessageRepository messages(open(argv[2]));
        const int count = std::atoi(argv[5]);
        for (int i = 0; i < count; ++i)
            messages.append(argv[3], argv[4],
                            {.role = convstate::Role::user, .content = std::string(argv[6]) + "-" + std::to_string(i)});
        return 0;
    }
    // Workers are killed mid-turn on purpose: a short run lease lets the next worker take over a
    // killed worker's keyed turn quickly (with the default it would wait minutes).
    convstate::OrchestratorOptions orchestrator;
    orchestrator.run_lease = std::chrono::milliseconds(250);
    if (cmd == "turn" && argc == 6) {
        convstate::ChatOrchestrator chat(open(argv[2]), orchestrator);
        chat.turn({.user_id = argv[3], .conversation_id = argv[4], .message = "racing", .idempotency_key = argv[5]},
                  [](const convstate::AgentInput& in) { return cstest::echo_agent(in, 1); });
        return 0;
    }
    if (cmd == "turns" && argc == 7) {
        convstate::ChatOrchestrator chat(open(argv[2]), orchestrator);
        std::vector<std::string> conversations;
        std::stringstream list(argv[4]);
        for (std::string c; std::getline(list, c, ',');) conversations.push_back(c);
        const long first = std::atol(argv[5]), count = std::atol(argv[6]);
        for (long i = first; i < first + count; ++i) {
            const std::string n = std::to_string(i);
            chat.turn({.user_id = argv[3], .conversation_id = conversations[static_cast<std::size_t>(i) % conversations.size()],
                       .message = "turn-" + n, .idempotency_key = "k-" + n},
                      [](const convstate::AgentInput& in) { return cstest::echo_agent(in); });
            std::printf("done %ld\n", i);
            std::fflush(stdout);
        }
        return 0;
    }
    if (cmd == "undoable-turns" && argc == 7) {
        convstate::ChatOrchestrator chat(open(argv[2]), orchestrator);
        for (int i = 0; i < std::atoi(argv[6]); ++i) {
            try {
                chat.turn({.user_id = argv[3], .conversation_id = argv[4],
                           .message = std::string(argv[5]) + "-" + std::to_string(i)},
                          [](const convstate::AgentInput& in) { return cstest::echo_agent(in, 4); });
            } catch (const convstate::NotFound&) {
            }
        }
        return 0;
    }
    if (cmd == "undo" && argc == 6) {
        convstate::MessageRepository messages(open(argv[2]));
        for (int done = 0, attempts = 0; done < std::atoi(argv[5]) && attempts < 1000; ++attempts)
            if (cstest::undo_last_exchange(messages, argv[3], argv[4])) ++done;
        return 0;
    }
    if (cmd == "summarize" && argc == 6) {
        const convstate::Database db = open(argv[2]);
        const convstate::MessageRepository messages(db);
        const convstate::ConversationStore store(db);
        for (int done = 0, attempts = 0; done < std::atoi(argv[5]) && attempts < 10000; ++attempts) {
            const std::int64_t last = store.get(argv[3], argv[4]).last_seq;
            if (last < 3) continue;
            try {
                messages.add_summary(argv[3], argv[4], last - 2, "summary through " + std::to_string(last - 2));
                ++done;
            } catch (const convstate::InvalidArgument&) { // a tool-group boundary, or undone meanwhile
            }
        }
        return 0;
    }
    if (cmd == "fork" && argc == 6) {
        const convstate::ConversationStore store(open(argv[2]));
        for (int done = 0, attempts = 0; done < std::atoi(argv[5]) && attempts < 10000; ++attempts) {
            const std::int64_t last = store.get(argv[3], argv[4]).last_seq;
            try {
                store.fork(argv[3], argv[4], std::max<std::int64_t>(0, last - 1));
                ++done;
            } catch (const convstate::InvalidArgument&) { // a tool-group boundary, or undone meanwhile
            }
        }
        return 0;
    }
    std::fprintf(stderr, "worker: bad arguments (see tests/worker.cpp)\n");
    return 2;
} catch (const std::exception& e) {
    std::fprintf(stderr, "worker: %s\n", e.what());
    return 1;
}
