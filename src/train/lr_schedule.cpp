#include "src/train/lr_schedule.hpp"

#include <cmath>
#include <numbers>
#include <sstream>

#include "src/core/error.hpp"

namespace dpt {

void LrSchedule::validate() const {
  if (warmup_steps < 0) throw InputError("option --warmup-steps: must be at least 0");
  if (decay_steps >= 0 && decay_steps <= warmup_steps)
    throw InputError("option --lr-decay-steps: " + std::to_string(decay_steps) +
                     " must be larger than --warmup-steps (" + std::to_string(warmup_steps) + ")");
  if (!(min_lr >= 0) || !std::isfinite(min_lr))
    throw InputError("option --min-lr: must be a number >= 0");
  if (min_lr > lr) throw InputError("option --min-lr: larger than --lr");
  if (min_lr > 0 && decay_steps < 0)
    throw InputError("option --min-lr: needs --lr-decay-steps (the rate decays to it)");
}

double LrSchedule::at(int64_t it) const {
  if (it < warmup_steps)
    return lr * static_cast<double>(it + 1) / static_cast<double>(warmup_steps + 1);
  if (decay_steps < 0) return lr;
  if (it > decay_steps) return min_lr;
  const double ratio =
      static_cast<double>(it - warmup_steps) / static_cast<double>(decay_steps - warmup_steps);
  return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * ratio)) * (lr - min_lr);
}

std::string LrSchedule::describe() const {
  if (warmup_steps == 0 && decay_steps < 0) return "constant";
  std::ostringstream os;
  if (warmup_steps > 0) os << "warmup " << warmup_steps << (decay_steps >= 0 ? ", " : "");
  if (decay_steps >= 0) os << "cosine to " << min_lr << " at " << decay_steps;
  return os.str();
}

}  // namespace dpt
