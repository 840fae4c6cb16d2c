#pragma once
// Test support: the backend under test (CONVSTATE_TEST_BACKEND=sqlite|postgres|mariadb), fresh
// databases on it, raw SQL access that bypasses the library, and child processes.

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <convstate/convstate.hpp>

namespace cstest {

bool is_postgres();
/** CONVSTATE_TEST_BACKEND=mariadb: MariaDB through mysql:// URLs (CONVSTATE_TEST_MARIADB_URL). */
bool is_mariadb();
/** The PostgreSQL server is a Citus coordinator (tests/citus_test.sh suite). */
bool is_citus();
/** PostgreSQL's one-statement turn steps are used (PostgreSQL, not Citus): 2 statements a turn. */
bool pg_fast_path();
const char* backend_name();
/** The dialect of the backend under test. */
convstate::Dialect dialect_under_test();

/** A fresh, empty database on the backend under test: a new SQLite file in a temp dir, or a
 *  new PostgreSQL database on the test cluster (CONVSTATE_TEST_PG_URL). */
struct FreshDb {
    std::string url;     ///< convstate URL
    std::string backend; ///< SOCI backend name ("sqlite3" / "postgresql" / "mysql")
    std::string connect; ///< SOCI connection string, for raw access
};
FreshDb fresh_db();

/** Opens a fresh database through the library. */
convstate::Database open_fresh(FreshDb* out = nullptr, convstate::DatabaseOptions options = {});

/** The usual set-up of a test: a fresh database, opened, with its store and repository.
 *  Tests unpack it: `auto& [raw, db, store, messages] = fx;`. */
struct Fixture {
    explicit Fixture(convstate::DatabaseOptions options = {}) : db(open_fresh(&raw, std::move(options))) {}
    FreshDb raw;
    convstate::Database db;
    convstate::ConversationStore store{db};
    convstate::MessageRepository messages{db};
};

/** Raw SQL, bypassing convstate: one number (COUNT(*), MAX(…)). */
long long query_number(const FreshDb& db, const std::string& sql);
/** Raw SQL, bypassing convstate: run a statement. */
void exec(const FreshDb& db, const std::string& sql);

/** The seqs of messages, in order. */
std::vector<std::int64_t> seqs(const std::vector<convstate::Message>& messages);
/** A history's leading system (and developer) messages: those before its first other one. */
std::vector<convstate::Message> leading_system(const std::vector<convstate::Message>& history);
/** Asserts (REQUIRE) that the seqs are exactly 1..n in order. */
void check_dense(const std::vector<convstate::Message>& messages);

/** Message and turn builders (field by field: designated initializers that skip members trip
 *  -Wmissing-field-initializers). */
convstate::Message msg(convstate::Role role, std::string content = {});
/** A tool result answering tool_call_id. */
convstate::Message tool_result(std::string content, std::string tool_call_id);
/** An assistant message calling one tool "f" per id, with arguments {}. */
convstate::Message tool_calls_msg(std::vector<std::string> ids);
convstate::TurnRequest request(std::string user, std::optional<std::string> conversation, std::string text,
                               std::optional<std::string> key = std::nullopt);
convstate::AgentReply text_reply(std::string content);

/** The field an InvalidArgument thrown by f names, or "(no InvalidArgument)". */
template <class F>
std::string invalid_field(F&& f) {
    try {
        f();
    } catch (const convstate::InvalidArgument& e) {
        return e.field();
    }
    return "(no InvalidArgument)";
}

/** A unique id for a test user or key. */
std::string unique(const std::string& prefix);

/** Runs the test worker with args; returns its pid (see wait_worker). */
int spawn_worker(const std::vector<std::string>& args);
/** Runs the test worker with its stdout on a pipe; returns its pid and sets *stdout_fd. */
int spawn_worker_piped(const std::vector<std::string>& args, int* stdout_fd);
/** Waits for a worker; returns its exit status (or 128+signal). */
int wait_worker(int pid);

} // namespace cstest
