// PostgreSQL through libpq: row locks, one-statement turn steps, server-side prepared statements.

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>

#include "dialect.hpp"
#include "url.hpp"

namespace convstate::detail {
namespace {

PGconn* pg_connection(soci::session& session) {
    // (static_cast: SOCI does not export the backend's typeinfo.)
    auto* backend = static_cast<soci::postgresql_session_backend*>(session.get_backend());
    return backend ? backend->conn_ : nullptr;
}

class PostgresqlPolicy final : public DialectPolicy {
public:
    PostgresqlPolicy()
        : DialectPolicy(Dialect::postgresql, postgresql_sql(),
                        {.rows = RowSource::libpq_result, .cte_writes = true, .server_prepared = true}) {}

    void open(soci::session& session, const ConnectionTarget& target, const DatabaseOptions&) const override {
        session.open(soci::postgresql, target.connect_string); // session settings are in the string
    }

    int socket(soci::session& session) const override {
        PGconn* conn = pg_connection(session);
        return conn ? PQsocket(conn) : -1;
    }

    // A restart or pg_terminate_backend closes idle connections: nothing was sent on them yet.
    bool idle_session_alive(soci::session& session) const override {
        PGconn* conn = pg_connection(session);
        return conn && PQstatus(conn) == CONNECTION_OK && socket_idle(PQsocket(conn));
    }

    ErrorClass classify(const soci::soci_error& e, soci::session& session) const override {
        ErrorClass c;
        if (const auto* pe = dynamic_cast<const soci::postgresql_soci_error*>(&e)) {
            c.sqlstate = pe->sqlstate();
            // 40001 serialization failure, 40P01 deadlock, 55P03 lock not available: retry.
            // 23505 unique violation: two writers raced on an idempotency key; the retry finds it.
            c.transient = c.sqlstate == "40001" || c.sqlstate == "40P01" || c.sqlstate == "55P03" ||
                          c.sqlstate == "23505";
            // 08xxx connection exception; 57P01-03 the server is shutting down or restarting.
            c.connection_lost = c.sqlstate.rfind("08", 0) == 0 || c.sqlstate.rfind("57P0", 0) == 0;
        }
        if (!c.connection_lost) {
            bool connected = false;
            try { connected = session.is_connected(); } catch (...) {}
            c.connection_lost = !connected;
        }
        return c;
    }

    bool unique_violation(const soci::soci_error& e) const override {
        const auto* pe = dynamic_cast<const soci::postgresql_soci_error*>(&e);
        return pe && pe->sqlstate() == "23505";
    }
};

} // namespace

const DialectPolicy& postgresql_policy() {
    static const PostgresqlPolicy policy;
    return policy;
}

} // namespace convstate::detail
