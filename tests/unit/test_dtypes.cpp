// Element types: the ones each op takes (float32 everywhere today, and a clear refusal naming the
// asker, the backend, the op and the type for anything else), buffers and tensor references that
// carry their type and refuse to be read as another, and a model that checks its layers' ops
// against its activation type when it is built. The seam bf16 will use.
#include <gtest/gtest.h>

#include <string>

#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/core/dtype.hpp"
#include "src/core/error.hpp"
#include "src/core/tensor_ref.hpp"
#include "src/model/model_spec.hpp"
#include "src/model/sequential.hpp"
#include "tests/common/expect_input_error.hpp"

namespace {

// bfloat16 only for the conversion (--grad-comm bf16) and the GEMM, so far.
TEST(OpDtypes, TheCpuBackendTakesFloat32ForEveryOpAndBf16ToConvertAndMultiply) {
  const auto be = dpt::make_cpu_backend(1);
  for (dpt::Op op : dpt::kAllOps) {
    EXPECT_TRUE(be->takes(op, dpt::DataType::F32)) << dpt::op_name(op);
    EXPECT_EQ(be->takes(op, dpt::DataType::BF16), op == dpt::Op::Convert || op == dpt::Op::Gemm)
        << dpt::op_name(op);
    EXPECT_NO_THROW(be->require(op, dpt::DataType::F32, "layer 0 Linear(4, 2)"));
  }
}

TEST(OpDtypes, ARefusalNamesTheAskerBackendOpAndType) {
  const auto be = dpt::make_cpu_backend(1);
  dpt::testing::expect_input_error(
      [&] { be->require(dpt::Op::LayerNorm, dpt::DataType::BF16, "layer 0 LayerNorm((4,))"); },
      "layer 0 LayerNorm((4,)): the " + be->name() + " backend's layer_norm",
      "does not take bfloat16 (it takes float32)");
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
        dpt::Sequential net(dpt::parse_model_spec("flatten linear(3) relu linear(2)"), *be,
                            {1, 2, 2}, dpt::DataType::BF16);
      },
      "model: layer 1 Linear(4, 3): the " + be->name() + " backend's add_bias",
      "does not take bfloat16");
  // Inside a residual block the block is named, and its body's ops are asked for too.
  dpt::testing::expect_input_error(
      [&] {
        dpt::Sequential net(dpt::parse_model_spec("residual(relu) linear(2)"), *be, {4},
                            dpt::DataType::BF16);
      },
      "model: layer 0 Residual(ReLU())", "relu does not take bfloat16");
  dpt::Sequential net(dpt::parse_model_spec("flatten linear(3) relu linear(2)"), *be, {1, 2, 2});
  EXPECT_EQ(net.activation_dtype(), dpt::DataType::F32);
}

}  // namespace
