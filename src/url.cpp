#include "url.hpp"

#include <algorithm>
#include <cctype>
#include <memory>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <libpq-fe.h>

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

void check_port(std::string_view port) {
    if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos ||
        std::stoi(std::string(port)) == 0 || std::stoi(std::string(port)) > 65535)
        bad_url("port '" + std::string(port) + "' is not a number from 1 to 65535");
}

// libpq's and SOCI MySQL's keyword=value syntax: single-quote the value, backslash-escape ' and \.
std::string quote_value(std::string_view v) {
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

std::string percent_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
    }
    return out;
}

// Splits a libpq list value ("h1,h2"; an empty item means the default).
std::vector<std::string_view> split_list(std::string_view v) {
    std::vector<std::string_view> out;
    for (std::size_t start = 0;;) {
        const std::size_t comma = v.find(',', start);
        out.push_back(v.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        if (comma == std::string_view::npos) return out;
        start = comma + 1;
    }
}

// The user info of a server URL: it ends at the last '@', so a password may hold '?', '/' or
// '@' unescaped. Takes it off the front of rest.
struct UserInfo {
    bool given = false, has_password = false;
    std::string user, password;
};

UserInfo take_userinfo(std::string_view& rest) {
    UserInfo u;
    const auto at = rest.rfind('@');
    if (at == std::string_view::npos) return u;
    const std::string_view userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    u.given = true;
    // A user name never holds these: the '@' was meant for the path or the query.
    if (userinfo.substr(0, userinfo.find(':')).find_first_of("/?@") != std::string_view::npos)
        bad_url("an '@' in the database name or a query value must be written %40");
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
        u.user = percent_decode(userinfo.substr(0, colon), "user name");
        u.password = percent_decode(userinfo.substr(colon + 1), "password");
        u.has_password = true;
    } else {
        u.user = percent_decode(userinfo, "user name");
    }
    return u;
}

// The key=value pairs of a URL's query (undecoded); a password there is refused (it would show
// in process lists and logs).
std::vector<std::pair<std::string_view, std::string_view>> query_pairs(std::string_view query) {
    std::vector<std::pair<std::string_view, std::string_view>> pairs;
    for (std::size_t start = 0; start <= query.size();) {
        const std::size_t amp = std::min(query.find('&', start), query.size());
        const std::string_view pair = query.substr(start, amp - start);
        const std::size_t eq = pair.find('=');
        const std::string_view key = pair.substr(0, eq);
        if (key == "password") bad_url("put the password in the user-info part, not the query");
        if (!pair.empty()) pairs.emplace_back(key, eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
        start = amp + 1;
    }
    return pairs;
}

// A PostgreSQL URL is parsed by libpq itself (PQconninfoParse), so every connection parameter
// and libpq's multi-host form (postgresql://u@h1:p1,h2:p2/db?target_session_attrs=read-write)
// mean what they mean to psql. The user info is taken first
// (take_userinfo; re-encoded for libpq), and a password in the query is refused.
ConnectionTarget parse_postgres(std::string_view rest, const DatabaseOptions& options) {
    const UserInfo ui = take_userinfo(rest);
    const bool has_userinfo = ui.given, has_password = ui.has_password;
    const std::string &user = ui.user, &password = ui.password;
    if (auto q = rest.find('?'); q != std::string_view::npos) query_pairs(rest.substr(q + 1));
    std::string uri = "postgresql://";
    if (has_userinfo) {
        uri += percent_encode(user);
        if (has_password) uri += ':' + percent_encode(password);
        uri += '@';
    }
    uri += rest;

    char* error = nullptr;
    std::unique_ptr<PQconninfoOption, void (*)(PQconninfoOption*)> parsed(PQconninfoParse(uri.c_str(), &error),
                                                                          PQconninfoFree);
    if (!parsed) {
        std::string why = error ? error : "libpq could not parse it (out of memory)";
        PQfreemem(error);
        while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
        // libpq may quote the URI it was given, where the password is percent-encoded.
        for (const std::string& secret : {password, percent_encode(password)}) why = redact(why, secret);
        bad_url(why);
    }
    std::vector<std::pair<std::string, std::string>> given;
    auto value_of = [&](std::string_view key) -> const std::string* {
        for (const auto& [k, v] : given)
            if (k == key) return &v;
        return nullptr;
    };
    for (const PQconninfoOption* o = parsed.get(); o->keyword; ++o)
        if (o->val) given.emplace_back(o->keyword, o->val);

    const std::string none;
    const std::string& hosts = value_of("host") ? *value_of("host") : value_of("hostaddr") ? *value_of("hostaddr") : none;
    const std::string& ports = value_of("port") ? *value_of("port") : none;
    for (std::string_view port : split_list(ports)) {
        if (!port.empty()) check_port(port);
    }
    const std::vector<std::string_view> host_list = split_list(hosts), port_list = split_list(ports);
    if (port_list.size() > 1 && port_list.size() != host_list.size())
        bad_url(fmt::format("{} ports for {} hosts", port_list.size(), host_list.size()));

    std::string cs;
    auto add = [&](std::string_view key, std::string_view value) {
        if (!cs.empty()) cs.push_back(' ');
        cs += key;
        cs.push_back('=');
        cs += quote_value(value);
    };
    for (auto& [key, value] : given) {
        // The caller's own server options keep the statement timeout unless they set one.
        if (key == "options" && value.find("statement_timeout") == std::string::npos)
            value += fmt::format(" -c statement_timeout={}", options.statement_timeout.count());
        add(key, value);
    }
    if (!value_of("connect_timeout"))
        add("connect_timeout", std::to_string(std::max<long long>(1, (options.connect_timeout.count() + 999) / 1000)));
    // The server cancels a statement after statement_timeout (see DatabaseOptions); keepalives
    // notice a peer that vanished from the network.
    if (!value_of("options"))
        add("options", fmt::format("-c client_min_messages=warning -c statement_timeout={}",
                                   options.statement_timeout.count()));
    if (!value_of("keepalives") && !value_of("keepalives_idle") && !value_of("keepalives_interval") &&
        !value_of("keepalives_count"))
        add("keepalives", "1"), add("keepalives_idle", "30"), add("keepalives_interval", "10"),
            add("keepalives_count", "3");
    if (!value_of("application_name")) add("application_name", "convstate");

    // "h1:p1,h2:p2" (a host without its own port uses the one port given, or 5432).
    std::string where;
    for (std::size_t i = 0; i < host_list.size(); ++i) {
        const std::string_view port = port_list.size() == 1 ? port_list[0] : port_list[i];
        where += fmt::format("{}{}:{}", i ? "," : "", host_list[i].empty() ? "(local socket)" : host_list[i],
                             port.empty() ? "5432" : port);
    }
    const std::string* dbname = value_of("dbname");
    const std::string* user_name = value_of("user");
    ConnectionTarget t;
    t.dialect = Dialect::postgresql;
    t.connect_string = std::move(cs);
    t.password = value_of("password") ? *value_of("password") : std::string{};
    t.display = fmt::format("postgresql database '{}' at {} as user '{}'",
                            dbname && !dbname->empty() ? *dbname : "(default)", where,
                            user_name && !user_name->empty() ? *user_name : "(default)");
    return t;
}

// mysql://user:password@host:port/database?key=value (MySQL and MariaDB through SOCI's MySQL
// backend). The session's character set is always utf8mb4 (the library's text is UTF-8).
ConnectionTarget parse_mysql(std::string_view rest, const DatabaseOptions& options) {
    const UserInfo ui = take_userinfo(rest);
    std::vector<std::pair<std::string_view, std::string_view>> query;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
        query = query_pairs(rest.substr(q + 1));
        rest = rest.substr(0, q);
    }
    const auto slash = rest.find('/');
    const std::string_view hostport = rest.substr(0, slash);
    const std::string db = slash == std::string_view::npos ? std::string{} : percent_decode(rest.substr(slash + 1), "database name");
    if (db.empty()) bad_url("a mysql URL names its database: mysql://user:password@host:3306/database");
    if (db.find('/') != std::string::npos) bad_url("the database name must not contain '/'");
    std::string_view host = hostport, port = {};
    if (!host.empty() && host.front() == '[') { // [IPv6]:port
        const auto close = host.find(']');
        if (close == std::string_view::npos) bad_url("unclosed '[' in the host");
        if (close + 1 < host.size()) {
            if (host[close + 1] != ':') bad_url("expected ':port' after the bracketed host");
            port = host.substr(close + 2);
        }
        host = host.substr(1, close - 1);
    } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
        port = host.substr(colon + 1);
        host = host.substr(0, colon);
    }
    if (!port.empty()) check_port(port);

    std::string cs = "host=" + quote_value(host.empty() ? std::string("localhost") : percent_decode(host, "host"));
    // local_infile=0: LOAD DATA LOCAL stays off (the library never reads client files), and SOCI
    // 4.0.3 reads its local_infile variable uninitialised unless the parameter is given.
    cs += " port=" + std::string(port.empty() ? "3306" : port) + " db=" + quote_value(db) +
          " charset=utf8mb4 local_infile=0";
    if (ui.given) cs += " user=" + quote_value(ui.user);
    if (ui.has_password) cs += " password=" + quote_value(ui.password);
    bool timeout_given = false;
    for (const auto& [key, raw] : query) {
        static constexpr std::string_view known[] = {"unix_socket", "sslca", "sslcert", "sslkey",
                                                     "connect_timeout", "read_timeout", "write_timeout"};
        if (key == "charset") bad_url("the character set is always utf8mb4; drop charset from the URL");
        if (std::find(std::begin(known), std::end(known), key) == std::end(known))
            bad_url(fmt::format("unknown mysql URL parameter '{}' (known: unix_socket, sslca, sslcert, sslkey, "
                                "connect_timeout, read_timeout, write_timeout)", key));
        const std::string value = percent_decode(raw, "query");
        if (key.ends_with("_timeout") && (value.empty() || value.size() > 6 ||
                                          value.find_first_not_of("0123456789") != std::string::npos || value == "0"))
            bad_url(fmt::format("{} is a whole number of seconds from 1, not '{}'", key, value));
        timeout_given |= key == "connect_timeout";
        cs += fmt::format(" {}={}", key, quote_value(value));
    }
    if (!timeout_given)
        cs += fmt::format(" connect_timeout={}", std::max<long long>(1, (options.connect_timeout.count() + 999) / 1000));

    ConnectionTarget t;
    t.dialect = Dialect::mysql;
    t.connect_string = std::move(cs);
    t.password = ui.password;
    t.display = fmt::format("mysql database '{}' at {}:{} as user '{}'", db, host.empty() ? "localhost" : host,
                            port.empty() ? "3306" : port, ui.user.empty() ? "(default)" : ui.user);
    return t;
}

} // namespace

std::string redact(std::string_view text, std::string_view secret) {
    if (secret.empty()) return std::string(text);
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        if (text.substr(at, secret.size()) == secret) {
            out += "***";
            at += secret.size();
        } else {
            out += text[at++];
        }
    }
    return out;
}

ConnectionTarget parse_url(std::string_view url, const DatabaseOptions& options) {
    const auto sep = url.find("://");
    if (sep == std::string_view::npos)
        bad_url("expected a URL such as sqlite3:///path/to/file.db, postgresql://user@host:5432/db or "
                "mysql://user@host:3306/db");
    const std::string_view scheme = url.substr(0, sep), rest = url.substr(sep + 3);
    if (scheme == "sqlite3" || scheme == "sqlite") return parse_sqlite(rest, options);
    if (scheme == "postgresql" || scheme == "postgres") return parse_postgres(rest, options);
    if (scheme == "mysql" || scheme == "mariadb") return parse_mysql(rest, options);
    // Only a well-formed scheme is repeated (RFC 3986: a letter, then letters, digits, + - .):
    // text before a later "://" may be anything, a password included.
    const bool well_formed = !scheme.empty() && scheme.size() <= 32 && std::isalpha(static_cast<unsigned char>(scheme[0])) &&
                             std::all_of(scheme.begin(), scheme.end(), [](char c) {
                                 return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
                             });
    bad_url((well_formed ? "unsupported scheme '" + std::string(scheme) + "'" : std::string("no URL scheme")) +
            " (supported: sqlite3://, postgresql://, mysql://)");
}

} // namespace convstate::detail
