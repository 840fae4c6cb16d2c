#include "convstate/database.hpp"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "db.hpp"
#include "util.hpp"
#include "validate.hpp"

namespace convstate {
namespace detail {

namespace {
int latest_version() { return sql_for(Dialect::sqlite).migrations.back().version; }
} // namespace

DatabaseImpl::DatabaseImpl(ConnectionTarget target, DatabaseOptions options)
    : target_(std::move(target)), options_(std::move(options)), policy_(dialect_policy(target_.dialect)),
      sql_(policy_.sql()),
      pool_(options_.pool_size), broken_(new std::atomic<bool>[options_.pool_size]),
      statements_cache_(options_.pool_size), watchdog_(options_.pool_size) {
    for (std::size_t i = 0; i < options_.pool_size; ++i) {
        broken_[i] = false;
        soci::session& session = pool_.at(i);
        for (int attempt = 0;; ++attempt) {
            try {
                policy_.open(session, target_, options_);
                break;
            } catch (const soci::soci_error& e) {
                // Two processes creating one SQLite file race on switching it to WAL, and SQLite
                // does not wait on its busy handler there: retry that, nothing else.
                if (classify(e, session).transient && attempt < options_.max_retries * 4) {
                    if (session.get_backend()) session.close();
                    backoff(attempt);
                    continue;
                }
                throw StorageError("cannot open the " + target_.display + ": " + scrub(e.get_error_message()));
            }
        }
    }
    if (!sql_.citus_installed.empty()) {
        try {
            long long citus = 0;
            pool_.at(0) << sql_.citus_installed, soci::into(citus);
            citus_ = citus != 0;
        } catch (const soci::soci_error& e) {
            throw StorageError("cannot open the " + target_.display + ": " + scrub(e.get_error_message()));
        }
    }
}

DatabaseImpl::~DatabaseImpl() = default;

std::size_t DatabaseImpl::slot_of(soci::session& session) {
    for (std::size_t i = 0; i < options_.pool_size; ++i)
        if (&pool_.at(i) == &session) return i;
    throw std::logic_error("convstate: a session that is not from this pool");
}

CachedStatement* DatabaseImpl::cached(soci::session& session, const std::string& sql) {
    if (policy_.can().server_prepared && !options_.prepared_statements) return nullptr;
    auto& cache = statements_cache_[slot_of(session)];
    auto it = cache.find(sql);
    if (it == cache.end()) {
        // Bounded (SQL text with a variable shape: batches): drop what no Stmt is using.
        if (cache.size() >= 256) std::erase_if(cache, [](const auto& entry) { return !entry.second->busy; });
        it = cache.emplace(sql, std::make_unique<CachedStatement>(session)).first;
    } else if (it->second->busy) {
        return nullptr; // the same text twice at once on one connection: the second is not cached
    }
    it->second->busy = true;
    return it->second.get();
}

void DatabaseImpl::abandon_run(const std::string& token) {
    constexpr std::size_t kept = 4096;
    std::lock_guard lock(abandoned_mutex_);
    if (!abandoned_.insert(token).second) return;
    abandoned_order_.push_back(token);
    if (abandoned_order_.size() > kept) {
        abandoned_.erase(abandoned_order_.front());
        abandoned_order_.pop_front();
    }
}

bool DatabaseImpl::abandoned_run(const std::string& token) const {
    std::lock_guard lock(abandoned_mutex_);
    return abandoned_.count(token) != 0;
}

void DatabaseImpl::evict(soci::session& session, const std::string& sql, const CachedStatement* c) noexcept {
    try {
        auto& cache = statements_cache_[slot_of(session)];
        if (auto it = cache.find(sql); it != cache.end() && it->second.get() == c) cache.erase(it);
    } catch (...) { // a failed statement's destructor cannot fail us
    }
}

void DatabaseImpl::reconnect(soci::session& session, std::size_t slot) {
    if (logs(LogLevel::warning))
        log(LogLevel::warning, fmt::format("reconnecting pooled connection {} to the {}", slot, target_.display));
    statements_cache_[slot].clear(); // they belong to the old connection
    policy_.reconnect(session, target_, options_);
    broken_[slot] = false;
}

void DatabaseImpl::Deadline::arm(soci::session& session) {
    const int fd = db_.policy_.socket(session);
    if (fd < 0) return;
    const auto timeout = db_.options_.statement_timeout;
    const auto grace = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(5));
    db_.watchdog_.arm(slot_, fd, Watchdog::Clock::now() + timeout + grace);
    armed_ = true;
}

DatabaseImpl::Lease DatabaseImpl::lease() {
    std::size_t slot = 0;
    pool_acquisitions_.fetch_add(1, std::memory_order_relaxed);
    if (pool_.try_lease(slot, 0)) return Lease(*this, slot);
    // Every connection is in use: wait (and count the wait).
    pool_waits_.fetch_add(1, std::memory_order_relaxed);
    const auto start = std::chrono::steady_clock::now();
    const auto wait = static_cast<int>(std::min<long long>(options_.pool_timeout.count(), INT32_MAX));
    const bool leased = pool_.try_lease(slot, wait);
    pool_wait_.record(static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count()));
    if (!leased) {
        pool_timeouts_.fetch_add(1, std::memory_order_relaxed);
        const std::string why = fmt::format("no pooled connection became free within {} ms (pool_size {})",
                                            options_.pool_timeout.count(), options_.pool_size);
        log(LogLevel::warning, why);
        throw StorageError(why);
    }
    return Lease(*this, slot);
}

DatabaseStats DatabaseImpl::stats() const noexcept {
    DatabaseStats s;
    s.statements = statements_.load(std::memory_order_relaxed);
    s.transactions = transactions_.load(std::memory_order_relaxed);
    s.retries = retries_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < operation_count; ++i) {
        s.operations[i].calls = operations_[i].calls.load(std::memory_order_relaxed);
        s.operations[i].errors = operations_[i].errors.load(std::memory_order_relaxed);
        s.operations[i].latency = operations_[i].latency.snapshot();
    }
    s.pool.acquisitions = pool_acquisitions_.load(std::memory_order_relaxed);
    s.pool.waits = pool_waits_.load(std::memory_order_relaxed);
    s.pool.timeouts = pool_timeouts_.load(std::memory_order_relaxed);
    s.pool.wait = pool_wait_.snapshot();
    return s;
}

void DatabaseImpl::log(LogLevel level, std::string_view message) const noexcept {
    if (!logs(level)) return;
    try {
        options_.log(level, message);
    } catch (...) {
        // a logger's failure must not become the operation's
    }
}

void DatabaseImpl::throw_storage(const soci::soci_error& e, const ErrorClass& c, const char* doing) const {
    std::string detail = scrub(e.get_error_message());
    while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
    std::string where = c.sqlstate.empty() ? fmt::format("code {}", c.code) : "SQLSTATE " + c.sqlstate;
    if (c.connection_lost) detail = "connection lost: " + detail;
    // The server's text may quote values (message content): only at debug level.
    if (logs(LogLevel::error)) log(LogLevel::error, fmt::format("{} failed on the {} ({})", doing, target_.display, where));
    if (logs(LogLevel::debug)) log(LogLevel::debug, fmt::format("{} failed on the {} ({}): {}", doing, target_.display, where, detail));
    throw StorageError(fmt::format("{} failed on the {} ({}): {}", doing, target_.display, where, detail),
                       c.code, c.sqlstate);
}

void DatabaseImpl::throw_outcome_unknown(bool timed_out) const {
    if (logs(LogLevel::error))
        log(LogLevel::error, fmt::format("the outcome of a write on the {} is unknown ({})", target_.display,
                                         timed_out ? "the server stopped answering" : "the connection was lost"));
    throw OutcomeUnknown(fmt::format("the {} {} while a write was committing; it may or may not be stored",
                                     target_.display,
                                     timed_out ? fmt::format("stopped answering for {} ms", options_.statement_timeout.count())
                                               : std::string("connection was lost")));
}

void DatabaseImpl::throw_timeout() const {
    throw StorageError(fmt::format("the {} did not answer within {} ms (statement_timeout); the connection was "
                                   "closed and will be replaced", target_.display, options_.statement_timeout.count()));
}

std::string DatabaseImpl::scrub(std::string message) const {
    return redact(message, target_.password);
}

void DatabaseImpl::backoff(int attempt) const {
    if (logs(LogLevel::warning))
        log(LogLevel::warning, fmt::format("a transient error on the {}: retry {} of {}", target_.display, attempt + 1,
                                           options_.max_retries));
    thread_local std::minstd_rand rng{std::random_device{}()};
    const int base = std::min(500, 5 << std::min(attempt, 7)); // 5, 10, 20 … 500 ms
    std::this_thread::sleep_for(std::chrono::milliseconds(base / 2 + static_cast<int>(rng() % static_cast<unsigned>(base))));
}

void DatabaseImpl::rollback_quietly(soci::session& session, std::size_t slot) {
    try {
        count_statement();
        session << "ROLLBACK";
    } catch (...) {
        broken_[slot] = true; // the session's state is unknown: rebuild it before reuse
    }
}

int DatabaseImpl::schema_version() {
    return run(TxMode::read, [&](soci::session& s) {
        long long exists = 0;
        s << sql_.schema_table_exists, soci::into(exists);
        if (exists == 0) return 0;
        int version = 0;
        soci::indicator ind{};
        s << sql_.max_schema_version, soci::into(version, ind);
        return ind == soci::i_ok ? version : 0;
    });
}

void DatabaseImpl::migrate() {
    int from = 0; // the version found (set by the attempt that succeeds)
    const auto apply = [&](soci::session& s) {
        s << sql_.create_schema_table;
        int current = 0;
        soci::indicator ind{};
        s << sql_.max_schema_version, soci::into(current, ind);
        if (ind != soci::i_ok) current = 0;
        if (current > latest_version())
            throw StorageError(fmt::format("the {} has schema version {}, newer than this library's {}: "
                                           "upgrade convstate to use it",
                                           target_.display, current, latest_version()));
        from = current;
        for (const Migration& m : sql_.migrations) {
            if (m.version <= current) continue;
            for (const std::string& statement : m.statements) s << statement;
            const long long applied = now_us();
            s << sql_.insert_schema_version, soci::use(m.version), soci::use(applied);
        }
        distribute(s);
    };
    const auto report = [&] {
        if (from < latest_version() && logs(LogLevel::info))
            log(LogLevel::info, fmt::format("migrated the {} from schema version {} to {}", target_.display, from,
                                            latest_version()));
    };
    if (policy_.can().transactional_ddl) {
        run(TxMode::idempotent_write, [&](soci::session& s) {
            if (!sql_.migrate_lock.empty()) s << sql_.migrate_lock;
            apply(s);
            return 0;
        });
        report();
        return;
    }
    // DDL commits as it goes: a session lock serialises the processes migrating at once, and
    // every migration statement is idempotent (IF NOT EXISTS …), so a migration cut short (a
    // crash, a lost connection) is completed by the next run before its version is recorded.
    run(TxMode::read, [&](soci::session& s) {
        long long locked = 0;
        soci::indicator ind{};
        s << sql_.migrate_lock, soci::into(locked, ind);
        if (ind != soci::i_ok || locked != 1)
            throw StorageError(fmt::format("migrating the {}: another process held the migration lock too long",
                                           target_.display));
        try {
            apply(s);
        } catch (...) {
            try { s << sql_.migrate_unlock; } catch (...) {} // (a lost connection released it)
            throw;
        }
        s << sql_.migrate_unlock;
        return 0;
    });
    report();
}

// On Citus every table is distributed by user_id, all co-located, so that everything one user
// touches lives on one shard and each statement is a single-shard (router) query. Done in the
// migration's transaction, once per table (a table created by a later migration is distributed
// by it); Citus propagates later DDL on distributed tables to their shards itself. The schema
// version table stays a local table of the coordinator. Nothing happens without the extension
// (as found when the Database was opened).
void DatabaseImpl::distribute(soci::session& s) {
    if (!citus_) return;
    const std::string& anchor = sql_.distributed_tables.front();
    for (const std::string& table : sql_.distributed_tables) {
        long long done = 0;
        s << sql_.citus_distributed, soci::use(table, "t"), soci::into(done);
        if (done) continue;
        const std::string with = table == anchor ? std::string("default") : anchor;
        std::string ignored;
        s << sql_.citus_distribute, soci::use(table, "t"), soci::use(with, "with"), soci::into(ignored);
    }
}

} // namespace detail

Database Database::open(std::string_view url, const DatabaseOptions& options) {
    if (options.pool_size < 1 || options.pool_size > 1024)
        throw InvalidArgument("pool_size", "must be between 1 and 1024");
    if (options.max_retries < 0) throw InvalidArgument("max_retries", "must not be negative");
    if (options.busy_timeout.count() < 0) throw InvalidArgument("busy_timeout", "must not be negative");
    if (options.statement_timeout.count() < 1 || options.statement_timeout > std::chrono::hours(24))
        throw InvalidArgument("statement_timeout", "must be between 1 ms and 24 hours");
    detail::ConnectionTarget target = detail::parse_url(url, options);
    if (const std::size_t k = detail::dialect_policy(target.dialect).can().max_key_bytes) {
        if (options.limits.max_user_id_bytes > k)
            throw InvalidArgument("limits.max_user_id_bytes", fmt::format("must be at most {} on this backend", k));
        if (options.limits.max_id_bytes > k)
            throw InvalidArgument("limits.max_id_bytes", fmt::format("must be at most {} on this backend", k));
    }
    auto impl = std::make_shared<detail::DatabaseImpl>(std::move(target), options);
    if (options.migrate_on_open) {
        impl->migrate();
    } else if (const int v = impl->schema_version(); v > detail::latest_version()) {
        throw StorageError(fmt::format("the database has schema version {}, newer than this library's {}: "
                                       "upgrade convstate to use it", v, detail::latest_version()));
    }
    if (impl->logs(LogLevel::info))
        impl->log(LogLevel::info, fmt::format("opened the {} (pool_size {})", impl->display(), options.pool_size));
    return Database(std::move(impl));
}

std::string_view to_string(Operation op) noexcept {
    switch (op) {
    case Operation::create: return "create";
    case Operation::get: return "get";
    case Operation::list: return "list";
    case Operation::update: return "update";
    case Operation::remove: return "remove";
    case Operation::append: return "append";
    case Operation::load: return "load";
    case Operation::truncate: return "truncate";
    case Operation::summary: return "summary";
    case Operation::fork: return "fork";
    case Operation::usage: return "usage";
    case Operation::turn: return "turn";
    case Operation::begin_turn: return "begin_turn";
    case Operation::complete_turn: return "complete_turn";
    case Operation::fail_turn: return "fail_turn";
    case Operation::purge: return "purge";
    case Operation::export_conversations: return "export_conversations";
    case Operation::import_conversation: return "import_conversation";
    }
    return "unknown";
}

std::string_view to_string(LogLevel level) noexcept {
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    }
    return "unknown";
}

Dialect Database::dialect() const noexcept { return impl_->dialect(); }
const DatabaseOptions& Database::options() const noexcept { return impl_->options(); }
void Database::migrate() const { impl_->migrate(); }
int Database::schema_version() const { return impl_->schema_version(); }
DatabaseStats Database::stats() const noexcept { return impl_->stats(); }
int Database::latest_schema_version() noexcept { return detail::latest_version(); }

} // namespace convstate
