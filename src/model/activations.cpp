#include "src/model/activations.hpp"

#include <sstream>

namespace dpt {

void ReLU::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  be.relu_forward(x, y, static_cast<size_t>(batch) * shape_numel(in_));
}

void ReLU::backward(Backend& be, ConstTensorRef, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                    int batch) {
  if (dx) be.relu_backward(y, dy, dx, static_cast<size_t>(batch) * shape_numel(in_));
}

void Gelu::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  be.gelu_forward(x, y, batch * shape_numel(in_));
}

void Gelu::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy, TensorRef dx,
                    int batch) {
  if (dx) be.gelu_backward(x, dy, dx, batch * shape_numel(in_));
}

Shape Flatten::setup(const Shape& input) {
  in_ = input;
  out_ = {shape_numel(input)};
  return out_;
}

std::string Dropout::describe() const {
  std::ostringstream os;
  os << "Dropout(p=" << p_ << ")";
  return os.str();
}

void Dropout::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                      const ForwardContext& ctx) {
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  masked_ = ctx.training && p_ > 0;
  if (!masked_) {
    be.copy(y.data(), x.data(), dtype_size(x.dtype()) * n);
    return;
  }
  mask_.resize(be, DataType::F32, n);
  be.dropout_forward(x, y, mask_.data(), n, p_, ctx.seed);
}

void Dropout::backward(Backend& be, ConstTensorRef, ConstTensorRef, ConstTensorRef dy, TensorRef dx,
                       int batch) {
  if (!dx) return;
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  if (masked_)
    be.mul(dy, mask_.data(), dx, n);
  else
    be.copy(dx.data(), dy.data(), dtype_size(dy.dtype()) * n);
}

}  // namespace dpt
