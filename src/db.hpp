#pragma once
// The private side of Database: connection pool, transactions, retry, error translation.

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <soci/soci.h>

#include "convstate/database.hpp"
#include "convstate/error.hpp"
#include "sql.hpp"
#include "url.hpp"

namespace convstate::detail {

/** How a driver error should be handled. */
struct ErrorClass {
    bool transient = false;       // safe to retry once the transaction is rolled back
    bool connection_lost = false; // the session must be reconnected
    int code = 0;
    std::string sqlstate;
};

enum class TxMode {
    read,            // autocommit statements; retried freely
    write,           // one transaction; retried while its outcome is known
    idempotent_write // may also be retried when the COMMIT outcome is unknown
};

class DatabaseImpl {
public:
    DatabaseImpl(ConnectionTarget target, DatabaseOptions options);
    ~DatabaseImpl();

    Dialect dialect() const noexcept { return target_.dialect; }
    const DatabaseOptions& options() const noexcept { return options_; }
    const Limits& limits() const noexcept { return options_.limits; }
    const SqlText& sql() const noexcept { return sql_; }

    /** Runs fn(session) — in one transaction unless mode is read — retrying transient failures
     *  (busy, serialization failure, deadlock, lost connection) up to options().max_retries.
     *  fn must be safe to run again from the start. */
    template <class F>
    auto run(TxMode mode, F&& fn) -> std::invoke_result_t<F&, soci::session&>;

    int schema_version();
    void migrate();

private:
    class Lease;
    Lease lease();
    void open_session(soci::session& session);
    void reconnect(soci::session& session, std::size_t slot);
    ErrorClass classify(const soci::soci_error& e, soci::session& session) const;
    [[noreturn]] void throw_storage(const soci::soci_error& e, const ErrorClass& c, const char* doing) const;
    void backoff(int attempt) const;
    void rollback_quietly(soci::session& session, std::size_t slot);
    std::string scrub(std::string message) const;

    ConnectionTarget target_;
    DatabaseOptions options_;
    const SqlText& sql_;
    soci::connection_pool pool_;
    std::unique_ptr<std::atomic<bool>[]> broken_; // per pool slot: reconnect before next use
};

class DatabaseImpl::Lease {
public:
    Lease(DatabaseImpl& db, std::size_t slot) : db_(&db), slot_(slot) {}
    Lease(Lease&& o) noexcept : db_(std::exchange(o.db_, nullptr)), slot_(o.slot_) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() { if (db_) db_->pool_.give_back(slot_); }
    soci::session& session() const { return db_->pool_.at(slot_); }
    std::size_t slot() const noexcept { return slot_; }
private:
    DatabaseImpl* db_;
    std::size_t slot_;
};

template <class F>
auto DatabaseImpl::run(TxMode mode, F&& fn) -> std::invoke_result_t<F&, soci::session&> {
    for (int attempt = 0;; ++attempt) {
        const bool may_retry = attempt < options_.max_retries;
        Lease lease = this->lease();
        soci::session& session = lease.session();
        bool in_tx = false;
        try {
            if (broken_[lease.slot()]) reconnect(session, lease.slot());
            if (mode != TxMode::read) {
                session << sql_.begin_write;
                in_tx = true;
            }
            decltype(auto) result = fn(session);
            if (in_tx) {
                in_tx = false;
                try {
                    session << "COMMIT";
                } catch (const soci::soci_error& e) {
                    const ErrorClass c = classify(e, session);
                    if (c.connection_lost) {
                        broken_[lease.slot()] = true;
                        if (mode == TxMode::idempotent_write && may_retry) { backoff(attempt); continue; }
                        throw OutcomeUnknown("the connection to the " + target_.display +
                                             " was lost during COMMIT; the write may or may not be stored");
                    }
                    rollback_quietly(session, lease.slot()); // the server rolled back: outcome known
                    if (c.transient && may_retry) { backoff(attempt); continue; }
                    throw_storage(e, c, "commit");
                }
            }
            return result;
        } catch (const soci::soci_error& e) {
            const ErrorClass c = classify(e, session);
            if (c.connection_lost) broken_[lease.slot()] = true;
            else if (in_tx) rollback_quietly(session, lease.slot());
            if ((c.transient || c.connection_lost) && may_retry) { backoff(attempt); continue; }
            throw_storage(e, c, mode == TxMode::read ? "read" : "write");
        } catch (...) {
            if (in_tx) rollback_quietly(session, lease.slot());
            throw;
        }
    }
}

/** A statement with its bindings: values bound with use() must outlive execute(). */
class Stmt {
public:
    Stmt(soci::session& session, std::string sql) : st_(session), sql_(std::move(sql)) {}

    template <class T> Stmt& use(const T& value) { st_.exchange(soci::use(value)); return *this; }
    Stmt& use(const std::optional<std::string>& value);
    Stmt& use(const std::optional<long long>& value);
    template <class T> Stmt& into(T& value) { st_.exchange(soci::into(value)); return *this; }
    template <class T> Stmt& into(T& value, soci::indicator& ind) { st_.exchange(soci::into(value, ind)); return *this; }

    /** Executes with the bound data; returns whether a first row was fetched into the intos.
     *  (SOCI's execute(false) would not exchange data: an INSERT would not even run.) */
    bool execute();
    bool fetch() { return st_.fetch(); }
    long long affected_rows() { return st_.get_affected_rows(); }

private:
    soci::statement st_;
    std::string sql_;
    bool prepared_ = false;
    std::deque<std::string> strings_;
    std::deque<long long> ints_;
    std::deque<soci::indicator> indicators_;
};

} // namespace convstate::detail
