// Server faults (PostgreSQL and MariaDB): what the library says when connections die, the server
// refuses connections, or stops answering. Every error must say what really happened.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include "support.hpp"

using namespace convstate;

namespace {

using cstest::request;

// The backends of the library's pooled connections to this database (not `admin`'s own).
std::vector<int> library_backends(soci::session& admin) {
    std::vector<int> pids(64);
    admin << "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'convstate'"
             " AND pid <> pg_backend_pid()",
        soci::into(pids);
    return pids;
}

void terminate_library_backends(soci::session& admin) {
    admin << "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
             " AND application_name = 'convstate' AND pid <> pg_backend_pid()";
    for (int i = 0; i < 100 && !library_backends(admin).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

template <class F>
std::string error_kind(F&& f) {
    try {
        f();
    } catch (const OutcomeUnknown&) {
        return "OutcomeUnknown";
    } catch (const StorageError&) {
        return "StorageError";
    } catch (const Error& e) {
        return std::string("other: ") + e.what();
    }
    return "ok";
}

// MariaDB: the ids of the library's connections to this test's own database (not `admin`'s).
std::vector<long long> maria_library_connections(soci::session& admin) {
    std::vector<long long> ids(64);
    admin << "SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND id <> CONNECTION_ID()",
        soci::into(ids);
    return ids;
}

// KILL CONNECTION each of them; returns how many the server killed.
int maria_kill_connections(soci::session& admin) {
    int killed = 0;
    for (const long long id : maria_library_connections(admin)) {
        try {
            admin << "KILL CONNECTION " + std::to_string(id);
            ++killed;
        } catch (const soci::soci_error&) { // it had gone already (error 1094, unknown thread)
        }
    }
    return killed;
}

// Kills them all, then waits until the server has closed them.
void maria_kill_library_connections(soci::session& admin) {
    maria_kill_connections(admin);
    for (int i = 0; i < 100 && !maria_library_connections(admin).empty(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// Closes every connection the library holds to this test's database, from the server's side.
void close_library_connections(soci::session& admin) {
    if (cstest::is_mariadb()) maria_kill_library_connections(admin);
    else terminate_library_backends(admin);
}

} // namespace

TEST_CASE("faults: connections the server closed while idle are replaced, not reported as unknown outcomes") {
    if (!cstest::is_postgres() && !cstest::is_mariadb()) return; // SQLite has no connections to close
    cstest::FreshDb fresh;
    DatabaseOptions options;
    options.pool_size = 2;
    Database db = cstest::open_fresh(&fresh, options);
    soci::session admin(fresh.backend, fresh.connect);
    const ChatOrchestrator chat(db);
    MessageRepository messages(db);
    const Conversation c = ConversationStore(db).create("u");
    auto agent = [](const AgentInput&) { return cstest::text_reply("fine"); };
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        chat.turn(request("u", c.id, "warm up"), agent); // the pool's connections are open and idle
        close_library_connections(admin);
        CHECK(error_kind([&] { chat.turn(request("u", c.id, "unkeyed after terminate"), agent); }) == "ok");
        close_library_connections(admin);
        CHECK(error_kind([&] { chat.turn(request("u", std::nullopt, "creating after terminate"), agent); }) == "ok");
        close_library_connections(admin);
        CHECK(error_kind([&] { messages.append("u", c.id, cstest::msg(Role::user, "append after terminate")); }) ==
              "ok");
    }
    cstest::check_dense(messages.load_all("u", c.id));
    CHECK(messages.count("u", c.id) == 3 * (2 + 2 + 1));
}

TEST_CASE("faults: a server that refuses connections is a StorageError, never an unknown outcome") {
    if (!cstest::is_postgres()) return;
    cstest::FreshDb fresh;
    DatabaseOptions options;
    options.pool_size = 1;
    options.max_retries = 3;
    Database db = cstest::open_fresh(&fresh, options);
    soci::session admin(soci::postgresql, fresh.connect);
    const ChatOrchestrator chat(db);
    MessageRepository messages(db);
    const Conversation c = ConversationStore(db).create("u");
    chat.turn(request("u", c.id, "before"), [](const AgentInput&) { return cstest::text_reply("a"); });

    // The database refuses new connections (ALTER DATABASE from another database), and the
    // library's open ones are closed.
    std::string name;
    admin << "SELECT current_database()", soci::into(name);
    std::string other = fresh.connect;
    other.replace(other.find("dbname=" + name), 7 + name.size(), "dbname=postgres");
    soci::session owner(soci::postgresql, other);
    owner << "ALTER DATABASE " + name + " ALLOW_CONNECTIONS false"; // name is the test's own: letters, digits, _
    terminate_library_backends(admin);
    int calls = 0;
    auto agent = [&](const AgentInput&) {
        ++calls;
        return cstest::text_reply("b");
    };
    CHECK(error_kind([&] { chat.turn(request("u", c.id, "unkeyed while down"), agent); }) == "StorageError");
    CHECK(error_kind([&] { chat.turn(request("u", c.id, "keyed while down", "k-down"), agent); }) == "StorageError");
    CHECK(error_kind([&] { chat.turn(request("u", std::nullopt, "creating while down"), agent); }) == "StorageError");
    CHECK(error_kind([&] { messages.load_all("u", c.id); }) == "StorageError");
    CHECK(calls == 0);
    owner << "ALTER DATABASE " + name + " ALLOW_CONNECTIONS true";

    CHECK(messages.count("u", c.id) == 2); // nothing was stored meanwhile
    CHECK(chat.turn(request("u", c.id, "keyed while down", "k-down"), agent).reply == "b");
}

TEST_CASE("faults: a server that stops answering gives up after statement_timeout") {
    if (!cstest::is_postgres()) return;
    cstest::FreshDb fresh;
    DatabaseOptions options;
    options.pool_size = 1;
    options.statement_timeout = std::chrono::milliseconds(500);
    Database db = cstest::open_fresh(&fresh, options);
    soci::session admin(soci::postgresql, fresh.connect);
    MessageRepository messages(db);
    const Conversation c = ConversationStore(db).create("u");
    const Message m = cstest::msg(Role::user, "x");
    messages.append("u", c.id, m);

    const ChatOrchestrator chat(db);
    // A read, a write in a transaction whose COMMIT was never sent, and a turn's single-statement
    // write (PostgreSQL's fast path), each against a frozen backend.
    enum class Op { read, transaction, single_write };
    for (const Op op : {Op::read, Op::transaction, Op::single_write}) {
        CAPTURE(static_cast<int>(op));
        // The turn's statement is prepared on this connection first (a PREPARE that never got
        // an answer is no write at all: that would be a plain StorageError).
        if (op == Op::single_write)
            chat.turn(request("u", c.id, "warm up"), [](const AgentInput&) { return cstest::text_reply("x"); });
        const std::vector<int> pids = library_backends(admin);
        REQUIRE(pids.size() == 1);
        REQUIRE(::kill(pids[0], SIGSTOP) == 0); // a backend of the cluster this test run started
        const auto t0 = std::chrono::steady_clock::now();
        const std::string kind = error_kind([&] {
            if (op == Op::read) messages.load_all("u", c.id);
            else if (op == Op::transaction) messages.append("u", c.id, m);
            else chat.turn(request("u", c.id, "frozen"), [](const AgentInput&) { return cstest::text_reply("x"); });
        });
        const auto waited = std::chrono::steady_clock::now() - t0;
        ::kill(pids[0], SIGCONT);
        // Only a write that reached the server and may have committed is an unknown outcome. (On
        // Citus the turn is a transaction, whose COMMIT was never sent: a plain StorageError.)
        CHECK(kind == (op == Op::single_write && cstest::pg_fast_path() ? "OutcomeUnknown" : "StorageError"));
        CHECK(waited >= std::chrono::milliseconds(500));
        CHECK(waited < std::chrono::seconds(5));
        // The connection was replaced: the next call works.
        CHECK(error_kind([&] { messages.load_all("u", c.id); }) == "ok");
    }
}

TEST_CASE("faults: MariaDB connections killed at random moments: acknowledged writes stored once, failures honest") {
    if (!cstest::is_mariadb()) return;
    cstest::FreshDb fresh;
    DatabaseOptions options;
    options.pool_size = 2;
    Database db = cstest::open_fresh(&fresh, options);
    MessageRepository messages(db);
    const ChatOrchestrator chat(db);
    const Conversation c = ConversationStore(db).create("u");

    std::atomic<bool> done{false};
    std::atomic<int> kills{0};
    std::thread killer([&] {
        soci::session admin(fresh.backend, fresh.connect);
        std::mt19937 rng(20261202);
        while (!done) {
            std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(500, 8000)(rng)));
            kills += maria_kill_connections(admin);
        }
    });
    // Each operation by the content it writes: unkeyed appends, keyed appends and keyed turns.
    struct Op {
        std::function<void()> run;
        bool keyed;
        std::string kind;
    };
    std::map<std::string, Op> ops;
    auto agent = [](const AgentInput&) { return cstest::text_reply("r"); };
    for (int i = 0; i < 150; ++i) {
        const std::string n = std::to_string(i);
        ops["unkeyed " + n] = {[&, n] { messages.append("u", c.id, cstest::msg(Role::user, "unkeyed " + n)); }, false, ""};
        ops["keyed " + n] = {[&, n] {
                                 Message m = cstest::msg(Role::user, "keyed " + n);
                                 m.idempotency_key = "k" + n;
                                 messages.append("u", c.id, m);
                             },
                             true, ""};
        ops["turn " + n] = {[&, n] { chat.turn(request("u", c.id, "turn " + n, "t" + n), agent); }, true, ""};
    }
    for (int i = 0; i < 150; ++i)
        for (const char* what : {"unkeyed ", "keyed ", "turn "}) {
            Op& op = ops[what + std::to_string(i)];
            op.kind = error_kind(op.run);
        }
    done = true;
    killer.join();
    CHECK(kills > 20);

    // With the server left alone, a keyed write that failed is sent again with its key: it must
    // succeed and leave one copy, whatever the failed attempt did.
    int unknown = 0, failed = 0;
    for (auto& [content, op] : ops) {
        CAPTURE(content);
        CAPTURE(op.kind);
        CHECK((op.kind == "ok" || op.kind == "OutcomeUnknown" || op.kind == "StorageError"));
        if (op.kind == "OutcomeUnknown") ++unknown;
        else if (op.kind == "StorageError") ++failed;
        if (op.keyed && op.kind != "ok") CHECK(error_kind(op.run) == "ok");
    }
    const auto all = messages.load_all("u", c.id);
    cstest::check_dense(all);
    std::map<std::string, int> stored;
    for (const Message& m : all) ++stored[m.content];
    for (const auto& [content, op] : ops) {
        CAPTURE(content);
        CAPTURE(op.kind);
        if (op.keyed || op.kind == "ok") CHECK(stored[content] == 1); // acknowledged: stored, once
        else if (op.kind == "StorageError") CHECK(stored[content] == 0); // a plain error: nothing stored
        else CHECK(stored[content] <= 1); // unknown: at most once, never twice
    }
    MESSAGE("MariaDB random kills: " << kills.load() << " connections killed, " << unknown << " unknown outcomes, "
                                     << failed << " storage errors, " << all.size() << " messages stored");
}
