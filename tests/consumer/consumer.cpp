// Uses only the public headers and the exported target: no SOCI, Boost or fmt in sight.
#include <convstate/convstate.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    convstate::Database db = convstate::Database::open(argv[1]);
    convstate::ChatOrchestrator chat(db);
    const convstate::TurnResult r = chat.turn({.user_id = "consumer", .message = "hi"}, [](const convstate::AgentInput&) {
        return convstate::AgentReply{.content = "hello"};
    });
    std::printf("%s %lld\n", r.reply.c_str(), static_cast<long long>(r.reply_seq));
    return r.reply == "hello" && r.reply_seq == 2 ? 0 : 1;
}
