// Reducer: averages the flat gradient buffer in buckets, each started as soon as backward has
// made every range in it final, so that communication overlaps the rest of backward (the scheme
// of PyTorch DDP and Horovod).
//
// The Reducer knows buffers and ranges, never layers or models: the layer above hands it one
// ParamRange per parameter tensor, in buffer order, and tells it how far backward has come.
// Buckets are consecutive ranges taken from the end of the buffer: a small first bucket (the
// last layers finish backward first), then buckets up to a cap. A range is never split; one
// larger than the cap is a bucket of its own. Each bucket is one contiguous span of the buffer,
// reduced in place. Every rank builds the same buckets from the same ranges and starts them in
// the same order.
//
// It also accounts for its communication: the buckets' own durations and the part of them the
// step waited for (exposed), measured over a training step that step_begin() and step_end()
// bracket (see comm/comm_accounting.hpp).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/comm_accounting.hpp"
#include "comm/communicator.hpp"
#include "kernels/runtime/device.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/core/tensor_ref.hpp"

namespace dpt {

// One parameter tensor's gradient: a range of the flat gradient buffer, how many uses in
// backward add to it, and the stage of its last use. Backward reports its stages in decreasing
// order (the train layer numbers them by layer, so backward's last stage is 0). A parameter used
// by several layers (a tied embedding and output head) has one use per layer, and its gradient is
// final only after the last of them: readiness is counted per parameter, as PyTorch's Reducer
// counts it.
struct ParamRange {
  size_t elem_offset = 0;  // its first element in the flat gradient buffer
  size_t numel = 0;        // elements in the tensor
  int stage = 0;           // the stage of its last use in backward (the lowest stage that uses it)
  int uses = 1;            // uses in backward that add to its gradient
};

struct Bucket {
  size_t elem_offset = 0;  // the range's first element in the flat gradient buffer
  size_t numel = 0;        // elements in the range (padding between tensors included)
  size_t bytes = 0;        // bytes of the float32 tensors it holds (padding excluded)
  // The lowest stage of its ranges: the bucket is ready once backward has finished it. (Named
  // for what the train layer passes as stages: layer indices.)
  int lowest_layer = 0;
  std::vector<size_t> tensors;  // indices into the ParamRange list it was built from
};

// `params` in buffer order, their stages never decreasing along it. cap_bytes == 0: a single
// bucket with every tensor (one allreduce after backward).
std::vector<Bucket> assign_buckets(const std::vector<ParamRange>& params, size_t first_cap_bytes,
                                   size_t cap_bytes);

// How a bucket's gradients are summed over the ranks: allreduced (plain data parallelism), or
// reduce-scattered so that each rank holds the sums of its own block of each bucket only (ZeRO-1,
// src/train/zero.hpp; each bucket's length is then a multiple of the world size).
enum class GradReduction { Allreduce, ReduceScatter };

// How gradients travel, as DDP's communication hooks choose it: each bucket is encoded into a
// wire buffer of another element type before its collective, and the result decoded back into
// the float32 gradients after it. bf16 halves the bytes, at the price of rounding each partial
// sum to bf16 (DDP's bf16_compress_hook). Implemented above comm, where the backend's ops are.
class WireCodec {
 public:
  virtual ~WireCodec() = default;
  virtual DataType type() const = 0;
  virtual void encode(const float* grads, void* wire, size_t n) = 0;
  virtual void decode(const void* wire, float* grads, size_t n) = 0;
};

// A step's communication.
struct StepCommStats {
  // Sum of the buckets' durations, and under ZeRO-1 of the parameters' allgathers too.
  double total_seconds = 0;
  double exposed_seconds = 0;         // the part of it the step waited for, in [0, total_seconds]
  double wait_seconds = 0;            // time finish() blocked waiting for the buckets
  double gather_seconds = 0;          // ZeRO-1: the allgathers' duration (all of it exposed)
  std::vector<BucketTiming> buckets;  // in the order they started
};

// Each bucket keeps a count of its parameters still pending; a parameter stops pending when its
// last use is done. Buckets start in the order they were built, on every rank the same: a bucket
// whose parameters are all final waits for the buckets before it.
class Reducer {
 public:
  // `buckets` from assign_buckets(params, ...), over the same `params`. `device` is where the
  // gradients are computed: its markers time backward for the exposed communication. `codec`:
  // the buckets travel encoded (a wire buffer on `device`, half the gradients' size for bf16);
  // none: as float32, in place. One rank sends nothing, and so encodes nothing either.
  Reducer(Communicator& comm, Device& device, std::vector<Bucket> buckets,
          std::vector<ParamRange> params, GradReduction mode = GradReduction::Allreduce,
          WireCodec* codec = nullptr);
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // A training step starts (before its first forward): the clocks of its accounting start.
  void step_begin();
  // Starts reducing the flat gradient buffer `grads` (summed over ranks in place): called before
  // the backward whose gradients are to be summed (with accumulation, the last one).
  void begin(TensorRef grads);
  // One use of parameter `param` (an index into the ranges) is done; starts every bucket that is
  // now complete. Throws SystemError for a use more than the range declares.
  void param_done(size_t param);
  // Backward has finished `stage`: one use done of every range whose last use is that stage.
  // (Enough for a model whose parameters each have one use; a shared parameter's other uses are
  // reported with param_done.)
  void stage_done(int stage);
  // Backward is all queued (after the last stage_done): when it is done, exposure starts.
  void backward_done();
  // Starts what is left and waits for every bucket.
  void finish();
  // ReduceScatter only, after the optimizer has updated this rank's block of each bucket in
  // `params`: allgathers every bucket in place, so that each rank holds every parameter again,
  // and waits. Counted in the step's communication, all of it exposed.
  void gather_params(TensorRef params);
  // The step is over and its device work done (after Device::synchronize(), before the device's
  // markers are cleared): its communication, total and exposed.
  StepCommStats step_end();

 private:
  void launch(size_t index);

  Communicator& comm_;
  GradReduction mode_;
  WireCodec* codec_;
  DeviceBuffer wire_;
  std::vector<size_t> launched_;  // buckets started this step, in order
  CommAccounting accounting_;
  std::vector<Bucket> buckets_;
  std::vector<ParamRange> params_;
  std::vector<size_t> bucket_of_;       // per parameter
  std::vector<int> uses_pending_;       // per parameter, this step
  std::vector<size_t> params_pending_;  // per bucket, this step
  TensorRef grads_;
  size_t next_ = 0;
  std::vector<std::unique_ptr<Work>> work_;
  StepCommStats stats_;  // of the reduction since begin(), filled in by finish()
};

}  // namespace dpt
