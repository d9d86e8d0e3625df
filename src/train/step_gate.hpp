// StepGate: between a step's backward and its optimizer update, the check of the averaged
// gradients and their clipping, decided where the gradients are. It queues the gradients' sum
// of squares (in double), from it the skip flag (the sum is not finite exactly when some
// gradient is not) and clipping's coefficient, and the scaling by that coefficient; the
// optimizer's update reads the flag and leaves everything alone when it is set. So a GPU never
// waits for the host in the middle of a step: the host reads the outcome once the step is done,
// where it waits anyway, and a skipped step's optimizer count is taken back then.
//
// For a trainer whose ranks each hold every averaged gradient. Under ZeRO-1 a rank holds its
// blocks only and the sum needs an allreduce first: there HealthChecks and GradClipper decide on
// the host. The arithmetic is theirs (gate_coefficient), so both give the same bits.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/model/sequential.hpp"

namespace dpt {

class StepGate {
 public:
  // Over the gradient elements of `params` (one span of the flat buffer). max_norm: clip to
  // this global L2 norm; 0: check only.
  StepGate(Backend& backend, const std::vector<ParamInfo>& params, double max_norm);
  // Queues the check, and the clipping, of the averaged gradients.
  void queue(float* grads);
  // The flag the optimizer's update reads (backend memory): non-zero, skip.
  const int32_t* skip() const;

  struct Outcome {
    double sum_of_squares = 0;  // of the gradients before clipping
    bool skipped = false;       // not finite: the update left everything alone
  };
  // Once the backend has run what queue() queued (after Backend::synchronize).
  Outcome read() const;

 private:
  Backend& backend_;
  size_t begin_ = 0, end_ = 0;
  double max_norm_;
  // 16 bytes: the sum (double), the coefficient (float), the skip flag (int32).
  DeviceBuffer state_;
  double* sum() const;
  float* coef() const;
  int32_t* flag() const;
};

}  // namespace dpt
