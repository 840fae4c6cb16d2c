#pragma once
/** @file database.hpp Opening a database: URL, connection pool, dialect, migrations. */

#include <chrono>
#include <cstddef>
#include <cstdint>
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

/** Counters since open, across all threads (see Database::stats). */
struct DatabaseStats {
    std::uint64_t statements = 0;   ///< statements sent to the server, i.e. round trips (BEGIN/COMMIT included)
    std::uint64_t transactions = 0; ///< write transactions committed
    std::uint64_t retries = 0;      ///< operations retried after a transient error
};

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
