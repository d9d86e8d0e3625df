#include "src/train/faults.hpp"

#include <limits>

namespace dpt {

std::unique_ptr<FaultInjector> FaultInjector::make(const FitOptions::Faults& plan, int rank) {
  if (plan.nan_step < 0 && (plan.drift_rank < 0 || plan.drift_step < 0)) return nullptr;
  return std::unique_ptr<FaultInjector>(new FaultInjector(plan, rank));
}

void FaultInjector::on_host_batch(int64_t step, int micro, TensorRef inputs) const {
  // A NaN needs float inputs (pixels, features); token ids have none to hold.
  if (step == plan_.nan_step && rank_ == 0 && micro == 0)
    inputs.as<float>()[0] = std::numeric_limits<float>::quiet_NaN();
}

void FaultInjector::after_step(int64_t steps_done, Sequential& net) const {
  if (rank_ != plan_.drift_rank || steps_done != plan_.drift_step) return;
  Backend& be = net.backend();
  float first = 0;
  be.copy_to_host(&first, net.params(), sizeof(float));
  first += 1e-3f;
  be.copy_from_host(net.params(), &first, sizeof(float));
}

}  // namespace dpt
