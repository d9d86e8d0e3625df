// Gradient bucket assignment: reverse layer order, caps, contiguity, every tensor exactly once.
#include <gtest/gtest.h>

#include <set>

#include "comm/reducer.hpp"
#include "kernels/backend.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "src/train/buckets.hpp"

namespace dpt {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

void expect_well_formed(const Sequential& net, const std::vector<Bucket>& buckets,
                        size_t first_cap, size_t cap) {
  const auto& params = net.param_info();
  std::set<size_t> seen;
  size_t previous_lowest_offset = SIZE_MAX;
  for (size_t b = 0; b < buckets.size(); ++b) {
    const Bucket& bucket = buckets[b];
    ASSERT_FALSE(bucket.tensors.empty());
    size_t bytes = 0;
    for (size_t t : bucket.tensors) {
      EXPECT_TRUE(seen.insert(t).second) << "tensor " << params[t].name << " in two buckets";
      bytes += params[t].numel * sizeof(float);
      // Each tensor lies inside the bucket's range of the flat buffer.
      EXPECT_GE(params[t].elem_offset, bucket.elem_offset);
      EXPECT_LE(params[t].elem_offset + params[t].numel, bucket.elem_offset + bucket.numel);
    }
    EXPECT_EQ(bytes, bucket.bytes);
    const size_t limit = b == 0 ? first_cap : cap;
    if (bucket.tensors.size() > 1) {
      EXPECT_LE(bucket.bytes, limit) << "bucket " << b;
    }
    // Reverse layer order: each bucket lies below the previous one in the buffer.
    EXPECT_LT(bucket.elem_offset, previous_lowest_offset);
    previous_lowest_offset = bucket.elem_offset;
    EXPECT_EQ(bucket.lowest_layer, params[bucket.tensors.back()].layer);
  }
  EXPECT_EQ(seen.size(), params.size());
}

TEST(Buckets, CnnWithDefaultCaps) {
  Sequential net(parse_model_spec("cnn"), cpu(), {1, 28, 28});
  const size_t mib = 1 << 20;
  const auto buckets = assign_buckets(net.param_info(), 1 * mib, 25 * mib);
  expect_well_formed(net, buckets, mib, 25 * mib);
  // The first bucket holds the last layer and stops before the 1.6 MB 7.weight.
  ASSERT_EQ(buckets.size(), 2u);
  EXPECT_EQ(net.param_info()[buckets[0].tensors.front()].name, "9.bias");
  EXPECT_EQ(net.param_info()[buckets[1].tensors.front()].name, "7.weight");
  EXPECT_EQ(buckets[1].lowest_layer, 0);
}

TEST(Buckets, SmallCapsMakeManyBucketsAndBigTensorsStandAlone) {
  Sequential net(parse_model_spec("mlp"), cpu(), {1, 28, 28});
  const size_t cap = 300 * 1024;  // 0.weight (784 KiB) is larger than the cap
  const auto buckets = assign_buckets(net.param_info(), 16 * 1024, cap);
  expect_well_formed(net, buckets, 16 * 1024, cap);
  EXPECT_GE(buckets.size(), 3u);
  bool big_alone = false;
  for (const Bucket& b : buckets)
    big_alone |= b.tensors.size() == 1 && net.param_info()[b.tensors[0]].name == "0.weight";
  EXPECT_TRUE(big_alone);
}

TEST(Buckets, CapZeroIsOneBucketOfEverything) {
  Sequential net(parse_model_spec("cnn"), cpu(), {1, 28, 28});
  const auto buckets = assign_buckets(net.param_info(), 1 << 20, 0);
  ASSERT_EQ(buckets.size(), 1u);
  EXPECT_EQ(buckets[0].elem_offset, 0u);
  EXPECT_EQ(buckets[0].numel, net.param_info().back().elem_offset + net.param_info().back().numel);
  EXPECT_EQ(buckets[0].lowest_layer, 0);
}

}  // namespace
}  // namespace dpt
