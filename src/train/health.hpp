// HealthChecks: the fit loop's checks that training is still sound, each ending the job with one
// clear error line on rank 0 (JobError) when it is not: non-finite gradients (or skip that step,
// FitOptions::Health::skip_nonfinite) and replicas whose parameters drifted apart.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "src/model/sequential.hpp"
#include "src/train/model.hpp"
#include "src/train/zero.hpp"

namespace dpt {

class HealthChecks {
 public:
  HealthChecks(Environment env, const Sequential& net, const FitOptions::Health& options);
  // Under ZeRO-1 each rank holds the summed gradients of its own blocks only: the checks look
  // there and agree by an allreduce. Empty: every rank holds them all.
  void set_shard(std::vector<ShardBlock> blocks) { shard_ = std::move(blocks); }

  // After the gradients of step `step` are averaged: whether the optimizer may take them. Every
  // rank holds the same gradients then, so every rank decides alike. Non-finite ones end the job
  // (naming the step and the first layer in backward that went bad) unless skipping.
  // `sum_of_squares`, when given, is the gradients' squared global norm in double, summed over
  // every element this check would look at (GradClipper::sum_of_squares, the same on every
  // rank): it is finite exactly when they all are, so no pass over the gradients is needed.
  bool gradients_usable(int64_t step, const double* sum_of_squares = nullptr) const;
  // After optimizer step `steps_done`: every check_replicas_every steps, ends the job when a
  // rank's parameters differ from rank 0's.
  void after_step(int64_t steps_done) const;

 private:
  [[noreturn]] void throw_nonfinite(int64_t step) const;
  // Non-finite gradient elements of tensor `t` (or of all, t < 0) that this rank checks.
  size_t nonfinite_here(int64_t t) const;
  void check_replicas(int64_t steps_done) const;

  Environment env_;
  const Sequential& net_;
  FitOptions::Health options_;
  std::vector<ShardBlock> shard_;
};

}  // namespace dpt
