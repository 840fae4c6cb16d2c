// quickstart: the stateless way to keep a conversation.
//
// Every run opens the database, does its work and keeps nothing in memory: run it twice and
// the second run finds the first run's conversation on disk.
//
//   quickstart [DATABASE_URL]      (default: sqlite3://convstate-demo.db)
#include <convstate/convstate.hpp>

#include <cstdio>
#include <exception>
#include <string>

constexpr const char* kUsage =
    "usage: quickstart [DATABASE_URL]\n"
    "  Appends one exchange to alice's latest conversation (starting one if needed) and prints\n"
    "  the conversation. DATABASE_URL defaults to sqlite3://convstate-demo.db.\n"
    "  --help   print this help\n";

int main(int argc, char** argv) try {
    const std::string arg = argc > 1 ? argv[1] : "";
    if (arg == "--help" || arg == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (argc > 2 || arg.starts_with("-")) {
        std::fprintf(stderr, "quickstart: unexpected argument %s\n%s", argc > 2 ? argv[2] : argv[1], kUsage);
        return 2;
    }
    const char* url = argc > 1 ? argv[1] : "sqlite3://convstate-demo.db";
    convstate::Database db = convstate::Database::open(url); // migrates on first use
    convstate::ConversationStore conversations(db);
    convstate::MessageRepository messages(db);
    const char* user = "alice";

    // Reuse alice's most recent conversation if there is one, else start one.
    convstate::ConversationPage page = conversations.list(user, {.cursor = {}, .limit = 1});
    convstate::Conversation chat = page.items.empty()
        ? conversations.create(user, {.title = "Quickstart", .metadata_json = R"({"source":"quickstart"})"})
        : page.items.front();

    using convstate::Role;
    if (chat.last_seq == 0)
        messages.append(user, chat.id, {.role = Role::system, .content = "You are a terse assistant."});
    const auto turn = chat.last_seq / 2 + 1;
    messages.append(user, chat.id, {.role = Role::user, .content = "Hello, turn " + std::to_string(turn)});
    messages.append(user, chat.id, {.role = Role::assistant, .content = "Hi! This is reply " + std::to_string(turn)});

    std::printf("conversation %s (\"%s\"), %lld messages:\n", chat.id.c_str(), chat.title.c_str(),
                static_cast<long long>(messages.count(user, chat.id)));
    for (const convstate::Message& m : messages.load_last(user, chat.id, 6))
        std::printf("  #%-3lld %-9s %s\n", static_cast<long long>(m.seq), std::string(to_string(m.role)).c_str(),
                    m.content.c_str());

    // Another user cannot see alice's conversation: it simply does not exist for them.
    try {
        conversations.get("mallory", chat.id);
        std::puts("BUG: mallory read alice's conversation");
        return 1;
    } catch (const convstate::NotFound& e) {
        std::printf("mallory: %s\n", e.what());
    }
    std::printf("conversations of %s: %zu on this page\n", user, conversations.list(user).items.size());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "quickstart: %s\n", e.what());
    return 1;
}
