// Reducer: averages the flat gradient buffer in buckets, each started as soon as backward has
// finished every layer in it, so that communication overlaps the rest of backward (the scheme
// of PyTorch DDP and Horovod).
//
// Buckets are consecutive parameter tensors in reverse layer order: a small first bucket (the
// last layers finish backward first), then buckets up to a cap. A tensor is never split; one
// larger than the cap is a bucket of its own. Since the flat buffer is laid out in layer order,
// each bucket is one contiguous range of it, reduced in place. Every rank builds the same buckets
// from the same model and starts them in the same order.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "comm/communicator.hpp"
#include "src/model/sequential.hpp"

namespace dpt {

struct Bucket {
  size_t offset = 0;            // first float of the range in the flat gradient buffer
  size_t count = 0;             // floats in the range (padding between tensors included)
  size_t bytes = 0;             // bytes of the tensors it holds (padding excluded)
  int lowest_layer = 0;         // the bucket is ready once backward has finished this layer
  std::vector<size_t> tensors;  // indices into the model's param_info()
};

// cap_bytes == 0: a single bucket with every tensor (one allreduce after backward).
std::vector<Bucket> assign_buckets(const std::vector<ParamInfo>& params, size_t first_cap_bytes,
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
  // Backward has finished `layer`: starts every bucket that is now complete.
  void layer_done(int layer);
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
