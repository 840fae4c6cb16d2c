#include "upstream.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

namespace http_server {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace bj = boost::json;
using tcp = asio::ip::tcp;

namespace {

// The request body: the window as chat messages, with only the fields of the chat API.
std::string request_body(const std::string& model, const std::vector<convstate::Message>& history, bool stream) {
    bj::array messages;
    for (const convstate::Message& m : history) {
        bj::object o;
        o["role"] = convstate::to_string(m.role);
        o["content"] = m.content;
        if (m.name) o["name"] = *m.name;
        if (!m.tool_calls.empty()) o["tool_calls"] = bj::parse(convstate::json::tool_calls_to_json(m.tool_calls));
        if (m.tool_call_id) o["tool_call_id"] = *m.tool_call_id;
        messages.push_back(std::move(o));
    }
    bj::object body;
    body["model"] = model;
    body["messages"] = std::move(messages);
    body["stream"] = stream;
    return bj::serialize(body);
}

// choices[0].message.content (a completion) or choices[0].delta.content (a streamed chunk).
std::string content_of(std::string_view json, const char* member) {
    boost::system::error_code ec;
    const bj::value v = bj::parse(json, ec);
    if (ec || !v.is_object()) throw ModelError("the upstream sent something that is not JSON");
    const bj::value* choices = v.as_object().if_contains("choices");
    if (!choices || !choices->is_array() || choices->as_array().empty() || !choices->as_array()[0].is_object())
        throw ModelError("the upstream's answer has no choices");
    const bj::value* part = choices->as_array()[0].as_object().if_contains(member);
    if (!part || !part->is_object()) return {};
    const bj::value* content = part->as_object().if_contains("content");
    return content && content->is_string() ? std::string(content->as_string()) : std::string();
}

} // namespace

Upstream::Upstream(UpstreamOptions options) : options_(std::move(options)) {
    const std::string& url = options_.url;
    constexpr std::string_view scheme = "http://";
    if (url.rfind(scheme, 0) != 0)
        throw std::invalid_argument("the upstream URL must start with http:// (use a TLS proxy for https)");
    const std::size_t slash = url.find('/', scheme.size());
    const std::string authority = url.substr(scheme.size(), slash == std::string::npos ? std::string::npos : slash - scheme.size());
    target_ = slash == std::string::npos ? "/" : url.substr(slash);
    const std::size_t colon = authority.rfind(':');
    host_ = colon == std::string::npos ? authority : authority.substr(0, colon);
    port_ = colon == std::string::npos ? "80" : authority.substr(colon + 1);
    if (host_.empty() || port_.empty() || port_.find_first_not_of("0123456789") != std::string::npos)
        throw std::invalid_argument("the upstream URL has no host, or a bad port: " + url);
}

asio::awaitable<std::string> Upstream::complete(const std::vector<convstate::Message>& history,
                                                const OnPiece& on_piece) const {
    const bool stream = static_cast<bool>(on_piece);
    const auto executor = co_await asio::this_coro::executor;
    beast::tcp_stream s(executor);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(16u << 20);
    try {
        tcp::resolver resolver(executor);
        s.expires_after(options_.timeout);
        const auto endpoints = co_await resolver.async_resolve(host_, port_, asio::use_awaitable);
        co_await s.async_connect(endpoints, asio::use_awaitable);
        http::request<http::string_body> req{http::verb::post, target_, 11};
        req.set(http::field::host, host_);
        req.set(http::field::content_type, "application/json");
        req.set(http::field::accept, stream ? "text/event-stream" : "application/json");
        if (!options_.api_key.empty()) req.set(http::field::authorization, "Bearer " + options_.api_key);
        req.body() = request_body(options_.model, history, stream);
        req.prepare_payload();
        co_await http::async_write(s, req, asio::use_awaitable);
        co_await http::async_read_header(s, buffer, parser, asio::use_awaitable);
    } catch (const boost::system::system_error& e) {
        throw ModelError("the upstream is unreachable: " + e.code().message());
    }
    const unsigned status = parser.get().result_int();
    if (status != 200) throw ModelError("the upstream answered HTTP " + std::to_string(status));

    auto read_some = [&]() -> asio::awaitable<void> {
        s.expires_after(options_.timeout);
        try {
            co_await http::async_read_some(s, buffer, parser, asio::use_awaitable);
        } catch (const boost::system::system_error& e) {
            throw ModelError("the upstream stopped answering: " + e.code().message());
        }
    };
    if (!stream) {
        while (!parser.is_done()) co_await read_some();
        co_return content_of(parser.get().body(), "message");
    }
    // Server-Sent Events: "data: {chunk}" lines, blank lines between events, "data: [DONE]" last.
    std::string reply;
    for (;;) {
        std::string& body = parser.get().body();
        std::size_t start = 0;
        for (std::size_t eol; (eol = body.find('\n', start)) != std::string::npos; start = eol + 1) {
            std::string_view line(body.data() + start, eol - start);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.rfind("data:", 0) != 0) continue;
            line.remove_prefix(5);
            while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
            if (line == "[DONE]") co_return reply;
            const std::string piece = content_of(line, "delta");
            if (piece.empty()) continue;
            reply += piece;
            const bool sent = co_await on_piece(piece);
            if (!sent) throw Abandoned();
        }
        body.erase(0, start);
        if (parser.is_done()) throw ModelError("the upstream's stream ended before [DONE]");
        co_await read_some();
    }
}

} // namespace http_server
