// A whole model on both backends: the same parameters and batch must give the same logits, loss
// and gradients, and the same parameters after SGD steps.
//
// The bound is 1e-4 rather than the per-op 1e-5: each layer's rounding differences (about 1e-7
// relative) pass through the layers after it in forward and the layers before it in backward,
// and gradient tensors such as biases are sums with much cancellation, whose relative error is
// larger than their terms'. An indexing bug gives errors near 1. (A pre-activation within
// rounding of zero, or two nearly equal values in a pooling window, could send a gradient
// elsewhere on one backend; with these sizes and seeds that is unlikely, and a failure of that
// kind shows in one tensor only, with an error well below 1.)
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "src/model/loss.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "tests/common/compare_params.hpp"
#include "tests/gpu/cuda_parity.hpp"

namespace dpt::gputest {
namespace {

class CudaModel : public CudaParity {};

constexpr double kModelTol = 1e-4;

struct ModelRun {
  std::vector<std::vector<float>> logits;  // per step
  std::vector<double> loss;                // per step
  std::vector<int64_t> correct;            // per step
  std::vector<std::vector<float>> grads;   // per step, the flat gradient buffer
  std::vector<float> params;               // after the last step
  std::vector<ParamInfo> info;
};

// `steps` training steps of plain SGD with momentum on one batch, all on backend `be`.
ModelRun train(Backend& be, const std::string& spec, const Shape& input, int batch,
               const std::vector<float>& x, const std::vector<int32_t>& labels, int steps) {
  Sequential net(parse_model_spec(spec), be, input);
  net.init_params(42);
  const int classes = static_cast<int>(net.num_outputs());
  DeviceBuffer x_dev = CudaParity::upload(be, x), y_dev = CudaParity::upload(be, labels);
  DeviceBuffer dlogits(be, DataType::F32, static_cast<size_t>(batch) * classes);
  DeviceBuffer momentum(be, DataType::F32, net.flat_size());
  SgdParams sgd;
  sgd.lr = 0.05f;
  sgd.momentum = 0.9f;
  sgd.weight_decay = 1e-4f;
  ModelRun run;
  run.info = net.param_info();
  for (int step = 0; step < steps; ++step) {
    net.zero_grad();
    const float* logits = net.forward(x_dev.data(), batch, true, 1000 + step).as<float>();
    const LossResult loss =
        SoftmaxCrossEntropy().compute(be, logits, y_dev.as<int32_t>(), batch, classes, classes,
                                      1.0f / static_cast<float>(batch), dlogits.data());
    net.backward(dlogits.data(), batch);
    run.logits.push_back(CudaParity::download(be, logits, static_cast<size_t>(batch) * classes));
    run.loss.push_back(loss.loss_sum);
    run.correct.push_back(loss.correct);
    run.grads.push_back(CudaParity::download(be, net.grads(), net.flat_size()));
    be.sgd_update(net.params(), net.grads(), momentum.data(), net.flat_size(), sgd);
  }
  run.params = net.params_to_host();
  return run;
}

void expect_same_training(const std::string& spec, const Shape& input, int batch, int steps,
                          uint64_t seed) {
  SCOPED_TRACE(spec);
  const size_t numel = static_cast<size_t>(shape_numel(input)) * batch;
  const std::vector<float> x = CudaParity::random_floats(numel, seed, 0.0f, 1.0f);
  Sequential probe(parse_model_spec(spec), CudaParity::cpu(), input);
  const int classes = static_cast<int>(probe.num_outputs());
  const std::vector<int32_t> labels = CudaParity::random_labels(batch, classes, seed + 1);

  const ModelRun cpu = train(CudaParity::cpu(), spec, input, batch, x, labels, steps);
  const ModelRun gpu = train(CudaParity::gpu(), spec, input, batch, x, labels, steps);
  for (int step = 0; step < steps; ++step) {
    const std::string at = " at step " + std::to_string(step);
    expect_close(gpu.logits[step], cpu.logits[step], kModelTol, "logits" + at);
    EXPECT_NEAR(gpu.loss[step], cpu.loss[step], kModelTol * cpu.loss[step]) << "loss" << at;
    // A hit is decided by an arg-max that rounding could in principle flip; it is not.
    EXPECT_EQ(gpu.correct[step], cpu.correct[step]) << "correct" << at;
    for (const ParamInfo& p : cpu.info) {
      const auto first = static_cast<std::ptrdiff_t>(p.elem_offset);
      const auto last = static_cast<std::ptrdiff_t>(p.elem_offset + p.numel);
      const std::vector<float> g(gpu.grads[step].begin() + first, gpu.grads[step].begin() + last);
      const std::vector<float> c(cpu.grads[step].begin() + first, cpu.grads[step].begin() + last);
      expect_close(g, c, kModelTol, "gradient of " + p.name + at);
    }
  }
  expect_close(gpu.params, cpu.params, kModelTol,
               "parameters after " + std::to_string(steps) + " SGD steps");
}

TEST_F(CudaModel, CnnPresetTrainsAlike) { expect_same_training("cnn", {1, 28, 28}, 4, 2, 2000); }

TEST_F(CudaModel, SmallCnnWithOddShapesAndDropoutTrainsAlike) {
  expect_same_training(
      "conv2d(6,3,stride=2,pad=1) relu maxpool2d(3,2) conv2d(5,1) relu flatten linear(32) relu "
      "dropout(0.3) linear(7)",
      {3, 17, 15}, 5, 3, 2100);
}

TEST_F(CudaModel, MlpPresetTrainsAlikeOnALastPartialBatch) {
  // A batch size of 3 after 8 exercises every op at a second shape (cuDNN plans, scratch).
  expect_same_training("mlp", {1, 28, 28}, 8, 2, 2200);
  expect_same_training("mlp", {1, 28, 28}, 3, 2, 2201);
}

// Residual blocks, nested, convolutional and with dropout inside: the skip connections' adds
// and each child's own dropout stream must be the same on both backends.
TEST_F(CudaModel, ResidualBlocksTrainAlike) {
  expect_same_training(
      "conv2d(4,3,pad=1) residual(conv2d(4,3,pad=1) relu dropout(0.2) conv2d(4,3,pad=1)) relu "
      "maxpool2d(2) flatten linear(16) residual(linear(8) relu residual(relu linear(8)) "
      "linear(16)) linear(5)",
      {1, 12, 12}, 4, 3, 2300);
}

// A gpt on both backends: token ids in, the loss over every position, AdamW (with weight decay
// on every tensor here: the test is of the ops, not of the grouping), dropout inside the blocks.
// The same bound as above: the errors pass through the same number of layers' rounding.
TEST_F(CudaModel, GptTrainsAlike) {
  const std::string spec =
      "gpt(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=50, dropout=0.1)";
  const int batch = 3, t = 16, v = 50, steps = 3;
  const std::vector<int32_t> tokens = CudaParity::random_labels(batch * t, v, 2400);
  const std::vector<int32_t> targets = CudaParity::random_labels(batch * t, v, 2401);
  struct Run {
    std::vector<std::vector<float>> logits, grads;
    std::vector<double> loss;
    std::vector<float> params;
    std::vector<ParamInfo> info;
  };
  const auto run = [&](Backend& be) {
    Sequential net(parse_model_spec(spec), be, {t});
    net.init_params(42);
    DeviceBuffer x = CudaParity::upload(be, tokens), y = CudaParity::upload(be, targets);
    const int ld = static_cast<int>(net.output_row_stride());
    const size_t rows = static_cast<size_t>(batch) * t;
    DeviceBuffer dlogits(be, DataType::F32, rows * ld);
    DeviceBuffer m(be, DataType::F32, net.flat_size()), s2(be, DataType::F32, net.flat_size());
    Run r;
    r.info = net.param_info();
    for (int step = 0; step < steps; ++step) {
      net.zero_grad();
      const float* logits =
          net.forward(ConstTensorRef(x.as<int32_t>()), batch, true, 500 + step).as<float>();
      const LossResult loss =
          SoftmaxCrossEntropy().compute(be, logits, y.as<int32_t>(), batch * t, v, ld,
                                        1.0f / static_cast<float>(batch * t), dlogits.data());
      net.backward(dlogits.data(), batch);
      r.logits.push_back(testing::packed_rows(CudaParity::download(be, logits, rows * ld), rows,
                                              static_cast<size_t>(v), static_cast<size_t>(ld)));
      r.loss.push_back(loss.loss_sum);
      r.grads.push_back(CudaParity::download(be, net.grads(), net.flat_size()));
      AdamWParams p;
      p.lr = 1e-2f;
      p.weight_decay = 0.1f;
      p.step = step + 1;
      be.adamw_update(net.params(), net.grads(), m.data(), s2.data(), net.flat_size(), p);
    }
    r.params = net.params_to_host();
    return r;
  };
  const Run cpu = run(CudaParity::cpu());
  const Run gpu = run(CudaParity::gpu());
  for (int step = 0; step < steps; ++step) {
    const std::string at = " at step " + std::to_string(step);
    expect_close(gpu.logits[step], cpu.logits[step], kModelTol, "logits" + at);
    EXPECT_NEAR(gpu.loss[step], cpu.loss[step], kModelTol * cpu.loss[step]) << "loss" << at;
    for (const ParamInfo& p : cpu.info) {
      const auto first = static_cast<std::ptrdiff_t>(p.elem_offset);
      const auto last = static_cast<std::ptrdiff_t>(p.elem_offset + p.numel);
      expect_close(
          std::vector<float>(gpu.grads[step].begin() + first, gpu.grads[step].begin() + last),
          std::vector<float>(cpu.grads[step].begin() + first, cpu.grads[step].begin() + last),
          kModelTol, "gradient of " + p.name + at);
    }
  }
  expect_close(gpu.params, cpu.params, kModelTol, "parameters after 3 AdamW steps");
}

// The same gpt computing in bf16 (--precision bf16) on both backends, one step: bf16
// activations and working weights, fp32 gradients. On the GPU, the native bf16 kernels, cuBLAS's
// bf16 GEMMs and, where cuDNN runs it at the size (the second model, whose heads are 64 wide, as
// GPT-2's), its flash attention; on the CPU, the bf16 twin. The two round float results at the
// same points but for attention's blocks, so they differ where float32 sums (added in other
// orders) fall on either side of a bf16 rounding boundary: one bf16 step (2^-8 relative) on
// those elements, carried through two blocks. Hence 2e-2 norm-wise; a broken conversion or a
// missing rounding is off by far more.
TEST_F(CudaModel, GptInBf16ComputesAlike) {
  struct Case {
    std::string spec;
    int t, c, n_head;
  };
  const int batch = 3, v = 50;
  constexpr double kBf16Tol = 2e-2;
  for (const Case& k :
       {Case{"gpt(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab_size=50)", 16, 32, 4},
        Case{"gpt(n_layer=2, n_head=2, n_embd=128, block_size=64, vocab_size=50)", 64, 128, 2}}) {
    const int t = k.t;
    const std::vector<int32_t> tokens = CudaParity::random_labels(batch * t, v, 2500);
    const std::vector<int32_t> targets = CudaParity::random_labels(batch * t, v, 2501);
    struct Run {
      std::vector<float> logits, grads;
      double loss = 0;
    };
    const auto run = [&](Backend& be) {
      Sequential net(parse_model_spec(k.spec), be, {t}, DataType::BF16);
      net.init_params(43);
      DeviceBuffer x = CudaParity::upload(be, tokens), y = CudaParity::upload(be, targets);
      const int ld = static_cast<int>(net.output_row_stride());
      const size_t rows = static_cast<size_t>(batch) * t, n = rows * ld;
      DeviceBuffer dlogits(be, DataType::BF16, n), wide(be, DataType::F32, n);
      net.zero_grad();
      const ConstTensorRef logits = net.forward(ConstTensorRef(x.as<int32_t>()), batch, true, 0);
      EXPECT_EQ(logits.dtype(), DataType::BF16);
      const LossResult loss =
          SoftmaxCrossEntropy().compute(be, logits, y.as<int32_t>(), batch * t, v, ld,
                                        1.0f / static_cast<float>(batch * t), dlogits.ref());
      net.backward(dlogits.ref(), batch);
      be.convert(logits.data(), DataType::BF16, wide.data(), DataType::F32, n);
      Run r;
      r.logits = testing::packed_rows(CudaParity::download(be, wide.data(), n), rows,
                                      static_cast<size_t>(v), static_cast<size_t>(ld));
      r.loss = loss.loss_sum;
      r.grads = CudaParity::download(be, net.grads(), net.flat_size());
      return r;
    };
    const std::string what =
        k.spec + (CudaParity::gpu().fused_attention(DataType::BF16, batch, t, k.c, k.n_head)
                      ? " (flash attention on the GPU)"
                      : " (unfused attention on the GPU)");
    std::printf("%s\n", what.c_str());
    const Run cpu = run(CudaParity::cpu());
    const Run gpu = run(CudaParity::gpu());
    expect_close(gpu.logits, cpu.logits, kBf16Tol, what + ": bf16 logits");
    EXPECT_NEAR(gpu.loss, cpu.loss, kBf16Tol * cpu.loss) << what << ": loss";
    expect_close(gpu.grads, cpu.grads, kBf16Tol, what + ": float32 gradients of a bf16 step");
  }
}

}  // namespace
}  // namespace dpt::gputest
