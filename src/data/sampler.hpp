// DistributedSampler: which samples each rank takes at each step of an epoch.
//
// Every epoch has one global permutation, a pure function of (seed, epoch); global step s takes
// positions [s*P*b, (s+1)*P*b) of it, and rank r takes every P-th of those starting at r. So P
// ranks with batch b see exactly the samples one rank with batch P*b would. The last partial
// global batch is dropped.
#pragma once

#include <cstdint>
#include <vector>

namespace dpt {

class DistributedSampler {
 public:
  DistributedSampler(int64_t dataset_size, int world_size, int rank, int64_t batch_per_rank,
                     bool shuffle, uint64_t seed);
  int64_t steps_per_epoch() const { return steps_; }
  int64_t global_batch() const { return batch_ * world_; }
  // The global order of samples in this epoch.
  std::vector<int64_t> permutation(int64_t epoch) const;
  // This rank's indices for step `step` of the permutation, batch_per_rank of them.
  void batch_indices(const std::vector<int64_t>& perm, int64_t step, int64_t* out) const;

 private:
  int64_t n_;
  int world_, rank_;
  int64_t batch_, steps_;
  bool shuffle_;
  uint64_t seed_;
};

}  // namespace dpt
