#include "src/train/step_logger.hpp"

#include <nlohmann/json.hpp>

#include "src/core/clock.hpp"

namespace dpt {

StepLogger::StepLogger(Communicator& comm, const Model& model, int64_t log_every,
                       int64_t eval_every, int64_t max_steps, double tokens_per_step,
                       std::function<EvalResult()> evaluate, MetricsWriter* metrics, std::FILE* out)
    : comm_(comm),
      model_(model),
      log_every_(log_every),
      eval_every_(eval_every),
      max_steps_(max_steps),
      tokens_per_step_(tokens_per_step),
      evaluate_(std::move(evaluate)),
      metrics_(metrics),
      out_(out) {}

void StepLogger::on_fit_begin(int64_t, int) { since_ = steady_seconds(); }

void StepLogger::on_step_end(int, int64_t, int64_t step, double loss) {
  loss_sum_ += loss;
  ++steps_;
  const bool last = max_steps_ >= 0 && step >= max_steps_;
  const bool root = comm_.rank() == 0;
  if (log_every_ > 0 && (step % log_every_ == 0 || last) && steps_ > 0) {
    // The mean per token over the interval: each rank's step losses are means over its own
    // tokens, and every rank has as many.
    const double mean =
        comm_.allreduce_sum(loss_sum_) / (static_cast<double>(steps_) * comm_.size());
    const double now = steady_seconds();
    const double tokens_per_second =
        now > since_ ? tokens_per_step_ * static_cast<double>(steps_) / (now - since_) : 0;
    if (root) {
      std::fprintf(out_, "step %lld | train_loss %.4f | lr %.3g | %.0f tokens/s",
                   static_cast<long long>(step), mean, model_.last_lr(), tokens_per_second);
      if (model_.last_grad_norm())
        std::fprintf(out_, " | grad_norm %.3f", *model_.last_grad_norm());
      std::fprintf(out_, "\n");
      std::fflush(out_);
    }
    if (metrics_) {
      nlohmann::ordered_json j;
      j["step"] = step;
      j["train_loss"] = mean;
      j["tokens_per_second"] = tokens_per_second;
      j["lr"] = model_.last_lr();
      j["grad_norm"] = model_.last_grad_norm() ? nlohmann::ordered_json(*model_.last_grad_norm())
                                               : nlohmann::ordered_json(nullptr);
      metrics_->write_line(j.dump());
    }
    loss_sum_ = 0;
    steps_ = 0;
    since_ = steady_seconds();
  }
  if (evaluate_ && eval_every_ > 0 && (step % eval_every_ == 0 || last)) {
    const EvalResult r = evaluate_();
    if (root) {
      std::fprintf(out_, "step %lld | val_loss %.4f (%lld windows)\n", static_cast<long long>(step),
                   r.loss, static_cast<long long>(r.count));
      std::fflush(out_);
    }
    if (metrics_) {
      nlohmann::ordered_json j;
      j["step"] = step;
      j["val_loss"] = r.loss;
      metrics_->write_line(j.dump());
    }
    since_ = steady_seconds();  // evaluation time is not training time
  }
}

}  // namespace dpt
