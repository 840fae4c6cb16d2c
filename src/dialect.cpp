#include "dialect.hpp"

#include <poll.h>

namespace convstate::detail {

const DialectPolicy& sqlite_policy();
const DialectPolicy& postgresql_policy();
const DialectPolicy& mysql_policy();

const DialectPolicy& dialect_policy(Dialect dialect) {
    switch (dialect) {
    case Dialect::sqlite: return sqlite_policy();
    case Dialect::postgresql: return postgresql_policy();
    case Dialect::mysql: return mysql_policy();
    }
    throw std::logic_error("convstate: unknown dialect");
}

long long DialectPolicy::insert_id(soci::session&) const {
    throw std::logic_error("convstate: this dialect's statements set no insert id");
}

bool socket_idle(int fd) {
    if (fd < 0) return false;
    // Look without blocking and without sending anything; any input (a server's goodbye, EOF)
    // means the connection is replaced.
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
}

} // namespace convstate::detail
