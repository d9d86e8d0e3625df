// FaultInjector: the faults the tests inject (FitOptions::Faults), to check that the health
// checks catch them: a NaN in an input batch, a replica that drifts from the others.
//
// fit() makes one only when a fault is planned, and calls it at two points of a step: with each
// batch in host memory before it goes to the device, and after the optimizer step. A normal
// run has none, so its steps run no fault code.
#pragma once

#include <cstdint>
#include <memory>

#include "src/model/sequential.hpp"
#include "src/train/model.hpp"

namespace dpt {

class FaultInjector {
 public:
  // nullptr when `plan` injects nothing; `rank` is this rank's.
  static std::unique_ptr<FaultInjector> make(const FitOptions::Faults& plan, int rank);

  // Micro-batch `micro` of step `step` in host memory: rank 0's first input of the first
  // micro-batch of nan_step becomes a NaN.
  void on_host_batch(int64_t step, int micro, TensorRef inputs) const;
  // After optimizer step `steps_done` (counted from 1): on drift_rank after drift_step, the
  // first parameter moves by 1e-3, so that this replica no longer equals the others.
  void after_step(int64_t steps_done, Sequential& net) const;

 private:
  FaultInjector(const FitOptions::Faults& plan, int rank) : plan_(plan), rank_(rank) {}

  FitOptions::Faults plan_;
  int rank_;
};

}  // namespace dpt
