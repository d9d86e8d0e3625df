// Analytic gradients of every layer and of the loss against central finite differences.
//
// One generic checker runs over every layer type: the scalar L = sum_i y_i * r_i (r fixed and
// random) is accumulated in double from the layer's float output, and dL/dx and dL/dtheta from
// backward are compared with (L(+eps) - L(-eps)) / 2eps for every input and parameter element.
// Layers here are linear or piecewise linear in each element, so the difference quotient is
// exact away from kinks; inputs are drawn so that no perturbation crosses one (|x| > eps for
// ReLU, max-pool windows with distinct values further apart than 2 eps). What is left is float
// rounding of the forward pass, which the tolerance covers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/random.hpp"
#include "src/model/activations.hpp"
#include "src/model/conv2d.hpp"
#include "src/model/linear.hpp"
#include "src/model/loss.hpp"
#include "src/model/maxpool2d.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/residual.hpp"
#include "src/model/sequential.hpp"

namespace dpt {
namespace {

constexpr float kEps = 0.05f;

// Layers keep scratch buffers of the backend they ran on, so it must outlive them.
Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

enum class Inputs { Uniform, AwayFromZero, DistinctLevels };

std::vector<float> make_inputs(size_t n, Inputs kind, uint64_t seed) {
  std::vector<float> x(n);
  if (kind == Inputs::DistinctLevels) {
    // A shuffled staircase: every value distinct and 0.25 from its neighbours.
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    for (size_t i = n - 1; i > 0; --i) std::swap(order[i], order[random_u64(seed, i) % (i + 1)]);
    for (size_t i = 0; i < n; ++i) x[i] = 0.25f * static_cast<float>(order[i]) - 0.125f * n;
    return x;
  }
  for (size_t i = 0; i < n; ++i) {
    float u = 2.0f * uniform_float(seed, i) - 1.0f;
    if (kind == Inputs::AwayFromZero) u = (u < 0 ? -1.0f : 1.0f) * (0.2f + 0.8f * std::fabs(u));
    x[i] = u;
  }
  return x;
}

struct CheckResult {
  double max_abs_err = 0;
  size_t checked = 0, wrong = 0;
  double max_grad = 0;  // largest analytic gradient seen: the check is not about zeros
};

void compare(double analytic, double numeric, CheckResult& r) {
  const double err = std::fabs(analytic - numeric);
  r.max_abs_err = std::max(r.max_abs_err, err);
  r.max_grad = std::max(r.max_grad, std::fabs(analytic));
  ++r.checked;
  if (err > 2e-4 + 2e-3 * std::max(std::fabs(analytic), std::fabs(numeric))) ++r.wrong;
}

// Checks one layer on a batch; returns what was compared.
CheckResult check_layer(Layer& layer, const Shape& in_shape, int batch, Inputs inputs,
                        uint64_t seed) {
  Backend* be = &cpu();
  const Shape out_shape = layer.setup(in_shape);
  const size_t n_in = static_cast<size_t>(batch * shape_numel(in_shape));
  const size_t n_out = static_cast<size_t>(batch * shape_numel(out_shape));

  std::vector<std::vector<float>> params, grads;
  for (const ParamSpec& p : layer.param_specs()) {
    params.push_back(make_inputs(static_cast<size_t>(shape_numel(p.shape)), Inputs::Uniform,
                                 seed + 10 + params.size()));
    grads.emplace_back(params.back().size(), 0.0f);
  }
  std::vector<TensorRef> pp;
  std::vector<float*> gp;
  for (auto& p : params) pp.push_back(TensorRef(p.data()));
  for (auto& g : grads) gp.push_back(g.data());
  layer.bind(pp, gp);

  std::vector<float> x = make_inputs(n_in, inputs, seed);
  const std::vector<float> r = make_inputs(n_out, Inputs::Uniform, seed + 1);
  std::vector<float> y(n_out), dx(n_in, 0.0f);
  const ForwardContext ctx{true, seed + 2};  // dropout: the same mask on every evaluation

  const auto loss = [&] {
    layer.forward(*be, x.data(), layer.aliases_input() ? x.data() : y.data(), batch, ctx);
    const float* out = layer.aliases_input() ? x.data() : y.data();
    double l = 0;
    for (size_t i = 0; i < n_out; ++i) l += static_cast<double>(out[i]) * r[i];
    return l;
  };
  loss();
  layer.backward(*be, x.data(), y.data(), r.data(), dx.data(), batch);
  if (layer.aliases_input()) dx = r;  // its backward leaves the shared buffer as it is

  CheckResult result;
  const auto numeric = [&](float& v) {
    const float saved = v;
    v = saved + kEps;
    const double up = loss();
    v = saved - kEps;
    const double down = loss();
    v = saved;
    return (up - down) / (2.0 * kEps);
  };
  for (size_t i = 0; i < n_in; ++i) compare(dx[i], numeric(x[i]), result);
  for (size_t t = 0; t < params.size(); ++t)
    for (size_t i = 0; i < params[t].size(); ++i)
      compare(grads[t][i], numeric(params[t][i]), result);
  return result;
}

void expect_good(const CheckResult& r, const char* what) {
  EXPECT_GT(r.checked, 0u) << what;
  EXPECT_EQ(r.wrong, 0u) << what << ": max abs error " << r.max_abs_err;
  EXPECT_GT(r.max_grad, 0.1) << what << ": gradients are all (near) zero";
}

TEST(Gradients, Linear) {
  Linear layer(5);
  expect_good(check_layer(layer, {7}, 3, Inputs::Uniform, 1), "Linear(7,5)");
  Linear from_image(4);  // trailing dimensions are flattened
  expect_good(check_layer(from_image, {2, 3, 3}, 2, Inputs::Uniform, 2), "Linear on [2,3,3]");
}

TEST(Gradients, Conv2dShapes) {
  struct Case {
    Shape in;
    int out_c, k, stride, pad;
  };
  for (const Case& c : {Case{{1, 5, 5}, 3, 3, 1, 1}, Case{{2, 6, 7}, 4, 3, 2, 0},
                        Case{{3, 4, 4}, 2, 1, 1, 0}, Case{{2, 5, 6}, 3, 2, 1, 2}}) {
    Conv2d layer(c.out_c, c.k, c.stride, c.pad);
    expect_good(check_layer(layer, c.in, 2, Inputs::Uniform, 3),
                ("Conv2d on " + shape_str(c.in)).c_str());
  }
}

TEST(Gradients, MaxPool2d) {
  MaxPool2d pool(2, 2);
  expect_good(check_layer(pool, {2, 4, 6}, 2, Inputs::DistinctLevels, 4), "MaxPool2d(2)");
  MaxPool2d overlapping(3, 2);
  expect_good(check_layer(overlapping, {1, 7, 7}, 2, Inputs::DistinctLevels, 5),
              "MaxPool2d(3, stride 2)");
}

TEST(Gradients, ReLU) {
  ReLU relu;
  expect_good(check_layer(relu, {3, 4}, 3, Inputs::AwayFromZero, 6), "ReLU");
}

TEST(Gradients, Flatten) {
  Flatten flatten;
  expect_good(check_layer(flatten, {2, 3, 2}, 2, Inputs::Uniform, 7), "Flatten");
}

TEST(Gradients, Dropout) {
  Dropout dropout(0.4f);
  const CheckResult r = check_layer(dropout, {50}, 2, Inputs::Uniform, 8);
  expect_good(r, "Dropout(0.4)");
}

// A residual block is one Layer to the checker: its parameters are its children's, and dL/dx
// must include the skip connection. The bodies have no kinks that a perturbation could cross
// (ReLU only on inputs away from zero); blocks with ReLU after a linear layer are checked end
// to end below.
TEST(Gradients, ResidualBlocks) {
  struct Case {
    const char* spec;
    Shape in;
    Inputs inputs;
  };
  for (const Case& c : {
           Case{"residual(linear(4) linear(6))", {6}, Inputs::Uniform},
           Case{"residual(relu)", {3, 4}, Inputs::AwayFromZero},
           // A first child that aliases its input: the block's dx is copied from its gradient.
           Case{"residual(flatten linear(6))", {6}, Inputs::Uniform},
           // Nested, with dropout (the same mask each evaluation) and an aliasing last child.
           Case{"residual(linear(6) residual(linear(3) dropout(0.3) linear(6)) flatten)",
                {6},
                Inputs::Uniform},
           Case{"residual(conv2d(3,3,pad=1) dropout(0.2) conv2d(2,3,pad=1))",
                {2, 5, 5},
                Inputs::Uniform},
       }) {
    std::vector<std::unique_ptr<Layer>> layers = parse_model_spec(c.spec);
    ASSERT_EQ(layers.size(), 1u);
    ASSERT_NE(dynamic_cast<Residual*>(layers[0].get()), nullptr) << c.spec;
    expect_good(check_layer(*layers[0], c.in, 3, c.inputs, 12), c.spec);
  }
}

TEST(Gradients, SoftmaxCrossEntropy) {
  auto be = make_cpu_backend(1);
  const int batch = 4, classes = 7;
  std::vector<float> logits = make_inputs(batch * classes, Inputs::Uniform, 9);
  for (float& v : logits) v *= 3.0f;
  const std::vector<int32_t> labels = {0, 6, 3, 3};
  std::vector<float> dlogits(logits.size());
  const float scale = 1.0f / batch;  // the gradient of the batch mean
  const SoftmaxCrossEntropy loss;
  loss.compute(*be, logits.data(), labels.data(), batch, classes, classes, scale, dlogits.data());
  CheckResult r;
  const float eps = 1e-2f;  // smooth function: a small step, second-order error ~eps^2
  for (size_t i = 0; i < logits.size(); ++i) {
    const float saved = logits[i];
    logits[i] = saved + eps;
    const double up =
        loss.compute(*be, logits.data(), labels.data(), batch, classes, classes, 0, nullptr)
            .loss_sum /
        batch;
    logits[i] = saved - eps;
    const double down =
        loss.compute(*be, logits.data(), labels.data(), batch, classes, classes, 0, nullptr)
            .loss_sum /
        batch;
    logits[i] = saved;
    compare(dlogits[i], (up - down) / (2.0 * eps), r);
  }
  EXPECT_EQ(r.wrong, 0u) << "max abs error " << r.max_abs_err;
  EXPECT_GT(r.max_grad, 0.05);
}

TEST(SoftmaxCrossEntropy, KnownValues) {
  auto be = make_cpu_backend(1);
  // Equal logits over 4 classes: loss log(4) per sample; softmax 1/4 each.
  const std::vector<float> logits = {1, 1, 1, 1, 0, 0, 10, 0};
  const std::vector<int32_t> labels = {2, 2};
  std::vector<float> d(8);
  const SoftmaxCrossEntropy loss;
  const LossResult r = loss.compute(*be, logits.data(), labels.data(), 2, 4, 4, 1.0f, d.data());
  const double second = std::log(3.0 + std::exp(10.0)) - 10.0;
  EXPECT_NEAR(r.loss_sum, std::log(4.0) + second, 1e-6);
  EXPECT_EQ(r.correct, 1);  // row 0 ties: arg-max is the first class, not the label
  EXPECT_NEAR(d[0], 0.25, 1e-7);
  EXPECT_NEAR(d[2], -0.75, 1e-7);
  // Huge logits stay finite.
  const std::vector<float> big = {1e30f, -1e30f};
  const std::vector<int32_t> lab = {1};
  EXPECT_TRUE(
      std::isfinite(loss.compute(*be, big.data(), lab.data(), 1, 2, 2, 1, d.data()).loss_sum));
}

// The whole stack, through Sequential's buffers (aliasing included), on the real loss: every
// third parameter's gradient against a central difference. `stages` is the order in which
// backward must report the top-level layers done.
void check_model(const std::string& spec, const Shape& input, const std::vector<int>& stages) {
  SCOPED_TRACE(spec);
  auto be = make_cpu_backend(1);
  Sequential net(parse_model_spec(spec), *be, input);
  net.init_params(3);
  const int batch = 3;
  const int classes = static_cast<int>(net.num_outputs());
  const std::vector<float> x =
      make_inputs(static_cast<size_t>(batch * shape_numel(input)), Inputs::Uniform, 11);
  const std::vector<int32_t> labels = {1, 3, 0};
  std::vector<float> dlogits(static_cast<size_t>(batch * classes));
  const SoftmaxCrossEntropy cross_entropy;
  const auto loss = [&](bool with_grad) {
    const float* logits = net.forward(x.data(), batch, true, 0).as<float>();
    const LossResult r = cross_entropy.compute(*be, logits, labels.data(), batch, classes, classes,
                                               1.0f / batch, with_grad ? dlogits.data() : nullptr);
    return r.loss_sum / batch;
  };
  net.zero_grad();
  loss(true);
  std::vector<int> finished;
  net.backward(dlogits.data(), batch, [&](int layer) { finished.push_back(layer); });
  EXPECT_EQ(finished, stages);

  const std::vector<float> analytic(net.grads(), net.grads() + net.flat_size());
  CheckResult r;
  const float eps = 1e-3f;  // small: kinks of ReLU and max-pool are near
  size_t skipped_kinks = 0;
  for (const ParamInfo& p : net.param_info())
    for (size_t i = 0; i < p.numel; i += 3) {
      float& v = net.params()[p.elem_offset + i];
      const float saved = v;
      v = saved + eps;
      const double up = loss(false);
      v = saved - eps;
      const double down = loss(false);
      v = saved;
      const double mid = loss(false);
      const double numeric = (up - down) / (2.0 * eps);
      // A kink inside [-eps, eps] shows as one-sided slopes that disagree; skip those points.
      if (std::fabs((up - mid) - (mid - down)) > 1e-5) {
        ++skipped_kinks;
        continue;
      }
      const double err = std::fabs(analytic[p.elem_offset + i] - numeric);
      r.max_abs_err = std::max(r.max_abs_err, err);
      r.max_grad =
          std::max(r.max_grad, std::fabs(static_cast<double>(analytic[p.elem_offset + i])));
      ++r.checked;
      if (err > 1e-3 + 1e-2 * std::fabs(numeric)) ++r.wrong;
    }
  EXPECT_GT(r.checked, 40u) << "skipped " << skipped_kinks;
  EXPECT_EQ(r.wrong, 0u) << "max abs error " << r.max_abs_err;
  EXPECT_GT(r.max_grad, 0.01);
}

TEST(Gradients, SequentialCnnEndToEnd) {
  check_model("conv2d(3,3,pad=1) relu maxpool2d(2) flatten linear(5) relu linear(4)", {2, 6, 6},
              {6, 5, 4, 3, 2, 1, 0});
}

// Models holding residual blocks: each block is one stage of backward, and the layers before a
// block get their gradients through both its paths.
TEST(Gradients, ModelsWithResidualBlocks) {
  check_model("linear(8) residual(linear(8) relu linear(8)) relu linear(4)", {5}, {3, 2, 1, 0});
  // Nested blocks; a block first, whose input gradient nobody needs.
  check_model("residual(linear(6) relu residual(relu linear(6)) linear(5)) relu linear(4)", {5},
              {2, 1, 0});
  check_model(
      "linear(8) residual(linear(8) relu residual(linear(4) relu linear(8)) dropout(0.2)) "
      "linear(4)",
      {5}, {2, 1, 0});
  check_model(
      "conv2d(3,3,pad=1) residual(conv2d(3,3,pad=1) relu conv2d(3,3,pad=1)) maxpool2d(2) "
      "flatten linear(4)",
      {2, 6, 6}, {4, 3, 2, 1, 0});
}

}  // namespace
}  // namespace dpt
