#pragma once
// What one SQL backend is, in one object per dialect (src/dialect_<name>.cpp): its SQL text
// (src/sql*.cpp), how a pooled session is opened and set up, how the driver's errors are
// classified, and what the dialect can do. The rest of the library asks the policy; it never
// compares dialects itself.

#include <string>

#include <soci/soci.h>

#include "convstate/database.hpp"
#include "sql.hpp"

namespace convstate::detail {

struct ConnectionTarget;

/** How a driver error should be handled. */
struct ErrorClass {
    bool transient = false;       // safe to retry once the transaction is rolled back
    bool connection_lost = false; // the session must be reconnected
    int code = 0;
    std::string sqlstate;
};

/** Where Stmt reads a statement's rows from (stmt.cpp). */
enum class RowSource {
    sqlite_statement, // SOCI's sqlite3_stmt, bound and stepped with the sqlite3 API
    libpq_result,     // the PGresult SOCI received (SOCI binds and sends the values)
    mysql_result,     // the MYSQL_RES SOCI stored (SOCI binds and sends the values)
    soci,             // SOCI's own into() exchange: any SOCI backend
};

struct Capabilities {
    RowSource rows = RowSource::soci;
    /** UPDATE … RETURNING. Without it the library reads the row back in the same transaction,
     *  under the lock the UPDATE took. */
    bool update_returning = true;
    /** Without update_returning: sql.conv_reserve leaves the new last_seq as the connection's
     *  insert id (MySQL's LAST_INSERT_ID(expr)), read from the UPDATE's reply by insert_id()
     *  instead of by another statement. */
    bool reserve_sets_insert_id = false;
    /** Data-modifying WITH clauses: a turn's steps as PostgreSQL's one-statement forms
     *  (sql.turn_begin, turn_create, pg_turn_finish). */
    bool cte_writes = false;
    /** DDL inside a transaction: migrate() is one transaction under sql.migrate_lock. Without
     *  it migrations run under a session lock (sql.migrate_lock / migrate_unlock) and every
     *  migration statement is idempotent, so one cut short is completed by the next run. */
    bool transactional_ddl = true;
    /** One write transaction at a time, taken at BEGIN (SQLite's BEGIN IMMEDIATE): a write
     *  statement's subqueries then read current rows, never a snapshot older than its lock. */
    bool single_writer = false;
    /** Statements are prepared on the server (DatabaseOptions::prepared_statements applies). */
    bool server_prepared = false;
    /** The longest key (user id, conversation id, idempotency key …) the schema holds, or 0
     *  for no bound: Database::open refuses Limits beyond it. */
    std::size_t max_key_bytes = 0;
    /** BEGIN and COMMIT kept prepared like other statements (cheap where preparing is local). */
    bool prepare_transaction_control = false;
};

class DialectPolicy {
public:
    DialectPolicy(Dialect dialect, const SqlText& sql, Capabilities can) : dialect_(dialect), sql_(sql), can_(can) {}
    DialectPolicy(const DialectPolicy&) = delete;
    DialectPolicy& operator=(const DialectPolicy&) = delete;
    virtual ~DialectPolicy() = default;

    Dialect dialect() const noexcept { return dialect_; }
    const SqlText& sql() const noexcept { return sql_; }
    const Capabilities& can() const noexcept { return can_; }

    /** Opens a pooled session and sets it up (the session settings the library relies on). */
    virtual void open(soci::session& session, const ConnectionTarget& target, const DatabaseOptions& options) const = 0;
    /** Replaces a broken session's connection by a new one, set up like the first. */
    void reconnect(soci::session& session, const ConnectionTarget& target, const DatabaseOptions& options) const {
        if (session.get_backend()) session.close();
        open(session, target, options);
    }
    /** The socket of a session's server connection (the client-side deadline shuts it down),
     *  or -1 (none: an embedded database, or not connected). */
    virtual int socket(soci::session&) const { return -1; }
    /** False when an idle pooled session can be seen to be unusable without sending anything
     *  (the server closed it): it is then reconnected before use. */
    virtual bool idle_session_alive(soci::session&) const { return true; }
    /** The driver's error, classified; may ask the session whether it is still connected. */
    virtual ErrorClass classify(const soci::soci_error& e, soci::session& session) const = 0;
    /** A unique index refused a row (two writers raced on a key). */
    virtual bool unique_violation(const soci::soci_error& e) const = 0;
    /** The insert id the session's last statement set (Capabilities::reserve_sets_insert_id). */
    virtual long long insert_id(soci::session&) const;

private:
    Dialect dialect_;
    const SqlText& sql_;
    Capabilities can_;
};

/** The policy of a dialect (one static object each). */
const DialectPolicy& dialect_policy(Dialect dialect);

/** A connected socket with nothing to read: an idle connection whose server has not closed it
 *  (the library never LISTENs, so a server says nothing unasked but its goodbye). */
bool socket_idle(int fd);

} // namespace convstate::detail
