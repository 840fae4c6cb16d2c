// The HTTP/1.1 transport: Boost.Beast sessions on an Asio thread pool, keep-alive, body limit,
// per-request logs, graceful shutdown.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio.hpp>

#include "api.hpp"

namespace http_server {

class Session;

struct ServerOptions {
    std::size_t max_body = 1u << 20;
    std::chrono::seconds idle_timeout{30};
    /** Open connections at most: at the cap the server stops accepting until one closes (new
     *  connections wait in the kernel's listen queue, they are not refused). */
    std::size_t max_connections = 1024;
};

/** Accepts connections and runs one Session per connection. Requests are parsed and answered on
 *  the io_context's threads; the Api runs database calls on its own workers and awaits the
 *  model, so no I/O thread waits for either. */
class Server {
public:
    Server(boost::asio::io_context& ioc, const boost::asio::ip::tcp::endpoint& endpoint, const Api& api,
           ServerOptions options);

    boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
    void start();
    /** Stops accepting, closes idle connections; requests being handled finish and get their
     *  response (with Connection: close). io_context::run returns once they are done. */
    void stop();

    // For sessions.
    const Api& api() const { return api_; }
    const ServerOptions& options() const { return options_; }
    bool stopping() const { return stopping_.load(); }
    void add(Session* s, std::weak_ptr<Session> w);
    void remove(Session* s);

private:
    void accept();
    void accept_failed(const boost::system::error_code& ec);

    boost::asio::io_context& ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    boost::asio::steady_timer accept_timer_; // the back-off after a failed accept
    std::chrono::milliseconds accept_delay_{0}; // 0 after a success; else 50 ms doubling to 1 s
    const Api& api_;
    ServerOptions options_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
    bool accept_paused_ = false; // at max_connections, no accept pending (under mutex_)
};

/** A JSON string literal of arbitrary bytes, pure ASCII: control characters and everything
 *  outside ASCII escaped as \uXXXX, each byte that is not part of valid UTF-8 as \ufffd. */
std::string json_quote(std::string_view bytes);

/** One JSON line on stderr per request; user is the authenticated subject ("" if none). */
void log_request(const std::string& method, const std::string& path, unsigned status,
                 double ms, const std::string& user);

/** One JSON line on stderr, {"ts":…,"event":event + fields}; fields: more JSON members, each
 *  starting with a comma (or empty). */
void log_event(std::string_view event, const std::string& fields = {});

} // namespace http_server
