#pragma once
// GET /metrics: the library's counters (convstate::Database::stats) in the Prometheus text
// exposition format, version 0.0.4.

#include <string>

#include <convstate/database.hpp>

namespace http_server {

/** The stats as Prometheus text: counters for statements, transactions, retries, pool leases,
 *  waits and timeouts, and per-operation errors; histograms (seconds) of every operation's
 *  latency and of the pool's waits. */
std::string prometheus_text(const convstate::DatabaseStats& stats);

} // namespace http_server
