// BatchStager: a rank's training batches on their way to the device.
//
// Each micro-batch is gathered into pinned host memory and copied without waiting. The first
// micro-batch of the next step can be staged ahead (prefetch), while the device runs this step's
// optimizer update. Each micro-batch of a step has a host buffer of its own, and the prefetch
// one more: the host queues a step's micro-batches, and the next step's first, without waiting
// for the device, so a copy out of one buffer may still be pending when the next is gathered.
// Across steps the buffers are reused: every step waits for the device at its end.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"
#include "src/core/tensor_ref.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/sampler.hpp"

namespace dpt {

class BatchStager {
 public:
  // Micro-batches of `batch` samples, `micro_batches` of them per step, as `sampler` shards
  // `data` for this rank.
  BatchStager(Device& device, const BatchSource& data, const DistributedSampler& sampler, int batch,
              int micro_batches);

  // Micro-batch `micro` of global step `step`, at position `s` of the epoch's permutation
  // `perm`, onto the device (the first one may be there already, from prefetch()).
  void stage(const std::vector<int64_t>& perm, int64_t s, int64_t step, int micro);
  // The first micro-batch of global step `step`, at position `s` of `perm`, ahead of time.
  void prefetch(const std::vector<int64_t>& perm, int64_t s, int64_t step);

  // The micro-batch on the device: inputs of the source's type, and batch x targets_per_sample
  // targets.
  ConstTensorRef inputs() const { return x_dev_.ref(); }
  const int32_t* targets() const { return y_dev_.as<int32_t>(); }

  // Called with each micro-batch in host memory before it is copied: (step, micro, inputs).
  using HostHook = std::function<void(int64_t, int, TensorRef)>;
  void set_host_hook(HostHook hook) { host_hook_ = std::move(hook); }

 private:
  // Gathers into host buffer `slot` (micro-batch `micro`'s, or the prefetch's) and copies.
  void send(const int64_t* indices, int64_t step, int micro, size_t slot);

  Device& device_;
  const BatchSource& data_;
  const DistributedSampler& sampler_;
  const int batch_;
  const size_t x_count_, y_count_;  // elements of a micro-batch's inputs and targets
  std::vector<int64_t> indices_;    // the step's samples, every micro-batch's
  // One micro-batch's pinned inputs and targets.
  struct HostSlot {
    explicit HostSlot(Device& device) : x(device), y(device) {}
    PinnedBuffer x, y;
  };
  std::vector<std::unique_ptr<HostSlot>> host_;  // one per micro-batch, then the prefetch's
  DeviceBuffer x_dev_, y_dev_;
  int64_t staged_step_ = -1;  // the global step whose first micro-batch is on the device
  HostHook host_hook_;
};

}  // namespace dpt
