// The memory estimate (src/train/memory_report.hpp): each kind counted as the buffers are
// allocated, the optimizer's state divided by the world size under ZeRO-1.
#include <gtest/gtest.h>

#include <memory>

#include "kernels/backend.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "src/train/memory_report.hpp"
#include "src/train/zero.hpp"

namespace dpt {
namespace {

std::unique_ptr<Sequential> build(Backend& be, const char* spec, const Shape& input, int world) {
  return std::make_unique<Sequential>(parse_model_spec(spec), be, input, DataType::F32,
                                      shard_alignment(world));
}

FitOptions options(int batch, int zero) {
  FitOptions fo;
  fo.schedule.batch_size = batch;
  fo.comm.zero = zero;
  fo.comm.first_bucket_mb = 0.01;  // several buckets
  fo.comm.bucket_mb = 0.05;
  return fo;
}

TEST(MemoryReport, CountsEachKindOfASmallMlpByHand) {
  const auto be = make_cpu_backend(1);
  const auto net = build(*be, "flatten linear(8) relu linear(4)", {1, 6, 6}, 1);
  // Weights of 288 and 32 elements, biases of 8 and 4, each tensor starting at a multiple of
  // 64: 320 + 64 + 64 + 64.
  ASSERT_EQ(net->flat_size(), 512u);
  OptimizerConfig adamw;
  adamw.name = "adamw";
  const MemoryEstimate m = estimate_memory(*net, adamw, options(5, 0), 1, 0);
  EXPECT_EQ(m.params, 512u * 4);
  EXPECT_EQ(m.grads, 512u * 4);
  EXPECT_EQ(m.optimizer, 2 * 512u * 4);  // exp_avg and exp_avg_sq
  EXPECT_EQ(m.comm, 0u);
  // Batch 5: flatten's gradient (it aliases its input: no output) 180 floats; linear(8) and
  // relu 40 out + 40 gradient each; linear(4) 20 out (the gradient there is the loss's); the
  // loss gradient 20; the staged inputs 180 floats and 5 int32 labels.
  EXPECT_EQ(m.activations, (180 + 80 + 80 + 20 + 20 + 180 + 5) * 4u);
  EXPECT_EQ(m.total(), m.params + m.grads + m.optimizer + m.activations);

  OptimizerConfig sgd;  // no momentum: no state
  EXPECT_EQ(estimate_memory(*net, sgd, options(5, 0), 1, 0).optimizer, 0u);
  sgd.momentum = 0.9f;
  EXPECT_EQ(estimate_memory(*net, sgd, options(5, 0), 1, 0).optimizer, 512u * 4);
}

TEST(MemoryReport, ZeroDividesTheOptimizerStateByTheWorldSize) {
  const auto be = make_cpu_backend(1);
  OptimizerConfig adamw;
  adamw.name = "adamw";
  for (int p : {2, 3, 4}) {
    const auto net =
        build(*be, "gpt(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=50)", {16}, p);
    const MemoryEstimate whole = estimate_memory(*net, adamw, options(4, 0), p, 0);
    size_t sharded = 0;
    for (int r = 0; r < p; ++r) {
      const MemoryEstimate m = estimate_memory(*net, adamw, options(4, 1), p, r);
      EXPECT_EQ(m.params, whole.params);
      EXPECT_EQ(m.grads, whole.grads);
      EXPECT_EQ(m.activations, whole.activations);
      // Each rank's share is one block of each bucket: 1/P of the padded buckets, which cover
      // the buffer but for the alignment padding after a bucket's last tensor (less than one
      // alignment per tensor, for each of AdamW's 2 float buffers).
      const size_t gaps = 2 * 4 * shard_alignment(p) * net->param_info().size();
      EXPECT_LE(m.optimizer * p, whole.optimizer) << p << " ranks";
      EXPECT_GE(m.optimizer * p + gaps, whole.optimizer) << p << " ranks";
      sharded += m.optimizer;
    }
    EXPECT_LE(sharded, whole.optimizer);
    // bf16 gradients on the wire: 2 bytes per element up to the last tensor's end, with more
    // than one rank.
    FitOptions bf16 = options(4, 0);
    bf16.comm.grad_comm = DataType::BF16;
    const size_t wire = estimate_memory(*net, adamw, bf16, p, 0).comm;
    EXPECT_LE(wire * 2, whole.params);
    EXPECT_GT(wire * 2 + 4 * shard_alignment(p), whole.params);
    EXPECT_EQ(estimate_memory(*net, adamw, bf16, 1, 0).comm, 0u);
  }
}

TEST(MemoryReport, AttentionKeepsItsProbabilities) {
  const auto be = make_cpu_backend(1);
  const auto one =
      build(*be, "gpt(n_layer=1, n_head=2, n_embd=32, block_size=16, vocab_size=50)", {16}, 1);
  const auto four =
      build(*be, "gpt(n_layer=1, n_head=8, n_embd=32, block_size=16, vocab_size=50)", {16}, 1);
  // Six heads more, each [T, T] floats per sample, batch 3.
  EXPECT_EQ(four->activation_bytes(3) - one->activation_bytes(3), 3u * 6 * 16 * 16 * 4);
}

}  // namespace
}  // namespace dpt
