// The HTTP API: routing, authentication and the handlers, independent of the transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>
#include <convstate/convstate.hpp>

#include "jwt.hpp"
#include "upstream.hpp"

namespace http_server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

/** The way back to the client for an answer sent as Server-Sent Events, implemented by the
 *  transport. Each call returns false once the client has gone away. */
class Exchange {
public:
    virtual ~Exchange() = default;
    /** The response header: 200, text/event-stream, a chunked body. */
    virtual boost::asio::awaitable<bool> start_events() = 0;
    /** One chunk of the body. */
    virtual boost::asio::awaitable<bool> send(std::string data) = 0;
    /** The end of the body. */
    virtual boost::asio::awaitable<bool> finish_events() = 0;
};

/** What handling a request produced: a response to send, or (response empty) a streamed answer
 *  already sent through the Exchange, with its status for the log and whether the connection
 *  may carry another request. */
struct Answer {
    std::optional<Response> response;
    unsigned status = 200;
    bool keep_alive = true;
};

/** Everything a handler needs; shared by all threads (every member is thread-safe). Database
 *  calls run on a pool of worker threads, never on the transport's I/O threads; the model is
 *  awaited without holding any thread. */
class Api {
public:
    /** run_lease: after how long a keyed turn whose instance died is run again by a retry (see
     *  convstate::OrchestratorOptions::run_lease). workers: threads for database calls (one per
     *  pooled connection is right). upstream: the model; without it, the demo agent. */
    Api(convstate::Database db, std::string jwt_secret, JwtPolicy jwt_policy = {},
        std::chrono::milliseconds run_lease = std::chrono::minutes(2), std::size_t workers = 4,
        std::optional<UpstreamOptions> upstream = std::nullopt);
    ~Api();

    /** Answers one request, on the caller's executor. Never throws. user_out receives the
     *  token's subject once the token is verified (for the log), and stays empty when there is
     *  none or it is refused. */
    boost::asio::awaitable<Answer> handle(const Request& request, std::string& user_out, Exchange& exchange) const;

    /** GET …/messages: at most this many bytes of message JSON per page (at least one message);
     *  a page that stops early carries next_after_seq like a full one. */
    static constexpr std::size_t max_page_bytes = 4u << 20;

private:
    Response handle_blocking(const Request& request, std::string& user_out) const;
    Response route(const Request& request, std::string& user_out) const;
    void authenticate(const Request& request, const std::string& user, std::string& user_out) const;
    boost::asio::awaitable<Answer> chat(const Request& request, const std::string& user, Exchange& exchange) const;
    boost::asio::awaitable<convstate::AgentReply> run_model(const std::string& user, const convstate::PendingTurn& turn,
                                                            const OnPiece& on_piece) const;
    boost::asio::awaitable<void> fail(const std::string& user, const std::string& token, const std::string& reason) const;

    /** f() on a worker thread; the caller resumes on its own executor with the result. */
    template <class F>
    boost::asio::awaitable<std::invoke_result_t<F&>> on_workers(F f) const {
        co_return co_await boost::asio::co_spawn(
            workers_.get_executor(), [&f]() -> boost::asio::awaitable<std::invoke_result_t<F&>> { co_return f(); },
            boost::asio::use_awaitable);
    }

    convstate::Database db_;
    convstate::ChatOrchestrator chat_;
    convstate::ConversationStore conversations_;
    convstate::MessageRepository messages_;
    std::string secret_;
    JwtPolicy jwt_policy_;
    std::optional<Upstream> upstream_;
    mutable boost::asio::thread_pool workers_;
};

/** A JSON error response {"error":{"status","message","field"?,"code"?}}; code tells 503s apart:
 *  "outcome_unknown" (retry with the same idempotency_key) or "storage_unavailable". */
Response error_response(http::status status, const std::string& message, const std::string& field = {},
                        const std::string& code = {});

} // namespace http_server
