// Element types: the ones each op takes (float32 everywhere, bf16 for the ops of a transformer's
// and an MLP's step, and a clear refusal naming the asker, the backend, the op and the type for
// anything else), buffers and tensor references that carry their type and refuse to be read as
// another, and a model that checks its layers' ops against its activation type when it is built.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
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

}  // namespace
