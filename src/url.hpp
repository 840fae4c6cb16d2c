#pragma once
// Database URLs → what SOCI's backends accept (SOCI rejects libpq URIs).

#include <string>
#include <string_view>

#include "convstate/database.hpp"

namespace convstate::detail {

struct ConnectionTarget {
    Dialect dialect = Dialect::sqlite;
    std::string connect_string; ///< SOCI backend connection string (may hold the password)
    std::string display;        ///< for error messages: never holds the password
    std::string password;       ///< scrubbed from any driver message
    bool sqlite_full_sync = false; ///< SQLite: PRAGMA synchronous=FULL (else NORMAL)
};

/** @throws InvalidArgument naming "url". */
ConnectionTarget parse_url(std::string_view url, const DatabaseOptions& options);

} // namespace convstate::detail
