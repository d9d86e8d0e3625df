// The time base of the trainer: seconds on the steady (monotonic) clock.
#pragma once

#include <chrono>

namespace dpt {

inline double steady_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace dpt
