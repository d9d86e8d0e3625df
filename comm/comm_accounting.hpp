// CommAccounting: how much of a training step's communication the step waited for.
//
// Communication is exposed when the step could not go on computing: the rest overlapped backward.
// On an asynchronous device (a GPU) the host thread only queues work, so its clocks say nothing:
// exposed is from when the device finished backward until the last bucket was reduced. On the
// CPU it is the step's wall time that this thread did not spend computing, which covers both
// waiting for the last bucket and losing the core to the communication thread (with one core per
// rank the two take turns, and only the wall clock shows the cost). Either way it is clamped to
// [0, the buckets' total duration].
#pragma once

#include <vector>

#include "kernels/runtime/device.hpp"

namespace dpt {

struct BucketTiming {
  double start = 0, end = 0;  // when its allreduce ran (steady clock seconds)
};

class CommAccounting {
 public:
  explicit CommAccounting(Device& device) : device_(device) {}

  // A training step starts: its wall and CPU clocks start here.
  void step_begin();
  // The step's backward is all queued: a device marker for when it is done.
  void backward_done();
  // Once the device has finished the step (after Device::synchronize(), before clear_markers()):
  // the exposed part of `total_seconds`, the communication of buckets that ran at `buckets`
  // plus `waited_seconds` of communication (included in the total) that the step waited for
  // in full after backward (ZeRO-1's allgather of the parameters).
  double exposed_seconds(const std::vector<BucketTiming>& buckets, double total_seconds,
                         double waited_seconds = 0) const;

 private:
  Device& device_;
  double wall_start_ = 0, cpu_start_ = 0;
  int backward_marker_ = -1;
};

}  // namespace dpt
