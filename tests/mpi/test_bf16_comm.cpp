// Gradients that travel as bfloat16 (--grad-comm bf16), under mpirun -np 2 and -np 3: MPI's
// bf16 reductions round every partial sum as NCCL's do, and a gpt trained so ends where the
// float32 one ends, within the 2%; and so does one that computes in bf16
// (--precision bf16, rounding its working weights to nearest or stochastically), with and
// without bf16 gradients and ZeRO-1.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.hpp"
#include "kernels/backend.hpp"
#include "src/core/bf16.hpp"
#include "src/core/random.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/token_shards.hpp"
#include "src/train/model.hpp"

namespace dpt {
namespace {

// Rank r's element i: a bf16 value of either sign and of magnitudes from 1e-3 to 1e3.
uint16_t bf16_value(int r, size_t i) {
  const float mag = std::pow(10.0f, 6.0f * uniform_float(900 + r, i) - 3.0f);
  return float_to_bf16(uniform_float(800 + r, i) < 0.5f ? -mag : mag);
}

// The sums a reduction over the ranks may give: each order of adding, rounded after each add.
std::vector<uint16_t> possible_sums(int p, size_t i) {
  std::vector<int> order(static_cast<size_t>(p));
  for (int r = 0; r < p; ++r) order[static_cast<size_t>(r)] = r;
  std::vector<uint16_t> out;
  do {
    float acc = bf16_to_float(bf16_value(order[0], i));
    for (int k = 1; k < p; ++k)
      acc = bf16_to_float(float_to_bf16(acc + bf16_to_float(bf16_value(order[k], i))));
    out.push_back(float_to_bf16(acc));
  } while (std::next_permutation(order.begin(), order.end()));
  return out;
}

TEST(Bf16Comm, AllreduceAndReduceScatterRoundEachPartialSum) {
  const auto comm = make_mpi_communicator();
  const int p = comm->size(), me = comm->rank();
  const size_t block = 1001, n = block * static_cast<size_t>(p);
  std::vector<uint16_t> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = bf16_value(me, i);

  std::vector<uint16_t> all = mine;
  comm->allreduce(all.data(), n, DataType::BF16, ReduceOp::Sum);
  std::vector<uint16_t> scattered = mine;  // in place: this rank's block of the full buffer
  comm->reduce_scatter(scattered.data(), scattered.data() + me * block, block, DataType::BF16,
                       ReduceOp::Sum);
  size_t wrong = 0, differs_from_float = 0;
  for (size_t i = 0; i < n; ++i) {
    const std::vector<uint16_t> ok = possible_sums(p, i);
    wrong += std::find(ok.begin(), ok.end(), all[i]) == ok.end();
    double exact = 0;
    for (int r = 0; r < p; ++r) exact += bf16_to_float(bf16_value(r, i));
    differs_from_float += all[i] != float_to_bf16(static_cast<float>(exact));
  }
  // The reduce-scatter may add in another order than the allreduce did.
  for (size_t i = me * block; i < (me + 1) * block; ++i) {
    const std::vector<uint16_t> ok = possible_sums(p, i);
    wrong += std::find(ok.begin(), ok.end(), scattered[i]) == ok.end();
  }
  EXPECT_EQ(wrong, 0u);
  // The rounding is real: with 3 ranks some sums differ from the rounded exact sum (with 2,
  // one add, none does).
  if (p > 2) {
    EXPECT_GT(differs_from_float, 0u);
  }

  // Max, min and the average.
  std::vector<uint16_t> mx = mine, mn = mine, avg = mine;
  comm->allreduce(mx.data(), n, DataType::BF16, ReduceOp::Max);
  comm->allreduce(mn.data(), n, DataType::BF16, ReduceOp::Min);
  comm->allreduce(avg.data(), n, DataType::BF16, ReduceOp::Avg);
  wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    float hi = -INFINITY, lo = INFINITY;
    for (int r = 0; r < p; ++r) {
      hi = std::max(hi, bf16_to_float(bf16_value(r, i)));
      lo = std::min(lo, bf16_to_float(bf16_value(r, i)));
    }
    wrong += mx[i] != float_to_bf16(hi) || mn[i] != float_to_bf16(lo);
    wrong += avg[i] != float_to_bf16(bf16_to_float(all[i]) * static_cast<float>(1.0 / p));
  }
  EXPECT_EQ(wrong, 0u);
}

// A Markov text over 13 tokens: the next token is (3t + 1) mod 13 seven times in ten, else any.
// Its loss has a floor well above zero, so that 2% of it is a margin a model can miss.
std::vector<uint16_t> markov_text(size_t n, uint64_t seed) {
  std::vector<uint16_t> t(n);
  t[0] = 0;
  for (size_t i = 1; i < n; ++i)
    t[i] = uniform_float(seed, 2 * i) < 0.7f
               ? static_cast<uint16_t>((3 * t[i - 1] + 1) % 13)
               : static_cast<uint16_t>(random_u64(seed, 2 * i + 1) % 13);
  return t;
}

TEST(Bf16Comm, GptTrainsToTheFloatLossWithinTwoPercent) {
  const auto world = make_mpi_communicator();
  const auto backend = make_cpu_backend(1);
  const std::string stem =
      "/tmp/dpt_bf16_" + std::to_string(::getpid()) + "_" + std::to_string(world->rank());
  write_token_shard(stem + "_train.bin", markov_text(16 * 400 + 1, 5));
  write_token_shard(stem + "_val.bin", markov_text(16 * 60 + 1, 6));
  const TokenShards train_shards({stem + "_train.bin"}, "--train-tokens", 16, 13);
  const TokenShards val_shards({stem + "_val.bin"}, "--val-tokens", 16, 13);
  const TokenBatches train(train_shards), val(val_shards);
  const char* spec = "gpt(n_layer=2, n_head=2, n_embd=32, block_size=16, vocab_size=13)";
  std::vector<float> last_params;
  using Rounding = Sequential::WeightRounding;
  const auto final_loss = [&](DataType wire, int zero, uint64_t seed,
                              DataType compute = DataType::F32,
                              Rounding rounding = Rounding::Nearest) {
    Model model({*world, *backend}, spec, {16}, seed, compute);
    model.compile({.name = "adamw", .lr = 1e-2f});
    FitOptions fo;
    fo.schedule.batch_size = 8;
    fo.schedule.max_steps = 150;
    fo.schedule.epochs = 10;
    fo.schedule.seed = seed;
    fo.comm.grad_comm = wire;
    fo.precision.weight_rounding = rounding;
    fo.comm.zero = zero;
    fo.comm.first_bucket_mb = 0.01;
    fo.comm.bucket_mb = 0.02;
    fo.health.check_replicas_every = 50;  // every rank decoded the same sums
    model.fit(train, fo);
    last_params = model.net().params_to_host();
    return model.evaluate(val, 8).loss;
  };
  const double f32 = final_loss(DataType::F32, 0, 0);
  const std::vector<float> f32_params = last_params;
  const double bf16 = final_loss(DataType::BF16, 0, 0);
  EXPECT_NE(last_params, f32_params);  // the gradients did travel rounded
  const double bf16_zero = final_loss(DataType::BF16, 1, 0);
  const double f32_seed1 = final_loss(DataType::F32, 0, 1);
  const double mixed = final_loss(DataType::F32, 0, 0, DataType::BF16);
  const std::vector<float> mixed_params = last_params;
  const double mixed_stochastic =
      final_loss(DataType::F32, 0, 0, DataType::BF16, Rounding::Stochastic);
  EXPECT_NE(last_params, mixed_params);  // the rounding took another path
  const double mixed_all = final_loss(DataType::BF16, 1, 0, DataType::BF16);
  // One "measure: WHAT VALUE < BOUND" line each, WHAT the same on every CPU (tests/cross_cpu.sh
  // tabulates them by it), and the losses themselves on a line of their own.
  if (world->rank() == 0) {
    std::printf(
        "val loss: fp32 %.4f (seed 1: %.4f), bf16 gradients %.4f, with zero-1 %.4f; bf16 compute "
        "%.4f, stochastic rounding %.4f, with bf16 gradients and zero-1 %.4f, %d ranks\n",
        f32, f32_seed1, bf16, bf16_zero, mixed, mixed_stochastic, mixed_all, world->size());
    std::printf("measure: val loss fp32, %d ranks %.4f < 1.6\n", world->size(), f32);
    const std::pair<const char*, double> runs[] = {
        {"bf16 gradients", bf16},
        {"bf16 gradients with zero-1", bf16_zero},
        {"bf16 compute", mixed},
        {"bf16 compute, stochastic rounding", mixed_stochastic},
        {"bf16 compute with bf16 gradients and zero-1", mixed_all}};
    for (const auto& [what, loss] : runs)
      std::printf("measure: val loss of %s against fp32, relative, %d ranks %.2e < 2e-02\n", what,
                  world->size(), std::fabs(loss - f32) / f32);
  }
  // Trained: ln(13) = 2.56 untrained; the text's entropy, its floor, is 1.28.
  EXPECT_LT(f32, 1.6);
  EXPECT_LT(std::fabs(bf16 - f32) / f32, 0.02);
  EXPECT_LT(std::fabs(bf16_zero - f32) / f32, 0.02);
  EXPECT_LT(std::fabs(mixed - f32) / f32, 0.02);
  EXPECT_LT(std::fabs(mixed_stochastic - f32) / f32, 0.02);
  EXPECT_LT(std::fabs(mixed_all - f32) / f32, 0.02);
  EXPECT_NE(mixed, f32);  // it did compute in bf16
  ::unlink((stem + "_train.bin").c_str());
  ::unlink((stem + "_val.bin").c_str());
}

}  // namespace
}  // namespace dpt
