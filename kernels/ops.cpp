#include "kernels/ops.hpp"

#include "kernels/backend.hpp"
#include "src/core/error.hpp"

namespace dpt {

const char* op_name(Op op) {
  switch (op) {
    case Op::Fill:
      return "fill";
    case Op::FillUniform:
      return "fill_uniform";
    case Op::Gemm:
      return "gemm";
    case Op::AddBias:
      return "add_bias";
    case Op::BiasGrad:
      return "bias_grad";
    case Op::Relu:
      return "relu";
    case Op::Dropout:
      return "dropout";
    case Op::Mul:
      return "mul";
    case Op::Add:
      return "add";
    case Op::LayerNorm:
      return "layer_norm";
    case Op::Gelu:
      return "gelu";
    case Op::Attention:
      return "attention";
    case Op::Embedding:
      return "embedding";
    case Op::Conv2d:
      return "conv2d";
    case Op::MaxPool2d:
      return "maxpool2d";
    case Op::SoftmaxCrossEntropy:
      return "softmax_cross_entropy";
    case Op::SgdUpdate:
      return "sgd_update";
    case Op::AdamWUpdate:
      return "adamw_update";
    case Op::CountNonfinite:
      return "count_nonfinite";
    case Op::SumSquares:
      return "sum_squares";
    case Op::Scale:
      return "scale";
    case Op::Convert:
      return "convert";
  }
  return "unknown";
}

void check_gemm_ex_types(const std::string& backend, DataType a, DataType b, DataType c) {
  const auto floating = [](DataType t) { return t == DataType::F32 || t == DataType::BF16; };
  if (b != a || !floating(a) || !floating(c))
    throw SystemError(backend + " backend: gemm_ex of " + dtype_name(a) + " and " + dtype_name(b) +
                      " into " + dtype_name(c));
}

void check_loss_row_stride(const std::string& backend, int classes, int ld) {
  if (ld < classes)
    throw SystemError(backend + " backend: softmax_cross_entropy's rows are " + std::to_string(ld) +
                      " elements apart, fewer than their " + std::to_string(classes) + " classes");
}

void Backend::require(Op op, DataType t, const std::string& who) const {
  if (takes(op, t)) return;
  std::string known;
  for (DataType d : {DataType::F32, DataType::BF16, DataType::F64})
    if (takes(op, d)) known += (known.empty() ? "" : ", ") + std::string(dtype_name(d));
  throw InputError(who + ": the " + name() + " backend's " + op_name(op) + " does not take " +
                   dtype_name(t) + " (it takes " + (known.empty() ? "none" : known) + ")");
}

}  // namespace dpt
