// The ops a Backend offers, by name, so that a backend can say which element types each one
// takes (Backend::takes) and a layer can ask before it runs: the seam where bf16 joins. Today
// every op of every backend takes float32, and convert bfloat16 too (--grad-comm bf16).
#pragma once

namespace dpt {

enum class Op {
  Fill,
  FillUniform,
  Gemm,
  AddBias,
  BiasGrad,
  Relu,
  Dropout,
  Mul,
  Add,
  LayerNorm,
  Gelu,
  Attention,
  Embedding,
  Conv2d,
  MaxPool2d,
  SoftmaxCrossEntropy,
  SgdUpdate,
  AdamWUpdate,
  CountNonfinite,
  SumSquares,
  Scale,
  Convert,
};
inline constexpr Op kAllOps[] = {
    Op::Fill,      Op::FillUniform, Op::Gemm,           Op::AddBias,
    Op::BiasGrad,  Op::Relu,        Op::Dropout,        Op::Mul,
    Op::Add,       Op::LayerNorm,   Op::Gelu,           Op::Attention,
    Op::Embedding, Op::Conv2d,      Op::MaxPool2d,      Op::SoftmaxCrossEntropy,
    Op::SgdUpdate, Op::AdamWUpdate, Op::CountNonfinite, Op::SumSquares,
    Op::Scale,     Op::Convert};

// Its name in messages: "gemm", "softmax_cross_entropy", ...
const char* op_name(Op op);

}  // namespace dpt
