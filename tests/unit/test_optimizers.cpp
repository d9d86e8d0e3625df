// Optimizers against updates worked out by hand with PyTorch's rules (torch.optim.SGD, AdamW),
// weight decay per tensor against one optimizer per parameter group, and the learning rate set
// per step.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/train/lr_schedule.hpp"
#include "src/train/optimizer.hpp"

namespace {

using dpt::OptimizerConfig;

// Tolerance for float32 arithmetic on values of order 1.
constexpr float kTol = 1e-6f;

class OptimizerTest : public testing::Test {
 protected:
  // Runs one optimizer over `params`, one step per entry of `grads`; returns the parameters.
  std::vector<float> run(const OptimizerConfig& config, std::vector<float> params,
                         const std::vector<std::vector<float>>& grads) {
    dpt::Optimizer opt(*backend_, config, params.size());
    for (const std::vector<float>& g : grads) opt.step(params.data(), g.data());
    EXPECT_EQ(opt.steps(), static_cast<int64_t>(grads.size()));
    return params;
  }

  static OptimizerConfig sgd(float lr, float momentum = 0, bool nesterov = false,
                             float weight_decay = -1) {
    OptimizerConfig c;
    c.name = "sgd";
    c.lr = lr;
    c.momentum = momentum;
    c.nesterov = nesterov;
    c.weight_decay = weight_decay;
    return c;
  }

  static OptimizerConfig adamw_betas(float beta1, float beta2) {
    OptimizerConfig c;
    c.name = "adamw";
    c.lr = 0.1f;
    c.beta1 = beta1;
    c.beta2 = beta2;
    return c;
  }

  std::unique_ptr<dpt::Backend> backend_ = dpt::make_cpu_backend(1);
};

TEST_F(OptimizerTest, SgdPlain) {
  // p -= lr * g:  1 - 0.1*0.5 = 0.95;  -2 - 0.1*0.25 = -2.025
  const std::vector<float> p = run(sgd(0.1f), {1.0f, -2.0f}, {{0.5f, 0.25f}});
  EXPECT_NEAR(p[0], 0.95f, kTol);
  EXPECT_NEAR(p[1], -2.025f, kTol);
}

TEST_F(OptimizerTest, SgdWeightDecay) {
  // g += wd * p, then p -= lr * g:
  //   g = 0.5 + 0.1*1 = 0.6,      p = 1 - 0.1*0.6 = 0.94
  //   g = 0.25 + 0.1*(-2) = 0.05, p = -2 - 0.1*0.05 = -2.005
  const std::vector<float> p = run(sgd(0.1f, 0, false, 0.1f), {1.0f, -2.0f}, {{0.5f, 0.25f}});
  EXPECT_NEAR(p[0], 0.94f, kTol);
  EXPECT_NEAR(p[1], -2.005f, kTol);
}

TEST_F(OptimizerTest, SgdMomentumThreeSteps) {
  // buf = m*buf + g (buf = g on the first step), p -= lr*buf; lr 0.1, m 0.9.
  // element 0, g = 1, 0.5, -1:
  //   buf = 1                    p = 1 - 0.1    = 0.9
  //   buf = 0.9*1 + 0.5 = 1.4    p = 0.9 - 0.14 = 0.76
  //   buf = 0.9*1.4 - 1 = 0.26   p = 0.76 - 0.026 = 0.734
  // element 1, g = 0.2 each step:
  //   buf = 0.2                  p = -1 - 0.02     = -1.02
  //   buf = 0.18 + 0.2 = 0.38    p = -1.02 - 0.038 = -1.058
  //   buf = 0.342 + 0.2 = 0.542  p = -1.058 - 0.0542 = -1.1122
  const std::vector<float> p =
      run(sgd(0.1f, 0.9f), {1.0f, -1.0f}, {{1.0f, 0.2f}, {0.5f, 0.2f}, {-1.0f, 0.2f}});
  EXPECT_NEAR(p[0], 0.734f, kTol);
  EXPECT_NEAR(p[1], -1.1122f, kTol);
}

TEST_F(OptimizerTest, SgdNesterovThreeSteps) {
  // buf = m*buf + g, p -= lr*(g + m*buf); lr 0.1, m 0.9, g = 1, 0.5, -1:
  //   buf = 1      step = 1 + 0.9*1 = 1.9          p = 1 - 0.19 = 0.81
  //   buf = 1.4    step = 0.5 + 0.9*1.4 = 1.76     p = 0.81 - 0.176 = 0.634
  //   buf = 0.26   step = -1 + 0.9*0.26 = -0.766   p = 0.634 + 0.0766 = 0.7106
  const std::vector<float> p = run(sgd(0.1f, 0.9f, true), {1.0f}, {{1.0f}, {0.5f}, {-1.0f}});
  EXPECT_NEAR(p[0], 0.7106f, kTol);
}

TEST_F(OptimizerTest, AdamWTwoStepsWithWeightDecay) {
  // lr 0.1, wd 0.1, b1 0.9, b2 0.999, eps 1e-8. Element 0, g = 0.5 then -0.25:
  // step 1: p = 1 * (1 - 0.1*0.1) = 0.99
  //         m = 0.1*0.5 = 0.05, v = 0.001*0.25 = 0.00025
  //         m/(1-0.9) = 0.5, sqrt(v)/sqrt(1-0.999) = 0.5
  //         p = 0.99 - 0.1 * 0.5/(0.5 + 1e-8) = 0.890000002
  // step 2: p = 0.890000002 * 0.99 = 0.881100002
  //         m = 0.9*0.05 + 0.1*(-0.25) = 0.02, v = 0.999*0.00025 + 0.001*0.0625 = 0.00031225
  //         m/(1-0.81) = 0.105263158, sqrt(v)/sqrt(1-0.998001) = 0.395225381
  //         p = 0.881100002 - 0.1 * 0.105263158/0.395225391 = 0.854466299
  // Element 1 has g = 0: m = v = 0, so only the decoupled decay acts: -0.5 * 0.99^2 = -0.49005.
  OptimizerConfig c;
  c.name = "adamw";
  c.lr = 0.1f;
  c.weight_decay = 0.1f;
  const std::vector<float> p = run(c, {1.0f, -0.5f}, {{0.5f, 0.0f}, {-0.25f, 0.0f}});
  EXPECT_NEAR(p[0], 0.854466299f, kTol);
  EXPECT_NEAR(p[1], -0.49005f, kTol);
}

TEST_F(OptimizerTest, DefaultWeightDecay) {
  // PyTorch's defaults: SGD 0, AdamW 0.01.
  OptimizerConfig adamw;
  adamw.name = "adamw";
  adamw.lr = 0.1f;
  EXPECT_EQ(dpt::Optimizer(*backend_, sgd(0.1f), 1).weight_decay(), 0.0f);
  EXPECT_FLOAT_EQ(dpt::Optimizer(*backend_, adamw, 1).weight_decay(), 0.01f);
  // With g = 0 the only change is the decay: SGD keeps p; AdamW gives 2 * (1 - 0.1*0.01) = 1.998.
  EXPECT_EQ(run(sgd(0.1f), {2.0f}, {{0.0f}})[0], 2.0f);
  EXPECT_NEAR(run(adamw, {2.0f}, {{0.0f}})[0], 1.998f, kTol);
}

TEST_F(OptimizerTest, BadConfigsThrowInputError) {
  OptimizerConfig unknown = sgd(0.1f);
  unknown.name = "adam";
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const struct {
    OptimizerConfig config;
    std::string phrase;
  } cases[] = {
      {unknown, "unknown optimizer 'adam'"},
      {sgd(0.0f), "--lr"},
      {sgd(-0.1f), "--lr"},
      {sgd(nan), "--lr"},
      {sgd(0.1f, 1.0f), "--momentum"},
      {sgd(0.1f, 1.5f), "--momentum"},
      {sgd(0.1f, -0.1f), "--momentum"},
      {sgd(0.1f, 0.0f, true), "--nesterov"},
      {adamw_betas(1.0f, 0.999f), "--beta1"},
      {adamw_betas(-0.1f, 0.999f), "--beta1"},
      {adamw_betas(0.9f, 1.0f), "--beta2"},
      {adamw_betas(0.9f, nan), "--beta2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.phrase);
    try {
      dpt::Optimizer(*backend_, c.config, 4);
      ADD_FAILURE() << "no InputError";
    } catch (const dpt::InputError& e) {
      EXPECT_NE(std::string(e.what()).find(c.phrase), std::string::npos) << e.what();
    }
  }
}

dpt::ParamInfo tensor(const std::string& name, const dpt::Shape& shape, size_t elem_offset,
                      size_t numel, int layer) {
  dpt::ParamInfo p;
  p.name = name;
  p.shape = shape;
  p.elem_offset = elem_offset;
  p.numel = numel;
  p.layer = layer;
  return p;
}

// Three tensors of a flat buffer, as Sequential lays them out (each on a 64-element boundary):
// a [2, 3] matrix, a bias [3] and a [3, 2] matrix.
std::vector<dpt::ParamInfo> three_tensors() {
  return {tensor("0.weight", {2, 3}, 0, 6, 0), tensor("0.bias", {3}, 64, 3, 0),
          tensor("2.weight", {3, 2}, 128, 6, 2)};
}

TEST(DecayRanges, EverythingDecaysUnlessOnlyMatricesDo) {
  const std::vector<dpt::ParamInfo> params = three_tensors();
  const auto all = dpt::decay_ranges(params, 192, false);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].elem_offset, 0u);
  EXPECT_EQ(all[0].numel, 192u);
  EXPECT_TRUE(all[0].decay);
  // Each range runs to the next one's start (the padding goes with the tensor before it).
  const auto matrices = dpt::decay_ranges(params, 192, true);
  ASSERT_EQ(matrices.size(), 3u);
  const size_t offsets[] = {0, 64, 128}, counts[] = {64, 64, 64};
  const bool decays[] = {true, false, true};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(matrices[i].elem_offset, offsets[i]) << i;
    EXPECT_EQ(matrices[i].numel, counts[i]) << i;
    EXPECT_EQ(matrices[i].decay, decays[i]) << i;
  }
  // Neighbours that agree share a range: two matrices, then two vectors.
  const std::vector<dpt::ParamInfo> grouped = {
      tensor("a", {2, 2}, 0, 4, 0), tensor("b", {4, 1, 1}, 64, 4, 1), tensor("c", {4}, 128, 4, 2),
      tensor("d", {1}, 192, 1, 3)};
  const auto two = dpt::decay_ranges(grouped, 256, true);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].numel, 128u);
  EXPECT_TRUE(two[0].decay);
  EXPECT_EQ(two[1].elem_offset, 128u);
  EXPECT_EQ(two[1].numel, 128u);
  EXPECT_FALSE(two[1].decay);
}

// Per-tensor decay equals one optimizer per parameter group, as nanoGPT builds them: the
// matrices with weight decay, the rest without.
TEST_F(OptimizerTest, PerTensorDecayMatchesOneOptimizerPerGroup) {
  const size_t n = 192;
  std::vector<float> params(n, 0.0f), grads(n, 0.0f);
  for (const dpt::ParamInfo& p : three_tensors())
    for (size_t i = 0; i < p.numel; ++i) {
      params[p.elem_offset + i] = 0.5f - 0.1f * static_cast<float>(i) + 0.01f * p.elem_offset;
      grads[p.elem_offset + i] = 0.3f - 0.07f * static_cast<float>(i);
    }
  OptimizerConfig adamw;
  adamw.name = "adamw";
  adamw.lr = 0.05f;
  adamw.weight_decay = 0.1f;
  adamw.decay_only_matrices = true;
  for (const OptimizerConfig& config : {adamw, sgd(0.05f, 0.9f, false, 0.1f)}) {
    SCOPED_TRACE(config.name);
    dpt::Optimizer grouped(*backend_, config, n, dpt::decay_ranges(three_tensors(), n, true));
    std::vector<float> p = params;
    // The reference: the bias on its own, with no decay; the matrices with it.
    OptimizerConfig no_decay = config;
    no_decay.weight_decay = 0;
    dpt::Optimizer bias_only(*backend_, no_decay, 3);
    dpt::Optimizer w0(*backend_, config, 6), w2(*backend_, config, 6);
    std::vector<float> ref = params;
    for (int step = 0; step < 3; ++step) {
      grouped.step(p.data(), grads.data());
      w0.step(ref.data(), grads.data());
      bias_only.step(ref.data() + 64, grads.data() + 64);
      w2.step(ref.data() + 128, grads.data() + 128);
    }
    for (size_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(p[i], ref[i]) << "element " << i;
    // And the decay did act on the matrices: without it they end elsewhere.
    std::vector<float> undecayed = params;
    dpt::Optimizer plain(*backend_, no_decay, n);
    for (int step = 0; step < 3; ++step) plain.step(undecayed.data(), grads.data());
    EXPECT_GT(std::fabs(undecayed[0] - p[0]), 1e-4f);
    EXPECT_FLOAT_EQ(undecayed[64], p[64]) << "the bias does not decay";
  }
}

TEST_F(OptimizerTest, PerTensorDecayOfOneStepByHand) {
  // SGD, lr 0.1, wd 0.5, no momentum: p -= lr * (g + wd * p) on the matrix, p -= lr * g on the
  // bias. Matrix element: 1 - 0.1 * (0.2 + 0.5) = 0.93; bias element: 1 - 0.1 * 0.2 = 0.98.
  const size_t n = 192;
  std::vector<float> p(n, 1.0f), g(n, 0.2f);
  dpt::Optimizer opt(*backend_, sgd(0.1f, 0, false, 0.5f), n,
                     dpt::decay_ranges(three_tensors(), n, true));
  opt.step(p.data(), g.data());
  EXPECT_NEAR(p[0], 0.93f, kTol);
  EXPECT_NEAR(p[64], 0.98f, kTol);
  EXPECT_NEAR(p[128], 0.93f, kTol);
}

TEST_F(OptimizerTest, RangesThatDoNotCoverTheBufferAreRefused) {
  EXPECT_THROW(dpt::Optimizer(*backend_, sgd(0.1f), 10, {{0, 4, true}, {5, 5, false}}),
               dpt::SystemError);
  EXPECT_THROW(dpt::Optimizer(*backend_, sgd(0.1f), 10, {{0, 4, true}}), dpt::SystemError);
}

// The learning rate a schedule sets is the one each step uses: SGD without momentum moves a
// parameter with gradient 1 by exactly -lr, so each step's change reads its rate back.
TEST_F(OptimizerTest, SetLrChangesTheRateOfTheNextSteps) {
  const dpt::LrSchedule schedule{0.1, 3, 8, 0.01};
  dpt::Optimizer opt(*backend_, sgd(0.1f), 1);
  EXPECT_EQ(opt.lr(), 0.1f);
  double p = 0;
  std::vector<float> param{0.0f}, grad{1.0f};
  for (int64_t it = 0; it < 12; ++it) {
    const float lr = static_cast<float>(schedule.at(it));
    opt.set_lr(lr);
    EXPECT_EQ(opt.lr(), lr);
    const float before = param[0];
    opt.step(param.data(), grad.data());
    EXPECT_NEAR(before - param[0], lr, 1e-6) << "step " << it;
    p -= lr;
  }
  EXPECT_NEAR(param[0], p, 1e-5);
  EXPECT_EQ(opt.config().lr, 0.1f) << "the configured peak stays";
  EXPECT_THROW(opt.set_lr(-1.0f), dpt::SystemError);
}

}  // namespace
