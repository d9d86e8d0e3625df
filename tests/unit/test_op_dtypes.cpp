// The element types each op takes: float32 everywhere today, and a clear refusal naming the
// asker, the backend, the op and the type for anything else (the seam bf16 will use).
#include <gtest/gtest.h>

#include <string>

#include "kernels/backend.hpp"
#include "src/core/dtype.hpp"
#include "tests/common/expect_input_error.hpp"

namespace {

TEST(OpDtypes, TheCpuBackendTakesFloat32ForEveryOpAndNothingElse) {
  const auto be = dpt::make_cpu_backend(1);
  for (dpt::Op op : dpt::kAllOps) {
    EXPECT_TRUE(be->takes(op, dpt::DataType::F32)) << dpt::op_name(op);
    EXPECT_FALSE(be->takes(op, dpt::DataType::BF16)) << dpt::op_name(op);
    EXPECT_NO_THROW(be->require(op, dpt::DataType::F32, "layer 0 Linear(4, 2)"));
  }
}

TEST(OpDtypes, ARefusalNamesTheAskerBackendOpAndType) {
  const auto be = dpt::make_cpu_backend(1);
  dpt::testing::expect_input_error(
      [&] { be->require(dpt::Op::Gemm, dpt::DataType::BF16, "layer 0 Linear(4, 2)"); },
      "layer 0 Linear(4, 2): the " + be->name() + " backend's gemm",
      "does not take bfloat16 (it takes float32)");
}

TEST(OpDtypes, NamesAndSizes) {
  EXPECT_STREQ(dpt::op_name(dpt::Op::SoftmaxCrossEntropy), "softmax_cross_entropy");
  EXPECT_STREQ(dpt::dtype_name(dpt::DataType::BF16), "bfloat16");
  EXPECT_EQ(dpt::dtype_size(dpt::DataType::BF16), 2u);
  static_assert(dpt::dtype_of<float>() == dpt::DataType::F32);
  static_assert(dpt::dtype_of<int32_t>() == dpt::DataType::I32);
}

}  // namespace
