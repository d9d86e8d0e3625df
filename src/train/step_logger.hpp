// StepLogger: what a language-model run reports, counted in steps rather than epochs. Every
// log_every steps: the train loss (mean per token over the interval, all ranks), tokens per
// second, the learning rate and, when clipping, the gradients' norm. Every eval_every steps (and
// after the last step): the validation loss. Each is a line on rank 0's output and a JSON line in
// metrics.jsonl. Collective: every rank calls it at the same steps (fit's callbacks run on all).
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>

#include "comm/communicator.hpp"
#include "src/train/callbacks.hpp"
#include "src/train/model.hpp"

namespace dpt {

class StepLogger final : public Callback {
 public:
  // tokens_per_step: targets of one optimizer step over all ranks (P x B x T x accumulate).
  // evaluate: the validation run (collective), or empty for none. metrics may be null (ranks
  // other than 0).
  StepLogger(Communicator& comm, const Model& model, int64_t log_every, int64_t eval_every,
             int64_t max_steps, double tokens_per_step, std::function<EvalResult()> evaluate,
             MetricsWriter* metrics, std::FILE* out = stdout);
  void on_fit_begin(int64_t steps_per_epoch, int epochs) override;
  void on_step_end(int epoch, int64_t step_in_epoch, int64_t global_step, double loss) override;

 private:
  Communicator& comm_;
  const Model& model_;
  int64_t log_every_, eval_every_, max_steps_;
  double tokens_per_step_;
  std::function<EvalResult()> evaluate_;
  MetricsWriter* metrics_;
  std::FILE* out_;
  double loss_sum_ = 0;  // this rank's mean step losses since the last log line
  int64_t steps_ = 0;    // steps since the last log line
  double since_ = 0;     // steady_seconds() of the last log line
};

}  // namespace dpt
