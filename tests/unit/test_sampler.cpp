// DistributedSampler: P ranks with batch b together take exactly what one rank with batch P*b
// takes, each sample at most once per epoch, in an order fixed by (seed, epoch) alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "src/data/sampler.hpp"

namespace {

using dpt::DistributedSampler;
using Indices = std::vector<int64_t>;

// 103 is prime, so it is never a multiple of P*b: every epoch drops a partial global batch.
constexpr int64_t kN = 103;
constexpr int64_t kBatch = 4;
constexpr uint64_t kSeed = 42;

Indices iota(int64_t n) {
  Indices v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Everything rank `rank` of `world` takes in `epoch`, step after step.
Indices shard(int world, int rank, int64_t epoch, uint64_t seed = kSeed) {
  const DistributedSampler s(kN, world, rank, kBatch, true, seed);
  const Indices perm = s.permutation(epoch);
  Indices out(static_cast<size_t>(s.steps_per_epoch() * kBatch));
  for (int64_t step = 0; step < s.steps_per_epoch(); ++step)
    s.batch_indices(perm, step, out.data() + step * kBatch);
  return out;
}

TEST(DistributedSampler, ShardsPartitionTheEpochDroppingTheLastPartialBatch) {
  for (int world : {1, 2, 3, 4}) {
    SCOPED_TRACE(testing::Message() << "P=" << world);
    const DistributedSampler s(kN, world, 0, kBatch, true, kSeed);
    const int64_t steps = kN / (world * kBatch);
    ASSERT_EQ(s.steps_per_epoch(), steps);
    ASSERT_NE(steps * world * kBatch, kN);  // there is a remainder to drop
    EXPECT_EQ(s.global_batch(), world * kBatch);
    const Indices perm = s.permutation(1);

    std::set<int64_t> seen;
    for (int rank = 0; rank < world; ++rank) {
      const Indices mine = shard(world, rank, 1);
      ASSERT_EQ(static_cast<int64_t>(mine.size()), steps * kBatch);
      for (int64_t i : mine) EXPECT_TRUE(seen.insert(i).second) << "index " << i << " twice";
      // Rank r's k-th sample of step s is perm[s*P*b + k*P + r].
      for (int64_t step = 0; step < steps; ++step)
        for (int64_t k = 0; k < kBatch; ++k)
          EXPECT_EQ(mine[static_cast<size_t>(step * kBatch + k)],
                    perm[static_cast<size_t>(step * world * kBatch + k * world + rank)]);
    }
    const std::set<int64_t> head(perm.begin(), perm.begin() + steps * world * kBatch);
    EXPECT_EQ(seen, head);
  }
}

TEST(DistributedSampler, PermutationIsAPureFunctionOfSeedAndEpoch) {
  const DistributedSampler a(kN, 4, 0, kBatch, true, kSeed);
  const Indices p0 = a.permutation(0), p1 = a.permutation(1);
  Indices sorted = p0;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, iota(kN));
  EXPECT_TRUE(std::is_permutation(p1.begin(), p1.end(), sorted.begin(), sorted.end()));
  EXPECT_NE(p0, iota(kN));
  EXPECT_NE(p0, p1);
  // Another object, another rank, another world size or batch: the same global order.
  for (int rank = 1; rank < 4; ++rank)
    EXPECT_EQ(DistributedSampler(kN, 4, rank, kBatch, true, kSeed).permutation(1), p1);
  EXPECT_EQ(DistributedSampler(kN, 1, 0, 16, true, kSeed).permutation(1), p1);
  EXPECT_NE(DistributedSampler(kN, 4, 0, kBatch, true, kSeed + 1).permutation(1), p1);
}

TEST(DistributedSampler, NoShuffleKeepsFileOrder) {
  const DistributedSampler s(kN, 2, 1, kBatch, false, kSeed);
  EXPECT_EQ(s.permutation(0), iota(kN));
  EXPECT_EQ(s.permutation(5), iota(kN));
  Indices step1(kBatch);
  s.batch_indices(s.permutation(0), 1, step1.data());
  // Global step 1 covers positions 8..15; rank 1 takes every second one from 9.
  EXPECT_EQ(step1, (Indices{9, 11, 13, 15}));
}

TEST(DistributedSampler, BatchLargerThanShardGivesNoSteps) {
  EXPECT_EQ(DistributedSampler(40, 2, 0, 30, true, 0).steps_per_epoch(), 0);
  EXPECT_EQ(DistributedSampler(40, 2, 0, 20, true, 0).steps_per_epoch(), 1);
}

}  // namespace
