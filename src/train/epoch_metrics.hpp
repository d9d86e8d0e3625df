// What a rank counts over an epoch's steps, and the epoch's metrics made from it.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/reducer.hpp"
#include "src/train/model.hpp"

namespace dpt {

struct EpochTally {
  int64_t steps = 0;    // optimizer steps done in this epoch (a resumed epoch's earlier ones too)
  int64_t skips = 0;    // of them, skipped for non-finite gradients
  double loss_sum = 0;  // this rank's loss sum over the steps taken
  double comm_seconds = 0, exposed_comm_seconds = 0;
  std::vector<double> step_seconds;  // wall time of each step (callbacks excluded)
  std::optional<double> lr;          // of the last step
  std::optional<double> grad_norm;   // of the last step that measured it (clipping)

  // The tally of epoch `epoch` when training starts at `from`: the steps and loss of a resumed
  // epoch carry on, any other starts empty.
  static EpochTally starting(int epoch, const TrainPosition& from);
  // One optimizer step: `applied` false when it was skipped (its loss is not counted).
  void add_step(double seconds, const StepCommStats& comm, bool applied, double loss);
  // The step's learning rate and, when it clipped, its gradients' norm before clipping.
  void add_optimizer_figures(double step_lr, std::optional<double> step_grad_norm);
};

// Collective (the loss is summed over ranks). `epoch` is 0-based; `step` the optimizer steps so
// far; `train_seconds` the epoch's training time; `rows_per_sample` the loss rows (targets) of a
// sample, over which the train loss is a mean. Leaves test and elapsed_seconds to the caller.
EpochMetrics epoch_metrics(Communicator& comm, const EpochTally& tally, int epoch, int64_t step,
                           int64_t global_batch, double train_seconds, int64_t rows_per_sample = 1);

}  // namespace dpt
