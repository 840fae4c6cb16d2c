#pragma once
/** @file database.hpp Opening a database: URL, connection pool, dialect, migrations. */

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "convstate/export.hpp"
#include "convstate/types.hpp"

namespace convstate {

namespace detail { class DatabaseImpl; }

/** The SQL backend of a Database, chosen by its URL's scheme. */
enum class Dialect {
    sqlite,     ///< `sqlite3://` (or `sqlite://`)
    postgresql, ///< `postgresql://` (or `postgres://`)
    mysql       ///< `mysql://` (or `mariadb://`): MariaDB 10.6 or later
};

/** The library's public operations, as DatabaseStats times them (one call each, entry to return). */
enum class Operation {
    create,        ///< ConversationStore::create, get_or_create
    get,           ///< ConversationStore::get, get_by_key, forks, totals
    list,          ///< ConversationStore::list
    update,        ///< ConversationStore::rename, set_metadata
    remove,        ///< ConversationStore::remove, remove_all
    append,        ///< MessageRepository::append, append_batch
    load,          ///< MessageRepository::load_*, count, window
    truncate,      ///< MessageRepository::truncate
    summary,       ///< MessageRepository::add_summary, summaries
    fork,          ///< ConversationStore::fork
    usage,         ///< ConversationStore::usage, usage_since
    turn,          ///< ChatOrchestrator::turn (the agent's time included)
    begin_turn,    ///< ChatOrchestrator::begin_turn
    complete_turn, ///< ChatOrchestrator::complete_turn
    fail_turn,     ///< ChatOrchestrator::fail_turn
    purge,         ///< ConversationStore::purge
    export_conversations, ///< Archive::export_conversations (the write callback's time included)
    import_conversation,  ///< Archive::import_conversation
};
/** How many Operation values there are (the size of DatabaseStats::operations). */
inline constexpr std::size_t operation_count = static_cast<std::size_t>(Operation::import_conversation) + 1;
/** The operation's name in snake case ("append", "begin_turn", …), as metrics label it. */
CONVSTATE_API std::string_view to_string(Operation op) noexcept;

/** A latency histogram: counts[i] is the number of samples <= bounds_us[i] and above the bound
 *  before it; counts.back() those above the last bound. Cumulative counts (Prometheus `le`
 *  buckets) are the running sums. */
struct LatencyHistogram {
    /** Upper bounds in microseconds: 50 µs … 10 s. */
    static constexpr std::array<std::uint64_t, 16> bounds_us = {50,     100,    250,    500,     1000,    2500,
                                                                5000,   10000,  25000,  50000,   100000,  250000,
                                                                500000, 1000000, 2500000, 10000000};
    std::array<std::uint64_t, bounds_us.size() + 1> counts{}; ///< per bucket, the last unbounded
    std::uint64_t count = 0;  ///< samples
    std::uint64_t sum_us = 0; ///< their sum
};

/** One operation's counters (DatabaseStats::operations, indexed by Operation). */
struct OperationStats {
    std::uint64_t calls = 0;  ///< calls that returned or threw
    std::uint64_t errors = 0; ///< of those, calls that threw (any convstate::Error)
    LatencyHistogram latency; ///< every call's duration
};

/** The connection pool's counters. */
struct PoolStats {
    std::uint64_t acquisitions = 0; ///< connections leased (one per attempt of an operation)
    std::uint64_t waits = 0;        ///< of those, leases that found no free connection and waited
    std::uint64_t timeouts = 0;     ///< waits that gave up after pool_timeout (StorageError)
    LatencyHistogram wait;          ///< how long the waits took
};

/** Counters since open, across all threads (see Database::stats). */
struct DatabaseStats {
    std::uint64_t statements = 0;   ///< statements sent to the server, i.e. round trips (BEGIN/COMMIT included)
    std::uint64_t transactions = 0; ///< write transactions committed
    std::uint64_t retries = 0;      ///< operations retried after a transient error
    std::array<OperationStats, operation_count> operations{}; ///< indexed by Operation
    PoolStats pool;                 ///< connection leases and waits
    /** The operation's counters. */
    const OperationStats& operator[](Operation op) const noexcept { return operations[static_cast<std::size_t>(op)]; }
};

/** How much a log message matters (DatabaseOptions::log_level). */
enum class LogLevel {
    debug,   ///< details for diagnosis (may quote a database's error text)
    info,    ///< opening a database, migrations
    warning, ///< reconnects, retries after transient errors, pool timeouts
    error,   ///< storage errors (by code), writes of unknown outcome
};
/** The level's name: "debug", "info", "warning", "error". */
CONVSTATE_API std::string_view to_string(LogLevel level) noexcept;

/** Receives the library's log messages (DatabaseOptions::log). Called from whichever thread
 *  logs, possibly several at once; it must not throw (an exception is swallowed) and should not
 *  block. Messages never hold a password; message content, titles and metadata appear only at
 *  debug level, and only in error details the database returned. */
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

/** SQLite's durability (PRAGMA synchronous, in WAL mode). */
enum class SqliteSynchronous {
    /** Every commit survives a crash of the application; a power loss or OS crash may lose the
     *  last commits (never corrupts the database). No fsync per commit. */
    normal,
    /** Every commit also survives a power loss: each commit waits for an fsync of the WAL. */
    full,
};

/** Options for Database::open. */
struct DatabaseOptions {
    std::size_t pool_size = 4;                           ///< connections kept open (>= 1)
    std::chrono::milliseconds busy_timeout{10000};       ///< SQLite: wait for a writer's lock
    std::chrono::milliseconds pool_timeout{30000};       ///< wait for a free pooled connection
    std::chrono::milliseconds connect_timeout{10000};    ///< PostgreSQL: connect_timeout
    bool migrate_on_open = true;                         ///< run migrate() in open()
    int max_retries = 8;                                 ///< transient-error retries per operation
    /** PostgreSQL: the longest a statement may run. The server cancels it after this
     *  (statement_timeout), and the client gives up on a server or network that stops answering
     *  after this plus min(this, 5 s) for a whole operation, closing the connection (it is
     *  replaced before its next use). Either way: StorageError, or OutcomeUnknown for a write
     *  that was sent. SQLite's waits are bounded by busy_timeout. */
    std::chrono::milliseconds statement_timeout{30000};
    /** PostgreSQL: keep each statement prepared on its connection (named prepared statements).
     *  Turn off behind a transaction-pooling proxy such as pgbouncer. SQLite always keeps them. */
    bool prepared_statements = true;
    /** SQLite's durability; the URL's `?synchronous=normal|full` overrides it. */
    SqliteSynchronous sqlite_synchronous = SqliteSynchronous::normal;
    Limits limits;                                       ///< input limits checked by every operation on this database
    /** Where log messages go; unset (the default): nowhere, and nothing is formatted. */
    LogHandler log;
    LogLevel log_level = LogLevel::info;                 ///< messages below this are not sent to log
};

/** A database handle: URL parsing, a connection pool, the SQL dialect, transactions with
 *  bounded retry of transient errors, and schema migrations.
 *
 *  URLs: `sqlite3:///absolute/path.db`, `sqlite3://relative/path.db`,
 *  `postgresql://user:password@host:port/dbname?sslmode=…` (query parameters are passed to
 *  libpq). `sqlite://` and `postgres://` are accepted as aliases.
 *
 *  Thread-safety: a Database is a cheap, copyable handle to shared state; all copies may be
 *  used from any number of threads at once (each operation leases its own pooled connection).
 */
class CONVSTATE_API Database {
public:
    /** Opens (and by default migrates) the database named by url.
     *  @throws InvalidArgument naming "url" or an option for bad input;
     *          StorageError when the server is unreachable or refuses us (never with the password
     *          in the message) or when the schema is newer than this library. */
    static Database open(std::string_view url, const DatabaseOptions& options = {});

    /** The backend named by the URL's scheme. */
    Dialect dialect() const noexcept;
    /** The options the database was opened with. */
    const DatabaseOptions& options() const noexcept;

    /** Applies pending migrations. Idempotent; safe when several processes run it at once.
     *  @throws StorageError if the database's schema is newer than this library. */
    void migrate() const;

    /** Schema version recorded in the database (0 for an empty database). */
    int schema_version() const;

    /** Counters for monitoring: round trips, commits, retries. Cheap (relaxed atomics). */
    DatabaseStats stats() const noexcept;

    /** The newest schema version this library knows. */
    static int latest_schema_version() noexcept;

private:
    // The services reach the shared state; nothing else does.
    friend class ConversationStore;
    friend class MessageRepository;
    friend class ChatOrchestrator;
    friend class Archive;
    detail::DatabaseImpl& impl() const noexcept { return *impl_; }

private:
    explicit Database(std::shared_ptr<detail::DatabaseImpl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<detail::DatabaseImpl> impl_;
};

} // namespace convstate
