// A gpt trained through fit() on token shards, one rank: the token path end to end (windows and
// their shifted targets, the loss over B x T rows, evaluation over the validation windows) and
// generation, which must repeat for a seed and continue what the model learned.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/token_shards.hpp"
#include "src/io/safetensors.hpp"
#include "src/train/generate.hpp"
#include "src/train/model.hpp"
#include "tests/common/expect_input_error.hpp"
#include "tests/common/one_rank_communicator.hpp"
#include "tests/common/synthetic.hpp"
#include "tests/common/temp_dir.hpp"

namespace dpt {
namespace {

constexpr const char* kSpec = "gpt(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=12)";

// A text with a period of 5 distinct tokens: each token determines the next.
std::vector<uint16_t> periodic(int n) {
  const uint16_t cycle[5] = {3, 7, 1, 9, 4};
  std::vector<uint16_t> t(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<size_t>(i)] = cycle[i % 5];
  return t;
}

class LanguageModel : public testing::TempDirTest {
 protected:
  LanguageModel() : backend(make_cpu_backend(1)) {}
  void SetUp() override {
    TempDirTest::SetUp();
    write_token_shard(path("train.bin"), periodic(801));  // 100 windows of 8
    write_token_shard(path("val.bin"), periodic(161));    // 20 windows
  }
  testing::OneRankCommunicator comm;
  std::unique_ptr<Backend> backend;
};

TEST_F(LanguageModel, FitOnTokenShardsLearnsAPeriodicText) {
  const TokenShards train_shards({path("train.bin")}, "--train-tokens", 8, 12);
  const TokenShards val_shards({path("val.bin")}, "--val-tokens", 8, 12);
  const TokenBatches train(train_shards), val(val_shards);
  Model model({comm, *backend}, kSpec, {8}, 1);
  OptimizerConfig opt;
  opt.name = "adamw";
  opt.lr = 1e-2f;
  model.compile(opt);
  const EvalResult before = model.evaluate(val, 10);
  EXPECT_EQ(before.count, 20);
  FitOptions o;
  o.schedule.batch_size = 4;
  o.schedule.epochs = 3;  // 25 steps each
  const std::vector<EpochMetrics> history = model.fit(train, o, &val);
  ASSERT_EQ(history.size(), 3u);
  ASSERT_TRUE(history.back().test.has_value());
  // Untrained, the loss is near ln(12) = 2.48 at every position; every next token is certain,
  // so training drives it toward 0 (measured: 2.50 before, 0.006 after, under the SkylakeX,
  // Haswell and Sandybridge kernels alike). A bound of 0.5 fails only if the model does not
  // learn the cycle, whichever way the sums are ordered.
  EXPECT_GT(before.loss, 2.0);
  EXPECT_LT(history.back().test->loss, 0.5) << "before " << before.loss;
  // The train loss is a mean per target, on the same scale (measured 0.0097 in the last epoch).
  EXPECT_LT(history.back().train_loss, 0.5);
  EXPECT_DOUBLE_EQ(history.back().tokens_per_second, history.back().samples_per_second * 8);

  // Generation: a seed repeats its text, and greedy decoding continues the cycle.
  const SamplingOptions greedy{1.0, 1, 5};
  const std::vector<int32_t> g = generate(model, {3, 7, 1}, 12, greedy);
  const std::vector<int32_t> want = {9, 4, 3, 7, 1, 9, 4, 3, 7, 1, 9, 4};
  EXPECT_EQ(g, want);
  const SamplingOptions warm{1.0, 0, 9};
  EXPECT_EQ(generate(model, {1, 9}, 20, warm), generate(model, {1, 9}, 20, warm));
}

TEST_F(LanguageModel, EvaluationOverTheFirstBatchesOnly) {
  const TokenShards val_shards({path("val.bin")}, "--val-tokens", 8, 12);
  const TokenBatches val(val_shards);
  Model model({comm, *backend}, kSpec, {8}, 1);
  EXPECT_EQ(model.evaluate(val, 3, 2).count, 6);  // 2 batches of 3 windows, one rank
  EXPECT_EQ(model.evaluate(val, 3).count, 20);
}

TEST_F(LanguageModel, DataThatDoesNotFitTheModelIsRefused) {
  Model model({comm, *backend}, kSpec, {8}, 1);
  model.compile(OptimizerConfig{});
  const Dataset images = testing::make_synthetic_dataset(16, {8}, 4, 1);
  testing::expect_input_error([&] { model.fit(images, FitOptions{}); }, "training data",
                              "inputs are float32, the model takes int32 token ids");
  const TokenShards wide({path("train.bin")}, "--train-tokens", 6, 12);  // windows of 6, not 8
  testing::expect_input_error([&] { model.fit(TokenBatches(wide), FitOptions{}); },
                              "training data", "do not fit a model built for [8]");
  testing::expect_input_error([&] { generate(model, {}, 3, SamplingOptions{}); },
                              "option --prompt", "empty");
  testing::expect_input_error([&] { generate(model, {12}, 3, SamplingOptions{}); },
                              "option --prompt", "token 12 at position 0 is not in the vocabulary");
}

TEST_F(LanguageModel, WeightsWithNanoGptsLmHeadLoadWhenItEqualsTheEmbedding) {
  Model source({comm, *backend}, kSpec, {8}, 3);
  Model model({comm, *backend}, kSpec, {8}, 4);
  const std::vector<float> host = source.net().params_to_host();
  // The file nanoGPT's state_dict makes: every tensor, and the head's weight under its own name.
  std::vector<TensorOut> tensors;
  const float* wte = nullptr;
  for (const ParamInfo& p : source.net().param_info()) {
    tensors.push_back({p.name, p.shape, host.data() + p.elem_offset});
    if (p.name == "transformer.wte.weight") wte = host.data() + p.elem_offset;
  }
  ASSERT_NE(wte, nullptr);
  tensors.push_back({"lm_head.weight", {12, 16}, wte});
  write_safetensors(path("with_head.safetensors"), tensors);
  model.load_weights(path("with_head.safetensors"));
  EXPECT_EQ(model.net().params_to_host(), host);

  std::vector<float> other(wte, wte + 12 * 16);
  other[5] += 1.0f;
  tensors.back().data = other.data();
  write_safetensors(path("other_head.safetensors"), tensors);
  testing::expect_input_error([&] { model.load_weights(path("other_head.safetensors")); },
                              path("other_head.safetensors"),
                              "tensor 'lm_head.weight' differs from 'transformer.wte.weight'");
}

}  // namespace
}  // namespace dpt
