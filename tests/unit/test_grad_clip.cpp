// Clipping gradients by their global norm against torch.nn.utils.clip_grad_norm_'s rule worked
// out in plain double arithmetic: the norm, the coefficient, the clipped values, and no change
// when the norm is below the limit. And the step's gate (src/train/step_gate.hpp), which checks
// and clips the same way where the gradients are: the same bits as GradClipper, the skip flag
// for gradients that are not finite, and an optimizer update that the flag stops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/train/grad_clip.hpp"
#include "src/train/optimizer.hpp"
#include "src/train/step_gate.hpp"

namespace dpt {
namespace {

class GradClip : public ::testing::Test {
 protected:
  // Two tensors, [4, 8] at 0 and [5] at 64, in a flat buffer of 128 whose padding is zero; the
  // elements past the last tensor hold junk that clipping must neither count nor touch.
  GradClip() : grads(128, 0.0f) {
    for (size_t i = 0; i < 32; ++i) grads[i] = 0.25f * std::sin(static_cast<float>(i) + 0.5f);
    for (size_t i = 0; i < 5; ++i) grads[64 + i] = -0.5f + 0.3f * static_cast<float>(i);
    for (size_t i = 69; i < 128; ++i) grads[i] = 100.0f;
  }

  std::vector<ParamInfo> params() const {
    ParamInfo weight, bias;
    weight.name = "0.weight";
    weight.shape = {4, 8};
    weight.elem_offset = 0;
    weight.numel = 32;
    bias.name = "0.bias";
    bias.shape = {5};
    bias.elem_offset = 64;
    bias.numel = 5;
    return {weight, bias};
  }

  // sqrt of the sum of squares over the tensors' elements, in double.
  double reference_norm() const {
    double s = 0;
    for (const ParamInfo& p : params())
      for (size_t i = 0; i < p.numel; ++i)
        s += double(grads[p.elem_offset + i]) * grads[p.elem_offset + i];
    return std::sqrt(s);
  }

  std::unique_ptr<Backend> backend = make_cpu_backend(1);
  std::vector<float> grads;
};

TEST_F(GradClip, ScalesEveryGradientByMaxNormOverTheNorm) {
  const double norm = reference_norm();
  ASSERT_GT(norm, 1.0);
  const double max_norm = 0.5;
  const std::vector<float> before = grads;
  const GradClipResult r = GradClipper(*backend, params(), max_norm).clip(grads.data());
  EXPECT_NEAR(r.norm, norm, 1e-12 * norm);
  const double coef = max_norm / (norm + 1e-6);
  EXPECT_TRUE(r.clipped);
  EXPECT_NEAR(r.coef, coef, 1e-7 * coef);  // the float the gradients were multiplied by
  for (size_t i = 0; i < 69; ++i)
    EXPECT_EQ(grads[i], before[i] * static_cast<float>(coef)) << "element " << i;
  for (size_t i = 69; i < 128; ++i) EXPECT_EQ(grads[i], 100.0f) << "past the last tensor";
  // The clipped gradients have the norm asked for, to float precision.
  double clipped = 0;
  for (size_t i = 0; i < 69; ++i) clipped += double(grads[i]) * grads[i];
  EXPECT_NEAR(std::sqrt(clipped), max_norm, 1e-6);
}

TEST_F(GradClip, LeavesGradientsBelowTheLimitAlone) {
  const double norm = reference_norm();
  const std::vector<float> before = grads;
  for (double max_norm : {norm * 1.5, norm + 1e-3}) {
    const GradClipResult r = GradClipper(*backend, params(), max_norm).clip(grads.data());
    EXPECT_FALSE(r.clipped) << max_norm;
    EXPECT_EQ(r.coef, 1.0);
    EXPECT_NEAR(r.norm, norm, 1e-12 * norm);
    EXPECT_EQ(grads, before) << "not a bit changed";
  }
}

TEST_F(GradClip, RefusesALimitThatIsNotAPositiveNumber) {
  for (double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    try {
      GradClipper(*backend, params(), bad);
      ADD_FAILURE() << "no InputError for " << bad;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("option --grad-clip: ", 0), 0u) << e.what();
    }
  }
}

TEST_F(GradClip, TheGateClipsAsGradClipperDoes) {
  const double norm = reference_norm();
  for (const double max_norm : {0.5, norm * 1.5, 0.0}) {
    SCOPED_TRACE(max_norm);
    std::vector<float> by_clipper = grads, by_gate = grads;
    GradClipResult want;
    if (max_norm > 0) want = GradClipper(*backend, params(), max_norm).clip(by_clipper.data());
    StepGate gate(*backend, params(), max_norm);
    gate.queue(by_gate.data());
    const StepGate::Outcome got = gate.read();
    EXPECT_FALSE(got.skipped);
    EXPECT_NEAR(std::sqrt(got.sum_of_squares), norm, 1e-12 * norm);
    if (max_norm > 0) {
      EXPECT_EQ(std::sqrt(got.sum_of_squares), want.norm);
    }
    EXPECT_EQ(by_gate, by_clipper) << "the same bits";
    EXPECT_EQ(by_gate == grads, !want.clipped) << "scaled exactly when clipping";
  }
}

// A NaN or an infinity among the gradients sets the flag, leaves the gradients as they are
// (clipping does not scale them by 0 for an infinite norm), and the optimizer's update that
// reads the flag changes neither the parameters nor its state.
TEST_F(GradClip, TheGateStopsTheUpdateOfGradientsThatAreNotFinite) {
  for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -3.4e38f}) {
    for (const double max_norm : {0.0, 0.5}) {
      SCOPED_TRACE(std::to_string(bad) + " max_norm " + std::to_string(max_norm));
      std::vector<float> g = grads;
      g[66] = bad;
      const std::vector<float> before = g;
      StepGate gate(*backend, params(), max_norm);
      gate.queue(g.data());
      const StepGate::Outcome out = gate.read();
      // The largest finite floats square to finite doubles: only NaN and infinities skip.
      EXPECT_EQ(out.skipped, !std::isfinite(bad));
      if (!out.skipped) continue;
      EXPECT_FALSE(std::isfinite(out.sum_of_squares));
      for (size_t i = 0; i < g.size(); ++i)
        ASSERT_EQ(std::memcmp(&g[i], &before[i], sizeof(float)), 0) << "gradient " << i;

      for (const char* name : {"adamw", "sgd"}) {
        OptimizerConfig config;
        config.name = name;
        config.lr = 0.1f;
        config.momentum = 0.9f;
        Optimizer opt(*backend, config, g.size());
        std::vector<float> p(g.size(), 1.0f);
        std::vector<float> ok(g.size(), 0.5f);
        opt.step(p.data(), ok.data());  // some state to keep
        const std::vector<float> p_before = p;
        std::vector<std::vector<float>> state_before;
        for (const auto& [state_name, buf] : opt.state())
          state_before.emplace_back(buf, buf + g.size());
        opt.step(p.data(), g.data(), gate.skip());
        EXPECT_EQ(p, p_before) << name << ": parameters moved";
        size_t k = 0;
        for (const auto& [state_name, buf] : opt.state())
          EXPECT_EQ(std::vector<float>(buf, buf + g.size()), state_before[k++])
              << name << ": " << state_name << " moved";
        EXPECT_EQ(opt.steps(), 2);
        opt.undo_step();
        EXPECT_EQ(opt.steps(), 1) << "the skipped step taken back";
      }
    }
  }
}

}  // namespace
}  // namespace dpt
