#include "url.hpp"

#include <fmt/format.h>

#include "convstate/error.hpp"

namespace convstate::detail {
namespace {

[[noreturn]] void bad_url(const std::string& why) { throw InvalidArgument("url", why); }

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::string percent_decode(std::string_view s, const char* part) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') { out.push_back(s[i]); continue; }
        if (i + 2 >= s.size()) bad_url(fmt::format("truncated %-escape in the {}", part));
        const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
        if (hi < 0 || lo < 0) bad_url(fmt::format("malformed %-escape in the {}", part));
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    if (out.find('\0') != std::string::npos) bad_url(fmt::format("NUL byte in the {}", part));
    return out;
}

// libpq keyword/value syntax: single-quote the value, backslash-escape ' and \.
std::string pq_quote(std::string_view v) {
    std::string out = "'";
    for (char c : v) {
        if (c == '\'' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('\'');
    return out;
}

ConnectionTarget parse_sqlite(std::string_view rest, const DatabaseOptions& options) {
    ConnectionTarget t;
    t.sqlite_full_sync = options.sqlite_synchronous == SqliteSynchronous::full;
    // One query parameter, synchronous=normal|full (overrides DatabaseOptions, so that every
    // language can choose it through the URL alone).
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        const std::string_view query = rest.substr(q + 1);
        rest = rest.substr(0, q);
        if (query == "synchronous=full") t.sqlite_full_sync = true;
        else if (query == "synchronous=normal") t.sqlite_full_sync = false;
        else bad_url("the one query parameter of a sqlite3 URL is synchronous=normal or synchronous=full");
    }
    std::string path = percent_decode(rest, "path");
    if (path.empty()) bad_url("sqlite3 URL has no file path (sqlite3:///abs/path.db or sqlite3://rel.db)");
    if (path.find('"') != std::string::npos) bad_url("sqlite3 path must not contain a double quote");
    t.dialect = Dialect::sqlite;
    const auto seconds = (options.busy_timeout.count() + 999) / 1000;
    t.connect_string = fmt::format("db=\"{}\" timeout={}", path, seconds);
    t.display = "sqlite3 database '" + path + "'";
    return t;
}

ConnectionTarget parse_postgres(std::string_view rest, const DatabaseOptions& options) {
    // The user info ends at the last '@': a password may hold '?', '/' or '@' unescaped, and
    // none of it is ever quoted in an error. (An '@' in the database name or the query must be
    // written %40.)
    std::string_view userinfo;
    bool has_userinfo = false;
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        has_userinfo = true;
    }
    std::string_view query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = rest.substr(q + 1);
        rest = rest.substr(0, q);
    }
    std::string_view authority = rest, path;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        authority = rest.substr(0, slash);
        path = rest.substr(slash + 1);
    }
    std::string user, password, host, port;
    if (has_userinfo) {
        // A user name never holds these: the '@' was meant for the path or the query.
        if (userinfo.substr(0, userinfo.find(':')).find_first_of("/?@") != std::string_view::npos)
            bad_url("an '@' in the database name or a query value must be written %40");
        if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
            user = percent_decode(userinfo.substr(0, colon), "user name");
            password = percent_decode(userinfo.substr(colon + 1), "password");
        } else {
            user = percent_decode(userinfo, "user name");
        }
    }
    if (!authority.empty() && authority.front() == '[') { // [IPv6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos) bad_url("unterminated [IPv6] host");
        host = std::string(authority.substr(1, close - 1));
        authority = authority.substr(close + 1);
        if (!authority.empty()) {
            if (authority.front() != ':') bad_url("unexpected text after the [IPv6] host");
            port = std::string(authority.substr(1));
        }
    } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = percent_decode(authority.substr(0, colon), "host");
        port = std::string(authority.substr(colon + 1));
    } else {
        host = percent_decode(authority, "host");
    }
    if (!port.empty() && (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
                          std::stoi(port) == 0 || std::stoi(port) > 65535))
        bad_url("port '" + port + "' is not a number from 1 to 65535");
    const std::string dbname = percent_decode(path, "database name");

    std::string cs;
    auto add = [&](std::string_view key, std::string_view value) {
        if (!cs.empty()) cs.push_back(' ');
        cs += key;
        cs.push_back('=');
        cs += pq_quote(value);
    };
    if (!host.empty()) add("host", host);
    if (!port.empty()) add("port", port);
    if (!dbname.empty()) add("dbname", dbname);
    if (!user.empty()) add("user", user);
    if (!password.empty()) add("password", password);
    bool has_timeout = false, has_options = false, has_app = false, has_keepalives = false;
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        if (eq == std::string_view::npos || eq == 0) bad_url("query parameter '" + std::string(pair) + "' is not key=value");
        std::string key = percent_decode(pair.substr(0, eq), "query parameter name");
        if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos)
            bad_url("query parameter name '" + key + "' is not a libpq keyword");
        if (key == "password") bad_url("put the password in the user-info part, not the query");
        has_timeout |= key == "connect_timeout";
        has_options |= key == "options";
        has_app |= key == "application_name";
        has_keepalives |= key.rfind("keepalives", 0) == 0;
        std::string value = percent_decode(pair.substr(eq + 1), "query parameter value");
        // The caller's own server options keep the statement timeout unless they set one.
        if (key == "options" && value.find("statement_timeout") == std::string::npos)
            value += fmt::format(" -c statement_timeout={}", options.statement_timeout.count());
        add(key, value);
    }
    if (!has_timeout)
        add("connect_timeout", std::to_string(std::max<long long>(1, (options.connect_timeout.count() + 999) / 1000)));
    // The server cancels a statement after statement_timeout (see DatabaseOptions); keepalives
    // notice a peer that vanished from the network.
    if (!has_options)
        add("options", fmt::format("-c client_min_messages=warning -c statement_timeout={}",
                                   options.statement_timeout.count()));
    if (!has_keepalives) add("keepalives", "1"), add("keepalives_idle", "30"), add("keepalives_interval", "10"),
        add("keepalives_count", "3");
    if (!has_app) add("application_name", "convstate");

    ConnectionTarget t;
    t.dialect = Dialect::postgresql;
    t.connect_string = std::move(cs);
    t.password = std::move(password);
    t.display = fmt::format("postgresql database '{}' at {}:{} as user '{}'", dbname.empty() ? "(default)" : dbname,
                            host.empty() ? "(local socket)" : host, port.empty() ? "5432" : port,
                            user.empty() ? "(default)" : user);
    return t;
}

} // namespace

ConnectionTarget parse_url(std::string_view url, const DatabaseOptions& options) {
    const auto sep = url.find("://");
    if (sep == std::string_view::npos)
        bad_url("expected a URL such as sqlite3:///path/to/file.db or postgresql://user@host:5432/db");
    const std::string_view scheme = url.substr(0, sep), rest = url.substr(sep + 3);
    if (scheme == "sqlite3" || scheme == "sqlite") return parse_sqlite(rest, options);
    if (scheme == "postgresql" || scheme == "postgres") return parse_postgres(rest, options);
    bad_url("unsupported scheme '" + std::string(scheme) + "' (supported: sqlite3://, postgresql://)");
}

} // namespace convstate::detail
