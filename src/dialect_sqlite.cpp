// SQLite: an embedded file in WAL mode, one writer at a time.

#include <fmt/format.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "dialect.hpp"
#include "url.hpp"

namespace convstate::detail {
namespace {

constexpr int sqlite_busy = 5, sqlite_locked = 6;

// SOCI opens SQLite connections in SQLite's default (serialized) threading mode, which locks a
// mutex in every API call: about a tenth of a turn's instructions, for nothing, since a pooled
// connection is only ever used by the thread holding its lease. SOCI 4.0 has no option for
// SQLITE_OPEN_NOMUTEX, so the fresh handle SOCI opened (no statement prepared on it yet) is
// replaced by one opened the same way in multi-thread mode. SOCI keeps nothing else of it.
void use_multithread_handle(soci::session& session) {
    // (static_cast: SOCI does not export the backend's typeinfo.)
    auto* be = static_cast<soci::sqlite3_session_backend*>(session.get_backend());
    const char* file = be && be->conn_ ? sqlite_api::sqlite3_db_filename(be->conn_, "main") : nullptr;
    if (!file || !*file) return; // an in-memory database: it stays where it is
    sqlite_api::sqlite3* handle = nullptr;
    const int rc = sqlite_api::sqlite3_open_v2(
        file, &handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
        std::string message = handle ? sqlite_api::sqlite3_errmsg(handle) : sqlite_api::sqlite3_errstr(rc);
        sqlite_api::sqlite3_close(handle);
        throw soci::sqlite3_soci_error("sqlite3_open_v2: " + message, rc);
    }
    sqlite_api::sqlite3_close(be->conn_);
    be->conn_ = handle;
}

class SqlitePolicy final : public DialectPolicy {
public:
    SqlitePolicy()
        : DialectPolicy(Dialect::sqlite, sqlite_sql(),
                        {.rows = RowSource::sqlite_statement, .single_writer = true,
                         .prepare_transaction_control = true}) {}

    void open(soci::session& session, const ConnectionTarget& target, const DatabaseOptions& options) const override {
        session.open(soci::sqlite3, target.connect_string);
        use_multithread_handle(session);
        // WAL lets readers run beside the writer; NORMAL is durable across process crashes
        // (a power loss may lose the last commits, never corrupt); FULL syncs every commit.
        std::string mode;
        session << "PRAGMA journal_mode=WAL", soci::into(mode);
        session << (target.sqlite_full_sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
        session << fmt::format("PRAGMA busy_timeout={}", options.busy_timeout.count());
    }

    ErrorClass classify(const soci::soci_error& e, soci::session&) const override {
        ErrorClass c;
        if (const auto* se = dynamic_cast<const soci::sqlite3_soci_error*>(&e)) {
            c.code = se->result();
            c.transient = (c.code & 0xFF) == sqlite_busy || (c.code & 0xFF) == sqlite_locked;
        }
        return c;
    }

    // Writers are serialised: two never race on a key.
    bool unique_violation(const soci::soci_error&) const override { return false; }
};

} // namespace

const DialectPolicy& sqlite_policy() {
    static const SqlitePolicy policy;
    return policy;
}

} // namespace convstate::detail
