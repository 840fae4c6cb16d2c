// The HTTP API: routing, authentication and the handlers, independent of the transport.
#pragma once

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
    Api(convstate::Database db, std::string jwt_secret, JwtPolicy jwt_policy = {});

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

/** A JSON error response {"error":{"status","message","field"?}}. */
Response error_response(http::status status, const std::string& message, const std::string& field = {});

} // namespace http_server
