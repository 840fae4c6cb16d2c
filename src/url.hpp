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

/** text with every occurrence of secret (if not empty) replaced by "***", in one pass from the
 *  left: a replacement is never searched again (a secret such as "*" would otherwise be found
 *  in its own replacement forever). */
std::string redact(std::string_view text, std::string_view secret);

/** @throws InvalidArgument naming "url". */
ConnectionTarget parse_url(std::string_view url, const DatabaseOptions& options);

} // namespace convstate::detail
