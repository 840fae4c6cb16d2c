// MySQL/MariaDB through SOCI's MySQL backend: InnoDB row locks, no RETURNING on UPDATE, no
// data-modifying CTEs, DDL that commits as it goes.

#include <algorithm>

#include <fmt/format.h>
#include <soci/mysql/soci-mysql.h>

#include "convstate/error.hpp"
#include "dialect.hpp"
#include "url.hpp"

namespace convstate::detail {
namespace {

MYSQL* mysql_connection(soci::session& session) {
    // (static_cast: SOCI does not export the backend's typeinfo.)
    auto* backend = static_cast<soci::mysql_session_backend*>(session.get_backend());
    return backend ? backend->conn_ : nullptr;
}

class MysqlPolicy final : public DialectPolicy {
public:
    MysqlPolicy()
        : DialectPolicy(Dialect::mysql, mysql_sql(),
                        {.rows = RowSource::mysql_result, .update_returning = false, .reserve_sets_insert_id = true,
                         .transactional_ddl = false,
                         .max_key_bytes = 255}) {}

    void open(soci::session& session, const ConnectionTarget& target, const DatabaseOptions& options) const override {
        session.open(soci::mysql, target.connect_string);
        std::string version;
        session << "SELECT VERSION()", soci::into(version);
        // (MySQL lacks the idempotent DDL the migrations rely on: ADD COLUMN IF NOT EXISTS.)
        if (version.find("MariaDB") == std::string::npos)
            throw soci::soci_error("server version " + version + " is not MariaDB: convstate's mysql:// backend "
                                   "needs MariaDB 10.6 or later");
        // Strict mode: a value that does not fit is an error, never truncated. READ COMMITTED:
        // every statement reads what is committed when it starts (the locked steps rely on it,
        // as on PostgreSQL). The server gives up on a lock wait or a statement after
        // statement_timeout (the client-side deadline backs it up).
        const long long ms = options.statement_timeout.count();
        session << fmt::format(
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
            "NO_ENGINE_SUBSTITUTION,ONLY_FULL_GROUP_BY', SESSION tx_isolation = 'READ-COMMITTED',"
            " SESSION innodb_lock_wait_timeout = {}, SESSION max_statement_time = {}.{:03}",
            std::max<long long>(1, (ms + 999) / 1000), ms / 1000, ms % 1000);
    }

    long long insert_id(soci::session& session) const override {
        MYSQL* conn = mysql_connection(session);
        if (!conn) throw soci::soci_error("not connected");
        return static_cast<long long>(mysql_insert_id(conn));
    }

    int socket(soci::session& session) const override {
        MYSQL* conn = mysql_connection(session);
        return conn ? static_cast<int>(mysql_get_socket(conn)) : -1;
    }

    // A server restart or KILL closes idle connections: nothing was sent on them yet.
    bool idle_session_alive(soci::session& session) const override { return socket_idle(socket(session)); }

    ErrorClass classify(const soci::soci_error& e, soci::session& session) const override {
        ErrorClass c;
        if (const auto* me = dynamic_cast<const soci::mysql_soci_error*>(&e)) {
            c.code = me->err_num_;
            // 1213 deadlock (the transaction was rolled back), 1205 lock wait timeout.
            // 1062 duplicate key: two writers raced on an idempotency key; the retry finds it.
            c.transient = c.code == 1213 || c.code == 1205 || c.code == 1062;
            // 2002/2003 cannot connect, 2006 server gone, 2013/2055 lost during a query,
            // 1927 connection killed, 1053 server shutting down, 4031 idle connection closed.
            c.connection_lost = c.code == 2002 || c.code == 2003 || c.code == 2006 || c.code == 2013 ||
                                c.code == 2055 || c.code == 1927 || c.code == 1053 || c.code == 4031;
            if (c.connection_lost || c.code < 2000) return c;
        }
        if (!c.connection_lost) {
            bool connected = false;
            try { connected = session.is_connected(); } catch (...) {}
            c.connection_lost = !connected;
        }
        return c;
    }

    bool unique_violation(const soci::soci_error& e) const override {
        const auto* me = dynamic_cast<const soci::mysql_soci_error*>(&e);
        return me && me->err_num_ == 1062;
    }
};

} // namespace

const DialectPolicy& mysql_policy() {
    static const MysqlPolicy policy;
    return policy;
}

} // namespace convstate::detail
