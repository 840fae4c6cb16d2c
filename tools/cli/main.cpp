// The `convstate` command: an operator's view of a convstate database (docs/cli.md).
//
// Results go to stdout (JSON Lines where they are records), progress and errors to stderr.
// Exit codes: 0 done, 1 the operation failed (database error, not found, bad input in a file),
// 2 usage error (unknown command or option, missing argument).

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <convstate/convstate.hpp>

namespace {

using namespace std::string_view_literals;

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

constexpr std::string_view kOverview = R"(Usage: convstate [--db URL] COMMAND [ARGS...]

Operate a convstate database: migrate it, look inside it, purge what is past its retention.

Commands:
  migrate [--dry-run]             apply pending schema migrations (--dry-run: list them)
  status                          backend, schema version and counts
  conversations USER [--limit N]  the user's conversations, most recently updated first
  show USER CONVERSATION [--after SEQ] [--limit N]
                                  a conversation's messages
  purge --older-than DURATION [--user USER] [--dry-run] [--batch N]
                                  delete conversations not updated for DURATION
  delete-user USER                delete everything of the user
  export [--user USER] [--since TIME]
                                  write conversations as JSON Lines to stdout
  import [FILE]                   read exported JSON Lines (default: stdin) into the database

Options:
  --db URL       the database (default: $CONVSTATE_DATABASE_URL, else $DATABASE_URL)
  -h, --help     this help; COMMAND --help for a command's
  --help-all     this help and every command's
  --version      the library's version

Records are printed as JSON Lines on stdout; progress and errors go to stderr.
Exit status: 0 done, 1 the operation failed, 2 usage error.
)";

const std::map<std::string, std::string, std::less<>> kCommandHelp = {
    {"migrate", R"(Usage: convstate migrate [--dry-run]

Applies the schema migrations the database lacks (each in its own step, safe to run from many
machines at once). With --dry-run, prints the pending versions and changes nothing.
)"},
    {"status", R"(Usage: convstate status

Prints the backend, the schema version (and the library's latest) and how many users,
conversations and messages the database holds, as one JSON object. Counting reads whole tables.
)"},
    {"conversations", R"(Usage: convstate conversations USER [--limit N]

Prints the user's conversations, most recently updated first, one JSON object per line
(at most N; default: all).
)"},
    {"show", R"(Usage: convstate show USER CONVERSATION [--after SEQ] [--limit N]

Prints the conversation's messages after seq SEQ (default 0), in seq order, one JSON object per
line in OpenAI chat format with seq and created_at_us (at most N; default: all).
)"},
    {"purge", R"(Usage: convstate purge --older-than DURATION [--user USER] [--dry-run] [--batch N]

Deletes every conversation (of USER, or of every user) not updated for DURATION, with its
messages, summaries and usage, in transactions of N conversations (default 100). A conversation
that receives a turn meanwhile is kept. DURATION is a number with a unit: 90s, 30m, 12h, 30d,
2w, or several (1d12h). --dry-run counts without deleting. Prints
{"conversations": C, "messages": M}.
)"},
    {"export", R"(Usage: convstate export [--user USER] [--since TIME] > FILE.jsonl

Writes every conversation (of USER; updated at or after TIME) to stdout, one JSON object per
line: its fields, messages, summaries and usage (docs/export-format.md). TIME is UTC
microseconds since the epoch, or a duration back from now (30d, 12h, ...). Reads one
conversation at a time. Progress goes to stderr.
)"},
    {"import", R"(Usage: convstate import [FILE] < FILE.jsonl

Reads exported lines (from FILE, or stdin) and stores each conversation in one transaction.
A conversation the database already has (same user and id) is skipped, so importing a file
twice stores it once. A malformed line is reported with its line number and field, nothing of
its conversation is written, and the import goes on; the exit status is then 1. Prints
{"lines": L, "imported": I, "skipped": S, "failed": F, "messages": M}.
)"},
    {"delete-user", R"(Usage: convstate delete-user USER

Deletes every conversation, message, summary and usage row of the user. Prints
{"conversations": C}.
)"},
};

// Options after the command: flags (no value) and valued options; the rest are positional.
struct Args {
    std::vector<std::string> positional;
    std::map<std::string, std::string, std::less<>> values;
    bool flag(std::string_view name) const { return values.count(name) != 0; }
    std::optional<std::string> value(std::string_view name) const {
        const auto it = values.find(name);
        return it == values.end() ? std::nullopt : std::optional(it->second);
    }
};

Args parse_args(const std::vector<std::string>& argv, const std::vector<std::string_view>& flags,
                const std::vector<std::string_view>& valued) {
    Args a;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        const std::string& s = argv[i];
        if (s.size() < 2 || s[0] != '-' || s == "--") {
            if (s == "--") {
                a.positional.insert(a.positional.end(), argv.begin() + static_cast<long>(i) + 1, argv.end());
                break;
            }
            a.positional.push_back(s);
            continue;
        }
        std::string name = s, value;
        const auto eq = s.find('=');
        if (eq != std::string::npos) {
            name = s.substr(0, eq);
            value = s.substr(eq + 1);
        }
        if (std::find(flags.begin(), flags.end(), name) != flags.end()) {
            if (eq != std::string::npos) throw UsageError(fmt::format("{} takes no value", name));
            a.values[name] = "";
        } else if (std::find(valued.begin(), valued.end(), name) != valued.end()) {
            if (eq == std::string::npos) {
                if (i + 1 >= argv.size()) throw UsageError(fmt::format("{} needs a value", name));
                value = argv[++i];
            }
            a.values[name] = value;
        } else {
            throw UsageError(fmt::format("unknown option {}", name));
        }
    }
    return a;
}

long long parse_count(const std::string& text, const char* option, long long min) {
    std::size_t used = 0;
    long long n = 0;
    try {
        n = std::stoll(text, &used);
    } catch (const std::exception&) {
        used = 0;
    }
    if (used == 0 || used != text.size() || n < min)
        throw UsageError(fmt::format("{} must be an integer >= {}, not '{}'", option, min, text));
    return n;
}

// "30d", "12h", "1d12h", "90s", "2w" -> microseconds.
std::int64_t parse_duration_us(const std::string& text, std::string_view option) {
    static const std::map<char, std::int64_t> unit_s = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    std::int64_t total = 0;
    std::size_t i = 0;
    if (text.empty()) throw UsageError(fmt::format("{} needs a duration such as 30d", option));
    while (i < text.size()) {
        std::size_t j = i;
        while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
        const auto unit = j < text.size() ? unit_s.find(text[j]) : unit_s.end();
        if (j == i || j - i > 9 || unit == unit_s.end())
            throw UsageError(fmt::format("{}: '{}' is not a duration (e.g. 90s, 30m, 12h, 30d, 2w, 1d12h)", option, text));
        std::int64_t part = 0;
        if (__builtin_mul_overflow(std::stoll(text.substr(i, j - i)), unit->second * 1'000'000, &part) ||
            __builtin_add_overflow(total, part, &total))
            throw UsageError(fmt::format("{}: '{}' is too long a duration", option, text));
        i = j + 1;
    }
    return total;
}

std::int64_t now_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string database_url(const Args& global) {
    if (auto url = global.value("--db")) return *url;
    for (const char* name : {"CONVSTATE_DATABASE_URL", "DATABASE_URL"})
        if (const char* v = std::getenv(name); v && *v) return v;
    throw UsageError("no database: pass --db URL or set CONVSTATE_DATABASE_URL (or DATABASE_URL)");
}

std::string_view dialect_name(convstate::Dialect d) {
    switch (d) {
    case convstate::Dialect::sqlite: return "sqlite";
    case convstate::Dialect::postgresql: return "postgresql";
    case convstate::Dialect::mysql: return "mysql";
    }
    return "unknown";
}

// Progress on stderr: one rewritten line on a terminal (10 a second), with a bar when the total
// is known; otherwise a line every 5 s.
class Progress {
public:
    // Nothing is shown for the first interval: quick operations stay quiet.
    explicit Progress(std::string label)
        : label_(std::move(label)), tty_(isatty(STDERR_FILENO) == 1), last_(std::chrono::steady_clock::now()) {}
    /** what: the counts so far; done of total (in any unit) fills the bar, none when total is 0. */
    void update(const std::string& what, double done_so_far = 0, double total = 0) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < (tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000))) return;
        last_ = now;
        shown_ = true;
        std::string done;
        if (total > 0) {
            const double fraction = std::min(done_so_far / total, 1.0);
            constexpr int width = 30;
            const int filled = static_cast<int>(fraction * width);
            done = tty_ ? fmt::format("[{}{}] {:3.0f}% ", std::string(static_cast<std::size_t>(filled), '#'),
                                      std::string(static_cast<std::size_t>(width - filled), '.'), fraction * 100)
                        : fmt::format("{:.0f}% ", fraction * 100);
        }
        if (tty_)
            fmt::print(stderr, "\r\x1b[K{}: {}{}", label_, done, what);
        else
            fmt::print(stderr, "{}: {}{}\n", label_, done, what);
        std::fflush(stderr);
    }
    void done(const std::string& what) {
        if (tty_ && shown_) fmt::print(stderr, "\r\x1b[K");
        if (shown_) fmt::print(stderr, "{}: {} (done)\n", label_, what);
    }

private:
    std::string label_;
    bool tty_;
    bool shown_ = false;
    std::chrono::steady_clock::time_point last_;
};

void need_positional(const Args& a, std::size_t n, std::string_view command) {
    if (a.positional.size() != n)
        throw UsageError(fmt::format("{} takes {} argument{} (see convstate {} --help)", command, n, n == 1 ? "" : "s",
                                     command));
}

// The database as it is: never migrated implicitly (one with a newer schema is refused by open).
convstate::Database open_as_is(const Args& global) {
    convstate::DatabaseOptions options;
    options.migrate_on_open = false;
    options.pool_size = 1;
    return convstate::Database::open(database_url(global), options);
}

// The database, which must be at this library's schema version.
convstate::Database open_current(const Args& global) {
    convstate::Database db = open_as_is(global);
    if (db.schema_version() != convstate::Database::latest_schema_version())
        throw convstate::Conflict(fmt::format("the database is at schema version {}, this library needs {}: run "
                                              "`convstate migrate` first",
                                              db.schema_version(), convstate::Database::latest_schema_version()));
    return db;
}

int cmd_migrate(const Args& global, const Args& a) {
    need_positional(a, 0, "migrate");
    const convstate::Database db = open_as_is(global);
    const int current = db.schema_version(), latest = convstate::Database::latest_schema_version();
    std::string pending;
    for (int v = current + 1; v <= latest; ++v) pending += fmt::format("{}{}", pending.empty() ? "" : ",", v);
    if (a.flag("--dry-run")) {
        fmt::print("{{\"schema_version\":{},\"latest\":{},\"pending\":[{}]}}\n", current, latest, pending);
        return 0;
    }
    db.migrate();
    fmt::print("{{\"schema_version\":{},\"migrated_from\":{},\"applied\":[{}]}}\n", db.schema_version(), current, pending);
    return 0;
}

int cmd_status(const Args& global, const Args& a) {
    need_positional(a, 0, "status");
    const convstate::Database db = open_as_is(global);
    const int version = db.schema_version();
    std::string counts;
    if (version == convstate::Database::latest_schema_version()) {
        const convstate::StoreTotals t = convstate::ConversationStore(db).totals();
        counts = fmt::format(",\"users\":{},\"conversations\":{},\"messages\":{}", t.users, t.conversations, t.messages);
    }
    fmt::print("{{\"backend\":\"{}\",\"schema_version\":{},\"latest\":{}{}}}\n", dialect_name(db.dialect()), version,
               convstate::Database::latest_schema_version(), counts);
    return 0;
}

int cmd_conversations(const Args& global, const Args& a) {
    need_positional(a, 1, "conversations");
    long long remaining = a.value("--limit") ? parse_count(*a.value("--limit"), "--limit", 1) : -1;
    const convstate::ConversationStore store(open_current(global));
    convstate::ListOptions page_options;
    page_options.limit = 100;
    while (remaining != 0) {
        const convstate::ConversationPage page = store.list(a.positional[0], page_options);
        for (const convstate::Conversation& c : page.items) {
            if (remaining == 0) break;
            fmt::print("{}\n", convstate::json::to_json(c));
            if (remaining > 0) --remaining;
        }
        if (page.next_cursor.empty()) break;
        page_options.cursor = page.next_cursor;
    }
    return 0;
}

int cmd_show(const Args& global, const Args& a) {
    need_positional(a, 2, "show");
    std::int64_t after = a.value("--after") ? parse_count(*a.value("--after"), "--after", 0) : 0;
    long long remaining = a.value("--limit") ? parse_count(*a.value("--limit"), "--limit", 1) : -1;
    const convstate::Database db = open_current(global);
    const convstate::MessageRepository messages(db);
    convstate::ConversationStore(db).get(a.positional[0], a.positional[1]); // NotFound before printing anything
    while (remaining != 0) {
        const std::size_t chunk = remaining < 0 ? 1000 : static_cast<std::size_t>(std::min(remaining, 1000LL));
        const std::vector<convstate::Message> part = messages.load_after(a.positional[0], a.positional[1], after, chunk);
        for (const convstate::Message& m : part) fmt::print("{}\n", convstate::json::to_json(m));
        if (part.size() < chunk) break;
        after = part.back().seq;
        if (remaining > 0) remaining -= static_cast<long long>(part.size());
    }
    return 0;
}

int cmd_purge(const Args& global, const Args& a) {
    need_positional(a, 0, "purge");
    const auto older = a.value("--older-than");
    if (!older) throw UsageError("purge needs --older-than DURATION (e.g. 30d)");
    const std::int64_t age_us = parse_duration_us(*older, "--older-than");
    convstate::PurgeOptions options;
    options.user_id = a.value("--user");
    options.dry_run = a.flag("--dry-run");
    if (auto batch = a.value("--batch")) options.batch_size = static_cast<std::size_t>(parse_count(*batch, "--batch", 1));
    const std::int64_t cutoff = std::max<std::int64_t>(0, now_us() - age_us);
    const convstate::ConversationStore store(open_current(global));
    // On a terminal a dry run first sizes the bar (it reads the candidates, deletes nothing).
    std::int64_t total = 0;
    if (!options.dry_run && isatty(STDERR_FILENO) == 1) {
        convstate::PurgeOptions count = options;
        count.dry_run = true;
        total = store.purge(cutoff, count).conversations;
    }
    Progress progress(options.dry_run ? "purge (dry run)" : "purge");
    auto line = [](const convstate::PurgeResult& r) {
        return fmt::format("{} conversations, {} messages", r.conversations, r.messages);
    };
    const convstate::PurgeResult r = store.purge(cutoff, options, [&](const convstate::PurgeResult& so_far) {
        progress.update(line(so_far), static_cast<double>(so_far.conversations), static_cast<double>(total));
    });
    progress.done(line(r));
    fmt::print("{{\"conversations\":{},\"messages\":{},\"dry_run\":{}}}\n", r.conversations, r.messages,
               options.dry_run ? "true" : "false");
    return 0;
}

int cmd_delete_user(const Args& global, const Args& a) {
    need_positional(a, 1, "delete-user");
    const std::size_t n = convstate::ConversationStore(open_current(global)).remove_all(a.positional[0]);
    fmt::print("{{\"conversations\":{}}}\n", n);
    return 0;
}

int cmd_export(const Args& global, const Args& a) {
    need_positional(a, 0, "export");
    convstate::ExportOptions options;
    options.user_id = a.value("--user");
    if (auto since = a.value("--since")) {
        const bool digits = !since->empty() && since->find_first_not_of("0123456789") == std::string::npos;
        options.updated_since_us = digits ? parse_count(*since, "--since", 0)
                                          : std::max<std::int64_t>(0, now_us() - parse_duration_us(*since, "--since"));
    }
    const convstate::Database db = open_current(global);
    // The whole store's count gives the bar its end (a filtered export shows counts only).
    const std::int64_t total = !options.user_id && options.updated_since_us == 0 && isatty(STDERR_FILENO) == 1
                                   ? convstate::ConversationStore(db).totals().conversations
                                   : 0;
    Progress progress("export");
    std::int64_t n = 0;
    convstate::Archive(db).export_conversations(options, [&](std::string_view line) {
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fputc('\n', stdout);
        if (std::ferror(stdout)) throw std::runtime_error("cannot write to stdout");
        ++n;
        progress.update(fmt::format("{} conversations", n), static_cast<double>(n), static_cast<double>(total));
    });
    if (std::fflush(stdout) != 0) throw std::runtime_error("cannot write to stdout");
    progress.done(fmt::format("{} conversations", n));
    return 0;
}

int cmd_import(const Args& global, const Args& a) {
    if (a.positional.size() > 1) throw UsageError("import takes at most one FILE (see convstate import --help)");
    std::FILE* in = stdin;
    if (!a.positional.empty() && a.positional[0] != "-") {
        in = std::fopen(a.positional[0].c_str(), "rb");
        if (!in) throw std::runtime_error(fmt::format("cannot open {}", a.positional[0]));
    }
    const convstate::Archive archive(open_current(global));
    Progress progress("import");
    long long lines = 0, imported = 0, skipped = 0, failed = 0, messages = 0;
    // A regular file's size gives the bar its end (a pipe shows counts only).
    struct stat st {};
    const double size = fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode) ? static_cast<double>(st.st_size) : 0;
    double consumed = 0;
    std::string line;
    auto status = [&] { return fmt::format("{} lines, {} imported, {} skipped, {} failed", lines, imported, skipped, failed); };
    for (int ch = 0; ch != EOF;) {
        line.clear();
        while ((ch = std::fgetc(in)) != EOF && ch != '\n') line.push_back(static_cast<char>(ch));
        if (ch == EOF && line.empty()) break;
        ++lines;
        consumed += static_cast<double>(line.size()) + 1;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue; // blank
        try {
            const convstate::ImportResult r = archive.import_conversation(line);
            (r.imported ? imported : skipped) += 1;
            messages += r.messages;
        } catch (const convstate::InvalidArgument& e) {
            ++failed;
            fmt::print(stderr, "convstate: line {}: {}\n", lines, e.what());
        }
        progress.update(status(), consumed, size);
    }
    const bool read_error = std::ferror(in) != 0;
    if (in != stdin) std::fclose(in);
    if (read_error) throw std::runtime_error("cannot read the input");
    progress.done(status());
    fmt::print("{{\"lines\":{},\"imported\":{},\"skipped\":{},\"failed\":{},\"messages\":{}}}\n", lines, imported,
               skipped, failed, messages);
    return failed == 0 ? 0 : 1;
}

struct Command {
    std::vector<std::string_view> flags, valued;
    int (*run)(const Args& global, const Args& args);
};

const std::map<std::string, Command, std::less<>> kCommands = {
    {"migrate", {{"--dry-run"}, {}, cmd_migrate}},
    {"status", {{}, {}, cmd_status}},
    {"conversations", {{}, {"--limit"}, cmd_conversations}},
    {"show", {{}, {"--after", "--limit"}, cmd_show}},
    {"purge", {{"--dry-run"}, {"--older-than", "--user", "--batch"}, cmd_purge}},
    {"delete-user", {{}, {}, cmd_delete_user}},
    {"export", {{}, {"--user", "--since"}, cmd_export}},
    {"import", {{}, {}, cmd_import}},
};

int run(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    // Global options come before the command.
    std::size_t i = 0;
    std::vector<std::string> global_argv;
    while (i < args.size() && args[i].size() > 1 && args[i][0] == '-') {
        const std::string& s = args[i];
        if (s == "-h" || s == "--help") {
            fmt::print("{}", kOverview);
            return 0;
        }
        if (s == "--help-all") {
            fmt::print("{}", kOverview);
            for (const auto& [name, text] : kCommandHelp) fmt::print("\n{}", text);
            return 0;
        }
        if (s == "--version") {
            fmt::print("convstate {}.{}.{}\n", CONVSTATE_VERSION_MAJOR, CONVSTATE_VERSION_MINOR, CONVSTATE_VERSION_PATCH);
            return 0;
        }
        global_argv.push_back(s);
        if (s == "--db" && i + 1 < args.size()) global_argv.push_back(args[++i]);
        ++i;
    }
    Args global = parse_args(global_argv, {}, {"--db"});
    if (i == args.size()) throw UsageError("no command (see convstate --help)");
    const std::string name = args[i++];
    const auto command = kCommands.find(name);
    if (command == kCommands.end()) throw UsageError(fmt::format("unknown command '{}' (see convstate --help)", name));
    const std::vector<std::string> rest(args.begin() + static_cast<long>(i), args.end());
    for (const std::string& s : rest) {
        if (s == "--") break;
        if (s == "-h" || s == "--help") {
            fmt::print("{}", kCommandHelp.at(name));
            return 0;
        }
    }
    std::vector<std::string_view> valued = command->second.valued;
    valued.push_back("--db"); // accepted after the command too
    const Args parsed = parse_args(rest, command->second.flags, valued);
    if (auto db = parsed.value("--db")) global.values["--db"] = *db;
    return command->second.run(global, parsed);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const UsageError& e) {
        fmt::print(stderr, "convstate: {}\n", e.what());
        return 2;
    } catch (const std::exception& e) {
        fmt::print(stderr, "convstate: {}\n", e.what());
        return 1;
    }
}
