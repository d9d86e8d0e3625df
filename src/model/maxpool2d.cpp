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

void MaxPool2d::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                        const ForwardContext&) {
  argmax_.resize(be, DataType::I32, batch * shape_numel(out_));
  be.maxpool2d_forward(shape(batch), x.as<float>(), y.as<float>(), argmax_.as<int32_t>());
}

void MaxPool2d::backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy,
                         TensorRef dx, int batch) {
  if (dx)
    be.maxpool2d_backward(shape(batch), x.as<float>(), y.as<float>(), dy.as<float>(),
                          argmax_.as<int32_t>(), dx.as<float>());
}

}  // namespace dpt
