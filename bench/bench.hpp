#pragma once
// convstate_bench: shared pieces of the benchmark (see docs/benchmark.md and bench/README.md).
//
// Two implementations of the same turn run in one process, one after the other:
//   impl=convstate  ChatOrchestrator::turn (the library under test)
//   impl=raw        the same work written by hand against the sqlite3 C API / libpq / the
//                   MariaDB C API with prepared statements: the floor.

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace bench {

enum class Backend { sqlite, postgres, mariadb };
inline const char* backend_name(Backend b) {
    return b == Backend::sqlite ? "sqlite" : b == Backend::postgres ? "postgres" : "mariadb";
}

/** What the agent sees: every message, or the last n. */
struct Window {
    bool all = true;
    int n = 0;
    static Window everything() { return {true, 0}; }
    static Window last(int n) { return {false, n}; }
};

/** One message as the raw floor materialises it for the agent. */
struct Row {
    long long seq = 0;
    std::string role;
    std::string content;
    std::string name, tool_calls_json, tool_call_id; // read because an agent needs them; NULL -> ""
};

struct TurnOut {
    std::string conversation_id;
    long long user_seq = 0;
    long long reply_seq = 0;
};

/** Prints "convstate_bench: FAILED: what" to stderr and ends the process with status 1
 *  (from any thread: no destructors run). */
[[noreturn]] void fail(const std::string& what);

long long now_us();
/** C++ heap allocations so far, in the whole process (the bench replaces operator new). */
std::uint64_t heap_allocations();
/** A random UUIDv4-shaped string (thread-safe). */
std::string random_uuid();

/** The stub agent's fixed 300-byte reply. */
const std::string& reply_text();
/** A 120-byte user message that starts with `tag` (padded). */
std::string user_text(const std::string& tag);

/** The stub agent's check of the window it was shown: dense seqs ending at this turn's user
 *  message, as many as the window allows. Works on convstate::Message and bench::Row. */
template <class Msgs>
void check_window(const Window& w, const Msgs& h, const std::string& text, const char* impl) {
    if (h.empty()) fail(std::string(impl) + ": the agent got an empty window");
    const long long s = h.back().seq;
    if (h.back().content != text)
        fail(std::string(impl) + ": the window does not end with this turn's user message (seq " +
             std::to_string(s) + ")");
    const long long expect = w.all ? s : std::min<long long>(w.n, s);
    if (static_cast<long long>(h.size()) != expect)
        fail(std::string(impl) + ": window of " + std::to_string(h.size()) + " messages ending at seq " +
             std::to_string(s) + ", expected " + std::to_string(expect));
    for (std::size_t i = 0; i < h.size(); ++i)
        if (h[i].seq != s - expect + 1 + static_cast<long long>(i))
            fail(std::string(impl) + ": window seqs are not dense/ordered at position " + std::to_string(i));
}

/** One client (one thread). */
class Client {
public:
    virtual ~Client() = default;
    /** One turn; conversation_id empty: create a conversation. */
    virtual TurnOut turn(const std::string& user, const std::string& conversation_id, const std::string& text) = 0;
    /** Loads the last n messages (S5) and checks they are seqs last_seq-n+1 .. last_seq. */
    virtual void load_last(const std::string& user, const std::string& conversation_id, int n, long long last_seq) = 0;
};

/** One implementation over one store. */
class Impl {
public:
    virtual ~Impl() = default;
    virtual const char* name() const = 0;
    virtual std::unique_ptr<Client> client(const Window& w) = 0;
    /** Statements sent so far (PostgreSQL, MariaDB: round trips). */
    virtual std::uint64_t round_trips() const = 0;
    /** Every message of a conversation, in seq order (verification; not timed). */
    virtual std::vector<Row> load_all(const std::string& user, const std::string& conversation_id) = 0;
    /** Creates an empty conversation (S4 setup; not timed). */
    virtual std::string create_conversation(const std::string& user) = 0;
};

std::unique_ptr<Impl> make_convstate(const std::string& url);
std::unique_ptr<Impl> make_raw_sqlite(const std::string& path);
std::unique_ptr<Impl> make_raw_pg(const std::string& url);
/** The MariaDB floor (raw_mysql.cpp) on a mysql:// URL; creates its own schema there. */
std::unique_ptr<Impl> make_raw_mysql(const std::string& url);
/** The classic flow (S6 reference): separate autocommit statements, 6 round trips per turn. */
std::unique_ptr<Impl> make_classic_pg(const std::string& url);

/** The raw floor's schema: the same columns, keys and indexes as convstate's (src/sql.cpp),
 *  prefixed raw_. Valid on SQLite and PostgreSQL. */
const std::vector<std::string>& raw_schema();

/** Columns both implementations read for a message, in this order. */
inline constexpr const char* raw_msg_cols = "seq, role, content, name, tool_calls_json, tool_call_id";

// --- S5 store builders (bulk SQL, not turns) ---------------------------------------------
/** Conversation k's id and owner in a synthetic store (identical in C++ and in the SQL). */
std::string store_conv_id(long long k);
std::string store_user(long long k, long long users);
/** Fills <prefix>_conversations / <prefix>_messages with convs x per_conv messages, appended
 *  seq-major (as if the conversations grew side by side), user/assistant alternating. */
void build_store_sqlite(const std::string& path, const std::string& prefix, long long convs, long long per_conv);
void build_store_pg(const std::string& url, const std::string& prefix, long long convs, long long per_conv);
void build_store_mysql(const std::string& url, const std::string& prefix, long long convs, long long per_conv);

// --- libpq helpers for the harness --------------------------------------------------------
/** A plain libpq connection for setup, truncation and pg_stat_statements. */
class PgAdmin {
public:
    explicit PgAdmin(const std::string& url);
    ~PgAdmin();
    PgAdmin(const PgAdmin&) = delete;
    PgAdmin& operator=(const PgAdmin&) = delete;
    void exec(const std::string& sql);
    /** Runs sql; returns false (and the error in *error) instead of failing. */
    bool try_exec(const std::string& sql, std::string* error = nullptr);
    /** All rows, all columns as text. */
    std::vector<std::vector<std::string>> query(const std::string& sql);
private:
    void* conn_;
};

// --- MariaDB C API helpers for the harness --------------------------------------------------
/** A plain MariaDB connection (autocommit, READ COMMITTED, strict sql_mode, utf8mb4) for setup,
 *  truncation and status queries. Text protocol; every result is drained. */
class MyAdmin {
public:
    explicit MyAdmin(const std::string& url);
    ~MyAdmin();
    MyAdmin(const MyAdmin&) = delete;
    MyAdmin& operator=(const MyAdmin&) = delete;
    void exec(const std::string& sql);
    bool try_exec(const std::string& sql, std::string* error = nullptr);
    /** All rows of the first result, all columns as text (NULL -> ""). */
    std::vector<std::vector<std::string>> query(const std::string& sql);
private:
    void* conn_;
};
/** url with its database name replaced by db (mysql://user:password@host:port/db?params). */
std::string mysql_url_with_db(const std::string& url, const std::string& db);

/** url with its database name replaced by db (postgresql://user@host:port/db?params). */
std::string pg_url_with_db(const std::string& url, const std::string& db);
/** url with its host and port replaced (postgresql://user@HOST:PORT/db?params). */
std::string pg_url_with_host(const std::string& url, const std::string& host, int port);
/** The host and port of a postgresql:// URL (port "5432" when it names none). */
std::pair<std::string, std::string> pg_url_host_port(const std::string& url);

/** S6: a TCP proxy on 127.0.0.1 (port()) to host:port that delays every chunk, each way. */
class DelayProxy {
public:
    DelayProxy(const std::string& host, const std::string& port, std::chrono::microseconds delay);
    ~DelayProxy();
    DelayProxy(const DelayProxy&) = delete;
    DelayProxy& operator=(const DelayProxy&) = delete;
    int port() const { return port_; }

private:
    void accept_loop();
    void pump(int from, int to);

    std::chrono::microseconds delay_;
    sockaddr_storage upstream_{};
    socklen_t upstream_len_ = 0;
    int upstream_family_ = 0;
    int listen_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<int> fds_;
    std::vector<std::thread> pumps_;
};

} // namespace bench
