// Optimizers against updates worked out by hand with PyTorch's rules (torch.optim.SGD, AdamW).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
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

}  // namespace
