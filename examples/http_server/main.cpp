// http_server: a stateless chat service over convstate. See README.md.
//
//   CONVSTATE_JWT_SECRET=… http_server [--listen ADDR] [--port N] [--db URL] [--threads N]
//                                      [--pool N] [--max-body BYTES] [--max-connections N]
//                                      [--shutdown-timeout S] [--run-lease S] [--jwt-audience AUD]
//                                      [--jwt-issuer ISS]
//
// Every flag can also come from the environment (CONVSTATE_LISTEN, CONVSTATE_PORT, CONVSTATE_DB,
// CONVSTATE_THREADS, CONVSTATE_POOL, CONVSTATE_MAX_BODY, CONVSTATE_MAX_CONNECTIONS,
// CONVSTATE_SHUTDOWN_TIMEOUT, CONVSTATE_JWT_AUDIENCE, CONVSTATE_JWT_ISSUER); a flag wins over
// the environment.
#include <chrono>
#include <csignal>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <convstate/convstate.hpp>

#include "api.hpp"
#include "server.hpp"

namespace {

struct Config {
    std::string listen = "127.0.0.1";
    unsigned long port = 8080;
    std::string db = "sqlite3://convstate-server.db";
    unsigned long threads = 2;
    unsigned long pool = 4;
    unsigned long max_body = 1u << 20;
    unsigned long max_connections = 1024;
    unsigned long shutdown_timeout = 10;
    unsigned long run_lease = 120;
    std::string jwt_audience;
    std::string jwt_issuer;
    std::string upstream;
    std::string upstream_model = "gpt-4o-mini";
    unsigned long upstream_timeout = 120;
};

constexpr const char* kUsage =
    "usage: http_server [--listen ADDR] [--port N] [--db URL] [--threads N] [--pool N] [--max-body BYTES]\n"
    "                   [--max-connections N] [--shutdown-timeout S] [--run-lease S]\n"
    "                   [--jwt-audience AUD] [--jwt-issuer ISS]\n"
    "                   [--upstream URL] [--upstream-model NAME] [--upstream-timeout S]\n"
    "  --listen ADDR          address to listen on (default 127.0.0.1; env CONVSTATE_LISTEN)\n"
    "  --port N               TCP port (default 8080; env CONVSTATE_PORT)\n"
    "  --db URL               database (default sqlite3://convstate-server.db; env CONVSTATE_DB)\n"
    "  --threads N            I/O threads (default 2; env CONVSTATE_THREADS)\n"
    "  --pool N               database connections (default 4; env CONVSTATE_POOL)\n"
    "  --max-body BYTES       largest request body (default 1048576; env CONVSTATE_MAX_BODY)\n"
    "  --max-connections N    open connections at most (default 1024; env CONVSTATE_MAX_CONNECTIONS);\n"
    "                         at the cap the server stops accepting until one closes: new connections\n"
    "                         wait in the listen queue, they are not refused\n"
    "  --shutdown-timeout S   after SIGTERM/SIGINT, requests in flight get S seconds to finish, then\n"
    "                         the process exits with status 1 (default 10; env CONVSTATE_SHUTDOWN_TIMEOUT);\n"
    "                         a second SIGTERM/SIGINT exits at once (status 128+signal)\n"
    "  --run-lease S          a keyed turn whose instance died mid-turn is run again by a retry after\n"
    "                         S seconds; until then retries wait for it (default 120; env CONVSTATE_RUN_LEASE)\n"
    "  --jwt-audience AUD     tokens must carry \"aud\": AUD, or an array holding it (default: not\n"
    "                         checked; env CONVSTATE_JWT_AUDIENCE)\n"
    "  --jwt-issuer ISS       tokens must carry \"iss\": ISS (default: not checked; env CONVSTATE_JWT_ISSUER)\n"
    "  --upstream URL         the model: an OpenAI-compatible chat-completions URL, http://host[:port]/path\n"
    "                         (default: the built-in demo agent; env CONVSTATE_UPSTREAM); its API key, if\n"
    "                         any, from env CONVSTATE_UPSTREAM_KEY\n"
    "  --upstream-model NAME  the model name sent upstream (default gpt-4o-mini; env CONVSTATE_UPSTREAM_MODEL)\n"
    "  --upstream-timeout S   how long the upstream may be silent (default 120; env CONVSTATE_UPSTREAM_TIMEOUT)\n"
    "  --help                 print this help\n"
    "CONVSTATE_JWT_SECRET (at least 16 bytes) must be set: the HS256 key of the bearer tokens.\n";

// A bad command line or environment: what is wrong, then the usage, on stderr; exit status 2.
int usage(const char* why) {
    std::fprintf(stderr, "http_server: %s\n%s", why, kUsage);
    return 2;
}

bool to_number(const std::string& text, unsigned long& out) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 12) return false;
    out = std::stoul(text);
    return true;
}

} // namespace

int main(int argc, char** argv) try {
    Config cfg;
    auto set = [&](const std::string& name, const std::string& value) -> bool {
        if (name == "listen") cfg.listen = value;
        else if (name == "db") cfg.db = value;
        else if (name == "port") return to_number(value, cfg.port) && cfg.port <= 65535;
        else if (name == "threads") return to_number(value, cfg.threads) && cfg.threads >= 1 && cfg.threads <= 256;
        else if (name == "pool") return to_number(value, cfg.pool) && cfg.pool >= 1 && cfg.pool <= 1024;
        else if (name == "max-body") return to_number(value, cfg.max_body) && cfg.max_body >= 1;
        else if (name == "max-connections") return to_number(value, cfg.max_connections) && cfg.max_connections >= 1;
        else if (name == "shutdown-timeout")
            return to_number(value, cfg.shutdown_timeout) && cfg.shutdown_timeout >= 1 && cfg.shutdown_timeout <= 86400;
        else if (name == "jwt-audience") return !(cfg.jwt_audience = value).empty();
        else if (name == "run-lease") return to_number(value, cfg.run_lease) && cfg.run_lease >= 1 && cfg.run_lease <= 86400;
        else if (name == "jwt-issuer") return !(cfg.jwt_issuer = value).empty();
        else if (name == "upstream") return !(cfg.upstream = value).empty();
        else if (name == "upstream-model") return !(cfg.upstream_model = value).empty();
        else if (name == "upstream-timeout")
            return to_number(value, cfg.upstream_timeout) && cfg.upstream_timeout >= 1 && cfg.upstream_timeout <= 3600;
        else return false;
        return true;
    };
    const std::pair<const char*, const char*> env[] = {{"CONVSTATE_LISTEN", "listen"}, {"CONVSTATE_PORT", "port"},
        {"CONVSTATE_DB", "db"}, {"CONVSTATE_THREADS", "threads"}, {"CONVSTATE_POOL", "pool"},
        {"CONVSTATE_MAX_BODY", "max-body"}, {"CONVSTATE_MAX_CONNECTIONS", "max-connections"},
        {"CONVSTATE_SHUTDOWN_TIMEOUT", "shutdown-timeout"}, {"CONVSTATE_JWT_AUDIENCE", "jwt-audience"},
        {"CONVSTATE_JWT_ISSUER", "jwt-issuer"}, {"CONVSTATE_RUN_LEASE", "run-lease"},
        {"CONVSTATE_UPSTREAM", "upstream"}, {"CONVSTATE_UPSTREAM_MODEL", "upstream-model"},
        {"CONVSTATE_UPSTREAM_TIMEOUT", "upstream-timeout"}};
    for (const auto& [var, name] : env)
        if (const char* v = std::getenv(var); v && *v && !set(name, v)) return usage((std::string("bad ") + var).c_str());
    for (int i = 1; i < argc; ++i)
        if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
            std::fputs(kUsage, stdout);
            return 0;
        }
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--", 0) != 0 || i + 1 >= argc) return usage(("bad argument " + a).c_str());
        if (!set(a.substr(2), argv[++i])) return usage(("bad value for " + a).c_str());
    }
    const char* secret = std::getenv("CONVSTATE_JWT_SECRET");
    if (!secret || std::string(secret).size() < 16)
        return usage("CONVSTATE_JWT_SECRET must be set (at least 16 bytes); refusing to start");

    convstate::DatabaseOptions db_options;
    db_options.pool_size = cfg.pool;
    // The library's log joins the server's JSON log on stderr (info and above: no content).
    db_options.log = [](convstate::LogLevel level, std::string_view message) {
        http_server::log_event("convstate", ",\"level\":" + http_server::json_quote(convstate::to_string(level)) +
                                                ",\"message\":" + http_server::json_quote(message));
    };
    const convstate::Database db = convstate::Database::open(cfg.db, db_options);
    std::optional<http_server::UpstreamOptions> upstream;
    if (!cfg.upstream.empty()) {
        const char* key = std::getenv("CONVSTATE_UPSTREAM_KEY");
        upstream = http_server::UpstreamOptions{cfg.upstream, cfg.upstream_model, key ? key : "",
                                                std::chrono::seconds(cfg.upstream_timeout)};
        try {
            http_server::Upstream check(*upstream);
        } catch (const std::invalid_argument& e) {
            return usage(e.what());
        }
    }
    const http_server::Api api(db, secret, {.audience = cfg.jwt_audience, .issuer = cfg.jwt_issuer},
                               std::chrono::seconds(cfg.run_lease), cfg.pool, upstream);

    boost::asio::io_context ioc(static_cast<int>(cfg.threads));
    const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(cfg.listen),
                                                  static_cast<unsigned short>(cfg.port));
    http_server::Server server(ioc, endpoint, api, {.max_body = cfg.max_body, .max_connections = cfg.max_connections});
    server.start();

    // Signals are handled on a thread of their own, so that they are seen even when every I/O
    // thread is blocked in a turn (waiting on a database lock, say). The first SIGTERM/SIGINT
    // starts the graceful shutdown and a deadline; the deadline or a second signal ends the
    // process at once (the database sees its connections drop; transactions roll back).
    boost::asio::io_context signal_ioc(1);
    boost::asio::signal_set signals(signal_ioc, SIGINT, SIGTERM);
    boost::asio::steady_timer deadline(signal_ioc);
    std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                                int sig) {
        if (ec) return;
        if (server.stopping()) {
            http_server::log_event("forced_exit", ",\"signal\":" + std::to_string(sig));
            std::_Exit(128 + sig);
        }
        http_server::log_event("shutdown", ",\"signal\":" + std::to_string(sig) + ",\"timeout_s\":" +
                                               std::to_string(cfg.shutdown_timeout));
        server.stop();
        deadline.expires_after(std::chrono::seconds(cfg.shutdown_timeout));
        deadline.async_wait([](const boost::system::error_code& timer_ec) {
            if (timer_ec) return;
            http_server::log_event("shutdown_timeout");
            std::_Exit(1);
        });
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    std::thread signal_thread([&signal_ioc] { signal_ioc.run(); });

    const auto local = server.local_endpoint();
    std::printf("listening on %s:%u\n", local.address().to_string().c_str(), static_cast<unsigned>(local.port()));
    std::fflush(stdout);

    std::vector<std::thread> workers;
    for (unsigned long i = 1; i < cfg.threads; ++i) workers.emplace_back([&ioc] { ioc.run(); });
    ioc.run();
    for (auto& t : workers) t.join();
    signal_ioc.stop();
    signal_thread.join();
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "http_server: %s\n", e.what());
    return 1;
}
