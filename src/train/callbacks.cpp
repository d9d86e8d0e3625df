#include "src/train/callbacks.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {
// Whether a progress line can be redrawn in place. Under mpirun a rank's stdout is a
// pseudo-terminal even when mpirun's own output goes to a file or pipe, so the launcher's
// (parent process's) stdout must be a terminal too.
bool stdout_is_terminal(std::FILE* out) {
  if (!isatty(fileno(out))) return false;
  const char* term = std::getenv("TERM");
  if (!term || std::string(term) == "dumb") return false;
  if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMI_SIZE") && !std::getenv("PMIX_RANK"))
    return true;
  char target[256] = {};
  const std::string link = "/proc/" + std::to_string(getppid()) + "/fd/1";
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n <= 0) return false;
  const std::string t(target, static_cast<size_t>(n));
  return t.rfind("/dev/pts/", 0) == 0 || t.rfind("/dev/tty", 0) == 0;
}

}  // namespace

ProgressPrinter::ProgressPrinter(int rank, int world_size, int batch_size, std::FILE* out)
    : active_(rank == 0),
      tty_(rank == 0 && stdout_is_terminal(out)),
      world_(world_size),
      batch_(batch_size),
      out_(out) {}

void ProgressPrinter::on_fit_begin(int64_t steps_per_epoch, int epochs) {
  steps_per_epoch_ = steps_per_epoch;
  epochs_ = epochs;
  epoch_start_ = last_draw_ = steady_seconds();
}

void ProgressPrinter::on_step_end(int epoch, int64_t step_in_epoch, int64_t, double loss) {
  if (!active_) return;
  if (step_in_epoch == 1) {
    epoch_start_ = steady_seconds();
    loss_sum_ = 0;
    loss_count_ = 0;
  }
  loss_sum_ += loss;
  ++loss_count_;
  if (!tty_) return;
  const double now = steady_seconds();
  if (now - last_draw_ < 0.2 && step_in_epoch != steps_per_epoch_) return;
  last_draw_ = now;
  const double rate =
      static_cast<double>(step_in_epoch) * batch_ * world_ / std::max(1e-9, now - epoch_start_);
  std::fprintf(out_, "\repoch %d/%d  step %lld/%lld  loss %.4f (rank 0)  %.0f samples/s\033[K",
               epoch, epochs_, static_cast<long long>(step_in_epoch),
               static_cast<long long>(steps_per_epoch_), loss_sum_ / loss_count_, rate);
  std::fflush(out_);
}

void ProgressPrinter::on_epoch_end(const EpochMetrics& m) {
  if (!active_) return;
  if (tty_) std::fprintf(out_, "\r\033[K");
  std::fprintf(out_, "epoch %d/%d  step %lld  train_loss %.4f", m.epoch, epochs_,
               static_cast<long long>(m.step), m.train_loss);
  if (m.test)
    std::fprintf(out_, "  test_loss %.4f  test_accuracy %.4f", m.test->loss, m.test->accuracy);
  if (show_lr_ && m.lr) std::fprintf(out_, "  lr %.4g", *m.lr);
  if (m.grad_norm) std::fprintf(out_, "  grad_norm %.4g", *m.grad_norm);
  std::fprintf(out_, "  %.0f samples/s  %.1f s\n", m.samples_per_second, m.elapsed_seconds);
  std::fflush(out_);
}

std::string metrics_json(const EpochMetrics& m) {
  nlohmann::json j;
  j["epoch"] = m.epoch;
  j["step"] = m.step;
  j["train_loss"] = m.epoch_steps > 0 ? nlohmann::json(m.train_loss) : nlohmann::json(nullptr);
  j["test_loss"] = m.test ? nlohmann::json(m.test->loss) : nlohmann::json(nullptr);
  j["test_accuracy"] = m.test ? nlohmann::json(m.test->accuracy) : nlohmann::json(nullptr);
  j["samples_per_second"] = m.samples_per_second;
  j["train_seconds"] = m.train_seconds;
  j["compute_seconds"] = m.compute_seconds;
  j["comm_seconds"] = m.comm_seconds;
  j["exposed_comm_seconds"] = m.exposed_comm_seconds;
  j["overlap_fraction"] = m.overlap_fraction;
  j["nonfinite_skips"] = m.nonfinite_skips;
  j["median_step_seconds"] = m.median_step_seconds;
  j["lr"] = m.lr ? nlohmann::json(*m.lr) : nlohmann::json(nullptr);
  j["grad_norm"] = m.grad_norm ? nlohmann::json(*m.grad_norm) : nlohmann::json(nullptr);
  j["world_size"] = m.world_size;
  j["global_batch"] = m.global_batch;
  j["elapsed_seconds"] = m.elapsed_seconds;
  return j.dump();
}

MetricsWriter::MetricsWriter(int rank, const std::string& path) : path_(path) {
  if (rank != 0) return;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw InputError(path + ": cannot write: " + std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::on_epoch_end(const EpochMetrics& m) { write_line(metrics_json(m)); }

void MetricsWriter::write_line(const std::string& json) {
  if (!file_) return;
  const std::string line = json + "\n";
  if (std::fputs(line.c_str(), file_) < 0 || std::fflush(file_) != 0)
    throw SystemError(path_ + ": write failed: " + std::strerror(errno));
}

void MemoryCheck::on_step_end(int, int64_t, int64_t, double) {
  if (!active_) return;
  active_ = false;
  const size_t now = device_.memory_in_use();
  if (now == 0) return;  // the device cannot say
  const double held = static_cast<double>(now) - static_cast<double>(before_);
  // The bf16 twin's float32 scratch is the twin's, not training's: measured, set apart.
  const double twin = static_cast<double>(device_.twin_scratch_bytes());
  const double mib = 1024.0 * 1024.0;
  char apart[128] = "";
  if (twin > 0)
    std::snprintf(apart, sizeof(apart), ", besides %.1f MiB of the bf16 twin's float32 scratch",
                  twin / mib);
  std::fprintf(out_,
               "memory after the first step: %.1f MiB more in use than before the model was "
               "built (%s%s), %.1f MiB estimated: %.2f of the estimate\n",
               (held - twin) / mib, device_.asynchronous() ? "GPU memory" : "resident set", apart,
               static_cast<double>(estimate_.total()) / mib,
               (held - twin) / static_cast<double>(estimate_.total()));
  std::fflush(out_);
}

}  // namespace dpt
