// The time base of the trainer: seconds on the steady (monotonic) clock, and the CPU time of the
// calling thread (what it spent computing, as opposed to waiting or losing its core).
#pragma once

#include <time.h>

#include <chrono>

namespace dpt {

inline double steady_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

inline double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace dpt
