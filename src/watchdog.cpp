#include "watchdog.hpp"

#include <sys/socket.h>

namespace convstate::detail {

Watchdog::Watchdog(std::size_t slots) : entries_(slots) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Watchdog::arm(std::size_t slot, int fd, Clock::time_point deadline) {
    {
        std::lock_guard lock(mutex_);
        entries_[slot] = {true, false, fd, deadline};
        if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
    }
    wake_.notify_all();
}

bool Watchdog::disarm(std::size_t slot) {
    std::lock_guard lock(mutex_);
    Entry& e = entries_[slot];
    const bool fired = e.fired;
    e = Entry{};
    return fired;
}

void Watchdog::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        Clock::time_point next = Clock::time_point::max();
        const Clock::time_point now = Clock::now();
        for (Entry& e : entries_) {
            if (!e.armed || e.fired) continue;
            if (e.deadline <= now) {
                ::shutdown(e.fd, SHUT_RDWR); // the blocked libpq call returns with an error
                e.fired = true;
            } else if (e.deadline < next) {
                next = e.deadline;
            }
        }
        if (next == Clock::time_point::max()) wake_.wait(lock);
        else wake_.wait_until(lock, next);
    }
}

} // namespace convstate::detail
