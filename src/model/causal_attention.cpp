#include "src/model/causal_attention.hpp"

#include "src/core/error.hpp"

namespace dpt {

std::string CausalAttention::describe() const {
  return "CausalAttention(n_head=" + std::to_string(n_head_) + ")";
}

Shape CausalAttention::setup(const Shape& input) {
  if (input.size() != 2 || input[1] % 3 != 0 || n_head_ <= 0 || (input[1] / 3) % n_head_ != 0)
    throw InputError("model: " + describe() + " needs [T, 3C] (q, k, v) with C a multiple of " +
                     std::to_string(n_head_) + ", got " + shape_str(input));
  t_ = input[0];
  c_ = input[1] / 3;
  in_ = input;
  out_ = {t_, c_};
  return out_;
}

size_t CausalAttention::activation_bytes(int batch, const ActivationType& a) const {
  if (a.backend.fused_attention(a.dtype, batch, t_, c_, n_head_))
    return static_cast<size_t>(batch * n_head_ * t_) * sizeof(float);
  return static_cast<size_t>(batch * n_head_ * t_ * t_) * a.elem;
}

void CausalAttention::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                              const ForwardContext&) {
  fused_ = be.fused_attention(x.dtype(), batch, t_, c_, n_head_);
  if (fused_) {
    att_.resize(be, DataType::F32, static_cast<size_t>(batch * n_head_ * t_));
    be.attention_fused_forward(x, y, att_.data(), batch, t_, c_, n_head_);
    return;
  }
  att_.resize(be, x.dtype(), static_cast<size_t>(batch * n_head_ * t_ * t_));
  be.attention_forward(x, y, att_.ref(), batch, t_, c_, n_head_);
}

void CausalAttention::backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy,
                               TensorRef dx, int batch) {
  // No parameters: with no one to take the input gradient there is nothing to do.
  if (!dx) return;
  if (fused_)
    be.attention_fused_backward(x, y, att_.data(), dy, dx, batch, t_, c_, n_head_);
  else
    be.attention_backward(x, att_.ref(), dy, dx, batch, t_, c_, n_head_);
}

}  // namespace dpt
