#pragma once
// One SQL statement on a pooled connection: Stmt, and the per-connection cache of prepared
// statements it uses (DatabaseImpl::cached). Implemented in stmt.cpp.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <soci/soci.h>

namespace sqlite_api {
struct sqlite3_stmt; // <sqlite3.h>, as SOCI includes it
}

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
    std::vector<Slot> uses, intos;
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
 *  PostgreSQL runs through SOCI, and each row is copied from SOCI's buffers to the into()
 *  targets. SQLite statements are prepared by SOCI and then bound and stepped with the sqlite3
 *  API on SOCI's own statement handle, each column read straight into its target: SOCI's
 *  per-row conversions were the largest cost of reading a history (docs/performance.md). */
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
    void copy_out();
    void prepare();
    /** SQLite: steps the statement; reads a row into the targets. False when done. */
    bool sqlite_step();

    DatabaseImpl& db_;
    soci::session& session_;
    const std::string& sql_;
    CachedStatement* c_;
    std::unique_ptr<CachedStatement> own_; // when not cached
    std::vector<Target> targets_;
    sqlite_api::sqlite3_stmt* native_ = nullptr; // SQLite: SOCI's handle, stepped by this Stmt
    std::size_t next_use_ = 0;
    bool failed_ = false;
};

} // namespace convstate::detail
