#include "api.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <optional>
#include <vector>

#include <boost/asio.hpp>
#include <boost/json.hpp>

#include "../demo_agent.hpp"
#include "jwt.hpp"
#include "metrics.hpp"
#include "server.hpp"

namespace http_server {
namespace bj = boost::json;
namespace asio = boost::asio;

namespace {

// Thrown by handlers for a response other than 200; turned into an error body.
struct HttpError {
    http::status status;
    std::string message;
    std::string field;
};

std::int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding; '+' is a space in query strings only. nullopt for a broken escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

struct Target {
    std::vector<std::string> segments;                       // decoded path segments
    std::vector<std::pair<std::string, std::string>> query;   // decoded, in order
    std::optional<std::string> param(std::string_view name) const {
        for (const auto& [k, v] : query)
            if (k == name) return v;
        return std::nullopt;
    }
};

Target parse_target(std::string_view target) {
    Target t;
    const auto q = target.find('?');
    const std::string_view path = target.substr(0, q);
    if (path.empty() || path[0] != '/') throw HttpError{http::status::bad_request, "bad request target"};
    for (std::size_t start = 1; start <= path.size();) {
        auto end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        auto seg = percent_decode(path.substr(start, end - start), false);
        if (!seg) throw HttpError{http::status::bad_request, "bad percent-encoding in the path"};
        t.segments.push_back(std::move(*seg));
        start = end + 1;
    }
    if (!t.segments.empty() && t.segments.back().empty()) t.segments.pop_back(); // trailing slash
    if (q != std::string_view::npos) {
        std::string_view rest = target.substr(q + 1);
        while (!rest.empty()) {
            const auto amp = rest.find('&');
            const std::string_view pair = rest.substr(0, amp);
            rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
            if (pair.empty()) continue;
            const auto eq = pair.find('=');
            auto k = percent_decode(pair.substr(0, eq), true);
            auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
            if (!k || !v) throw HttpError{http::status::bad_request, "bad percent-encoding in the query"};
            t.query.emplace_back(std::move(*k), std::move(*v));
        }
    }
    return t;
}

// A non-negative integer query parameter (digits only), or the default.
std::int64_t int_param(const Target& t, const char* name, std::int64_t fallback) {
    const auto v = t.param(name);
    if (!v) return fallback;
    std::int64_t n = 0;
    const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || ec != std::errc{} || ptr != v->data() + v->size() || n < 0)
        throw HttpError{http::status::bad_request, std::string(name) + " must be a non-negative integer", name};
    return n;
}

Response json_response(http::status status, std::string body) {
    Response res{status, 11};
    res.set(http::field::content_type, "application/json");
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

// The first 60 bytes of text, cut at a character boundary.
std::string title_of(const std::string& text) {
    std::size_t n = std::min<std::size_t>(text.size(), 60);
    while (n > 0 && n < text.size() && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    return text.substr(0, n);
}

// An optional string field: absent or null → nullopt; anything but a string → 400.
std::optional<std::string> optional_string(const bj::object& o, const char* name) {
    const bj::value* v = o.if_contains(name);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) throw HttpError{http::status::bad_request, std::string(name) + " must be a string", name};
    return std::string(v->as_string());
}

bj::object parse_body(const Request& req) {
    bj::parse_options opts;
    opts.max_depth = 32;
    opts.allow_invalid_utf8 = false;
    boost::system::error_code ec;
    bj::value v = bj::parse(req.body(), ec, {}, opts);
    if (ec == bj::error::too_deep) throw HttpError{http::status::bad_request, "JSON nested too deeply", "body"};
    if (ec) throw HttpError{http::status::bad_request, "body is not valid JSON: " + ec.message(), "body"};
    if (!v.is_object()) throw HttpError{http::status::bad_request, "body must be a JSON object", "body"};
    return std::move(v.as_object());
}

// One page of GET …/messages: up to limit messages after after_seq, but no more than
// Api::max_page_bytes of message JSON (always at least one message, so that paging advances).
// The messages are read in batches sized from the largest message seen so far, so that a page of
// large messages does not load far more than it sends. next_after_seq is set whenever the page
// stopped before the end of the conversation was seen (limit or bytes reached).
std::string messages_page(const convstate::MessageRepository& repo, const std::string& user, const std::string& conversation,
                          std::int64_t after_seq, std::size_t limit) {
    constexpr std::size_t first_batch = 8, max_batch = 256;
    std::string items = "[";
    std::size_t count = 0, bytes = 0, largest = 0;
    std::int64_t last = after_seq;
    bool full = false; // stopped by the byte cap
    while (count < limit && !full) {
        const std::size_t want = limit - count;
        const std::size_t batch_size = largest == 0 ? std::min(want, first_batch)
                                                    : std::clamp<std::size_t>((Api::max_page_bytes - bytes) / largest, 1,
                                                                              std::min(want, max_batch));
        const auto batch = repo.load_after(user, conversation, last, batch_size);
        for (const convstate::Message& m : batch) {
            const std::string item = convstate::json::to_json(m);
            if (count > 0 && bytes + item.size() > Api::max_page_bytes) {
                full = true;
                break;
            }
            if (count > 0) items.push_back(',');
            items += item;
            bytes += item.size();
            largest = std::max(largest, item.size());
            last = m.seq;
            ++count;
        }
        if (!full && batch.size() < batch_size) break; // the end of the conversation
    }
    const bool more = full || count == limit;
    return R"({"items":)" + items + R"(],"next_after_seq":)" + (more && count > 0 ? std::to_string(last) : "null") + "}";
}

} // namespace

Response error_response(http::status status, const std::string& message, const std::string& field,
                        const std::string& code) {
    bj::object e;
    e["status"] = static_cast<int>(status);
    e["message"] = message;
    if (!field.empty()) e["field"] = field;
    if (!code.empty()) e["code"] = code;
    bj::object o;
    o["error"] = std::move(e);
    Response res = json_response(status, bj::serialize(o));
    if (status == http::status::unauthorized) res.set(http::field::www_authenticate, "Bearer");
    return res;
}

Api::Api(convstate::Database db, std::string jwt_secret, JwtPolicy jwt_policy, std::chrono::milliseconds run_lease,
         std::size_t workers, std::optional<UpstreamOptions> upstream)
    : db_(db), chat_(db, {.window = convstate::HistoryWindow::last(50), .run_lease = run_lease}), conversations_(db),
      messages_(db), secret_(std::move(jwt_secret)), jwt_policy_(std::move(jwt_policy)),
      workers_(std::max<std::size_t>(workers, 1)) {
    if (upstream) upstream_.emplace(std::move(*upstream));
}

namespace {

// The response for an exception a handler threw.
Response error_of(std::exception_ptr failure) {
    try {
        std::rethrow_exception(failure);
    } catch (const HttpError& e) {
        return error_response(e.status, e.message, e.field);
    } catch (const convstate::InvalidArgument& e) {
        return error_response(http::status::bad_request, e.what(), e.field());
    } catch (const convstate::NotFound& e) {
        return error_response(http::status::not_found, e.what());
    } catch (const convstate::Conflict& e) {
        return error_response(http::status::conflict, e.what());
    } catch (const convstate::AgentError&) {
        return error_response(http::status::bad_gateway, "the agent failed");
    } catch (const ModelError& e) {
        return error_response(http::status::bad_gateway, std::string("the model failed: ") + e.what(), {}, "model_failed");
    } catch (const convstate::OutcomeUnknown&) {
        // Maybe stored, maybe not: a retry with the same idempotency_key settles it safely.
        Response res = error_response(http::status::service_unavailable,
                                      "outcome unknown: the connection to the database was lost while the write was "
                                      "committing; retry with the same idempotency_key",
                                      {}, "outcome_unknown");
        res.set(http::field::retry_after, "1");
        return res;
    } catch (const convstate::StorageError&) {
        Response res = error_response(http::status::service_unavailable, "storage unavailable", {}, "storage_unavailable");
        res.set(http::field::retry_after, "1");
        return res;
    } catch (const std::exception&) {
        return error_response(http::status::internal_server_error, "internal error");
    }
}

// The body of a chat answer (and of the final event of a streamed one).
std::string chat_json(const convstate::TurnResult& r) {
    // The tool calls of this turn: those of its agent loop (what this turn stored, never a
    // concurrent turn's), then the reply's own.
    std::vector<convstate::ToolCall> calls;
    for (const convstate::Message& msg : r.intermediate)
        calls.insert(calls.end(), msg.tool_calls.begin(), msg.tool_calls.end());
    calls.insert(calls.end(), r.tool_calls.begin(), r.tool_calls.end());
    bj::object o;
    o["conversation_id"] = r.conversation_id;
    o["response"] = r.reply;
    o["tool_calls"] = bj::parse(convstate::json::tool_calls_to_json(calls));
    o["created"] = r.created;
    o["replayed"] = r.replayed;
    o["user_seq"] = r.user_seq;
    o["reply_seq"] = r.reply_seq;
    return bj::serialize(o);
}

// One Server-Sent Event.
std::string event(std::string_view name, const std::string& json) {
    return "event: " + std::string(name) + "\ndata: " + json + "\n\n";
}

std::string error_event(const Response& error) { return event("error", error.body()); }

} // namespace

Api::~Api() { workers_.join(); }

Response Api::handle_blocking(const Request& req, std::string& user_out) const {
    try {
        return route(req, user_out);
    } catch (...) {
        return error_of(std::current_exception());
    }
}

void Api::authenticate(const Request& req, const std::string& user, std::string& user_out) const {
    // Authentication, then authorisation: the token's subject must be the path's user.
    const auto auth = req[http::field::authorization];
    constexpr std::string_view scheme = "bearer ";
    if (auth.size() <= scheme.size() ||
        !std::equal(scheme.begin(), scheme.end(), auth.begin(), [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }))
        throw HttpError{http::status::unauthorized, "missing bearer token"};
    const auto verified = verify_hs256(auth.substr(scheme.size()), secret_, now_seconds(), jwt_policy_);
    if (const auto* err = std::get_if<JwtError>(&verified)) throw HttpError{http::status::unauthorized, "invalid token: " + err->reason};
    user_out = std::get<JwtClaims>(verified).sub; // the log names who was authenticated, never the path's claim
    if (user_out != user) throw HttpError{http::status::forbidden, "token does not grant access to this user"};
}

Response Api::route(const Request& req, std::string& user_out) const {
    const Target t = parse_target(req.target());
    const auto& s = t.segments;
    const http::verb m = req.method();
    auto wrong_method = [](const char* allowed) {
        Response r = error_response(http::status::method_not_allowed, "method not allowed");
        r.set(http::field::allow, allowed);
        return r;
    };

    if (s.size() == 1 && s[0] == "healthz") {
        if (m != http::verb::get) return wrong_method("GET");
        try {
            (void)db_.schema_version(); // one cheap query
        } catch (const std::exception&) {
            return error_response(http::status::service_unavailable, "database unreachable");
        }
        return json_response(http::status::ok, R"({"status":"ok"})");
    }

    // The library's counters for Prometheus. Unauthenticated, like /healthz: serve the API and
    // this on a network only the service's own infrastructure reaches (docs in README.md).
    if (s.size() == 1 && s[0] == "metrics") {
        if (m != http::verb::get) return wrong_method("GET");
        Response res{http::status::ok, 11};
        res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
        res.body() = prometheus_text(db_.stats());
        res.prepare_payload();
        return res;
    }

    // /api/{user}/chat, /api/{user}/conversations, /api/{user}/conversations/{id}[/messages]
    enum class Route { chat, list, conversation, messages } route;
    const char* allowed;
    http::verb want;
    if (s.size() == 3 && s[0] == "api" && s[2] == "chat") route = Route::chat, want = http::verb::post, allowed = "POST";
    else if (s.size() == 3 && s[0] == "api" && s[2] == "conversations") route = Route::list, want = http::verb::get, allowed = "GET";
    else if (s.size() == 4 && s[0] == "api" && s[2] == "conversations") route = Route::conversation, want = http::verb::delete_, allowed = "DELETE";
    else if (s.size() == 5 && s[0] == "api" && s[2] == "conversations" && s[4] == "messages") route = Route::messages, want = http::verb::get, allowed = "GET";
    else throw HttpError{http::status::not_found, "no such route"};
    if (m != want) return wrong_method(allowed);

    const std::string& user = s[1];
    authenticate(req, user, user_out);

    switch (route) {
    case Route::chat: // POST …/chat is served by Api::chat, on the caller's executor
        throw std::logic_error("a chat request reached the blocking handler");
    case Route::list: {
        convstate::ListOptions opts;
        opts.cursor = t.param("cursor").value_or("");
        const std::int64_t limit = int_param(t, "limit", 20);
        opts.limit = limit > 1000 ? 1000 : static_cast<int>(limit); // the library refuses > 100
        return json_response(http::status::ok, convstate::json::to_json(conversations_.list(user, opts)));
    }
    case Route::conversation:
        conversations_.remove(user, s[3]);
        return Response{http::status::no_content, 11};
    case Route::messages: {
        const std::int64_t after = int_param(t, "after_seq", 0);
        const std::int64_t limit = int_param(t, "limit", 100);
        if (limit < 1 || limit > 10000) throw HttpError{http::status::bad_request, "limit must be 1..10000", "limit"};
        return json_response(http::status::ok, messages_page(messages_, user, s[3], after, static_cast<std::size_t>(limit)));
    }
    }
    throw HttpError{http::status::not_found, "no such route"};
}

asio::awaitable<Answer> Api::handle(const Request& req, std::string& user_out, Exchange& exchange) const {
    std::exception_ptr failure;
    try {
        const Target t = parse_target(req.target());
        const auto& s = t.segments;
        // Liveness: answered on the I/O thread at once, whatever the database and the model do
        // (GET /healthz asks the database too).
        if (s.size() == 1 && s[0] == "health" && req.method() == http::verb::get)
            co_return Answer{json_response(http::status::ok, R"({"status":"ok"})")};
        if (s.size() == 3 && s[0] == "api" && s[2] == "chat" && req.method() == http::verb::post) {
            authenticate(req, s[1], user_out);
            Answer answer = co_await chat(req, s[1], exchange);
            co_return answer;
        }
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) co_return Answer{error_of(failure)};
    // (Every co_await here is a statement of its own: GCC 12 miscompiles some inside larger
    // expressions, such as an aggregate initialiser.)
    Response response = co_await on_workers([&] { return handle_blocking(req, user_out); });
    co_return Answer{std::move(response)};
}

// POST /api/{user}/chat: begin the turn (a worker), the model (awaited, no thread held),
// complete the turn (a worker). With "stream": true the answer is a chunked text/event-stream:
// "begin", one "chunk" per piece, then "done" (the stored result) or "error".
asio::awaitable<Answer> Api::chat(const Request& req, const std::string& user, Exchange& exchange) const {
    const bj::object body = parse_body(req);
    const bj::value* message = body.if_contains("message");
    if (!message) throw HttpError{http::status::bad_request, "message is required", "message"};
    if (!message->is_string()) throw HttpError{http::status::bad_request, "message must be a string", "message"};
    bool stream = false;
    if (const bj::value* v = body.if_contains("stream"); v && !v->is_null()) {
        if (!v->is_bool()) throw HttpError{http::status::bad_request, "stream must be a boolean", "stream"};
        stream = v->as_bool();
    }
    convstate::TurnRequest turn;
    turn.user_id = user;
    turn.message = std::string(message->as_string());
    turn.conversation_id = optional_string(body, "conversation_id");
    turn.idempotency_key = optional_string(body, "idempotency_key");
    turn.new_conversation.title = title_of(turn.message);
    const convstate::PendingTurn begun = co_await on_workers([&] { return chat_.begin_turn(turn); });

    if (!stream) {
        if (begun.completed) co_return Answer{json_response(http::status::ok, chat_json(*begun.completed))};
        std::exception_ptr failure;
        convstate::AgentReply reply;
        try {
            reply = co_await run_model(user, begun, nullptr);
        } catch (...) {
            failure = std::current_exception();
        }
        if (failure) {
            const Response error = error_of(failure);
            co_await fail(user, begun.token, error.body());
            co_return Answer{error};
        }
        const convstate::TurnResult r =
            co_await on_workers([&] { return chat_.complete_turn(user, begun.token, std::move(reply)); });
        co_return Answer{json_response(http::status::ok, chat_json(r))};
    }

    // Streamed. From here on the status is sent: failures become an "error" event.
    bj::object start;
    start["conversation_id"] = begun.conversation_id;
    start["user_seq"] = begun.user_seq;
    start["created"] = begun.created;
    std::vector<std::string> head{event("begin", bj::serialize(start))};
    if (begun.completed) { // a retry of a completed turn: its stored reply, at once
        bj::object piece;
        piece["content"] = begun.completed->reply;
        head.push_back(event("chunk", bj::serialize(piece)));
        head.push_back(event("done", chat_json(*begun.completed)));
    }
    bool connected = co_await exchange.start_events();
    for (const std::string& e : head)
        if (connected) connected = co_await exchange.send(e);
    if (begun.completed) {
        if (connected) connected = co_await exchange.finish_events();
        co_return Answer{std::nullopt, 200, connected};
    }
    const OnPiece on_piece = [&](const std::string& text) -> asio::awaitable<bool> {
        bj::object piece;
        piece["content"] = text;
        const bool sent = co_await exchange.send(event("chunk", bj::serialize(piece)));
        co_return sent;
    };
    std::exception_ptr failure;
    convstate::AgentReply reply;
    try {
        if (!connected) throw Abandoned();
        reply = co_await run_model(user, begun, on_piece);
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        // The user message stays; the turn is failed, so a keyed retry runs it again at once.
        const Response error = error_of(failure);
        bool gone = false;
        try {
            std::rethrow_exception(failure);
        } catch (const Abandoned&) {
            gone = true;
        } catch (...) {
        }
        const std::string reason = gone ? "the client went away" : error.body();
        co_await fail(user, begun.token, reason);
        if (gone) co_return Answer{std::nullopt, 499, false}; // 499: the client closed the request
        connected = co_await exchange.send(error_event(error));
        if (connected) connected = co_await exchange.finish_events();
        co_return Answer{std::nullopt, 200, connected};
    }
    std::string done;
    try {
        const convstate::TurnResult r =
            co_await on_workers([&] { return chat_.complete_turn(user, begun.token, std::move(reply)); });
        done = event("done", chat_json(r));
    } catch (...) {
        done = error_event(error_of(std::current_exception())); // stored or not: a keyed retry tells
    }
    connected = co_await exchange.send(done);
    if (connected) connected = co_await exchange.finish_events();
    co_return Answer{std::nullopt, 200, connected};
}

// The model: the upstream when there is one, else the demo agent (on a worker: it is code).
asio::awaitable<convstate::AgentReply> Api::run_model(const std::string& user, const convstate::PendingTurn& turn,
                                                      const OnPiece& on_piece) const {
    if (upstream_) {
        convstate::AgentReply reply;
        reply.content = co_await upstream_->complete(turn.history, on_piece);
        co_return reply;
    }
    convstate::AgentReply reply = co_await on_workers([&] {
        try {
            return demo::agent(convstate::AgentInput{user, turn.conversation_id, turn.history});
        } catch (const std::exception& e) {
            throw ModelError(std::string("the demo agent failed: ") + e.what());
        }
    });
    if (on_piece) // in pieces, as a model streams them (cut at character boundaries)
        for (std::size_t at = 0; at < reply.content.size();) {
            std::size_t n = std::min<std::size_t>(16, reply.content.size() - at);
            while (at + n < reply.content.size() && (static_cast<unsigned char>(reply.content[at + n]) & 0xC0) == 0x80) ++n;
            const bool sent = co_await on_piece(reply.content.substr(at, n));
            if (!sent) throw Abandoned();
            at += n;
        }
    co_return reply;
}

// Best effort: if failing the turn fails too, its run lease expires instead.
asio::awaitable<void> Api::fail(const std::string& user, const std::string& token, const std::string& reason) const {
    try {
        co_await on_workers([&] { chat_.fail_turn(user, token, reason.substr(0, 4096)); });
    } catch (const std::exception& e) {
        log_event("fail_turn_error", ",\"error\":" + json_quote(e.what()));
    }
}

} // namespace http_server
