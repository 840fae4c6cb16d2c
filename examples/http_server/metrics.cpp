// Written by hand rather than with prometheus-cpp (Debian's prometheus-cpp-dev): the library
// already aggregates its histograms, and prometheus-cpp's Histogram can only be fed single
// observations, so it would have to replay every sample; the text format is a few lines.

#include "metrics.hpp"

#include <cstdint>
#include <string_view>

#include <fmt/format.h>

namespace http_server {
namespace {

void counter(std::string& out, std::string_view name, std::string_view help, std::uint64_t value) {
    out += fmt::format("# HELP {0} {1}\n# TYPE {0} counter\n{0} {2}\n", name, help, value);
}

// One histogram's series: cumulative buckets by upper bound (seconds), then sum and count.
void histogram_series(std::string& out, std::string_view name, std::string_view labels,
                      const convstate::LatencyHistogram& h) {
    const std::string sep = labels.empty() ? "" : ",";
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < convstate::LatencyHistogram::bounds_us.size(); ++i) {
        cumulative += h.counts[i];
        out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep,
                           static_cast<double>(convstate::LatencyHistogram::bounds_us[i]) / 1e6, cumulative);
    }
    cumulative += h.counts.back();
    out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, cumulative);
    const std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, static_cast<double>(h.sum_us) / 1e6, name, braces,
                       h.count);
}

} // namespace

std::string prometheus_text(const convstate::DatabaseStats& s) {
    std::string out;
    counter(out, "convstate_statements_total", "Statements sent to the database (round trips).", s.statements);
    counter(out, "convstate_transactions_total", "Write transactions committed.", s.transactions);
    counter(out, "convstate_retries_total", "Operations retried after a transient error.", s.retries);

    out += "# HELP convstate_operation_duration_seconds Duration of library calls, by operation.\n"
           "# TYPE convstate_operation_duration_seconds histogram\n";
    for (std::size_t i = 0; i < convstate::operation_count; ++i) {
        const auto op = static_cast<convstate::Operation>(i);
        histogram_series(out, "convstate_operation_duration_seconds", fmt::format("operation=\"{}\"", to_string(op)),
                         s.operations[i].latency);
    }
    out += "# HELP convstate_operation_errors_total Library calls that failed, by operation.\n"
           "# TYPE convstate_operation_errors_total counter\n";
    for (std::size_t i = 0; i < convstate::operation_count; ++i)
        out += fmt::format("convstate_operation_errors_total{{operation=\"{}\"}} {}\n",
                           to_string(static_cast<convstate::Operation>(i)), s.operations[i].errors);

    counter(out, "convstate_pool_acquisitions_total", "Pooled connections leased.", s.pool.acquisitions);
    counter(out, "convstate_pool_waits_total", "Leases that waited for a free connection.", s.pool.waits);
    counter(out, "convstate_pool_timeouts_total", "Waits that gave up after pool_timeout.", s.pool.timeouts);
    out += "# HELP convstate_pool_wait_seconds Time spent waiting for a pooled connection.\n"
           "# TYPE convstate_pool_wait_seconds histogram\n";
    histogram_series(out, "convstate_pool_wait_seconds", "", s.pool.wait);
    return out;
}

} // namespace http_server
