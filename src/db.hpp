#pragma once
// The private side of Database: connection pool, transactions, retry, error translation.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <soci/soci.h>

#include "convstate/database.hpp"
#include "convstate/error.hpp"
#include "dialect.hpp"
#include "sql.hpp"
#include "stmt.hpp"
#include "url.hpp"
#include "watchdog.hpp"

namespace convstate::detail {

enum class TxMode {
    read,             // autocommit reads; retried freely
    write,            // one transaction (BEGIN … COMMIT); retried while its outcome is known
    idempotent_write, // as write, and also retried when the COMMIT outcome is unknown
    single_write,     // fn sends one autocommit write statement (its own transaction)
    idempotent_single_write,
};

inline bool opens_transaction(TxMode m) { return m == TxMode::write || m == TxMode::idempotent_write; }
inline bool is_idempotent(TxMode m) { return m == TxMode::idempotent_write || m == TxMode::idempotent_single_write; }
inline bool is_single_write(TxMode m) { return m == TxMode::single_write || m == TxMode::idempotent_single_write; }

class DatabaseImpl;

/** A LatencyHistogram that many threads add to (relaxed atomics; a snapshot may be mid-update). */
class AtomicHistogram {
public:
    void record(std::uint64_t us) noexcept {
        const auto& b = LatencyHistogram::bounds_us;
        const auto bucket = static_cast<std::size_t>(std::lower_bound(b.begin(), b.end(), us) - b.begin());
        counts_[bucket].fetch_add(1, std::memory_order_relaxed);
        count_.fetch_add(1, std::memory_order_relaxed);
        sum_us_.fetch_add(us, std::memory_order_relaxed);
    }
    LatencyHistogram snapshot() const noexcept {
        LatencyHistogram h;
        for (std::size_t i = 0; i < counts_.size(); ++i) h.counts[i] = counts_[i].load(std::memory_order_relaxed);
        h.count = count_.load(std::memory_order_relaxed);
        h.sum_us = sum_us_.load(std::memory_order_relaxed);
        return h;
    }
private:
    std::array<std::atomic<std::uint64_t>, LatencyHistogram::bounds_us.size() + 1> counts_{};
    std::atomic<std::uint64_t> count_{0}, sum_us_{0};
};

/** Statements this thread has sent to a server (for telling whether a failed write was sent). */
inline thread_local std::uint64_t statements_sent_by_thread = 0;


class DatabaseImpl {
public:
    DatabaseImpl(ConnectionTarget target, DatabaseOptions options);
    ~DatabaseImpl();

    Dialect dialect() const noexcept { return target_.dialect; }
    /** The database as errors and logs name it ("sqlite3 database 'x.db'"), never a password. */
    const std::string& display() const noexcept { return target_.display; }
    const DialectPolicy& policy() const noexcept { return policy_; }
    const DatabaseOptions& options() const noexcept { return options_; }
    const Limits& limits() const noexcept { return options_.limits; }
    const SqlText& sql() const noexcept { return sql_; }
    /** PostgreSQL with the Citus extension (found when the Database was opened). The turn then
     *  takes the general path: its statements are single-table, single-shard (router) queries,
     *  where the one-statement steps' CTEs would be planned as several distributed subplans
     *  (and Citus refuses their set_config). */
    bool citus() const noexcept { return citus_; }
    /** A turn's steps may take their one-statement forms (dialects with CTE writes, not Citus). */
    bool one_statement_turns() const noexcept { return policy_.can().cte_writes && !citus_; }

    /** Runs fn(session) — in one transaction unless mode is read — retrying transient failures
     *  (busy, serialization failure, deadlock, lost connection) up to options().max_retries.
     *  fn must be safe to run again from the start. */
    template <class F>
    auto run(TxMode mode, F&& fn) -> std::invoke_result_t<F&, soci::session&>;

    int schema_version();
    void migrate();
    /** Citus: distributes the tables not distributed yet (see database.cpp). */
    void distribute(soci::session& s);

    DatabaseStats stats() const noexcept;
    /** Records one public call's duration (OpTimer). */
    void record(Operation op, std::uint64_t us, bool failed) noexcept {
        OperationCounters& c = operations_[static_cast<std::size_t>(op)];
        c.calls.fetch_add(1, std::memory_order_relaxed);
        if (failed) c.errors.fetch_add(1, std::memory_order_relaxed);
        c.latency.record(us);
    }
    /** Whether a message at this level reaches DatabaseOptions::log (check before formatting one). */
    bool logs(LogLevel level) const noexcept { return options_.log && level >= options_.log_level; }
    /** Sends a message to DatabaseOptions::log, if it takes this level; a throwing handler is ignored. */
    void log(LogLevel level, std::string_view message) const noexcept;
    /** The prepared statement for sql on this pooled connection, or nullptr when statements are
     *  not kept (DatabaseOptions::prepared_statements off on PostgreSQL) or that statement is in
     *  use by another Stmt. Marks it busy; the Stmt clears that. */
    CachedStatement* cached(soci::session& session, const std::string& sql);
    /** Drops the cached statement c for sql, which failed (it is prepared afresh next time). */
    void evict(soci::session& session, const std::string& sql, const CachedStatement* c) noexcept;

    /** Remembers the run token of a keyed turn this process gave up on while its claim on the
     *  agent call may still be stored (the attempt failed and releasing the claim failed too, as
     *  during a failover): a retry through this Database takes that claim over at once instead
     *  of waiting out its lease. Bounded: the oldest are forgotten (their lease then applies). */
    void abandon_run(const std::string& token);
    bool abandoned_run(const std::string& token) const;

    /** Counts one statement sent to the server (a round trip). */
    void count_statement() noexcept {
        statements_.fetch_add(1, std::memory_order_relaxed);
        ++statements_sent_by_thread;
    }

private:
    class Lease;
    class Deadline;
    Lease lease();
    void reconnect(soci::session& session, std::size_t slot);
    ErrorClass classify(const soci::soci_error& e, soci::session& session) const {
        return policy_.classify(e, session);
    }
    [[noreturn]] void throw_storage(const soci::soci_error& e, const ErrorClass& c, const char* doing) const;
    void backoff(int attempt) const;
    [[noreturn]] void throw_outcome_unknown(bool timed_out = false) const;
    [[noreturn]] void throw_timeout() const;
    static const std::string& commit_sql() {
        static const std::string commit = "COMMIT";
        return commit;
    }
    void rollback_quietly(soci::session& session, std::size_t slot);
    std::string scrub(std::string message) const;

    ConnectionTarget target_;
    DatabaseOptions options_;
    const DialectPolicy& policy_;
    const SqlText& sql_;
    bool citus_ = false;
    soci::connection_pool pool_;
    std::unique_ptr<std::atomic<bool>[]> broken_; // per pool slot: reconnect before next use
    // Per pool slot, used only by the thread holding that slot's lease. Declared after pool_ so
    // the statements go before their connections.
    std::vector<std::unordered_map<std::string, std::unique_ptr<CachedStatement>>> statements_cache_;
    std::size_t slot_of(soci::session& session);
    std::atomic<std::uint64_t> statements_{0}, transactions_{0}, retries_{0};
    struct OperationCounters {
        std::atomic<std::uint64_t> calls{0}, errors{0};
        AtomicHistogram latency;
    };
    std::array<OperationCounters, operation_count> operations_{};
    std::atomic<std::uint64_t> pool_acquisitions_{0}, pool_waits_{0}, pool_timeouts_{0};
    AtomicHistogram pool_wait_;
    mutable std::mutex abandoned_mutex_;
    std::unordered_set<std::string> abandoned_;
    std::deque<std::string> abandoned_order_;
    Watchdog watchdog_;
};

/** The client-side deadline of one attempt on a pooled server connection (see Watchdog). */
class DatabaseImpl::Deadline {
public:
    Deadline(DatabaseImpl& db, std::size_t slot) : db_(db), slot_(slot) {}
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;
    ~Deadline() {
        if (armed_) db_.watchdog_.disarm(slot_);
    }
    void arm(soci::session& session);
    /** True when the deadline passed (the connection was shut down). Stays armed until the
     *  attempt ends, so a ROLLBACK after a failure is bounded too. */
    bool fired() const { return armed_ && db_.watchdog_.fired(slot_); }
private:
    DatabaseImpl& db_;
    std::size_t slot_;
    bool armed_ = false;
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

/** Times one public call into DatabaseStats::operations: construct it first thing in the call. */
class OpTimer {
public:
    OpTimer(DatabaseImpl& db, Operation op) noexcept
        : db_(db), op_(op), exceptions_(std::uncaught_exceptions()), start_(std::chrono::steady_clock::now()) {}
    OpTimer(const OpTimer&) = delete;
    OpTimer& operator=(const OpTimer&) = delete;
    ~OpTimer() {
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_);
        db_.record(op_, static_cast<std::uint64_t>(us.count()), std::uncaught_exceptions() > exceptions_);
    }
private:
    DatabaseImpl& db_;
    Operation op_;
    int exceptions_;
    std::chrono::steady_clock::time_point start_;
};

template <class F>
auto DatabaseImpl::run(TxMode mode, F&& fn) -> std::invoke_result_t<F&, soci::session&> {
    // Set once an attempt's write may have been stored before its connection died: giving up
    // later (say, the server is still restarting) is then an unknown outcome, not a plain error.
    bool maybe_stored_before = false;
    for (int attempt = 0;; ++attempt) {
        if (attempt > 0) retries_.fetch_add(1, std::memory_order_relaxed);
        const bool may_retry = attempt < options_.max_retries;
        Lease lease = this->lease();
        soci::session& session = lease.session();
        Deadline deadline(*this, lease.slot());
        const std::uint64_t sent_before = statements_sent_by_thread;
        bool in_tx = false;
        try {
            if (broken_[lease.slot()] || !policy_.idle_session_alive(session)) reconnect(session, lease.slot());
            deadline.arm(session);
            if (opens_transaction(mode)) {
                Stmt(*this, session, sql_.begin_write, policy_.can().prepare_transaction_control).execute();
                in_tx = true;
            }
            decltype(auto) result = fn(session);
            if (in_tx) {
                in_tx = false;
                try {
                    Stmt(*this, session, commit_sql(), policy_.can().prepare_transaction_control).execute();
                    transactions_.fetch_add(1, std::memory_order_relaxed);
                } catch (const soci::soci_error& e) {
                    const ErrorClass c = classify(e, session);
                    const bool timed_out = deadline.fired();
                    if (c.connection_lost || timed_out) { // the COMMIT was sent: it may have happened
                        broken_[lease.slot()] = true;
                        if (is_idempotent(mode) && may_retry && !timed_out) {
                            maybe_stored_before = true;
                            backoff(attempt);
                            continue;
                        }
                        throw_outcome_unknown(timed_out);
                    }
                    rollback_quietly(session, lease.slot()); // the server rolled back: outcome known
                    if (c.transient && may_retry) { backoff(attempt); continue; }
                    if (maybe_stored_before) throw_outcome_unknown();
                    throw_storage(e, c, "commit");
                }
            }
            return result;
        } catch (const soci::soci_error& e) {
            const ErrorClass c = classify(e, session);
            const bool timed_out = deadline.fired();
            if (c.connection_lost || timed_out) broken_[lease.slot()] = true;
            else if (in_tx) rollback_quietly(session, lease.slot());
            // An autocommit write may have committed only if it reached the server: a connection
            // found dead before anything was sent (a restart, a stopped server) is just retried.
            const bool maybe_stored = is_single_write(mode) && statements_sent_by_thread != sent_before &&
                                      (c.connection_lost || timed_out);
            if (timed_out) { // a server that stopped answering: no retry
                if (maybe_stored || maybe_stored_before) throw_outcome_unknown(true);
                throw_timeout();
            }
            if (maybe_stored && !(is_idempotent(mode) && may_retry)) throw_outcome_unknown();
            maybe_stored_before |= maybe_stored;
            if ((c.transient || c.connection_lost) && may_retry) { backoff(attempt); continue; }
            if (maybe_stored_before) throw_outcome_unknown();
            throw_storage(e, c, mode == TxMode::read ? "read" : "write");
        } catch (...) {
            if (in_tx) rollback_quietly(session, lease.slot());
            throw;
        }
    }
}

} // namespace convstate::detail
