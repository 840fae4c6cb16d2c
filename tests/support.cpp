#include "support.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <regex>
#include <stdexcept>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace cstest {
namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

struct PgServer {
    std::string user, host, port, dbname;
};

PgServer pg_server() {
    static const PgServer server = [] {
        const std::string url = env("CONVSTATE_TEST_PG_URL");
        if (url.empty())
            throw std::runtime_error("CONVSTATE_TEST_PG_URL is not set: run the suite with scripts/test.sh, "
                                     "which starts a throwaway PostgreSQL");
        std::smatch m;
        static const std::regex re(R"(postgresql://([^@/]+)@([^:/]+):(\d+)/([^?]+))");
        if (!std::regex_match(url, m, re))
            throw std::runtime_error("CONVSTATE_TEST_PG_URL must look like postgresql://user@host:port/db");
        return PgServer{m[1], m[2], m[3], m[4]};
    }();
    return server;
}

std::string pg_connect(const PgServer& s, const std::string& db) {
    return "host=" + s.host + " port=" + s.port + " user=" + s.user + " dbname=" + db +
           " options='-c client_min_messages=warning'";
}

// One temp dir per test process, removed at exit (CONVSTATE_TEST_KEEP=1 keeps it).
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "convstate-test-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        if (env("CONVSTATE_TEST_KEEP").empty()) std::filesystem::remove_all(path, ec);
    }
};

const std::filesystem::path& temp_dir() {
    static const TempDir dir;
    return dir.path;
}

} // namespace

namespace {
const std::string& backend() {
    static const std::string b = [] {
        std::string name = env("CONVSTATE_TEST_BACKEND");
        if (name.empty()) name = "sqlite";
        if (name != "sqlite" && name != "postgres" && name != "mariadb")
            throw std::runtime_error("CONVSTATE_TEST_BACKEND must be sqlite, postgres or mariadb");
        return name;
    }();
    return b;
}

struct MariaServer {
    std::string user, password, host, port, dbname;
};

MariaServer maria_server() {
    static const MariaServer server = [] {
        const std::string url = env("CONVSTATE_TEST_MARIADB_URL");
        if (url.empty())
            throw std::runtime_error("CONVSTATE_TEST_MARIADB_URL is not set: run the suite with scripts/test.sh, "
                                     "which starts a throwaway MariaDB");
        std::smatch m;
        static const std::regex re(R"(mysql://([^:@/]+):([^@/]*)@([^:/]+):(\d+)/([^?]+))");
        if (!std::regex_match(url, m, re))
            throw std::runtime_error("CONVSTATE_TEST_MARIADB_URL must look like mysql://user:password@host:port/db");
        return MariaServer{m[1], m[2], m[3], m[4], m[5]};
    }();
    return server;
}

std::string maria_connect(const MariaServer& s, const std::string& db) {
    return "host=" + s.host + " port=" + s.port + " user=" + s.user + " password=" + s.password + " db=" + db +
           " charset=utf8mb4";
}
} // namespace

bool is_postgres() { return backend() == "postgres"; }

bool is_mariadb() { return backend() == "mariadb"; }

bool is_citus() { return is_postgres() && !env("CONVSTATE_TEST_CITUS_WORKERS").empty(); }

bool pg_fast_path() { return is_postgres() && !is_citus(); }

const char* backend_name() { return backend().c_str(); }

convstate::Dialect dialect_under_test() {
    return is_postgres() ? convstate::Dialect::postgresql
                         : is_mariadb() ? convstate::Dialect::mysql : convstate::Dialect::sqlite;
}

std::vector<std::int64_t> seqs(const std::vector<convstate::Message>& messages) {
    std::vector<std::int64_t> out;
    for (const convstate::Message& m : messages) out.push_back(m.seq);
    return out;
}

void check_dense(const std::vector<convstate::Message>& messages) {
    for (std::size_t i = 0; i < messages.size(); ++i) REQUIRE(messages[i].seq == static_cast<std::int64_t>(i + 1));
}

std::vector<convstate::Message> leading_system(const std::vector<convstate::Message>& history) {
    std::vector<convstate::Message> prefix;
    for (const convstate::Message& m : history) {
        if (!convstate::is_instruction(m.role)) break;
        prefix.push_back(m);
    }
    return prefix;
}

convstate::Message msg(convstate::Role role, std::string content) {
    convstate::Message m;
    m.role = role;
    m.content = std::move(content);
    return m;
}

convstate::Message tool_result(std::string content, std::string tool_call_id) {
    convstate::Message m = msg(convstate::Role::tool, std::move(content));
    m.tool_call_id = std::move(tool_call_id);
    return m;
}

convstate::Message tool_calls_msg(std::vector<std::string> ids) {
    convstate::Message m = msg(convstate::Role::assistant);
    for (std::string& id : ids)
        m.tool_calls.push_back({.id = std::move(id), .type = "function", .name = "f", .arguments = "{}"});
    return m;
}

convstate::TurnRequest request(std::string user, std::optional<std::string> conversation, std::string text,
                               std::optional<std::string> key) {
    convstate::TurnRequest r;
    r.user_id = std::move(user);
    r.conversation_id = std::move(conversation);
    r.message = std::move(text);
    r.idempotency_key = std::move(key);
    return r;
}

convstate::AgentReply text_reply(std::string content) {
    convstate::AgentReply r;
    r.content = std::move(content);
    return r;
}

std::string unique(const std::string& prefix) {
    static std::atomic<int> counter{0};
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return prefix + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rng() % 1000000);
}

FreshDb fresh_db() {
    if (is_mariadb()) {
        const MariaServer s = maria_server();
        std::string name = unique("convstate");
        for (char& c : name)
            if (c == '-') c = '_';
        {
            soci::session admin("mysql", maria_connect(s, s.dbname));
            admin << "CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"; // name is ours
        }
        return FreshDb{"mysql://" + s.user + ":" + s.password + "@" + s.host + ":" + s.port + "/" + name, "mysql",
                       maria_connect(s, name)};
    }
    if (!is_postgres()) {
        const std::string path = (temp_dir() / (unique("db") + ".db")).string();
        return FreshDb{"sqlite3://" + path, "sqlite3", "db=\"" + path + "\" timeout=30"};
    }
    const PgServer s = pg_server();
    std::string name = unique("cs");
    for (char& c : name)
        if (c == '-') c = '_';
    {
        soci::session admin(soci::postgresql, pg_connect(s, s.dbname));
        admin << "CREATE DATABASE " + name; // name is ours: letters, digits, underscores
    }
    // CONVSTATE_TEST_CITUS_WORKERS=p1,p2: the server is a Citus coordinator with workers on
    // 127.0.0.1 at those ports (tests/citus_test.sh). The new database gets the same database
    // and the extension on every worker, and its own cluster metadata, so that the library's
    // migrate() distributes its tables as in a real deployment.
    if (const std::string workers = env("CONVSTATE_TEST_CITUS_WORKERS"); !workers.empty()) {
        std::vector<std::string> ports;
        for (std::size_t start = 0; start <= workers.size();) {
            const std::size_t comma = std::min(workers.find(',', start), workers.size());
            ports.push_back(workers.substr(start, comma - start));
            start = comma + 1;
        }
        for (const std::string& port : ports) {
            const PgServer w{s.user, "127.0.0.1", port, s.dbname};
            {
                soci::session admin(soci::postgresql, pg_connect(w, w.dbname));
                admin << "CREATE DATABASE " + name;
            }
            soci::session db(soci::postgresql, pg_connect(w, name));
            db << "CREATE EXTENSION citus";
        }
        soci::session db(soci::postgresql, pg_connect(s, name));
        db << "CREATE EXTENSION citus";
        db << "SELECT citus_set_coordinator_host('127.0.0.1', " + s.port + ")";
        for (const std::string& port : ports) db << "SELECT citus_add_node('127.0.0.1', " + port + ")";
    }
    return FreshDb{"postgresql://" + s.user + "@" + s.host + ":" + s.port + "/" + name, "postgresql",
                   pg_connect(s, name)};
}

convstate::Database open_fresh(FreshDb* out, convstate::DatabaseOptions options) {
    // CONVSTATE_TEST_PREPARED=0: the suite behind a transaction-pooling proxy (tests/pgbouncer_test.sh).
    if (env("CONVSTATE_TEST_PREPARED") == "0") options.prepared_statements = false;
    FreshDb db = fresh_db();
    convstate::Database handle = convstate::Database::open(db.url, options);
    if (out) *out = db;
    return handle;
}

long long query_number(const FreshDb& db, const std::string& sql) {
    soci::session s(db.backend, db.connect);
    long long n = 0;
    soci::indicator ind{};
    s << sql, soci::into(n, ind);
    return ind == soci::i_ok ? n : 0;
}

void exec(const FreshDb& db, const std::string& sql) {
    soci::session s(db.backend, db.connect);
    s << sql;
}

namespace {
int spawn(const std::vector<std::string>& args, posix_spawn_file_actions_t* actions) {
    std::vector<std::string> all{CONVSTATE_TEST_WORKER};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, argv[0], actions, nullptr, argv.data(), environ) != 0)
        throw std::runtime_error("cannot start the test worker");
    return pid;
}
} // namespace

int spawn_worker(const std::vector<std::string>& args) { return spawn(args, nullptr); }

int spawn_worker_piped(const std::vector<std::string>& args, int* stdout_fd) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    const int pid = spawn(args, &actions);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    *stdout_fd = fds[0];
    return pid;
}

int wait_worker(int pid) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

} // namespace cstest
