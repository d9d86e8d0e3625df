// ZeRO stage 1 (DeepSpeed's and llm.c's scheme): the optimizer state is split across the ranks.
//
// The split follows the Reducer's buckets. Each bucket's span of the flat buffers is padded to a
// multiple of the world size P and cut into P equal blocks; rank r owns block r of every bucket.
// After backward, each bucket is reduce-scattered instead of allreduced (so that rank r holds
// the summed gradients of its blocks only), rank r's optimizer keeps state for and updates its
// blocks only, and then each bucket of the parameters is allgathered so that every rank holds
// every parameter again. A rank's shard is thus about 1/P of the buffers, in one block per bucket.
//
// The padding costs no memory of its own: a model built for P ranks starts every tensor, and
// ends its buffers, at a multiple of P elements (Sequential's alignment), so a bucket of whole
// tensors rounded up to a multiple of P ends at or before the next tensor. The padding holds
// zeros, whose gradients and updates stay zero.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/reducer.hpp"

namespace dpt {

// One rank's block of one bucket, in elements of the flat buffers.
struct ShardBlock {
  size_t bucket_offset = 0;  // the bucket's span: its first element ...
  size_t bucket_numel = 0;   // ... and its length, a multiple of the world size
  size_t elem_offset = 0;    // this rank's block of it: bucket_offset + rank * numel
  size_t numel = 0;          // bucket_numel / world size
  bool operator==(const ShardBlock&) const = default;
};

// The alignment (in elements) of the flat buffers of a model trained by `ranks` ranks: a multiple
// of both Sequential's default and the world size.
size_t shard_alignment(int ranks);

// `buckets` with each span rounded up to a multiple of `ranks` elements. Throws SystemError when
// a padded span would run into the next bucket or past `flat_size` (a layout built without
// shard_alignment).
std::vector<Bucket> pad_buckets(std::vector<Bucket> buckets, size_t flat_size, int ranks);

// Rank `rank`'s block of each of the padded `buckets`, in bucket order.
std::vector<ShardBlock> shard_blocks(const std::vector<Bucket>& padded, int ranks, int rank);

// Elements a rank's blocks hold in all.
size_t shard_numel(const std::vector<ShardBlock>& blocks);

}  // namespace dpt
