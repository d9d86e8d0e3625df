// The gpt model's values: its gradients against finite differences of the real loss, and its
// logits, loss and gradients against PyTorch (a fixture written by tests/data/gpt/make_fixture.py
// from a nanoGPT-style module in float64).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/random.hpp"
#include "src/io/safetensors.hpp"
#include "src/model/loss.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "tests/common/compare_params.hpp"
#include "tests/common/state_dict.hpp"

namespace dpt {
namespace {

Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

// The largest error over a tensor, and the largest reference value it is measured against.
struct Errors {
  double worst = 0, size = 0;
  size_t wrong = 0;
};

TEST(GptGradients, MatchFiniteDifferencesOfTheLoss) {
  const int batch = 2, t = 5, v = 11;
  Sequential net(
      parse_model_spec("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11)"), cpu(),
      {t});
  // Wider than GPT-2's initialisation, so that every nonlinearity is exercised and no gradient is
  // negligible: LayerNorm weights around 1, biases around 0.1, weights of fan-in scale.
  std::vector<float> params = net.params_to_host();
  for (size_t k = 0; k < net.param_info().size(); ++k) {
    const ParamInfo& p = net.param_info()[k];
    const bool layer_norm_weight = p.init.kind == Init::Kind::Constant && p.init.value == 1.0f;
    const bool bias = p.init.kind == Init::Kind::Constant && p.init.value == 0.0f;
    const float scale =
        layer_norm_weight || bias ? 0.2f : 1.0f / std::sqrt(static_cast<float>(p.shape.back()));
    for (size_t i = 0; i < p.numel; ++i)
      params[p.elem_offset + i] =
          (layer_norm_weight ? 1.0f : 0.0f) + scale * normal_float(100 + k, i);
  }
  net.params_from_host(params);

  std::vector<int32_t> tokens(batch * t), targets(batch * t);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(random_u64(1, i) % v);
    targets[i] = static_cast<int32_t>(random_u64(2, i) % v);
  }
  targets[3] = kIgnoreIndex;  // an ignored position: no loss, no gradient through it
  const int rows = batch * t, counted = rows - 1, ld = static_cast<int>(net.output_row_stride());
  std::vector<float> dlogits(static_cast<size_t>(rows) * ld);
  const SoftmaxCrossEntropy cross_entropy;
  // The mean over the counted positions, as nanoGPT's loss is.
  const auto loss = [&](bool with_grad) {
    const float* logits = net.forward(tokens.data(), batch, true, 0).as<float>();
    const LossResult r =
        cross_entropy.compute(cpu(), logits, targets.data(), rows, v, ld, 1.0f / counted,
                              with_grad ? dlogits.data() : nullptr);
    EXPECT_EQ(r.count, counted);
    return r.loss_sum / counted;
  };
  net.zero_grad();
  loss(true);
  net.backward(dlogits.data(), batch);
  const std::vector<float> analytic(net.grads(), net.grads() + net.flat_size());

  // Central differences with step h err by a truncation term of order h^2 f''' / 6 and a
  // rounding term of about (the float32 error of the loss, ~1e-7 here) / h. Measured over h:
  // the largest error is 2.3e-4 at h = 1e-2 (truncation, on the largest gradients), 4e-5 at
  // h = 3e-3 and 1.2e-4 at h = 1e-3 (rounding). At h = 3e-3 it stays below 4e-5 with the
  // Haswell, SkylakeX, Sandybridge and Prescott kernels, under a fifth of the bound, 1.5e-4 plus
  // 0.5% of the gradient. A missing or wrong term in any backward is far larger: most gradients
  // here exceed 1e-2 (the test requires a quarter of them to).
  const float h = 3e-3f;
  size_t checked = 0, wrong = 0, large = 0;
  double worst = 0;
  for (const ParamInfo& p : net.param_info())
    for (size_t i = 0; i < p.numel; ++i) {
      float& w = net.params()[p.elem_offset + i];
      const float saved = w;
      w = saved + h;
      const double up = loss(false);
      w = saved - h;
      const double down = loss(false);
      w = saved;
      const double numeric = (up - down) / (2.0 * static_cast<double>(h));
      const double a = analytic[p.elem_offset + i];
      const double err = std::fabs(a - numeric);
      worst = std::max(worst, err);
      ++checked;
      large += std::fabs(a) > 1e-2;
      if (err > 1.5e-4 + 5e-3 * std::fabs(numeric)) {
        if (++wrong <= 5)
          ADD_FAILURE() << p.name << "[" << i << "]: backward " << a << ", differences " << numeric;
      }
    }
  EXPECT_EQ(checked, net.num_params());
  EXPECT_EQ(wrong, 0u) << "largest error " << worst;
  EXPECT_GT(large, checked / 4) << "too few sizeable gradients for the check to mean much";
}

// The fixture holds a nanoGPT-style model's weights under nanoGPT's names, a batch of tokens and
// targets (one ignored, -1), and PyTorch's float64 logits, loss and gradients. Loaded by name,
// the gpt built from the same spec must hold exactly those tensors and compute the same values,
// to float32 rounding.
TEST(GptParity, MatchesPyTorch) {
  const SafetensorsFile f = read_safetensors(DPT_TEST_DATA_DIR "/gpt/fixture.safetensors");
  const TensorIn& tokens_f = *f.find("tokens");
  const TensorIn& targets_f = *f.find("targets");
  const int batch = static_cast<int>(tokens_f.shape[0]);
  const int t = static_cast<int>(tokens_f.shape[1]);
  Sequential net(parse_model_spec(f.metadata.at("spec")), cpu(), {t});
  const int v = static_cast<int>(net.num_classes());
  const int ld = static_cast<int>(net.output_row_stride());
  ASSERT_EQ(net.rows_per_sample(), t);
  // The tied head's rows lie a multiple of 64 elements apart; this vocabulary is not one.
  ASSERT_EQ(ld, 64);

  testing::load_state_dict(net, f, {"transformer.", "lm_head."});
  if (HasFatalFailure()) return;

  const std::vector<int32_t> tokens(tokens_f.data.begin(), tokens_f.data.end());
  std::vector<int32_t> targets(targets_f.data.begin(), targets_f.data.end());
  const int32_t ignore = std::stoi(f.metadata.at("ignore_index"));
  ASSERT_NE(std::find(targets.begin(), targets.end(), ignore), targets.end());
  const int rows = batch * t;
  const SoftmaxCrossEntropy cross_entropy(ignore);
  const int64_t counted = rows - std::count(targets.begin(), targets.end(), ignore);
  std::vector<float> dlogits(static_cast<size_t>(rows) * ld);
  net.zero_grad();
  const float* logits = net.forward(tokens.data(), batch, true, 0).as<float>();
  const LossResult loss = cross_entropy.compute(cpu(), logits, targets.data(), rows, v, ld,
                                                1.0f / static_cast<float>(counted), dlogits.data());
  EXPECT_EQ(loss.count, counted);
  net.backward(dlogits.data(), batch);

  // float32 against float64 from the same float32 weights: each op rounds at a relative 6e-8,
  // over sums of at most 64 terms through 2 blocks. Measured with the Haswell, SkylakeX,
  // Sandybridge and Prescott kernels: logits (largest 6.2) off by at most 3.0e-6, 4.8e-7 of
  // their largest; each gradient by at most 1.3e-6 of its tensor's largest value; the loss
  // agrees to 9 digits. The bound, 1e-5 of the tensor's largest value plus 1e-4 of the element, is
  // 8 times the worst of these, while a wrong index, a missing term or a wrong scale is off by
  // 1e-2 of it or more.
  const auto expect_close = [](const float* got, const TensorIn& want, const std::string& what) {
    Errors e;
    for (float x : want.data) e.size = std::max(e.size, std::fabs(static_cast<double>(x)));
    for (size_t i = 0; i < want.data.size(); ++i) {
      const double err = std::fabs(static_cast<double>(got[i]) - want.data[i]);
      e.worst = std::max(e.worst, err);
      if (err > 1e-5 * e.size + 1e-4 * std::fabs(static_cast<double>(want.data[i]))) ++e.wrong;
    }
    EXPECT_EQ(e.wrong, 0u) << what << ": largest error " << e.worst << " of " << e.size;
    EXPECT_GT(e.size, 1e-3) << what << " is all (near) zero: it would check nothing";
  };
  const std::vector<float> logit_rows = testing::packed_rows(
      std::vector<float>(logits, logits + static_cast<size_t>(rows) * ld),
      static_cast<size_t>(rows), static_cast<size_t>(v), static_cast<size_t>(ld));
  expect_close(logit_rows.data(), *f.find("logits"), "logits");
  const double want_loss = f.find("loss")->data[0];
  EXPECT_NEAR(loss.loss_sum / static_cast<double>(counted), want_loss, 1e-5 * want_loss);
  for (const ParamInfo& p : net.param_info()) {
    const TensorIn& want = *f.find("grad." + p.name);
    if (p.name == "transformer.wpe.weight") {
      // Positions t.. of wpe are never used: their gradient is zero, exactly.
      for (size_t i = static_cast<size_t>(t) * p.shape[1]; i < p.numel; ++i)
        ASSERT_EQ(net.grads()[p.elem_offset + i], 0.0f) << "wpe row " << i / p.shape[1];
    }
    expect_close(net.grads() + p.elem_offset, want, "gradient of " + p.name);
  }

  // A second pass adds to the gradients, as accumulation over micro-batches needs: the head into
  // wte's gradient as well (its backward adds, it does not overwrite what is there).
  logits = net.forward(tokens.data(), batch, true, 0).as<float>();
  cross_entropy.compute(cpu(), logits, targets.data(), rows, v, ld,
                        1.0f / static_cast<float>(counted), dlogits.data());
  net.backward(dlogits.data(), batch);
  for (const ParamInfo& p : net.param_info()) {
    TensorIn twice = *f.find("grad." + p.name);
    for (float& x : twice.data) x *= 2;
    expect_close(net.grads() + p.elem_offset, twice, "accumulated gradient of " + p.name);
  }
}

}  // namespace
}  // namespace dpt
