#include "src/model/activations.hpp"

#include <sstream>

namespace dpt {

void ReLU::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  be.relu_forward(x.as<float>(), y.as<float>(), static_cast<size_t>(batch) * shape_numel(in_));
}

void ReLU::backward(Backend& be, ConstTensorRef, ConstTensorRef y, ConstTensorRef dy,
                    TensorRef dx, int batch) {
  if (dx)
    be.relu_backward(y.as<float>(), dy.as<float>(), dx.as<float>(),
                     static_cast<size_t>(batch) * shape_numel(in_));
}

void Gelu::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  be.gelu_forward(x.as<float>(), y.as<float>(), batch * shape_numel(in_));
}

void Gelu::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy, TensorRef dx,
                    int batch) {
  if (dx) be.gelu_backward(x.as<float>(), dy.as<float>(), dx.as<float>(), batch * shape_numel(in_));
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
    be.copy(y.as<float>(), x.as<float>(), sizeof(float) * n);
    return;
  }
  mask_.resize(be, DataType::F32, n);
  be.dropout_forward(x.as<float>(), y.as<float>(), mask_.data(), n, p_, ctx.seed);
}

void Dropout::backward(Backend& be, ConstTensorRef, ConstTensorRef, ConstTensorRef dy,
                       TensorRef dx, int batch) {
  if (!dx) return;
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  if (masked_)
    be.mul(dy.as<float>(), mask_.data(), dx.as<float>(), n);
  else
    be.copy(dx.as<float>(), dy.as<float>(), sizeof(float) * n);
}

}  // namespace dpt
