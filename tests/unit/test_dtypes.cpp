// Element types: the ones each op takes (float32 everywhere, bf16 for the ops of a transformer's
// and an MLP's step, and a clear refusal naming the asker, the backend, the op and the type for
// anything else), buffers and tensor references that carry their type and refuse to be read as
// another, and a model that checks its layers' ops against its activation type when it is built.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/core/bf16.hpp"
#include "src/core/dtype.hpp"
#include "src/core/error.hpp"
#include "src/core/tensor_ref.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "tests/common/expect_input_error.hpp"

namespace {

// bfloat16 for the ops of --precision bf16 on a gpt or an mlp; not for the convolution's, the
// optimizers' (their state and the master weights are float32) nor the checks over gradients.
TEST(OpDtypes, TheCpuBackendTakesFloat32ForEveryOpAndBf16ForTheMixedPrecisionOps) {
  using dpt::Op;
  const auto be = dpt::make_cpu_backend(1);
  const std::vector<Op> float32_only = {Op::Fill,           Op::FillUniform, Op::Conv2d,
                                        Op::MaxPool2d,      Op::SgdUpdate,   Op::AdamWUpdate,
                                        Op::CountNonfinite, Op::SumSquares,  Op::Scale};
  for (Op op : dpt::kAllOps) {
    EXPECT_TRUE(be->takes(op, dpt::DataType::F32)) << dpt::op_name(op);
    const bool only = std::find(float32_only.begin(), float32_only.end(), op) != float32_only.end();
    EXPECT_EQ(be->takes(op, dpt::DataType::BF16), !only) << dpt::op_name(op);
    EXPECT_FALSE(be->takes(op, dpt::DataType::F64)) << dpt::op_name(op);
    EXPECT_NO_THROW(be->require(op, dpt::DataType::F32, "layer 0 Linear(4, 2)"));
  }
}

TEST(OpDtypes, ARefusalNamesTheAskerBackendOpAndType) {
  const auto be = dpt::make_cpu_backend(1);
  dpt::testing::expect_input_error(
      [&] { be->require(dpt::Op::Conv2d, dpt::DataType::BF16, "layer 0 Conv2d(1, 4)"); },
      "layer 0 Conv2d(1, 4): the " + be->name() + " backend's conv2d",
      "does not take bfloat16 (it takes float32)");
  dpt::testing::expect_input_error(
      [&] { be->require(dpt::Op::LayerNorm, dpt::DataType::F64, "layer 0 LayerNorm((4,))"); },
      "layer 0 LayerNorm((4,)): the " + be->name() + " backend's layer_norm",
      "does not take float64 (it takes float32, bfloat16)");
}

TEST(OpDtypes, NamesAndSizes) {
  EXPECT_STREQ(dpt::op_name(dpt::Op::SoftmaxCrossEntropy), "softmax_cross_entropy");
  EXPECT_STREQ(dpt::dtype_name(dpt::DataType::BF16), "bfloat16");
  EXPECT_EQ(dpt::dtype_size(dpt::DataType::BF16), 2u);
  static_assert(dpt::dtype_of<float>() == dpt::DataType::F32);
  static_assert(dpt::dtype_of<int32_t>() == dpt::DataType::I32);
}

TEST(Dtypes, BuffersCarryTheirTypeAndCount) {
  const auto be = dpt::make_cpu_backend(1);
  dpt::DeviceBuffer labels(*be, dpt::DataType::I32, 10);
  EXPECT_EQ(labels.dtype(), dpt::DataType::I32);
  EXPECT_EQ(labels.count(), 10u);
  EXPECT_EQ(labels.bytes(), 40u);
  EXPECT_NE(labels.as<int32_t>(), nullptr);
  EXPECT_THROW(labels.data(), dpt::SystemError);  // float32 memory it is not
  EXPECT_THROW(labels.as<int64_t>(), dpt::SystemError);
  // Shrinking keeps the allocation but takes the new type and count.
  labels.resize(*be, dpt::DataType::F32, 4);
  EXPECT_EQ(labels.count(), 4u);
  EXPECT_EQ(labels.bytes(), 40u);
  EXPECT_EQ(labels.ref().dtype(), dpt::DataType::F32);
  EXPECT_NO_THROW(labels.data());
}

TEST(Dtypes, TensorRefsRefuseToBeReadAsAnotherType) {
  float f[2] = {1, 2};
  const dpt::TensorRef t = f;
  EXPECT_EQ(t.dtype(), dpt::DataType::F32);
  EXPECT_EQ(t.as<float>(), f);
  const dpt::ConstTensorRef c = t;
  EXPECT_EQ(c.as<float>(), f);
  const dpt::ConstTensorRef bf16(f, dpt::DataType::BF16);
  try {
    bf16.as<float>();
    ADD_FAILURE() << "a bfloat16 tensor was read as float32";
  } catch (const dpt::SystemError& e) {
    EXPECT_STREQ(e.what(), "a tensor of bfloat16 used as float32");
  }
  const dpt::TensorRef none = nullptr;
  EXPECT_FALSE(none);
  EXPECT_EQ(none.as<int32_t>(), nullptr);  // null is null whatever the type
}

TEST(Dtypes, AModelRefusesAnActivationTypeItsLayersCannotComputeIn) {
  const auto be = dpt::make_cpu_backend(1);
  dpt::testing::expect_input_error(
      [&] {
        dpt::Sequential net(dpt::parse_model_spec("conv2d(3,3,pad=1) relu flatten linear(2)"), *be,
                            {1, 4, 4}, dpt::DataType::BF16);
      },
      "model: layer 0 Conv2d(1, 3", "conv2d does not take bfloat16");
  // Inside a residual block the block is named, and its body's ops are asked for too.
  dpt::testing::expect_input_error(
      [&] {
        dpt::Sequential net(dpt::parse_model_spec("residual(linear(4) relu) linear(2)"), *be, {4},
                            dpt::DataType::F64);
      },
      "model: layer 0 Residual(", "does not take float64");
  dpt::Sequential net(dpt::parse_model_spec("flatten linear(3) relu linear(2)"), *be, {1, 2, 2});
  EXPECT_EQ(net.activation_dtype(), dpt::DataType::F32);
  dpt::Sequential mixed(dpt::parse_model_spec("flatten linear(3) relu linear(2)"), *be, {1, 2, 2},
                        dpt::DataType::BF16);
  EXPECT_EQ(mixed.activation_dtype(), dpt::DataType::BF16);
  EXPECT_EQ(mixed.working_params().dtype(), dpt::DataType::BF16);
}

// A bf16 model: float32 features in, its working copy written from the float32 masters before
// the first forward after params() was taken, to nearest or stochastically from the seed.
TEST(Dtypes, ABf16ModelComputesWithAWorkingCopyOfItsMasters) {
  using dpt::DataType;
  const auto be = dpt::make_cpu_backend(1);
  const char* spec = "flatten linear(8) relu linear(3)";
  dpt::Sequential f32(dpt::parse_model_spec(spec), *be, {1, 4, 4});
  dpt::Sequential bf16(dpt::parse_model_spec(spec), *be, {1, 4, 4}, DataType::BF16);
  EXPECT_EQ(bf16.input_dtype(), DataType::F32);  // features stay float32; forward converts
  f32.init_params(5);
  bf16.init_params(5);
  std::vector<float> x(2 * 16);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i));
  const auto outputs = [&](dpt::Sequential& net) {
    const dpt::ConstTensorRef y = net.forward(x.data(), 2, false, 0);
    std::vector<float> out(6);
    if (y.dtype() == DataType::F32) {
      std::copy_n(y.as<float>(), out.size(), out.begin());
    } else {
      be->convert(y.data(), y.dtype(), out.data(), DataType::F32, out.size());
    }
    return out;
  };
  const std::vector<float> want = outputs(f32), got = outputs(bf16);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NE(got[i], want[i]) << i;  // rounded: bf16 has 8 bits of mantissa
    EXPECT_NEAR(got[i], want[i], 0.02 * (std::fabs(want[i]) + 0.1)) << i;
  }
  // The working copy is the masters rounded to nearest.
  const std::vector<float> masters = bf16.params_to_host();
  std::vector<uint16_t> copy(bf16.flat_size());
  be->copy_to_host(copy.data(), bf16.working_params().data(), copy.size() * sizeof(uint16_t));
  for (size_t i = 0; i < copy.size(); ++i) ASSERT_EQ(copy[i], dpt::float_to_bf16(masters[i])) << i;
  // Writing the masters through params() makes the next forward see them.
  bf16.params()[0] += 1.0f;
  EXPECT_NE(outputs(bf16), got);
  bf16.params()[0] -= 1.0f;
  EXPECT_EQ(outputs(bf16), got);
  // Stochastic rounding: another copy, the same one for the same seed, another for another.
  bf16.set_weight_rounding(dpt::Sequential::WeightRounding::Stochastic, 7);
  const std::vector<float> s7 = outputs(bf16);
  EXPECT_NE(s7, got);
  bf16.set_weight_rounding(dpt::Sequential::WeightRounding::Stochastic, 8);
  EXPECT_NE(outputs(bf16), s7);
  bf16.set_weight_rounding(dpt::Sequential::WeightRounding::Stochastic, 7);
  EXPECT_EQ(outputs(bf16), s7);
}

}  // namespace
