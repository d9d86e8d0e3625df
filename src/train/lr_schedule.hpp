// The learning rate at each optimizer step: constant, or nanoGPT's linear warmup followed by a
// cosine decay to a floor. `it` is the 0-based optimizer step:
//   lr * (it + 1) / (W + 1)                                 while it < W
//   M + 0.5 * (1 + cos(pi * (it - W) / (D - W))) * (lr - M)  while W <= it <= D
//   M                                                       once it > D
#pragma once

#include <cstdint>
#include <string>

namespace dpt {

struct LrSchedule {
  double lr = 0.01;          // the peak (and, without a schedule, the only) learning rate
  int64_t warmup_steps = 0;  // W
  int64_t decay_steps = -1;  // D; < 0: no decay (constant after warmup)
  double min_lr = 0;         // M

  // Throws InputError naming the option for a schedule that does not make sense (D <= W, M > lr,
  // a negative W, a floor M > 0 without decay).
  void validate() const;
  double at(int64_t it) const;
  // "constant", or "warmup 100, cosine to 0.0001 at 3000", for the start table.
  std::string describe() const;
};

}  // namespace dpt
