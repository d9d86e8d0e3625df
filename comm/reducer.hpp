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
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/communicator.hpp"

namespace dpt {

// One parameter tensor's gradient: a range of the flat gradient buffer, and the stage of
// backward after which it is final. Backward reports its stages in decreasing order (the train
// layer numbers them by layer, so backward's last stage is 0).
struct ParamRange {
  size_t offset = 0;  // first float in the flat gradient buffer
  size_t numel = 0;   // floats in the tensor
  int stage = 0;      // final once backward has finished this stage
};

struct Bucket {
  size_t offset = 0;  // first float of the range in the flat gradient buffer
  size_t count = 0;   // floats in the range (padding between tensors included)
  size_t bytes = 0;   // bytes of the tensors it holds (padding excluded)
  // The lowest stage of its ranges: the bucket is ready once backward has finished it. (Named
  // for what the train layer passes as stages: layer indices.)
  int lowest_layer = 0;
  std::vector<size_t> tensors;  // indices into the ParamRange list it was built from
};

// `params` in buffer order, their stages never decreasing along it. cap_bytes == 0: a single
// bucket with every tensor (one allreduce after backward).
std::vector<Bucket> assign_buckets(const std::vector<ParamRange>& params, size_t first_cap_bytes,
                                   size_t cap_bytes);

struct BucketTiming {
  double start = 0, end = 0;  // when its allreduce ran (steady clock seconds)
};

struct StepCommStats {
  double total_seconds = 0;  // sum of the buckets' allreduce durations
  double wait_seconds = 0;   // time finish() blocked waiting for them
  std::vector<BucketTiming> buckets;
};

class Reducer {
 public:
  Reducer(Communicator& comm, std::vector<Bucket> buckets);
  const std::vector<Bucket>& buckets() const { return buckets_; }

  // Starts a step over the flat gradient buffer `grads` (summed over ranks in place).
  void begin(float* grads);
  // Backward has finished `stage`: starts every bucket that is now complete.
  void stage_done(int stage);
  // Starts what is left, waits for every bucket and reports the step's communication.
  StepCommStats finish();

 private:
  void launch(size_t index);

  Communicator& comm_;
  std::vector<Bucket> buckets_;
  float* grads_ = nullptr;
  size_t next_ = 0;
  std::vector<std::unique_ptr<Work>> work_;
};

}  // namespace dpt
