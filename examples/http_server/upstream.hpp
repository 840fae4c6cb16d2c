// The model behind the chat route: an OpenAI-compatible chat-completions server, called
// asynchronously (Asio coroutines), streaming or not.
#pragma once

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <convstate/convstate.hpp>

namespace http_server {

/** What to call: `http://host[:port]/path` (plain HTTP: put a TLS-terminating proxy in front of
 *  an https:// service), the model name, an API key sent as a bearer token (may be empty), and
 *  how long the upstream may be silent before the call fails. */
struct UpstreamOptions {
    std::string url;
    std::string model = "gpt-4o-mini";
    std::string api_key;
    std::chrono::seconds timeout{120};
};

/** The model failed: the upstream unreachable, an HTTP error, a body that is not a chat
 *  completion, a stream that ended before its `[DONE]` — or the demo agent threw. */
struct ModelError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/** Called with each piece of a streamed reply; returns false to stop (the client went away). */
using OnPiece = std::function<boost::asio::awaitable<bool>(const std::string&)>;

/** The piece callback returned false: the call was abandoned. */
struct Abandoned : std::runtime_error {
    Abandoned() : std::runtime_error("the client went away") {}
};

class Upstream {
public:
    /** @throws std::invalid_argument for a URL that is not http://host[:port]/path. */
    explicit Upstream(UpstreamOptions options);

    /** Sends the window as a chat completion request and returns the reply's content. With
     *  on_piece, asks for a streamed reply (Server-Sent Events) and passes each piece on as it
     *  arrives. Runs on the caller's executor; holds no thread while it waits.
     *  @throws ModelError, Abandoned. */
    boost::asio::awaitable<std::string> complete(const std::vector<convstate::Message>& history,
                                                 const OnPiece& on_piece) const;

private:
    UpstreamOptions options_;
    std::string host_, port_, target_;
};

} // namespace http_server
