// The gpt model's structure: the spec and the gpt2 preset, nanoGPT's parameter names and shapes,
// GPT-2's initialisation, and the tied head's bookkeeping (one tensor, two uses, reported to the
// gradient Reducer at both). Its values against PyTorch are in test_gpt_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/reducer.hpp"
#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/model/embedding.hpp"
#include "src/model/linear.hpp"
#include "src/model/loss.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "src/model/tied_head.hpp"
#include "src/train/buckets.hpp"
#include "tests/common/compare_params.hpp"
#include "tests/common/expect_input_error.hpp"

namespace dpt {
namespace {

using Strings = std::vector<std::string>;

Backend& cpu() {
  static std::unique_ptr<Backend> backend = make_cpu_backend(1);
  return *backend;
}

const char* const kTwoLayers = "gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11)";

std::unique_ptr<Sequential> build(const std::string& spec, const Shape& input) {
  return std::make_unique<Sequential>(parse_model_spec(spec), cpu(), input);
}

// The parameters of nanoGPT's GPT(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11)
// as its state_dict lists them, less lm_head.weight, the same tensor as transformer.wte.weight.
Strings nanogpt_two_layers() {
  Strings names = {"transformer.wte.weight [11, 8]", "transformer.wpe.weight [6, 8]"};
  for (int i = 0; i < 2; ++i) {
    const std::string h = "transformer.h." + std::to_string(i) + ".";
    for (const char* s :
         {"ln_1.weight [8]", "ln_1.bias [8]", "attn.c_attn.weight [24, 8]", "attn.c_attn.bias [24]",
          "attn.c_proj.weight [8, 8]", "attn.c_proj.bias [8]", "ln_2.weight [8]", "ln_2.bias [8]",
          "mlp.c_fc.weight [32, 8]", "mlp.c_fc.bias [32]", "mlp.c_proj.weight [8, 32]",
          "mlp.c_proj.bias [8]"})
      names.push_back(h + s);
  }
  names.push_back("transformer.ln_f.weight [8]");
  names.push_back("transformer.ln_f.bias [8]");
  return names;
}

TEST(Gpt, NamesAndShapesAreNanoGptsStateDict) {
  const auto net = build(kTwoLayers, {5});
  Strings names;
  for (const ParamInfo& p : net->param_info()) names.push_back(p.name + " " + shape_str(p.shape));
  EXPECT_EQ(names, nanogpt_two_layers());

  // Top-level layers: the embedding, one per block, ln_f and the head, named as nanoGPT's modules.
  ASSERT_EQ(net->num_layers(), 5u);
  const Strings modules = {"transformer", "transformer.h.0", "transformer.h.1", "transformer.ln_f",
                           "lm_head"};
  for (size_t i = 0; i < modules.size(); ++i) EXPECT_EQ(net->layer(i).module_name(), modules[i]);
  // Each tensor's stage is its top-level layer: a block's tensors are finished together.
  std::vector<int> stage;
  for (const ParamInfo& p : net->param_info()) stage.push_back(p.layer);
  std::vector<int> want = {0, 0};
  for (int i = 1; i <= 2; ++i) want.insert(want.end(), 12, i);
  want.insert(want.end(), {3, 3});
  EXPECT_EQ(stage, want);

  // Token ids in, one row of logits per position out.
  EXPECT_EQ(net->input_dtype(), DataType::I32);
  EXPECT_EQ(net->input_shape(), Shape{5});
  EXPECT_EQ(net->rows_per_sample(), 5);
  EXPECT_EQ(net->num_classes(), 11);
  EXPECT_EQ(net->num_outputs(), 55);
  // The rows of logits lie 64 elements apart (the vocabulary rounded up to a multiple of 64),
  // in forward's output and in the gradient backward takes.
  EXPECT_EQ(net->output_row_stride(), 64);
  EXPECT_EQ(net->output_elems(), 5 * 64);
  EXPECT_EQ(build("gpt(n_layer=1, n_head=2, n_embd=8, block_size=4, vocab_size=128)", {4})
                ->output_row_stride(),
            128);
  EXPECT_EQ(build("gpt(n_layer=1, n_head=2, n_embd=8, block_size=4, vocab_size=129)", {4})
                ->output_row_stride(),
            192);
  EXPECT_EQ(build("mlp", {784})->output_row_stride(), 10);

  // The tree, as PyTorch prints nested modules; the head shows whose weight it uses.
  const std::string summary = net->summary();
  for (const std::string line :
       {"(transformer.h.1) Block -> [5, 8]  params 872", "    (c_attn) Linear(8, 24) -> [5, 24]",
        "    (attention) CausalAttention(n_head=2) -> [5, 8]",
        "    (gelu) GELU(approximate='tanh') -> [5, 32]",
        "(lm_head) Linear(8, 11, bias=False) -> [5, 11]  (weight tied to transformer.wte.weight)",
        "total parameters 1896"})
    EXPECT_NE(summary.find(line), std::string::npos) << line << "\nnot in:\n" << summary;
}

// V C + T C + L (12 C^2 + 13 C) + 2 C: the embeddings, per block two LayerNorms (4C), c_attn
// (3C^2 + 3C), attn.c_proj (C^2 + C), c_fc (4C^2 + 4C) and mlp.c_proj (4C^2 + C), and ln_f.
int64_t gpt_param_count(int64_t l, int64_t c, int64_t t, int64_t v) {
  return v * c + t * c + l * (12 * c * c + 13 * c) + 2 * c;
}

TEST(Gpt, ParameterCountsWithTheHeadCountedOnce) {
  EXPECT_EQ(build(kTwoLayers, {6})->num_params(),
            static_cast<size_t>(gpt_param_count(2, 8, 6, 11)));
  EXPECT_EQ(build("gpt(n_layer=3, n_head=4, n_embd=32, block_size=16, vocab_size=50)", {16})
                ->num_params(),
            static_cast<size_t>(gpt_param_count(3, 32, 16, 50)));

  // gpt2: 124,439,808, as nanoGPT counts GPT-2 small with its tied head. Counted from the layers'
  // tensors, as Sequential counts them, without allocating half a gigabyte twice.
  std::vector<std::unique_ptr<Layer>> layers = parse_model_spec("gpt2");
  ASSERT_EQ(layers.size(), 15u);
  Shape shape{1024};
  int64_t total = 0, tied = 0;
  for (auto& layer : layers) {
    shape = layer->setup(shape);
    for (const ParamSpec& p : layer->param_specs())
      (p.tied_to.empty() ? total : tied) += shape_numel(p.shape);
  }
  EXPECT_EQ(shape, (Shape{1024, 50257}));
  EXPECT_EQ(total, 124439808);
  EXPECT_EQ(total, gpt_param_count(12, 768, 1024, 50257));
  EXPECT_EQ(tied, 50257 * 768) << "the head uses wte's [50257, 768] without a copy";
}

TEST(Gpt, SpecsThatAreNotAModel) {
  using testing::expect_input_error;
  const auto error = [](const std::string& spec, const std::string& phrase) {
    expect_input_error([&] { build(spec, {4}); }, "model spec \"", phrase);
  };
  error("gpt(n_layer=2, n_head=3, n_embd=8, block_size=6, vocab_size=11)",
        "gpt n_embd 8 is not a multiple of n_head 3");
  error("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6)", "gpt needs vocab_size");
  error("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11, bias=0)",
        "gpt has no argument 'bias'");
  error("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11, dropout=1)",
        "gpt dropout '1' must be a number in [0");
  error("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11, dropout=-0.1)",
        "gpt dropout '-0.1' must be a number in [0");
  error("gpt(n_layer=2, n_head=2, n_embd=8, n_head=4, block_size=6, vocab_size=11)",
        "gpt is given 'n_head' twice");
  error("gpt(n_layer=0, n_head=2, n_embd=8, block_size=6, vocab_size=11)",
        "gpt n_layer 0 is out of range");
  error("gpt(n_layer=5000, n_head=2, n_embd=8, block_size=6, vocab_size=11)",
        "gpt n_layer 5000 is out of range [1, 1024]");
  error("gpt(n_layer=2, n_head=2, n_embd=-8, block_size=6, vocab_size=11)",
        "gpt n_embd -8 is out of range");
  error("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=x)",
        "gpt vocab_size 'x' is not an integer");
  error("gpt(2, 2, 8, 6, 11)", "gpt takes its arguments by name");
  error(std::string(kTwoLayers) + " linear(3)", "must be the spec's only layer");
  error(std::string("residual(") + kTwoLayers + ")", "must be the spec's only layer");
  error("gpt", "gpt needs n_layer");
  error("linear(out=3, out=4)", "linear is given 'out' twice");

  // Inputs the model cannot take: longer than block_size, or not a sequence of ids.
  expect_input_error([] { build(kTwoLayers, {7}); }, "model: Embedding(wte=(11, 8), wpe=(6, 8))",
                     "takes sequences [T] of 1 to block_size 6 token ids, got [7]");
  expect_input_error(
      [] {
        build(kTwoLayers, {1, 28, 28});
      },
      "model: Embedding(wte=(11, 8), wpe=(6, 8))", "got [1, 28, 28]");
}

// Layers put together by hand (the library, not the spec) that cannot form a model.
TEST(Gpt, LayersOutOfPlaceAreRefused) {
  using testing::expect_input_error;
  expect_input_error(
      [] {
        std::vector<std::unique_ptr<Layer>> layers;
        layers.push_back(std::make_unique<Linear>(4));
        layers.push_back(std::make_unique<Embedding>(11, 6, 8));
        Sequential net(std::move(layers), cpu(), {4});
      },
      "model: layer 1 Embedding", "takes int32 inputs (token ids), so it must be the first layer");
  expect_input_error(
      [] {
        std::vector<std::unique_ptr<Layer>> layers;
        layers.push_back(std::make_unique<Embedding>(11, 6, 8));
        layers.push_back(std::make_unique<TiedHead>("transformer.wte.weight", 11, 8));
        Sequential net(std::move(layers), cpu(), {4});
      },
      "model: layer 1 Linear(8, 11, bias=False)",
      "tied to transformer.wte.weight, which no layer before it holds");
  expect_input_error(
      [] {
        std::vector<std::unique_ptr<Layer>> layers;
        layers.push_back(std::make_unique<Embedding>(11, 6, 8));
        layers.back()->set_module_name("transformer");
        layers.push_back(std::make_unique<TiedHead>("transformer.wpe.weight", 11, 8));
        Sequential net(std::move(layers), cpu(), {4});
      },
      "model: layer 1 Linear(8, 11, bias=False)",
      "tied to transformer.wpe.weight [6, 8] but has the shape [11, 8]");
}

// Parameter views of a model, read on the host.
std::vector<float> tensor(const Sequential& net, const std::vector<float>& host,
                          const std::string& name) {
  for (const ParamInfo& p : net.param_info())
    if (p.name == name)
      return {host.begin() + static_cast<std::ptrdiff_t>(p.elem_offset),
              host.begin() + static_cast<std::ptrdiff_t>(p.elem_offset + p.numel)};
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

// GPT-2's initialisation: N(0, 0.02) for embeddings and Linear weights, N(0, 0.02/sqrt(2 L)) for
// each c_proj weight, zero biases, LayerNorm weight 1 and bias 0. The sample mean and standard
// deviation of n draws from N(0, s) have standard errors s / sqrt(n) and s / sqrt(2 n); bounds of
// 5 standard errors fail a correct draw with probability below 1e-6 per check, while a std off by
// 10% (0.02 for a c_proj, say) is more than 10 standard errors off for every tensor of 4k+
// elements checked here.
TEST(Gpt, InitialisesAsGpt2) {
  const int n_layer = 3;
  const auto net =
      build("gpt(n_layer=3, n_head=4, n_embd=64, block_size=64, vocab_size=300)", {64});
  net->init_params(7);
  const std::vector<float> host = net->params_to_host();
  const double projection_std = 0.02 / std::sqrt(2.0 * n_layer);
  size_t normal_tensors = 0, projections = 0;
  for (const ParamInfo& p : net->param_info()) {
    SCOPED_TRACE(p.name);
    const std::vector<float> v = tensor(*net, host, p.name);
    const auto ends_with = [&](const std::string& s) {
      return p.name.size() >= s.size() &&
             p.name.compare(p.name.size() - s.size(), s.size(), s) == 0;
    };
    const bool layer_norm =
        ends_with("ln_1.weight") || ends_with("ln_2.weight") || ends_with("ln_f.weight");
    if (layer_norm) {
      EXPECT_EQ(p.init.kind, Init::Kind::Constant);
      EXPECT_EQ(v, std::vector<float>(v.size(), 1.0f));
      continue;
    }
    if (ends_with(".bias")) {
      EXPECT_EQ(p.init.kind, Init::Kind::Constant);
      EXPECT_EQ(v, std::vector<float>(v.size(), 0.0f));
      continue;
    }
    const bool projection = ends_with("c_proj.weight");
    const double want = projection ? projection_std : 0.02;
    EXPECT_EQ(p.init.kind, Init::Kind::Normal);
    EXPECT_NEAR(p.init.value, want, 1e-9);
    double sum = 0, sum_sq = 0;
    for (float x : v) {
      sum += x;
      sum_sq += static_cast<double>(x) * x;
    }
    const double n = static_cast<double>(v.size());
    const double mean = sum / n, std = std::sqrt(sum_sq / n - mean * mean);
    ASSERT_GE(n, 4096);
    EXPECT_LT(std::fabs(mean), 5 * want / std::sqrt(n));
    EXPECT_LT(std::fabs(std - want), 5 * want / std::sqrt(2 * n));
    ++normal_tensors;
    projections += projection;
  }
  EXPECT_EQ(normal_tensors, 2u + 4 * n_layer);  // wte, wpe; c_attn, c_proj, c_fc, c_proj
  EXPECT_EQ(projections, 2u * n_layer);

  // Tensors draw from streams of their own, and the seed decides them.
  EXPECT_NE(tensor(*net, host, "transformer.h.0.attn.c_attn.weight"),
            tensor(*net, host, "transformer.h.1.attn.c_attn.weight"));
  net->init_params(7);
  EXPECT_EQ(net->params_to_host(), host);
  net->init_params(8);
  EXPECT_NE(net->params_to_host(), host);
}

// The normal draw itself: a pure function of (seed, index), with the moments of N(0, 1). Over
// n = 10^6 draws the standard errors of the mean, the variance and the fourth moment are
// 1e-3, 1.4e-3 and 9.8e-3 (sqrt(96 / n)); the bounds are 5 of them.
TEST(Gpt, NormalDrawHasTheMomentsOfAStandardNormal) {
  const int n = 1000000;
  double m1 = 0, m2 = 0, m4 = 0, largest = 0;
  for (int i = 0; i < n; ++i) {
    const double z = normal_float(42, static_cast<uint64_t>(i));
    m1 += z;
    m2 += z * z;
    m4 += z * z * z * z;
    largest = std::max(largest, std::fabs(z));
  }
  EXPECT_NEAR(m1 / n, 0.0, 5e-3);
  EXPECT_NEAR(m2 / n, 1.0, 7e-3);
  EXPECT_NEAR(m4 / n, 3.0, 5e-2);
  EXPECT_GT(largest, 4.0);  // tails are there: P(|z| > 4) n is about 63 draws
  EXPECT_LT(largest, 5.8);  // and bounded by the 24-bit uniforms
  EXPECT_EQ(normal_float(42, 12345), normal_float(42, 12345));
  EXPECT_NE(normal_float(42, 12345), normal_float(43, 12345));
}

// The mlp and cnn presets keep PyTorch's uniform initialisation of every tensor.
TEST(Gpt, ImageModelsKeepTheirUniformInit) {
  const auto net = build("cnn", {1, 28, 28});
  for (const ParamInfo& p : net->param_info()) {
    EXPECT_EQ(p.init.kind, Init::Kind::Uniform) << p.name;
    EXPECT_EQ(p.uses, 1) << p.name;
    EXPECT_TRUE(net->tied_params(static_cast<size_t>(p.layer)).empty());
  }
}

// A Communicator that records the start of each allreduce: where in the gradient buffer it runs
// and which stage of backward had been reported when it started.
class RecordingCommunicator final : public Communicator {
 public:
  struct Call {
    size_t elem_offset;
    int stage;
  };
  std::vector<Call> calls;
  const float* base = nullptr;
  int stage = -1;

  std::string name() const override { return "recording"; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  std::unique_ptr<Work> allreduce_async(void* data, size_t, DataType, ReduceOp) override {
    calls.push_back({static_cast<size_t>(static_cast<const float*>(data) - base), stage});
    return std::make_unique<DoneWork>();
  }
  std::unique_ptr<Work> reduce_scatter_async(const void*, void*, size_t, DataType,
                                             ReduceOp) override {
    return std::make_unique<DoneWork>();
  }
  void broadcast(void*, size_t, DataType, int) override {}
  std::unique_ptr<Work> allgather_async(const void*, void*, size_t, DataType) override {
    return std::make_unique<DoneWork>();
  }
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  struct DoneWork final : Work {
    void wait() override {}
    double start_time() const override { return 0; }
    double end_time() const override { return 0; }
  };
};

// The tied tensor is stored once (wte), used twice: by the head (the last layer, first in
// backward) and by the embedding (layer 0, last). Its range therefore counts two uses and has
// stage 0, and the trainer reports the head's use from the head's stage. Its bucket must start
// only after the embedding's backward; every other bucket as soon as its block is done.
TEST(Gpt, TiedWeightCountsTwoUsesAndIsFinalAfterTheEmbedding) {
  const auto net = build(kTwoLayers, {6});
  net->init_params(3);
  const std::vector<ParamInfo>& info = net->param_info();
  ASSERT_EQ(info[0].name, "transformer.wte.weight");
  EXPECT_EQ(info[0].uses, 2);
  EXPECT_EQ(info[0].layer, 0);
  for (size_t t = 1; t < info.size(); ++t) EXPECT_EQ(info[t].uses, 1) << info[t].name;
  const size_t head = net->num_layers() - 1;
  EXPECT_EQ(net->tied_params(head), std::vector<size_t>{0});
  for (size_t i = 0; i < head; ++i) EXPECT_TRUE(net->tied_params(i).empty()) << i;

  const std::vector<ParamRange> ranges = param_ranges(info);
  EXPECT_EQ(ranges[0].uses, 2);
  EXPECT_EQ(ranges[0].stage, 0);

  // One bucket per tensor, so that the order of the allreduces shows when each tensor is final.
  const std::vector<Bucket> buckets = assign_buckets(info, 1, 1);
  ASSERT_EQ(buckets.size(), info.size());
  RecordingCommunicator comm;
  comm.base = net->grads();
  Reducer reducer(comm, cpu(), buckets, ranges);

  const int batch = 2, t = 6, v = 11;
  std::vector<int32_t> tokens(batch * t), targets(batch * t);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(random_u64(5, i) % v);
    targets[i] = static_cast<int32_t>(random_u64(6, i) % v);
  }
  const int ld = static_cast<int>(net->output_row_stride());
  std::vector<float> dlogits(tokens.size() * ld);
  for (int step = 0; step < 2; ++step) {  // the counts start again each step
    SCOPED_TRACE(step);
    comm.calls.clear();
    net->zero_grad();
    const float* logits = net->forward(tokens.data(), batch, true, 0).as<float>();
    SoftmaxCrossEntropy().compute(cpu(), logits, targets.data(), batch * t, v, ld,
                                  1.0f / (batch * t), dlogits.data());
    reducer.begin(net->grads());
    // What the trainer's backward does at each stage (src/train/model.cpp, train_step).
    net->backward(dlogits.data(), batch, [&](int layer) {
      comm.stage = layer;
      for (size_t p : net->tied_params(static_cast<size_t>(layer))) reducer.param_done(p);
      reducer.stage_done(layer);
    });
    ASSERT_EQ(comm.calls.size(), info.size()) << "every bucket started during backward";
    reducer.finish();
    // In reverse buffer order; each as soon as its layer is done: wte, the first tensor, last,
    // once the embedding (stage 0) is done, not when the head (stage 4) is.
    for (size_t b = 0; b < info.size(); ++b) {
      const ParamInfo& p = info[info.size() - 1 - b];
      EXPECT_EQ(comm.calls[b].elem_offset, p.elem_offset) << p.name;
      EXPECT_EQ(comm.calls[b].stage, p.layer) << p.name;
    }
  }
}

// dropout=p: a Dropout(p) after the embeddings and at the end of each block's two branches, in
// training only; the same parameters, and in evaluation the same logits, as without.
TEST(Gpt, DropoutActsInTrainingOnly) {
  const auto plain = build(kTwoLayers, {6});
  const auto dropped =
      build("gpt(n_layer=2, n_head=2, n_embd=8, block_size=6, vocab_size=11, dropout=0.5)", {6});
  ASSERT_EQ(dropped->num_params(), plain->num_params());
  for (size_t i = 0; i < plain->param_info().size(); ++i)
    EXPECT_EQ(dropped->param_info()[i].name, plain->param_info()[i].name);
  plain->init_params(3);
  dropped->init_params(3);
  ASSERT_TRUE(
      std::equal(plain->params(), plain->params() + plain->num_params(), dropped->params()));
  // The embedding's drop, then in each block attn.resid_dropout and mlp.dropout.
  EXPECT_EQ(dropped->num_layers(), plain->num_layers() + 1);
  EXPECT_NE(dropped->layer(1).describe().find("Dropout(p=0.5)"), std::string::npos);
  for (size_t i = 2; i < 4; ++i) {  // the two blocks
    const std::string d = dropped->layer(i).describe();
    size_t count = 0;
    for (size_t at = d.find("Dropout(p=0.5)"); at != std::string::npos;
         at = d.find("Dropout(p=0.5)", at + 1))
      ++count;
    EXPECT_EQ(count, 2u) << d;
    EXPECT_EQ(plain->layer(i - 1).describe().find("Dropout"), std::string::npos);
  }

  const int batch = 2, t = 6, v = 11;
  std::vector<int32_t> tokens(batch * t);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(random_u64(5, i) % v);
  const auto logits = [&](Sequential& net, bool training, uint64_t seed) {
    const float* y = net.forward(tokens.data(), batch, training, seed).as<float>();
    const size_t ld = static_cast<size_t>(net.output_row_stride());
    return testing::packed_rows(std::vector<float>(y, y + tokens.size() * ld), tokens.size(),
                                static_cast<size_t>(v), ld);
  };
  const std::vector<float> reference = logits(*plain, false, 0);
  EXPECT_EQ(logits(*dropped, false, 0), reference) << "evaluation drops nothing";
  EXPECT_EQ(logits(*plain, true, 9), reference) << "no dropout layer, no randomness";
  const std::vector<float> a = logits(*dropped, true, 9), b = logits(*dropped, true, 9);
  EXPECT_EQ(a, b) << "the same seed, the same masks";
  EXPECT_NE(a, reference);
  EXPECT_NE(logits(*dropped, true, 10), a) << "another seed, other masks";
}

// The embedding takes token ids and nothing else; an image model still takes float32.
TEST(Gpt, InputsOfTheWrongTypeAreRefused) {
  const auto net = build(kTwoLayers, {4});
  const std::vector<float> floats(8, 1.0f);
  EXPECT_THROW(net->forward(floats.data(), 2, false, 0), SystemError);
  const auto mlp = build("mlp", {1, 28, 28});
  const std::vector<int32_t> ids(784, 1);
  EXPECT_THROW(mlp->forward(ConstTensorRef(ids.data()), 1, false, 0), SystemError);
  // Ids outside the vocabulary: one line naming the position.
  const std::vector<int32_t> bad = {1, 2, 11, 3};
  testing::expect_input_error([&] { net->forward(ConstTensorRef(bad.data()), 1, false, 0); },
                              "embedding: token id 11", "outside the vocabulary of 11 tokens");
}

}  // namespace
}  // namespace dpt
