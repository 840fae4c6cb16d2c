// libFuzzer target: Archive::import_conversation of arbitrary lines, on real SQLite files (two
// databases in a temporary directory, removed at exit).
//
// Each input is one export line. Properties:
//  - refused: InvalidArgument naming a field, and neither database changed (no row counted);
//  - accepted: the conversation is stored whole — exporting it from the first database and
//    importing that line into the second gives a conversation whose export is the same bytes
//    (export → import → export is a fixed point), importing the exported line again stores
//    nothing (idempotent), and the stored messages are dense 1..last_seq;
//  - anything else (another exception, a crash) is a defect.
// The conversation is deleted from both databases after each input.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "convstate/convstate.hpp"
#include "temp_dir.hpp"

namespace {

std::optional<convstate::Database> a, b;
std::filesystem::path dir;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_import: %s\n", what.c_str());
    std::abort();
}

void remove_dir() {
    a.reset();
    b.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
}

// The export line of the user's one conversation (each input leaves at most one per user).
std::string line_of(const convstate::Database& db, const std::string& user) {
    std::vector<std::string> lines;
    convstate::Archive(db).export_conversations({user, 0}, [&](std::string_view line) { lines.emplace_back(line); });
    if (lines.size() != 1) fail("the user's export does not hold exactly its one conversation");
    return lines.front();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    dir = fuzz::make_temp_dir();
    a = convstate::Database::open("sqlite3://" + (dir / "a.db").string());
    b = convstate::Database::open("sqlite3://" + (dir / "b.db").string());
    std::atexit(remove_dir);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string line(reinterpret_cast<const char*>(data), size);
    const convstate::StoreTotals before = convstate::ConversationStore(*a).totals();
    convstate::ImportResult r;
    try {
        r = convstate::Archive(*a).import_conversation(line);
    } catch (const convstate::InvalidArgument& e) {
        if (e.field().empty()) fail("an InvalidArgument names no field");
        if (!(convstate::ConversationStore(*a).totals() == before)) fail(std::string("refused, yet written: ") + e.what());
        return 0;
    } catch (const std::exception& e) {
        fail(std::string("import threw something other than InvalidArgument: ") + e.what());
    }
    if (!r.imported) fail("an empty database already had the conversation");
    const convstate::ConversationStore store_a(*a), store_b(*b);
    const convstate::Conversation c = store_a.get(r.user_id, r.conversation_id);
    const std::vector<convstate::Message> messages = convstate::MessageRepository(*a).load_all(r.user_id, r.conversation_id);
    if (static_cast<std::int64_t>(messages.size()) != c.last_seq || r.messages != c.last_seq)
        fail("the stored messages are not 1..last_seq");
    for (std::size_t i = 0; i < messages.size(); ++i)
        if (messages[i].seq != static_cast<std::int64_t>(i) + 1) fail("the stored seqs are not dense");

    const std::string first = line_of(*a, r.user_id);
    if (convstate::Archive(*a).import_conversation(first).imported) fail("a second import stored the conversation again");
    if (!convstate::Archive(*b).import_conversation(first).imported) fail("the exported line did not import");
    const std::string second = line_of(*b, r.user_id);
    if (second != first) fail("export -> import -> export changed the line:\n" + first + "\n" + second);

    store_a.remove(r.user_id, r.conversation_id);
    store_b.remove(r.user_id, r.conversation_id);
    return 0;
}
