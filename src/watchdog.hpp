#pragma once
// A client-side deadline for database operations on PostgreSQL.
//
// PostgreSQL's statement_timeout is enforced by the server; a server (or network) that stops
// answering enforces nothing, and libpq then waits on its socket for ever (TCP keepalives and
// tcp_user_timeout do not fire while the peer's kernel still acknowledges). So each operation
// on a pooled connection is armed with a deadline, and one background thread shuts the socket
// down when a deadline passes: libpq's blocked read returns, the operation fails, and the
// connection is replaced before its next use. libpq has no per-call timeout and SOCI none
// either, which is why this small piece is written here.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace convstate::detail {

class Watchdog {
public:
    using Clock = std::chrono::steady_clock;

    explicit Watchdog(std::size_t slots);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

    /** Shuts socket fd down if slot is still armed at deadline. The watchdog holds its own
     *  duplicate of fd until disarm(), so a descriptor number that libpq closed and the process
     *  reused meanwhile is never touched. */
    void arm(std::size_t slot, int fd, Clock::time_point deadline);
    /** Whether slot's deadline passed (the socket was shut down). */
    bool fired(std::size_t slot);
    void disarm(std::size_t slot);

private:
    struct Entry {
        bool armed = false;
        bool fired = false;
        int fd = -1;
        Clock::time_point deadline;
    };
    void loop();

    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<Entry> entries_;
    bool stopping_ = false;
    // When the thread wakes next (max: only when notified). arm() wakes it only for a deadline
    // before that: with one timeout for every operation a new deadline is never earlier than one
    // already waited for, so a busy pool wakes the thread about once per timeout, not per operation.
    Clock::time_point scheduled_ = Clock::time_point::max();
    std::thread thread_; // started on first arm()
};

} // namespace convstate::detail
