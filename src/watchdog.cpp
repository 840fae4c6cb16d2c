#include "watchdog.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace convstate::detail {

Watchdog::Watchdog(std::size_t slots) : entries_(slots) {}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    for (const Entry& e : entries_)
        if (e.armed) ::close(e.fd);
}

void Watchdog::arm(std::size_t slot, int fd, Clock::time_point deadline) {
    const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) return; // out of descriptors: this attempt goes without a client-side bound
    bool wake = false;
    {
        std::lock_guard lock(mutex_);
        if (entries_[slot].armed) ::close(entries_[slot].fd);
        entries_[slot] = {true, false, own, deadline};
        if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
        wake = deadline < scheduled_;
    }
    if (wake) wake_.notify_all();
}

bool Watchdog::fired(std::size_t slot) {
    std::lock_guard lock(mutex_);
    return entries_[slot].fired;
}

void Watchdog::disarm(std::size_t slot) {
    std::lock_guard lock(mutex_);
    Entry& e = entries_[slot];
    if (e.armed) ::close(e.fd);
    e = Entry{};
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
        scheduled_ = next;
        if (next == Clock::time_point::max()) wake_.wait(lock);
        else wake_.wait_until(lock, next);
    }
}

} // namespace convstate::detail
