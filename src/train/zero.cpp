#include "src/train/zero.hpp"

#include <numeric>
#include <string>

#include "src/core/error.hpp"
#include "src/model/sequential.hpp"

namespace dpt {

size_t shard_alignment(int ranks) {
  return std::lcm(Sequential::kDefaultAlignElems, static_cast<size_t>(ranks < 1 ? 1 : ranks));
}

std::vector<Bucket> pad_buckets(std::vector<Bucket> buckets, size_t flat_size, int ranks) {
  const size_t p = static_cast<size_t>(ranks);
  // Buckets run from the end of the buffers down: the one before a bucket lies above it.
  size_t limit = flat_size;
  for (Bucket& b : buckets) {
    const size_t padded = (b.numel + p - 1) / p * p;
    if (b.elem_offset + padded > limit)
      throw SystemError("ZeRO: the bucket at element " + std::to_string(b.elem_offset) +
                        " cannot be padded to a multiple of " + std::to_string(ranks) +
                        " elements (the model's buffers were not laid out for " +
                        std::to_string(ranks) + " ranks)");
    b.numel = padded;
    limit = b.elem_offset;
  }
  return buckets;
}

std::vector<ShardBlock> shard_blocks(const std::vector<Bucket>& padded, int ranks, int rank) {
  std::vector<ShardBlock> blocks;
  const size_t p = static_cast<size_t>(ranks);
  for (const Bucket& b : padded) {
    if (b.numel % p != 0)
      throw SystemError("ZeRO: bucket of " + std::to_string(b.numel) +
                        " elements is not padded to a multiple of " + std::to_string(ranks));
    const size_t n = b.numel / p;
    blocks.push_back({b.elem_offset, b.numel, b.elem_offset + static_cast<size_t>(rank) * n, n});
  }
  return blocks;
}

size_t shard_numel(const std::vector<ShardBlock>& blocks) {
  size_t n = 0;
  for (const ShardBlock& b : blocks) n += b.numel;
  return n;
}

}  // namespace dpt
