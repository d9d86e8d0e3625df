#include "src/train/memory_report.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "src/train/buckets.hpp"
#include "src/train/zero.hpp"

namespace dpt {

MemoryEstimate estimate_memory(const Sequential& net, const OptimizerConfig& optimizer,
                               const FitOptions& fit, int world, int rank) {
  MemoryEstimate m;
  const size_t flat = net.flat_size();
  m.params = flat * sizeof(float);
  m.grads = flat * sizeof(float);
  if (net.activation_dtype() != DataType::F32)
    m.working = flat * dtype_size(net.activation_dtype());
  const int state_buffers = optimizer.name == "adamw" ? 2 : optimizer.momentum > 0 ? 1 : 0;
  constexpr double kMiB = 1024.0 * 1024.0;
  std::vector<Bucket> buckets =
      assign_buckets(net.param_info(), static_cast<size_t>(fit.comm.first_bucket_mb * kMiB),
                     static_cast<size_t>(fit.comm.bucket_mb * kMiB));
  size_t state = flat;
  if (fit.comm.zero == 1) {
    buckets = pad_buckets(std::move(buckets), flat, world);
    state = shard_numel(shard_blocks(buckets, world, rank));
  }
  m.optimizer = static_cast<size_t>(state_buffers) * state * sizeof(float);
  if (fit.comm.grad_comm == DataType::BF16 && world > 1) {
    size_t end = 0;
    for (const Bucket& b : buckets) end = std::max(end, b.elem_offset + b.numel);
    m.comm = end * dtype_size(DataType::BF16);
  }
  const size_t batch = static_cast<size_t>(fit.schedule.batch_size);
  m.activations = net.activation_bytes(fit.schedule.batch_size) +
                  batch * static_cast<size_t>(net.output_elems()) *
                      dtype_size(net.activation_dtype()) +  // dlogits
                  batch * static_cast<size_t>(shape_numel(net.input_shape())) *
                      dtype_size(net.input_dtype()) +  // the staged inputs
                  batch * static_cast<size_t>(net.rows_per_sample()) * sizeof(int32_t);
  return m;
}

std::string describe(const MemoryEstimate& m) {
  const auto mib = [](size_t b) {
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
    return std::string(text);
  };
  std::string out = "params " + mib(m.params) + ", ";
  if (m.working) out += "bf16 weights " + mib(m.working) + ", ";
  out += "grads " + mib(m.grads) + ", optimizer " + mib(m.optimizer) + ", ";
  if (m.comm) out += "bf16 wire " + mib(m.comm) + ", ";
  return out + "activations " + mib(m.activations) + ": total " + mib(m.total());
}

}  // namespace dpt
