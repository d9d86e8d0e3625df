// Residual blocks: the output is the input plus the body's, worked out by hand; children draw
// distinct random streams; and a model with nested blocks computes what PyTorch computes, with
// PyTorch's own parameter names (a fixture written by tests/data/residual/make_fixture.py).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/io/safetensors.hpp"
#include "src/model/loss.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/residual.hpp"
#include "src/model/sequential.hpp"

namespace dpt {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

std::unique_ptr<Layer> one_layer(const std::string& spec) {
  std::vector<std::unique_ptr<Layer>> layers = parse_model_spec(spec);
  EXPECT_EQ(layers.size(), 1u) << spec;
  return std::move(layers.at(0));
}

// residual(linear(3) relu linear(4)) on 4 features: y = x + W2 relu(W1 x + b1) + b2, and its
// backward, written out. Every value is a small multiple of 1/4 or 1/2, so every sum on the way
// is exact in float and the block must match the hand computation bit for bit, whatever order
// the BLAS adds in.
TEST(Residual, ForwardAndBackwardAsWorkedOutByHand) {
  const int batch = 2, in = 4, hidden = 3;
  std::unique_ptr<Layer> block = one_layer("residual(linear(3) relu linear(4))");
  ASSERT_EQ(block->setup({in}), (Shape{in}));
  const std::vector<ParamSpec> specs = block->param_specs();
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[0].name, "0.weight");
  EXPECT_EQ(specs[3].name, "2.bias");

  std::vector<float> w1(hidden * in), b1(hidden), w2(in * hidden), b2(in);
  for (int o = 0; o < hidden; ++o) {
    for (int i = 0; i < in; ++i)
      w1[o * in + i] = 0.25f * static_cast<float>((o * 5 + i * 3) % 7 - 3);
    b1[o] = 0.25f * static_cast<float>(o - 1);
  }
  for (int o = 0; o < in; ++o) {
    for (int i = 0; i < hidden; ++i)
      w2[o * hidden + i] = 0.25f * static_cast<float>((o * 2 + i * 5) % 5 - 2);
    b2[o] = 0.5f * static_cast<float>(o % 3 - 1);
  }
  std::vector<float> gw1(w1.size()), gb1(b1.size()), gw2(w2.size()), gb2(b2.size());
  block->bind({w1.data(), b1.data(), w2.data(), b2.data()},
              {gw1.data(), gb1.data(), gw2.data(), gb2.data()});

  std::vector<float> x(batch * in), dy(batch * in);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < in; ++i) {
      x[b * in + i] = 0.5f * static_cast<float>((b * 7 + i * 3) % 9 - 4);
      dy[b * in + i] = 0.5f * static_cast<float>((b * 3 + i * 5) % 7 - 3);
    }

  // By hand.
  std::vector<float> pre(batch * hidden), h(batch * hidden), y_hand(batch * in);
  for (int b = 0; b < batch; ++b) {
    for (int o = 0; o < hidden; ++o) {
      float s = b1[o];
      for (int i = 0; i < in; ++i) s += w1[o * in + i] * x[b * in + i];
      pre[b * hidden + o] = s;
      h[b * hidden + o] = s > 0 ? s : 0.0f;
    }
    for (int o = 0; o < in; ++o) {
      float s = b2[o];
      for (int i = 0; i < hidden; ++i) s += w2[o * hidden + i] * h[b * hidden + i];
      y_hand[b * in + o] = x[b * in + o] + s;
    }
  }
  std::vector<float> dh(batch * hidden), dx_hand(dy), gw1_hand(w1.size()), gb1_hand(b1.size()),
      gw2_hand(w2.size()), gb2_hand(b2.size());
  for (int b = 0; b < batch; ++b) {
    for (int o = 0; o < in; ++o) {
      gb2_hand[o] += dy[b * in + o];
      for (int i = 0; i < hidden; ++i) {
        gw2_hand[o * hidden + i] += dy[b * in + o] * h[b * hidden + i];
        dh[b * hidden + i] += dy[b * in + o] * w2[o * hidden + i];
      }
    }
    for (int o = 0; o < hidden; ++o) {
      const float g = h[b * hidden + o] > 0 ? dh[b * hidden + o] : 0.0f;
      gb1_hand[o] += g;
      for (int i = 0; i < in; ++i) {
        gw1_hand[o * in + i] += g * x[b * in + i];
        dx_hand[b * in + i] += g * w1[o * in + i];  // dx = dy + the body's input gradient
      }
    }
  }
  // Some units on each side of the kink, or the test would not tell ReLU from the identity.
  EXPECT_TRUE(std::any_of(pre.begin(), pre.end(), [](float v) { return v < 0; }));
  EXPECT_TRUE(std::any_of(pre.begin(), pre.end(), [](float v) { return v > 0; }));

  std::vector<float> y(batch * in, -99.0f), dx(batch * in, -99.0f);
  block->forward(cpu(), x.data(), y.data(), batch, ForwardContext{true, 1});
  EXPECT_EQ(y, y_hand);
  block->backward(cpu(), x.data(), y.data(), dy.data(), dx.data(), batch);
  EXPECT_EQ(dx, dx_hand);
  EXPECT_EQ(gw1, gw1_hand);
  EXPECT_EQ(gb1, gb1_hand);
  EXPECT_EQ(gw2, gw2_hand);
  EXPECT_EQ(gb2, gb2_hand);

  // Parameter gradients add up over backward passes, as every layer's do; dx is overwritten.
  block->forward(cpu(), x.data(), y.data(), batch, ForwardContext{true, 1});
  block->backward(cpu(), x.data(), y.data(), dy.data(), dx.data(), batch);
  EXPECT_EQ(dx, dx_hand);
  for (float& g : gw1_hand) g *= 2;
  for (float& g : gb2_hand) g *= 2;
  EXPECT_EQ(gw1, gw1_hand);
  EXPECT_EQ(gb2, gb2_hand);
}

// Each child of a block draws from a stream of its own. Two dropout(0.5) in a row keep about a
// quarter of the elements when their masks are independent, half of them if they shared one.
TEST(Residual, ChildrenDrawIndependentDropoutMasks) {
  const int n = 4000;
  std::unique_ptr<Layer> block = one_layer("residual(dropout(0.5) dropout(0.5))");
  block->setup({n});
  const std::vector<float> x(n, 1.0f);
  std::vector<float> y(n);
  block->forward(cpu(), x.data(), y.data(), 1, ForwardContext{true, 77});
  // y = 1 + d2(d1(1)), each d either 0 or 2 times its input.
  const auto kept = std::count(y.begin(), y.end(), 5.0f);
  EXPECT_EQ(kept + std::count(y.begin(), y.end(), 1.0f), n);
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.25, 0.03);

  // Another seed gives another pattern; the same seed the same one.
  std::vector<float> other(n), again(n);
  block->forward(cpu(), x.data(), other.data(), 1, ForwardContext{true, 78});
  block->forward(cpu(), x.data(), again.data(), 1, ForwardContext{true, 77});
  EXPECT_NE(other, y);
  EXPECT_EQ(again, y);

  // In evaluation dropout is the identity: y = x + x.
  block->forward(cpu(), x.data(), y.data(), 1, ForwardContext{false, 77});
  EXPECT_EQ(y, std::vector<float>(n, 2.0f));
}

// The fixture holds a PyTorch model with nested residual blocks (its state_dict), a batch, and
// PyTorch's float64 logits, loss and parameter gradients. Loaded by name, the dptrain model built
// from the same spec must have exactly those names and shapes and compute the same values, to
// float32 rounding.
TEST(Residual, MatchesPyTorchWithItsParameterNames) {
  const SafetensorsFile f = read_safetensors(DPT_TEST_DATA_DIR "/residual/fixture.safetensors");
  const std::string spec = f.metadata.at("spec");
  const Shape input{2, 5, 5};
  ASSERT_EQ(f.metadata.at("input_shape"), "[2, 5, 5]");
  Sequential net(parse_model_spec(spec), cpu(), input);

  std::set<std::string> state_dict;
  for (const TensorIn& t : f.tensors)
    if (t.name != "input" && t.name != "labels" && t.name != "logits" && t.name != "loss" &&
        t.name.rfind("grad.", 0) != 0)
      state_dict.insert(t.name);
  std::set<std::string> ours;
  std::vector<float> params = net.params_to_host();
  for (const ParamInfo& p : net.param_info()) {
    ours.insert(p.name);
    const TensorIn* t = f.find(p.name);
    ASSERT_NE(t, nullptr) << p.name;
    ASSERT_EQ(t->shape, p.shape) << p.name;
    std::copy(t->data.begin(), t->data.end(),
              params.begin() + static_cast<std::ptrdiff_t>(p.elem_offset));
  }
  EXPECT_EQ(ours, state_dict);
  EXPECT_TRUE(ours.count("5.2.1.weight")) << "the fixture should hold a nested block";
  net.params_from_host(params);

  const TensorIn& x = *f.find("input");
  const TensorIn& labels_f = *f.find("labels");
  const int batch = static_cast<int>(x.shape[0]);
  const int classes = static_cast<int>(net.num_outputs());
  std::vector<int32_t> labels(labels_f.data.begin(), labels_f.data.end());
  std::vector<float> dlogits(static_cast<size_t>(batch) * classes);
  net.zero_grad();
  const float* logits = net.forward(x.data.data(), batch, true, 0).as<float>();
  const LossResult loss = SoftmaxCrossEntropy().compute(
      cpu(), logits, labels.data(), batch, classes, classes, 1.0f / batch, dlogits.data());
  net.backward(dlogits.data(), batch);

  // Values here are of order 1; float32 rounding through these few layers stays near 1e-6,
  // while a wrong index or a missing term is off by far more than the bound.
  const auto expect_close = [](const float* got, const TensorIn& want, const std::string& what) {
    double worst = 0, size = 0;
    size_t wrong = 0;
    for (size_t i = 0; i < want.data.size(); ++i) {
      const double err = std::fabs(static_cast<double>(got[i]) - want.data[i]);
      worst = std::max(worst, err);
      size = std::max(size, std::fabs(static_cast<double>(want.data[i])));
      if (err > 1e-5 + 1e-4 * std::fabs(static_cast<double>(want.data[i]))) ++wrong;
    }
    EXPECT_EQ(wrong, 0u) << what << ": largest error " << worst;
    EXPECT_GT(size, 1e-3) << what << " is all (near) zero: it would check nothing";
  };
  expect_close(logits, *f.find("logits"), "logits");
  EXPECT_NEAR(loss.loss_sum / batch, f.find("loss")->data[0], 1e-5);
  for (const ParamInfo& p : net.param_info())
    expect_close(net.grads() + p.elem_offset, *f.find("grad." + p.name), "gradient of " + p.name);
}

}  // namespace
}  // namespace dpt
