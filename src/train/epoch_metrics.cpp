#include "src/train/epoch_metrics.hpp"

#include <algorithm>

namespace dpt {

EpochTally EpochTally::starting(int epoch, const TrainPosition& from) {
  EpochTally t;
  if (epoch == from.epoch && from.step_in_epoch > 0) {
    t.steps = from.step_in_epoch;
    t.loss_sum = from.loss_sum;
  }
  return t;
}

void EpochTally::add_step(double seconds, const StepCommStats& comm, bool applied, double loss) {
  step_seconds.push_back(seconds);
  comm_seconds += comm.total_seconds;
  exposed_comm_seconds += comm.exposed_seconds;
  ++steps;
  if (applied)
    loss_sum += loss;
  else
    ++skips;
}

void EpochTally::add_optimizer_figures(double step_lr, std::optional<double> step_grad_norm) {
  lr = step_lr;
  if (step_grad_norm) grad_norm = step_grad_norm;
}

EpochMetrics epoch_metrics(Communicator& comm, const EpochTally& tally, int epoch, int64_t step,
                           int64_t global_batch, double train_seconds, int64_t rows_per_sample) {
  EpochMetrics m;
  m.epoch = epoch + 1;
  m.step = step;
  m.epoch_steps = tally.steps;
  m.world_size = comm.size();
  m.global_batch = global_batch;
  const double samples = static_cast<double>((tally.steps - tally.skips) * global_batch);
  const double total_loss = comm.allreduce_sum(tally.loss_sum);
  const double rows = samples * static_cast<double>(rows_per_sample);
  m.train_loss = rows > 0 ? total_loss / rows : 0;
  m.train_seconds = train_seconds;
  m.comm_seconds = tally.comm_seconds;
  m.exposed_comm_seconds = tally.exposed_comm_seconds;
  m.compute_seconds = train_seconds - tally.exposed_comm_seconds;
  m.overlap_fraction = tally.comm_seconds > 0
                           ? (tally.comm_seconds - tally.exposed_comm_seconds) / tally.comm_seconds
                           : 0;
  m.nonfinite_skips = tally.skips;
  m.lr = tally.lr;
  m.grad_norm = tally.grad_norm;
  m.samples_per_second = train_seconds > 0 ? samples / train_seconds : 0;
  m.tokens_per_second = train_seconds > 0 ? rows / train_seconds : 0;
  if (!tally.step_seconds.empty()) {
    std::vector<double> times = tally.step_seconds;
    auto mid = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
    std::nth_element(times.begin(), mid, times.end());
    m.median_step_seconds = *mid;
  }
  return m;
}

}  // namespace dpt
