// chat_demo: a stateless chat on an embedded SQLite file (or any convstate URL).
//
// Every turn goes through ChatOrchestrator::turn, which loads the history from the database,
// stores the user message, runs the agent and stores its output. The process keeps nothing:
// restart it with --conversation ID and the conversation continues.
//
//   chat_demo [--db URL] [--user ID] [--conversation ID] [--window N] [--message TEXT]...
//
// With --message (repeatable) it runs those turns and exits; otherwise it reads lines from
// standard input ("/history" prints the stored conversation, "/quit" or end of input leaves).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <convstate/convstate.hpp>

#include "demo_agent.hpp"

namespace {

struct Args {
    std::string db = "sqlite3://convstate-demo.db";
    std::string user = "alice";
    std::optional<std::string> conversation;
    std::size_t window = 0; // 0: the whole history
    std::vector<std::string> messages;
};

// The first 60 bytes of text, cut at a character boundary (titles must be valid UTF-8).
std::string title_of(const std::string& text) {
    std::size_t n = std::min<std::size_t>(text.size(), 60);
    while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return text.substr(0, n);
}

constexpr const char* kUsage =
    "usage: chat_demo [--db URL] [--user ID] [--conversation ID] [--window N] [--message TEXT]...\n"
    "  --db URL            database (default sqlite3://convstate-demo.db)\n"
    "  --user ID           the user chatting (default alice)\n"
    "  --conversation ID   continue this conversation (default: start a new one)\n"
    "  --window N          show the agent only the last N messages (default: all)\n"
    "  --message TEXT      send TEXT (repeatable); without it, chat on standard input\n"
    "  --help              print this help\n";

// A bad command line: what is wrong, then the usage, on stderr; exit status 2.
int usage_error(const std::string& why) {
    std::fprintf(stderr, "chat_demo: %s\n%s", why.c_str(), kUsage);
    return 2;
}

void print_turn(const convstate::MessageRepository& messages, const std::string& user, const convstate::TurnResult& r) {
    // Show the agent loop: the messages stored between the user message and the reply.
    for (const convstate::Message& m : messages.load_after(user, r.conversation_id, r.user_seq, 100)) {
        if (m.seq >= r.reply_seq) break;
        for (const convstate::ToolCall& c : m.tool_calls)
            std::printf("  [tool call %s] %s(%s)\n", c.id.c_str(), c.name.c_str(), c.arguments.c_str());
        if (m.role == convstate::Role::tool)
            std::printf("  [tool result %s] %s\n", m.tool_call_id.value_or("").c_str(), m.content.c_str());
    }
    std::printf("assistant> %s\n", r.reply.c_str());
}

} // namespace

int main(int argc, char** argv) try {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
        if (a != "--db" && a != "--user" && a != "--conversation" && a != "--window" && a != "--message")
            return usage_error("unknown argument " + a);
        if (i + 1 >= argc) return usage_error(a + " needs a value");
        const std::string v = argv[++i];
        if (a == "--db") args.db = v;
        else if (a == "--user") args.user = v;
        else if (a == "--conversation") args.conversation = v;
        else if (a == "--message") args.messages.push_back(v);
        else if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9)
            return usage_error("--window takes a whole number, not " + v);
        else args.window = std::stoul(v);
    }

    convstate::Database db = convstate::Database::open(args.db);
    convstate::OrchestratorOptions options;
    if (args.window > 0) options.window = convstate::HistoryWindow::last(args.window);
    const convstate::ChatOrchestrator chat(db, options);
    const convstate::MessageRepository messages(db);

    if (args.conversation) {
        // Fails with NotFound for a missing conversation or another user's.
        const convstate::Conversation c = convstate::ConversationStore(db).get(args.user, *args.conversation);
        std::printf("conversation: %s (%lld messages so far)\n", c.id.c_str(), static_cast<long long>(c.last_seq));
    }
    auto run = [&](const std::string& text) {
        convstate::TurnRequest request;
        request.user_id = args.user;
        request.conversation_id = args.conversation;
        request.message = text;
        request.new_conversation.title = title_of(text);
        const convstate::TurnResult r = chat.turn(request, demo::agent);
        if (r.created) {
            args.conversation = r.conversation_id;
            std::printf("conversation: %s (new; continue it with --conversation %s)\n", r.conversation_id.c_str(),
                        r.conversation_id.c_str());
        }
        std::printf("%s> %s\n", args.user.c_str(), text.c_str());
        print_turn(messages, args.user, r);
    };

    if (!args.messages.empty()) {
        for (const std::string& m : args.messages) run(m);
        return 0;
    }
    std::printf("chat_demo on %s as %s — type a message, /history, or /quit\n", args.db.c_str(), args.user.c_str());
    for (std::string line; std::printf("%s> ", args.user.c_str()), std::fflush(stdout), std::getline(std::cin, line);) {
        if (line == "/quit") break;
        if (line.empty()) continue;
        if (line == "/history") {
            if (!args.conversation) { std::puts("(no conversation yet)"); continue; }
            for (const convstate::Message& m : messages.load_all(args.user, *args.conversation))
                std::printf("  #%lld %s: %s\n", static_cast<long long>(m.seq), std::string(to_string(m.role)).c_str(),
                            m.tool_calls.empty() ? m.content.c_str() : convstate::json::tool_calls_to_json(m.tool_calls).c_str());
            continue;
        }
        run(line);
    }
    std::puts("");
    return 0;
} catch (const convstate::NotFound& e) {
    std::fprintf(stderr, "chat_demo: %s\n", e.what());
    return 3;
} catch (const std::exception& e) {
    std::fprintf(stderr, "chat_demo: %s\n", e.what());
    return 1;
}
