#include "server.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <ctime>
#include <optional>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace http_server {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

std::string json_quote(std::string_view s) {
    static constexpr char hexdigits[] = "0123456789abcdef";
    std::string out = "\"";
    out.reserve(s.size() + 2);
    auto u = [&](std::uint32_t cp) {
        out += "\\u";
        for (int shift = 12; shift >= 0; shift -= 4) out.push_back(hexdigits[(cp >> shift) & 0xF]);
    };
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    for (std::size_t i = 0; i < s.size();) {
        const unsigned char c = byte(i);
        if (c < 0x80) {
            if (c == '"' || c == '\\') out.push_back('\\'), out.push_back(static_cast<char>(c));
            else if (c < 0x20 || c == 0x7F) u(c);
            else out.push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        // A UTF-8 sequence: its length from the lead byte, then shortest form, no surrogates,
        // at most U+10FFFF. Anything else: U+FFFD for the one byte, and go on with the next.
        const std::size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        std::uint32_t cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        bool ok = len != 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k) {
            ok = (byte(i + k) & 0xC0) == 0x80;
            cp = (cp << 6) | (byte(i + k) & 0x3F);
        }
        ok = ok && !(len == 3 && cp < 0x800) && !(len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) &&
             !(cp >= 0xD800 && cp <= 0xDFFF);
        if (!ok) {
            u(0xFFFD);
            ++i;
            continue;
        }
        if (cp >= 0x10000) { // a surrogate pair
            u(0xD800 + ((cp - 0x10000) >> 10));
            u(0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            u(cp);
        }
        i += len;
    }
    out.push_back('"');
    return out;
}

namespace {

std::string timestamp() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[40];
    const std::size_t n = std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(ts + n, sizeof ts - n, ".%03dZ", static_cast<int>(millis));
    return ts;
}

void write_line(std::string line) {
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr); // one write per line: lines never interleave
}

} // namespace

void log_request(const std::string& method, const std::string& path, unsigned status, double ms,
                 const std::string& user) {
    // Every string through json_quote: the path and the user come from the client, and may hold
    // quotes, control characters or bytes that are not UTF-8. ms with three decimals, not in
    // exponent form.
    char ms_text[32];
    std::snprintf(ms_text, sizeof ms_text, "%.3f", ms);
    write_line("{\"ts\":" + json_quote(timestamp()) + ",\"method\":" + json_quote(method) + ",\"path\":" +
               json_quote(path) + ",\"status\":" + std::to_string(status) + ",\"ms\":" + ms_text +
               ",\"user\":" + json_quote(user) + "}");
}

void log_event(std::string_view event, const std::string& fields) {
    write_line("{\"ts\":" + json_quote(timestamp()) + ",\"event\":" + json_quote(event) + fields + "}");
}

class Session : public std::enable_shared_from_this<Session>, public Exchange {
public:
    Session(tcp::socket socket, Server& server) : stream_(std::move(socket)), server_(server) {}
    ~Session() { server_.remove(this); }

    void start() {
        server_.add(this, weak_from_this());
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
    }

    // Called on shutdown: an idle connection is closed now, a busy one after its response.
    void stop() {
        asio::post(stream_.get_executor(), [self = shared_from_this()] {
            if (!self->busy_) self->close();
        });
    }

private:
    void read() {
        if (server_.stopping()) return close();
        parser_.emplace();
        parser_->body_limit(server_.options().max_body);
        parser_->header_limit(16 * 1024);
        stream_.expires_after(server_.options().idle_timeout);
        http::async_read(stream_, buffer_, *parser_,
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }

    void on_read(beast::error_code ec) {
        const auto start = std::chrono::steady_clock::now();
        if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset || ec == asio::error::eof)
            return close();
        if (ec) {
            // A request we will not read to the end: answer and close.
            const bool too_big = ec == http::error::body_limit;
            const auto status = too_big ? http::status::payload_too_large
                                : ec == http::error::header_limit ? http::status::request_header_fields_too_large
                                                                  : http::status::bad_request;
            const std::string message = too_big ? "body exceeds " + std::to_string(server_.options().max_body) + " bytes"
                                        : status == http::status::request_header_fields_too_large ? "request headers too large"
                                                                                                 : "malformed HTTP request";
            const bool have_header = parser_->is_header_done();
            const std::string method = have_header ? std::string(parser_->get().method_string()) : "";
            const std::string target = have_header ? std::string(parser_->get().target()) : "";
            Response res = error_response(status, message);
            res.keep_alive(false);
            finish(std::move(res), method, target, {}, start, /*drain=*/true);
            return;
        }
        busy_ = true;
        // Handled as a coroutine on this session's strand: database calls go to the API's
        // workers and the model is awaited, so this I/O thread serves other connections meanwhile.
        asio::co_spawn(stream_.get_executor(), serve(start), [self = shared_from_this()](std::exception_ptr e) {
            if (e) self->close(); // serve() does not throw; if it did, drop the connection
        });
    }

    asio::awaitable<void> serve(std::chrono::steady_clock::time_point start) {
        const auto self = shared_from_this();
        const Request& req = parser_->get();
        const std::string method(req.method_string()), target(req.target());
        std::string user;
        Answer answer = co_await server_.api().handle(req, user, *this);
        if (answer.response) {
            Response res = std::move(*answer.response);
            res.version(req.version());
            res.keep_alive(req.keep_alive() && !server_.stopping());
            if (req.method() == http::verb::head) res.body().clear();
            finish(std::move(res), method, target, user, start, false);
            co_return;
        }
        // Streamed: the response is written already.
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        log_request(method, target.substr(0, target.find('?')), answer.status, ms, user);
        busy_ = false;
        if (answer.keep_alive && req.keep_alive() && !server_.stopping()) read();
        else close();
    }

    // Exchange: a chunked text/event-stream answer, written on this session's strand while the
    // session is busy (nothing else reads or writes the stream meanwhile).
    asio::awaitable<bool> start_events() override {
        const Request& req = parser_->get();
        http::response<http::empty_body> res{http::status::ok, req.version()};
        res.set(http::field::content_type, "text/event-stream");
        res.set(http::field::cache_control, "no-store");
        res.keep_alive(req.keep_alive() && !server_.stopping());
        res.chunked(true);
        http::response_serializer<http::empty_body> serializer{res};
        beast::error_code ec;
        stream_.expires_after(std::chrono::seconds(30));
        co_await http::async_write_header(stream_, serializer, asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    }

    asio::awaitable<bool> send(std::string data) override {
        beast::error_code ec;
        stream_.expires_after(std::chrono::seconds(30));
        co_await asio::async_write(stream_, http::make_chunk(asio::buffer(data)), asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    }

    asio::awaitable<bool> finish_events() override {
        beast::error_code ec;
        stream_.expires_after(std::chrono::seconds(30));
        co_await asio::async_write(stream_, http::make_chunk_last(), asio::redirect_error(asio::use_awaitable, ec));
        co_return !ec;
    }

    void finish(Response res, const std::string& method, const std::string& target, const std::string& user,
                std::chrono::steady_clock::time_point start, bool drain) {
        const std::string path = target.substr(0, target.find('?'));
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        log_request(method, path, res.result_int(), ms, user);
        response_ = std::make_shared<Response>(std::move(res));
        stream_.expires_after(std::chrono::seconds(30));
        http::async_write(stream_, *response_, [self = shared_from_this(), drain](beast::error_code ec, std::size_t) {
            self->busy_ = false;
            const bool keep = !ec && self->response_->keep_alive() && !self->server_.stopping();
            self->response_.reset();
            if (keep) return self->read();
            if (drain && !ec) return self->drain();
            self->close();
        });
    }

    // After refusing a request mid-body: stop sending, read and discard what the client is still
    // sending (for a few seconds), so that closing does not reset the connection before the
    // client has read our response.
    void drain() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream_.expires_after(std::chrono::seconds(5));
        discard();
    }
    void discard() {
        stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->close();
            self->discard();
        });
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.socket().close(ignored);
    }

    beast::tcp_stream stream_;
    Server& server_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::shared_ptr<Response> response_;
    std::array<char, 16384> scratch_{};
    bool busy_ = false; // a request is being handled or answered (touched on the session's strand only)
};

Server::Server(asio::io_context& ioc, const tcp::endpoint& endpoint, const Api& api, ServerOptions options)
    : ioc_(ioc), acceptor_(asio::make_strand(ioc)), accept_timer_(acceptor_.get_executor()), api_(api),
      options_(options) {
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(asio::socket_base::max_listen_connections);
}

void Server::start() { accept(); }

// Runs on the acceptor's strand.
void Server::accept() {
    {
        std::lock_guard lock(mutex_);
        if (sessions_.size() >= options_.max_connections) {
            accept_paused_ = true; // remove() resumes when a connection closes
            return;
        }
    }
    acceptor_.async_accept(asio::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
        if (!acceptor_.is_open() || stopping()) return;
        if (ec) return accept_failed(ec);
        accept_delay_ = std::chrono::milliseconds(0);
        std::make_shared<Session>(std::move(socket), *this)->start();
        accept();
    });
}

// Out of file descriptors (EMFILE/ENFILE), memory or buffers: the connection stays queued and
// the listening socket stays readable, so accepting again at once would spin. Wait instead, 50 ms
// doubling to 1 s, until an accept succeeds.
void Server::accept_failed(const beast::error_code& ec) {
    using std::chrono::milliseconds;
    accept_delay_ = accept_delay_.count() == 0 ? milliseconds(50) : std::min(accept_delay_ * 2, milliseconds(1000));
    log_event("accept_error", ",\"error\":" + json_quote(ec.message()) + ",\"retry_ms\":" +
                                  std::to_string(accept_delay_.count()));
    accept_timer_.expires_after(accept_delay_);
    accept_timer_.async_wait([this](beast::error_code timer_ec) {
        if (timer_ec || !acceptor_.is_open() || stopping()) return;
        accept();
    });
}

void Server::stop() {
    if (stopping_.exchange(true)) return;
    asio::post(acceptor_.get_executor(), [this] {
        beast::error_code ignored;
        acceptor_.close(ignored);
        accept_timer_.cancel();
    });
    std::vector<std::shared_ptr<Session>> live;
    {
        std::lock_guard lock(mutex_);
        for (auto& [ptr, weak] : sessions_)
            if (auto s = weak.lock()) live.push_back(std::move(s));
    }
    for (auto& s : live) s->stop();
}

void Server::add(Session* s, std::weak_ptr<Session> w) {
    std::lock_guard lock(mutex_);
    sessions_.emplace(s, std::move(w));
}

void Server::remove(Session* s) {
    bool resume = false;
    {
        std::lock_guard lock(mutex_);
        sessions_.erase(s);
        resume = accept_paused_ && !stopping();
        if (resume) accept_paused_ = false;
    }
    if (resume)
        asio::post(acceptor_.get_executor(), [this] {
            if (acceptor_.is_open() && !stopping()) accept();
        });
}

} // namespace http_server
