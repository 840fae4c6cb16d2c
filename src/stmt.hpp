#pragma once
// One SQL statement on a pooled connection: Stmt, and the per-connection cache of prepared
// statements it uses (DatabaseImpl::cached). Implemented in stmt.cpp.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <soci/soci.h>

#include "dialect.hpp"

namespace sqlite_api {
struct sqlite3_stmt; // <sqlite3.h>, as SOCI includes it
}
struct pg_result; // PGresult, <libpq-fe.h>
struct st_mysql_res; // MYSQL_RES, <mysql.h>

namespace convstate::detail {

class DatabaseImpl;

/** A statement prepared once per pooled connection, with the buffers its bindings point at.
 *  Owned by DatabaseImpl's per-connection cache (or by one Stmt, when not cached). */
struct CachedStatement {
    explicit CachedStatement(soci::session& session) : st(session) {}
    struct Slot {
        std::string* text = nullptr; // exactly one of text / number is set
        long long* number = nullptr;
        soci::indicator* ind = nullptr;
    };
    soci::statement st;
    std::deque<std::string> texts;
    std::deque<long long> numbers;
    std::deque<soci::indicator> indicators;
    std::vector<Slot> uses;
    std::vector<Slot> intos; // RowSource::soci: SOCI's into() buffers, one per target
    std::size_t targets = 0; // into() targets per execution (known once prepared)
    bool prepared = false;
    bool busy = false; // a Stmt is using it: the cache neither hands it out again nor drops it

    /** A new buffer (and its indicator) for a text or a number binding. */
    Slot new_slot(bool is_text);
};

/** Runs one SQL statement: bind values with use(), targets with into(), then execute() and
 *  fetch(). Values are copied into the statement's own buffers, so the statement can stay
 *  prepared on its connection and be reused (DatabaseImpl::cached).
 *
 *  SOCI prepares every statement; on a server it also binds the values and executes. Where the
 *  dialect allows (Capabilities::rows), rows are read by Stmt itself, each column straight into
 *  its into() target: from the PGresult SOCI received, or by stepping SOCI's SQLite statement
 *  handle with the sqlite3 API (which also binds the values). Elsewhere SOCI reads them into
 *  buffers of the cached statement, handed on to the targets. SOCI's per-row conversions into buffers of its own, then copied again,
 *  were the largest cost of reading a history (docs/performance.md). */
class Stmt {
public:
    Stmt(DatabaseImpl& db, soci::session& session, const std::string& sql, bool cacheable = true);
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    ~Stmt();

    Stmt& use(const std::string& value) { return bind_use(true, &value, nullptr); }
    Stmt& use(long long value) { return bind_use(false, nullptr, &value); }
    Stmt& use(const std::optional<std::string>& value) { return bind_use(true, value ? &*value : nullptr, nullptr); }
    Stmt& use(const std::optional<long long>& value) { return bind_use(false, nullptr, value ? &*value : nullptr); }
    Stmt& into(std::string& target, soci::indicator* ind = nullptr) { return bind_into(&target, nullptr, ind); }
    Stmt& into(long long& target, soci::indicator* ind = nullptr) { return bind_into(nullptr, &target, ind); }
    Stmt& into(std::string& target, soci::indicator& ind) { return into(target, &ind); }
    Stmt& into(long long& target, soci::indicator& ind) { return into(target, &ind); }

    /** Executes with the bound data; returns whether a first row was fetched into the targets. */
    bool execute();
    bool fetch();
    long long affected_rows();

private:
    struct Target {
        std::string* text;
        long long* number;
        soci::indicator* ind;
    };
    Stmt& bind_use(bool is_text, const std::string* text, const long long* number); // null: neither
    Stmt& bind_into(std::string* text, long long* number, soci::indicator* ind);
    void prepare();
    /** SQLite: steps the statement; reads a row into the targets. False when done. */
    bool sqlite_step();
    /** RowSource::soci: hands the row SOCI fetched (if got_row) to the targets. */
    bool soci_read(bool got_row);
    /** PostgreSQL: reads row pg_row_ of the result into the targets. False past the last. */
    bool pg_read();
    /** MariaDB: reads the result's next row into the targets. False past the last. */
    bool mysql_read();
    /** Reads one row of text cells into the targets; cell(col) is the column's text, or nullopt
     *  for a null. Integers are parsed from their text. */
    template <class Cell>
    void read_text_row(Cell&& cell);

    DatabaseImpl& db_;
    soci::session& session_;
    const std::string& sql_;
    CachedStatement* c_;
    std::unique_ptr<CachedStatement> own_; // when not cached
    std::vector<Target> targets_;
    sqlite_api::sqlite3_stmt* native_ = nullptr; // SQLite: SOCI's handle, stepped by this Stmt
    const pg_result* pg_result_ = nullptr;         // PostgreSQL: the result SOCI received
    int pg_row_ = 0, pg_rows_ = 0;
    st_mysql_res* mysql_result_ = nullptr;         // MariaDB: the result SOCI stored
    RowSource rows_;
    std::size_t next_use_ = 0;
    bool failed_ = false;
};

} // namespace convstate::detail
