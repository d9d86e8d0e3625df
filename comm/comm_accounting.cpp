#include "comm/comm_accounting.hpp"

#include <algorithm>

#include "src/core/clock.hpp"

namespace dpt {

void CommAccounting::step_begin() {
  wall_start_ = steady_seconds();
  cpu_start_ = thread_cpu_seconds();
  backward_marker_ = -1;
}

void CommAccounting::backward_done() { backward_marker_ = device_.record_marker(); }

double CommAccounting::exposed_seconds(const std::vector<BucketTiming>& buckets,
                                       double total_seconds, double waited_seconds) const {
  double exposed;
  if (device_.asynchronous()) {
    double last_end = 0;
    for (const BucketTiming& t : buckets) last_end = std::max(last_end, t.end);
    const double reduce = buckets.empty() || backward_marker_ < 0
                              ? 0
                              : last_end - device_.marker_time(backward_marker_);
    return std::clamp(reduce, 0.0, std::max(0.0, total_seconds - waited_seconds)) + waited_seconds;
  } else {
    const double wall = steady_seconds() - wall_start_;
    exposed = wall - (thread_cpu_seconds() - cpu_start_);
  }
  return std::clamp(exposed, 0.0, total_seconds);
}

}  // namespace dpt
