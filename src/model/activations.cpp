#include "src/model/activations.hpp"

#include <sstream>

namespace dpt {

void ReLU::forward(Backend& be, const float* x, float* y, int batch, const ForwardContext&) {
  be.relu_forward(x, y, static_cast<size_t>(batch) * shape_numel(in_));
}

void ReLU::backward(Backend& be, const float*, const float* y, const float* dy, float* dx,
                    int batch) {
  if (dx) be.relu_backward(y, dy, dx, static_cast<size_t>(batch) * shape_numel(in_));
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

void Dropout::forward(Backend& be, const float* x, float* y, int batch, const ForwardContext& ctx) {
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  masked_ = ctx.training && p_ > 0;
  if (!masked_) {
    be.copy(y, x, sizeof(float) * n);
    return;
  }
  mask_.resize(be, sizeof(float) * n);
  be.dropout_forward(x, y, mask_.data(), n, p_, ctx.seed);
}

void Dropout::backward(Backend& be, const float*, const float*, const float* dy, float* dx,
                       int batch) {
  if (!dx) return;
  const size_t n = static_cast<size_t>(batch) * shape_numel(in_);
  if (masked_)
    be.mul(dy, mask_.data(), dx, n);
  else
    be.copy(dx, dy, sizeof(float) * n);
}

}  // namespace dpt
