// Backend::update_gate's arithmetic, for the host and a GPU alike: from the gradients' sum of
// squares, whether to skip the step and what clipping multiplies the gradients by. The square
// root and the division in double are correctly rounded on both, so both get the same bits.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/core/host_device.hpp"

namespace dpt {

// Sets *skip (1: the sum is not finite, so some gradient is not) and returns the coefficient:
// max_norm / (sqrt(sum) + 1e-6) rounded to float where that is below 1, else 1 (also when
// skipping, and for max_norm 0, no clipping). GradClipper's host arithmetic, step for step.
DPT_HOST_DEVICE inline float gate_coefficient(double sum, double max_norm, int32_t* skip) {
  *skip = sum - sum == 0.0 ? 0 : 1;  // NaN for a NaN or an infinity
  if (*skip != 0 || !(max_norm > 0)) return 1.0f;
#ifdef __CUDA_ARCH__
  const double norm = ::sqrt(sum);
#else
  const double norm = std::sqrt(sum);
#endif
  const double coef = max_norm / (norm + 1e-6);
  return coef < 1 ? static_cast<float>(coef) : 1.0f;
}

}  // namespace dpt
