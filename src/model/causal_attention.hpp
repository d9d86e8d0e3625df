// The attention op of a GPT block, without parameters: on the fused projection qkv [T, 3C]
// (q, k and v side by side) it computes n_head heads of C / n_head, each
// softmax(mask(q k^T / sqrt(C / n_head))) v with position t seeing positions 0..t, and puts the
// heads side by side: [T, C]. The projections around it are Linear layers (c_attn, c_proj).
#pragma once

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

class CausalAttention final : public Layer {
 public:
  explicit CausalAttention(int64_t n_head) : n_head_(n_head) {}
  std::string describe() const override;
  // Throws InputError unless the input is [T, 3C] with C a multiple of n_head.
  Shape setup(const Shape& input) override;
  std::vector<Op> ops() const override { return {Op::Attention}; }
  // The probabilities, or, where the backend has fused attention at this size, a float per row.
  size_t activation_bytes(int batch, const ActivationType& a) const override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  // Uses the attention probabilities of the last forward (or, fused, its output and the rows'
  // log-sum-exp).
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  int64_t n_head_, t_ = 0, c_ = 0;
  // [batch, n_head, T, T]: the probabilities, kept for backward; fused, [batch, n_head, T] float:
  // each row's log-sum-exp.
  DeviceBuffer att_;
  bool fused_ = false;  // the way the last forward took
};

}  // namespace dpt
