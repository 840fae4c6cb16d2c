// S6's network: a TCP proxy on 127.0.0.1 that forwards to PostgreSQL and holds every chunk it
// reads for a fixed delay before writing it on, in each direction — a database one network hop
// away (0.25 ms each way by default: 0.5 ms per round trip), on one machine.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bench.hpp"

namespace bench {
namespace {

void write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; // the other side is gone: the reader sees it next
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

void no_delay(int fd) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace

DelayProxy::DelayProxy(const std::string& host, const std::string& port, std::chrono::microseconds delay)
    : delay_(delay) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || !res) fail("proxy: cannot resolve " + host);
    std::memcpy(&upstream_, res->ai_addr, res->ai_addrlen);
    upstream_len_ = res->ai_addrlen;
    upstream_family_ = res->ai_family;
    ::freeaddrinfo(res);

    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 128) != 0 || ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        fail(std::string("proxy: cannot listen: ") + std::strerror(errno));
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

DelayProxy::~DelayProxy() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR); // wakes accept()
    acceptor_.join();
    {
        const std::lock_guard lock(mutex_);
        for (int fd : fds_) ::shutdown(fd, SHUT_RDWR); // wakes the pumps
    }
    for (std::thread& t : pumps_) t.join();
    for (int fd : fds_) ::close(fd);
    ::close(listen_fd_);
}

void DelayProxy::accept_loop() {
    while (!stopping_) {
        const int client = ::accept(listen_fd_, nullptr, nullptr);
        if (client < 0) {
            if (errno == EINTR) continue;
            return;
        }
        const int server = ::socket(upstream_family_, SOCK_STREAM, 0);
        if (server < 0 || ::connect(server, reinterpret_cast<const sockaddr*>(&upstream_), upstream_len_) != 0) {
            ::close(client);
            if (server >= 0) ::close(server);
            continue;
        }
        no_delay(client);
        no_delay(server);
        const std::lock_guard lock(mutex_);
        fds_.push_back(client);
        fds_.push_back(server);
        pumps_.emplace_back([this, client, server] { pump(client, server); });
        pumps_.emplace_back([this, client, server] { pump(server, client); });
    }
}

// Forwards from -> to, each chunk after the delay; at the end passes the close on.
void DelayProxy::pump(int from, int to) {
    std::vector<char> buf(1 << 16);
    for (;;) {
        const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        std::this_thread::sleep_for(delay_);
        write_all(to, buf.data(), static_cast<std::size_t>(n));
    }
    ::shutdown(to, SHUT_WR);
}

} // namespace bench
