// The output head of a language model tied to its token embedding, nanoGPT's lm_head:
// logits [T, vocab] = x [T, C] wte^T, no bias. It holds no tensor: its weight is the embedding's
// [vocab, C] matrix, named in full (ParamSpec::tied_to), which the model stores once. Its
// backward adds x^T dy into that matrix's gradient, before the embedding adds its own share.
//
// The logits' rows lie row_stride() elements apart: the vocabulary rounded up to a multiple of
// 64 (GPT-2's 50,257 to 50,304, as llm.c pads its vocabulary). GPT-2's odd vocabulary would
// otherwise leave most rows of the logits (and of their gradient, which backward's two GEMMs
// read) on 2-byte boundaries in bf16, and a GPU's GEMMs then take slower kernels that cannot
// load 16 bytes at a time. Only the rows move: the weight stays [vocab, C], nothing is
// computed for the padding, and no one reads it.
#pragma once

#include <string>
#include <utility>

#include "src/model/layer.hpp"

namespace dpt {

class TiedHead final : public Layer {
 public:
  TiedHead(std::string tied_to, int64_t vocab_size, int64_t n_embd)
      : tied_to_(std::move(tied_to)), vocab_(vocab_size), c_(n_embd) {}
  std::string describe() const override;
  // Throws InputError unless the input is [T, C].
  Shape setup(const Shape& input) override;
  std::vector<ParamSpec> param_specs() const override;
  bool gives_rows() const override { return true; }
  int64_t row_stride() const override { return padded_vocab(vocab_); }
  static int64_t padded_vocab(int64_t vocab) { return (vocab + 63) / 64 * 64; }
  std::vector<Op> ops() const override { return {Op::Gemm}; }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  std::string tied_to_;
  int64_t vocab_, c_, t_ = 0;
};

}  // namespace dpt
