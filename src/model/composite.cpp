#include "src/model/composite.hpp"

#include <algorithm>

#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {

std::vector<Composite::Child> Composite::numbered(std::vector<std::unique_ptr<Layer>> layers) {
  std::vector<Child> children;
  for (size_t i = 0; i < layers.size(); ++i)
    children.push_back({std::to_string(i), std::move(layers[i])});
  return children;
}

Composite::Composite(std::vector<Child> children) : children_(std::move(children)) {}

std::string Composite::describe() const {
  std::string s = kind() + "(";
  for (size_t i = 0; i < children_.size(); ++i)
    s += (i ? ", " : "") + children_[i].layer->describe();
  return s + ")";
}

std::vector<ParamSpec> Composite::param_specs() const {
  std::vector<ParamSpec> specs;
  for (const Child& c : children_)
    for (ParamSpec p : c.layer->param_specs()) {
      p.name = c.name + "." + p.name;
      specs.push_back(std::move(p));
    }
  return specs;
}

void Composite::on_bind() {
  size_t at = 0;
  for (const Child& c : children_) {
    const size_t n = c.layer->param_specs().size();
    if (at + n > params_.size()) throw SystemError("Composite::bind: fewer views than tensors");
    c.layer->bind(std::vector<TensorRef>(params_.begin() + at, params_.begin() + at + n),
                  std::vector<float*>(grads_.begin() + at, grads_.begin() + at + n));
    at += n;
  }
}

Shape Composite::setup_chain(const Shape& input) {
  shapes_.assign(1, input);
  for (const Child& c : children_) shapes_.push_back(c.layer->setup(shapes_.back()));
  batch_ = 0;  // buffers follow the shapes
  return shapes_.back();
}

void Composite::reshape(Backend& be, int batch, DataType dtype, bool into_y) {
  if (batch == batch_ && &be == backend_ && dtype == dtype_ && into_y == into_y_) return;
  batch_ = batch;
  backend_ = &be;
  dtype_ = dtype;
  into_y_ = into_y;
  const size_t n = children_.size();
  out_store_.resize(n);
  grad_store_.resize(n);
  acts_.assign(n, nullptr);
  for (size_t i = 0; i < n; ++i) {
    const size_t count = static_cast<size_t>(batch) * shape_numel(shapes_[i + 1]);
    const bool into_caller = into_y && i + 1 == n;
    if (into_caller)
      out_store_[i].release();
    else if (!children_[i].layer->aliases_input())
      out_store_[i].resize(be, dtype, count);
    // The gradient at child i's output is written by child i + 1's backward, unless that child
    // aliases its input and passes the gradient on as it is.
    if (i + 1 < n && !children_[i + 1].layer->aliases_input())
      grad_store_[i].resize(be, dtype, count);
  }
}

ConstTensorRef Composite::forward_chain(Backend& be, ConstTensorRef x, int batch,
                                        const ForwardContext& ctx, TensorRef y) {
  reshape(be, batch, x.dtype(), static_cast<bool>(y));
  ConstTensorRef in = x;
  for (size_t i = 0; i < children_.size(); ++i) {
    Layer& c = *children_[i].layer;
    if (c.aliases_input()) {
      acts_[i] = in;
    } else {
      const ForwardContext child_ctx{ctx.training,
                                     mix64(ctx.seed ^ (0x9e3779b97f4a7c15ULL * (i + 1)))};
      const TensorRef out = y && i + 1 == children_.size() ? y : out_store_[i].ref();
      ScopedRange range(be, children_[i].name.c_str());
      c.forward(be, in, out, batch, child_ctx);
      acts_[i] = out;
    }
    in = acts_[i];
  }
  if (y && in.data() != y.data()) {  // the last child aliased its input
    be.copy(y.data(), in.data(),
            dtype_size(dtype_) * static_cast<size_t>(batch) * shape_numel(shapes_.back()));
    return y;
  }
  return in;
}

void Composite::backward_chain(Backend& be, ConstTensorRef x, ConstTensorRef dy, TensorRef dx,
                               int batch) {
  if (batch != batch_) throw SystemError("Composite::backward: batch differs from forward");
  const size_t bytes_in = dtype_size(dtype_) * static_cast<size_t>(batch) * shape_numel(shapes_[0]);
  if (children_.empty() && dx && dx.data() != dy.data())
    be.copy(dx.data(), dy.data(), bytes_in);  // the identity
  ConstTensorRef g = dy;                      // the gradient at child i's output
  for (size_t i = children_.size(); i-- > 0;) {
    Layer& c = *children_[i].layer;
    if (c.aliases_input()) {
      // Its input gradient is its output gradient: pass g on, into dx at the chain's start.
      if (i == 0 && dx && dx.data() != g.data()) be.copy(dx.data(), g.data(), bytes_in);
      continue;
    }
    const TensorRef gin = i == 0 ? dx : grad_store_[i - 1].ref();
    ScopedRange range(be, children_[i].name.c_str());
    c.backward(be, i == 0 ? x : acts_[i - 1], acts_[i], g, gin, batch);
    g = gin;
  }
}

size_t Composite::activation_bytes(int batch, const ActivationType& a) const {
  // As reshape() allocates them for a chain whose last child writes into the caller's output
  // when chain_writes_output().
  size_t bytes = 0;
  const size_t n = children_.size();
  for (size_t i = 0; i < n; ++i) {
    bytes += children_[i].layer->activation_bytes(batch, a);
    const size_t count = static_cast<size_t>(batch) * shape_numel(shapes_[i + 1]);
    const bool into_caller = chain_writes_output() && i + 1 == n;
    if (!into_caller && !children_[i].layer->aliases_input()) bytes += count * a.elem;
    if (i + 1 < n && !children_[i + 1].layer->aliases_input()) bytes += count * a.elem;
  }
  return bytes;
}

std::vector<Op> Composite::ops() const {
  std::vector<Op> ops;
  for (const Child& c : children_)
    for (Op op : c.layer->ops())
      if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
  return ops;
}

}  // namespace dpt
