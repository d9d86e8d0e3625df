// A GPT-2 transformer block as nanoGPT builds it, and its two halves. Their children carry
// nanoGPT's attribute names, so the tensors are named as its state_dict names them beneath the
// block: "ln_1.weight", "attn.c_attn.weight", "attn.c_proj.bias", "mlp.c_fc.weight", ...
// Every Linear has a bias; weights start N(0, 0.02), each c_proj weight N(0, 0.02 / sqrt(2 *
// n_layer)) (GPT-2's scaling of the projections into the residual stream), biases 0.
// With dropout p > 0, each half ends in a Dropout(p) after its c_proj (nanoGPT's
// attn.resid_dropout and mlp.dropout); the attention probabilities are not dropped (nanoGPT's
// attn_dropout is not here). With p = 0 (nanoGPT's default) there is no Dropout layer at all.
#pragma once

#include <memory>
#include <string>

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/composite.hpp"

namespace dpt {

// nanoGPT's CausalSelfAttention: c_attn (Linear C -> 3C, q, k and v fused), the causal attention
// of n_head heads (CausalAttention), c_proj (Linear C -> C), applied in order to [T, C], then
// resid_dropout (Dropout) when dropout > 0.
class SelfAttention final : public Composite {
 public:
  SelfAttention(int64_t n_embd, int64_t n_head, int64_t n_layer, float dropout = 0);
  std::string kind() const override { return "CausalSelfAttention"; }
  Shape setup(const Shape& input) override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;
};

// nanoGPT's MLP: c_fc (Linear C -> 4C), GELU (tanh), c_proj (Linear 4C -> C), then dropout
// (Dropout) when dropout > 0.
class Mlp final : public Composite {
 public:
  Mlp(int64_t n_embd, int64_t n_layer, float dropout = 0);
  std::string kind() const override { return "MLP"; }
  Shape setup(const Shape& input) override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;
};

// nanoGPT's Block, pre-LayerNorm on [T, C]: h = x + attn(ln_1(x)), y = h + mlp(ln_2(h)). Its
// children are ln_1, attn, ln_2, mlp; it owns the activations between them.
class TransformerBlock final : public Composite {
 public:
  TransformerBlock(int64_t n_embd, int64_t n_head, int64_t n_layer, float dropout = 0);
  std::string kind() const override { return "Block"; }
  // Its seven [batch, T, C] buffers (below) and its children's.
  size_t activation_bytes(int batch, const ActivationType& a) const override;
  // Throws InputError unless the input is [T, n_embd].
  Shape setup(const Shape& input) override;
  // The children's ops and the add of the two residual connections.
  std::vector<Op> ops() const override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  void reshape(Backend& be, int batch, DataType dtype);
  Layer& ln_1() { return child_layer(0); }
  Layer& attn() { return child_layer(1); }
  Layer& ln_2() { return child_layer(2); }
  Layer& mlp() { return child_layer(3); }

  int64_t c_;
  int buffers_batch_ = 0;
  const Backend* buffers_backend_ = nullptr;  // where the buffers below live
  DataType buffers_dtype_ = DataType::F32;    // and their element type
  // Forward: ln_1(x), attn(ln_1(x)), h, ln_2(h), mlp(ln_2(h)); each [batch, T, C].
  DeviceBuffer ln1_out_, attn_out_, h_, ln2_out_, mlp_out_;
  // Backward: the gradient at ln_2's output and then at ln_1's (one buffer, used in turn), and
  // the gradient at h.
  DeviceBuffer d_norm_, d_h_;
};

}  // namespace dpt
