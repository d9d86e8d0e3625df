#include "src/model/transformer_block.hpp"

#include <cmath>
#include <utility>

#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/model/activations.hpp"
#include "src/model/causal_attention.hpp"
#include "src/model/layer_norm.hpp"
#include "src/model/linear.hpp"

namespace dpt {
namespace {

constexpr float kStd = 0.02f;

// The projections into the residual stream: GPT-2 scales their std by 1/sqrt(2 n_layer), as
// each block adds two of them to it.
Init projection_init(int64_t n_layer) {
  return Init::normal(kStd / std::sqrt(2.0f * static_cast<float>(n_layer)));
}

std::unique_ptr<Layer> linear(int64_t out, Init weight) {
  return std::make_unique<Linear>(out, weight, Init::constant(0.0f));
}

std::vector<Composite::Child> attention_children(int64_t n_embd, int64_t n_head, int64_t n_layer,
                                                 float dropout) {
  std::vector<Composite::Child> c;
  c.push_back({"c_attn", linear(3 * n_embd, Init::normal(kStd))});
  c.push_back({"attention", std::make_unique<CausalAttention>(n_head)});
  c.push_back({"c_proj", linear(n_embd, projection_init(n_layer))});
  if (dropout > 0) c.push_back({"resid_dropout", std::make_unique<Dropout>(dropout)});
  return c;
}

std::vector<Composite::Child> mlp_children(int64_t n_embd, int64_t n_layer, float dropout) {
  std::vector<Composite::Child> c;
  c.push_back({"c_fc", linear(4 * n_embd, Init::normal(kStd))});
  c.push_back({"gelu", std::make_unique<Gelu>()});
  c.push_back({"c_proj", linear(n_embd, projection_init(n_layer))});
  if (dropout > 0) c.push_back({"dropout", std::make_unique<Dropout>(dropout)});
  return c;
}

std::vector<Composite::Child> block_children(int64_t n_embd, int64_t n_head, int64_t n_layer,
                                             float dropout) {
  std::vector<Composite::Child> c;
  c.push_back({"ln_1", std::make_unique<LayerNorm>()});
  c.push_back({"attn", std::make_unique<SelfAttention>(n_embd, n_head, n_layer, dropout)});
  c.push_back({"ln_2", std::make_unique<LayerNorm>()});
  c.push_back({"mlp", std::make_unique<Mlp>(n_embd, n_layer, dropout)});
  return c;
}

// Runs f inside a named range, for profilers and traces (Device::begin_range).
template <class F>
void step(Backend& be, const char* name, F&& f) {
  ScopedRange range(be, name);
  f();
}

ForwardContext child_context(const ForwardContext& ctx, size_t i) {
  return {ctx.training, mix64(ctx.seed ^ (0x9e3779b97f4a7c15ULL * (i + 1)))};
}

}  // namespace

SelfAttention::SelfAttention(int64_t n_embd, int64_t n_head, int64_t n_layer, float dropout)
    : Composite(attention_children(n_embd, n_head, n_layer, dropout)) {}

Shape SelfAttention::setup(const Shape& input) {
  in_ = input;
  return out_ = setup_chain(input);
}

void SelfAttention::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                            const ForwardContext& ctx) {
  forward_chain(be, x, batch, ctx, y);
}

void SelfAttention::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                             TensorRef dx, int batch) {
  backward_chain(be, x, dy, dx, batch);
}

Mlp::Mlp(int64_t n_embd, int64_t n_layer, float dropout)
    : Composite(mlp_children(n_embd, n_layer, dropout)) {}

Shape Mlp::setup(const Shape& input) {
  in_ = input;
  return out_ = setup_chain(input);
}

void Mlp::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                  const ForwardContext& ctx) {
  forward_chain(be, x, batch, ctx, y);
}

void Mlp::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy, TensorRef dx,
                   int batch) {
  backward_chain(be, x, dy, dx, batch);
}

TransformerBlock::TransformerBlock(int64_t n_embd, int64_t n_head, int64_t n_layer, float dropout)
    : Composite(block_children(n_embd, n_head, n_layer, dropout)), c_(n_embd) {}

Shape TransformerBlock::setup(const Shape& input) {
  if (input.size() != 2 || input[1] != c_)
    throw InputError("model: transformer block needs [T, " + std::to_string(c_) + "], got " +
                     shape_str(input));
  // Every child maps [T, C] to [T, C], so setting them up as a chain gives each its shape.
  if (setup_chain(input) != input)
    throw SystemError("transformer block: a child changed the shape " + shape_str(input));
  buffers_batch_ = 0;
  return in_ = out_ = input;
}

std::vector<Op> TransformerBlock::ops() const {
  std::vector<Op> ops = Composite::ops();
  ops.push_back(Op::Add);
  return ops;
}

size_t TransformerBlock::activation_bytes(int batch, const ActivationType& a) const {
  size_t bytes = 7 * static_cast<size_t>(batch) * shape_numel(in_) * a.elem;
  for (size_t i = 0; i < num_children(); ++i) bytes += child(i).activation_bytes(batch, a);
  return bytes;
}

void TransformerBlock::reshape(Backend& be, int batch, DataType dtype) {
  if (batch == buffers_batch_ && &be == buffers_backend_ && dtype == buffers_dtype_) return;
  buffers_dtype_ = dtype;
  buffers_batch_ = batch;
  buffers_backend_ = &be;
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  for (DeviceBuffer* b : {&ln1_out_, &attn_out_, &h_, &ln2_out_, &mlp_out_, &d_norm_, &d_h_})
    b->resize(be, dtype, n);
}

void TransformerBlock::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                               const ForwardContext& ctx) {
  reshape(be, batch, x.dtype());
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  step(be, "ln_1", [&] { ln_1().forward(be, x, ln1_out_.ref(), batch, child_context(ctx, 0)); });
  step(be, "attn",
       [&] { attn().forward(be, ln1_out_.ref(), attn_out_.ref(), batch, child_context(ctx, 1)); });
  step(be, "residual", [&] { be.add(x, attn_out_.ref(), h_.ref(), n); });
  step(be, "ln_2",
       [&] { ln_2().forward(be, h_.ref(), ln2_out_.ref(), batch, child_context(ctx, 2)); });
  step(be, "mlp",
       [&] { mlp().forward(be, ln2_out_.ref(), mlp_out_.ref(), batch, child_context(ctx, 3)); });
  step(be, "residual", [&] { be.add(h_.ref(), mlp_out_.ref(), y, n); });
}

void TransformerBlock::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                                TensorRef dx, int batch) {
  if (batch != buffers_batch_)
    throw SystemError("TransformerBlock::backward: batch differs from forward");
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  // y = h + mlp(ln_2(h)): dh = dy + the MLP path's gradient.
  step(be, "mlp",
       [&] { mlp().backward(be, ln2_out_.ref(), mlp_out_.ref(), dy, d_norm_.ref(), batch); });
  step(be, "ln_2",
       [&] { ln_2().backward(be, h_.ref(), ln2_out_.ref(), d_norm_.ref(), d_h_.ref(), batch); });
  step(be, "residual", [&] { be.add(d_h_.ref(), dy, d_h_.ref(), n); });
  // h = x + attn(ln_1(x)): dx = dh + the attention path's gradient.
  step(be, "attn", [&] {
    attn().backward(be, ln1_out_.ref(), attn_out_.ref(), d_h_.ref(), d_norm_.ref(), batch);
  });
  step(be, "ln_1", [&] { ln_1().backward(be, x, ln1_out_.ref(), d_norm_.ref(), dx, batch); });
  if (dx) step(be, "residual", [&] { be.add(dx, d_h_.ref(), dx, n); });
}

}  // namespace dpt
