#include "src/model/maxpool2d.hpp"

#include "src/core/error.hpp"

namespace dpt {

std::string MaxPool2d::describe() const {
  return "MaxPool2d(kernel_size=" + std::to_string(k_) + ", stride=" + std::to_string(stride_) +
         ")";
}

Shape MaxPool2d::setup(const Shape& input) {
  if (input.size() != 3)
    throw InputError("model: maxpool2d needs [channels, height, width] input, got " +
                     shape_str(input));
  in_ = input;
  const PoolShape s = shape(1);
  if (s.out_h() < 1 || s.out_w() < 1)
    throw InputError("model: maxpool2d window " + std::to_string(k_) + " does not fit input " +
                     shape_str(input));
  out_ = {input[0], s.out_h(), s.out_w()};
  return out_;
}

PoolShape MaxPool2d::shape(int batch) const {
  PoolShape s;
  s.n = batch;
  s.c = static_cast<int>(in_[0]);
  s.in_h = static_cast<int>(in_[1]);
  s.in_w = static_cast<int>(in_[2]);
  s.k = k_;
  s.stride = stride_;
  return s;
}

void MaxPool2d::forward(Backend& be, const float* x, float* y, int batch, const ForwardContext&) {
  argmax_.resize(be, sizeof(int32_t) * batch * shape_numel(out_));
  be.maxpool2d_forward(shape(batch), x, y, argmax_.as<int32_t>());
}

void MaxPool2d::backward(Backend& be, const float* x, const float* y, const float* dy, float* dx,
                         int batch) {
  if (dx) be.maxpool2d_backward(shape(batch), x, y, dy, argmax_.as<int32_t>(), dx);
}

}  // namespace dpt
