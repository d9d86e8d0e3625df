#include "src/data/sampler.hpp"

#include <cstddef>
#include <numeric>

#include "src/core/random.hpp"

namespace dpt {

DistributedSampler::DistributedSampler(int64_t dataset_size, int world_size, int rank,
                                       int64_t batch_per_rank, bool shuffle, uint64_t seed)
    : n_(dataset_size),
      world_(world_size),
      rank_(rank),
      batch_(batch_per_rank),
      steps_(batch_per_rank > 0 ? dataset_size / (batch_per_rank * world_size) : 0),
      shuffle_(shuffle),
      seed_(seed) {}

std::vector<int64_t> DistributedSampler::permutation(int64_t epoch) const {
  std::vector<int64_t> perm(static_cast<std::size_t>(n_));
  std::iota(perm.begin(), perm.end(), 0);
  if (!shuffle_) return perm;
  // Fisher-Yates from a counter-based stream: the same on every rank and every platform.
  const uint64_t stream = mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch) + 1));
  for (int64_t i = n_ - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(random_u64(stream, static_cast<uint64_t>(i)) %
                                        static_cast<uint64_t>(i + 1));
    std::swap(perm[i], perm[j]);
  }
  return perm;
}

void DistributedSampler::batch_indices(const std::vector<int64_t>& perm, int64_t step,
                                       int64_t* out) const {
  const int64_t base = step * batch_ * world_ + rank_;
  for (int64_t k = 0; k < batch_; ++k) out[k] = perm[base + k * world_];
}

}  // namespace dpt
