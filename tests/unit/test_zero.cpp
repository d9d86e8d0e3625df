// ZeRO-1's layout (src/train/zero.hpp) and the sharded optimizer, on one process. The multi-rank
// behaviour is tests/mpi/test_zero.cpp's.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "comm/reducer.hpp"
#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/train/optimizer.hpp"
#include "src/train/zero.hpp"

namespace dpt {
namespace {

// Tensors of these sizes, each starting at a multiple of `align`; the total size in *flat.
std::vector<ParamRange> laid_out(const std::vector<size_t>& sizes, size_t align, size_t* flat) {
  std::vector<ParamRange> out;
  size_t at = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    out.push_back({at, sizes[i], static_cast<int>(i), 1});
    at = (at + sizes[i] + align - 1) / align * align;
  }
  *flat = at;
  return out;
}

TEST(Zero, AlignmentIsAMultipleOfTheWorldSizeAndOfSixtyFour) {
  EXPECT_EQ(shard_alignment(1), 64u);
  EXPECT_EQ(shard_alignment(2), 64u);
  EXPECT_EQ(shard_alignment(3), 192u);
  EXPECT_EQ(shard_alignment(8), 64u);
  EXPECT_EQ(shard_alignment(96), 192u);
}

TEST(Zero, BucketsPadToTheWorldSizeAndBlocksCoverEachOnce) {
  for (int p : {2, 3, 5, 8}) {
    size_t flat = 0;
    const auto ranges = laid_out({100, 7, 333, 1, 64, 1000}, shard_alignment(p), &flat);
    // Caps of a few hundred bytes: several buckets.
    const std::vector<Bucket> padded = pad_buckets(assign_buckets(ranges, 400, 1600), flat, p);
    ASSERT_GE(padded.size(), 3u);
    std::vector<int> owners(flat, 0);
    for (size_t b = 0; b < padded.size(); ++b) {
      EXPECT_EQ(padded[b].numel % p, 0u) << "bucket " << b << " at " << p << " ranks";
      const size_t limit = b == 0 ? flat : padded[b - 1].elem_offset;
      EXPECT_LE(padded[b].elem_offset + padded[b].numel, limit);
    }
    for (int r = 0; r < p; ++r) {
      const std::vector<ShardBlock> blocks = shard_blocks(padded, p, r);
      ASSERT_EQ(blocks.size(), padded.size());
      for (const ShardBlock& s : blocks)
        for (size_t i = s.elem_offset; i < s.elem_offset + s.numel; ++i) ++owners[i];
    }
    // Every element of every tensor belongs to exactly one rank.
    for (const ParamRange& t : ranges)
      for (size_t i = t.elem_offset; i < t.elem_offset + t.numel; ++i)
        ASSERT_EQ(owners[i], 1) << "element " << i << " at " << p << " ranks";
  }
}

TEST(Zero, PaddingThatWouldOverrunTheNextBucketIsRefused) {
  size_t flat = 0;
  const auto ranges = laid_out({64, 64}, 64, &flat);  // laid out for 64, not for 3 ranks
  EXPECT_THROW(pad_buckets(assign_buckets(ranges, 1, 1), flat, 3), SystemError);
  EXPECT_NO_THROW(pad_buckets(assign_buckets(ranges, 1, 1), flat, 2));
}

// A sharded optimizer updates its blocks exactly as the whole one does, and nothing else; its
// state is its blocks' size.
TEST(Zero, ShardedOptimizerUpdatesItsBlocksAsTheWholeOneDoes) {
  const auto backend = make_cpu_backend(1);
  const int p = 3;
  size_t flat = 0;
  const auto ranges = laid_out({100, 7, 333, 1, 64, 1000}, shard_alignment(p), &flat);
  const std::vector<Bucket> padded = pad_buckets(assign_buckets(ranges, 400, 1600), flat, p);
  // Decay on every other tensor, so that decay ranges cut across the blocks.
  std::vector<DecayRange> decay;
  for (size_t t = 0; t < ranges.size(); ++t) {
    const size_t end = t + 1 < ranges.size() ? ranges[t + 1].elem_offset : flat;
    decay.push_back({ranges[t].elem_offset, end - ranges[t].elem_offset, t % 2 == 0});
  }
  std::vector<float> start(flat), grads(flat);
  for (size_t i = 0; i < flat; ++i) {
    start[i] = uniform_float(1, i) - 0.5f;
    grads[i] = uniform_float(2, i) - 0.5f;
  }
  for (const char* name : {"adamw", "sgd"}) {
    OptimizerConfig oc;
    oc.name = name;
    oc.lr = 0.05f;
    oc.momentum = oc.name == "sgd" ? 0.9f : 0.0f;
    oc.weight_decay = 0.1f;
    for (int r = 0; r < p; ++r) {
      Optimizer whole(*backend, oc, flat, decay), part(*backend, oc, flat, decay);
      const std::vector<ShardBlock> blocks = shard_blocks(padded, p, r);
      part.shard(blocks);
      EXPECT_TRUE(part.sharded());
      EXPECT_EQ(part.state_numel(), shard_numel(blocks));
      std::vector<float> a = start, b = start;
      for (int s = 0; s < 3; ++s) {
        whole.step(a.data(), grads.data());
        part.step(b.data(), grads.data());
      }
      std::vector<bool> mine(flat, false);
      for (const ShardBlock& s : blocks)
        for (size_t i = s.elem_offset; i < s.elem_offset + s.numel; ++i) mine[i] = true;
      size_t changed = 0;
      for (size_t i = 0; i < flat; ++i) {
        if (mine[i]) {
          ASSERT_EQ(b[i], a[i]) << name << " rank " << r << " element " << i;
          changed += a[i] != start[i];
        } else {
          ASSERT_EQ(b[i], start[i]) << name << " rank " << r << " element " << i;
        }
      }
      EXPECT_GT(changed, 0u);
      part.drop_shard();
      EXPECT_FALSE(part.sharded());
      EXPECT_EQ(part.state_numel(), flat);
    }
  }
}

}  // namespace
}  // namespace dpt
