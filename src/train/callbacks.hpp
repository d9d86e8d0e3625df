// Callbacks of the CLI's fit: the progress line and the metrics file (rank 0 only).
#pragma once

#include <cstdio>
#include <string>

#include "src/train/memory_report.hpp"
#include "src/train/model.hpp"

namespace dpt {

// Prints a progress line during each epoch (redrawn in place on a terminal) and one line per
// epoch. Silent on ranks other than 0.
class ProgressPrinter final : public Callback {
 public:
  ProgressPrinter(int rank, int world_size, int batch_size, std::FILE* out = stdout);
  // Adds the learning rate of the epoch's last step to each epoch line (for a scheduled one).
  // The gradients' norm is shown whenever fit measured it (when clipping).
  void show_lr(bool on) { show_lr_ = on; }
  void on_fit_begin(int64_t steps_per_epoch, int epochs) override;
  void on_step_end(int epoch, int64_t step_in_epoch, int64_t global_step, double loss) override;
  void on_epoch_end(const EpochMetrics& m) override;

 private:
  bool active_, tty_, show_lr_ = false;
  int world_, batch_;
  std::FILE* out_;
  int64_t steps_per_epoch_ = 0;
  int epochs_ = 0;
  double epoch_start_ = 0, last_draw_ = 0, loss_sum_ = 0;
  int64_t loss_count_ = 0;
};

// After the run's first step, when every buffer of training exists, compares the memory the
// device says is in use with what it was before the model was built, against the estimate
// (memory_report.hpp): rank 0 prints one line with both and their ratio.
class MemoryCheck final : public Callback {
 public:
  MemoryCheck(int rank, const Backend& device, size_t before_bytes, const MemoryEstimate& estimate,
              std::FILE* out = stdout)
      : active_(rank == 0),
        device_(device),
        before_(before_bytes),
        estimate_(estimate),
        out_(out) {}
  void on_step_end(int epoch, int64_t step_in_epoch, int64_t global_step, double loss) override;

 private:
  bool active_;
  const Backend& device_;
  size_t before_;
  MemoryEstimate estimate_;
  std::FILE* out_;
};

// Appends one JSON object per epoch to DIR/metrics.jsonl (rank 0 only), flushed at each line.
// "lr" is the learning rate of the epoch's last step, "grad_norm" the global norm of the averaged
// gradients of its last applied step, before clipping (null unless clipping). Both are that
// step's figures, not the epoch's mean, so that a resumed run writes the same line.
class MetricsWriter final : public Callback {
 public:
  MetricsWriter(int rank, const std::string& path);
  ~MetricsWriter() override;
  void on_epoch_end(const EpochMetrics& m) override;
  // One more line (a JSON object, without the newline), flushed at once.
  void write_line(const std::string& json);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

std::string metrics_json(const EpochMetrics& m);

}  // namespace dpt
