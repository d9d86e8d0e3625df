// Token and position embeddings, nanoGPT's transformer.wte and transformer.wpe together: for a
// sequence of T int32 token ids, out[t] = wte[id_t] + wpe[t], [T] -> [T, C]. Its tensors are
// "wte.weight" [vocab, C] and "wpe.weight" [block_size, C], each drawn N(0, 0.02) as GPT-2's
// are; a model names them under its module name ("transformer.wte.weight").
#pragma once

#include "src/model/layer.hpp"

namespace dpt {

class Embedding final : public Layer {
 public:
  Embedding(int64_t vocab_size, int64_t block_size, int64_t n_embd)
      : vocab_(vocab_size), block_size_(block_size), c_(n_embd) {}
  std::string describe() const override;
  // Throws InputError unless the input is [T] with 1 <= T <= block_size.
  Shape setup(const Shape& input) override;
  std::vector<ParamSpec> param_specs() const override;
  DataType input_dtype(DataType) const override { return DataType::I32; }
  std::vector<Op> ops() const override { return {Op::Embedding}; }
  int64_t vocab_size() const { return vocab_; }
  int64_t block_size() const { return block_size_; }
  // x holds int32 token ids in [0, vocab_size); the CPU backend refuses others (InputError).
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  // Adds into both tables' gradients; token ids have no gradient, so dx is left alone.
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  int64_t vocab_, block_size_, c_, t_ = 0;
};

}  // namespace dpt
