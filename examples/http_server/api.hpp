// The HTTP API: routing, authentication and the handlers, independent of the transport.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include <boost/beast/http.hpp>
#include <convstate/convstate.hpp>

#include "jwt.hpp"

namespace http_server {

namespace http = boost::beast::http;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

/** Everything a handler needs; shared by all threads (every member is thread-safe). */
class Api {
public:
    /** run_lease: after how long a keyed turn whose instance died is run again by a retry (see
     *  convstate::OrchestratorOptions::run_lease). */
    Api(convstate::Database db, std::string jwt_secret, JwtPolicy jwt_policy = {},
        std::chrono::milliseconds run_lease = std::chrono::minutes(2));

    /** Answers one request. Never throws. user_out receives the token's subject once the token
     *  is verified (for the log), and stays empty when there is none or it is refused. */
    Response handle(const Request& request, std::string& user_out) const;

    /** GET …/messages: at most this many bytes of message JSON per page (at least one message);
     *  a page that stops early carries next_after_seq like a full one. */
    static constexpr std::size_t max_page_bytes = 4u << 20;

private:
    Response route(const Request& request, std::string& user_out) const;

    convstate::Database db_;
    convstate::ChatOrchestrator chat_;
    convstate::ConversationStore conversations_;
    convstate::MessageRepository messages_;
    std::string secret_;
    JwtPolicy jwt_policy_;
};

/** A JSON error response {"error":{"status","message","field"?,"code"?}}; code tells 503s apart:
 *  "outcome_unknown" (retry with the same idempotency_key) or "storage_unavailable". */
Response error_response(http::status status, const std::string& message, const std::string& field = {},
                        const std::string& code = {});

} // namespace http_server
