#include "src/model/conv2d.hpp"

#include <cmath>

#include "src/core/error.hpp"

namespace dpt {

std::string Conv2d::describe() const {
  return "Conv2d(" + std::to_string(in_c_) + ", " + std::to_string(out_c_) +
         ", kernel_size=" + std::to_string(k_) + ", stride=" + std::to_string(stride_) +
         ", padding=" + std::to_string(pad_) + ")";
}

Shape Conv2d::setup(const Shape& input) {
  if (input.size() != 3)
    throw InputError("model: conv2d needs [channels, height, width] input, got " +
                     shape_str(input));
  in_ = input;
  in_c_ = static_cast<int>(input[0]);
  in_h_ = static_cast<int>(input[1]);
  in_w_ = static_cast<int>(input[2]);
  const ConvShape s = shape(1);
  if (s.out_h() < 1 || s.out_w() < 1)
    throw InputError("model: conv2d kernel " + std::to_string(k_) + " does not fit input " +
                     shape_str(input));
  out_ = {out_c_, s.out_h(), s.out_w()};
  return out_;
}

ConvShape Conv2d::shape(int batch) const {
  ConvShape s;
  s.n = batch;
  s.in_c = in_c_;
  s.in_h = in_h_;
  s.in_w = in_w_;
  s.out_c = out_c_;
  s.kh = s.kw = k_;
  s.stride = stride_;
  s.pad = pad_;
  return s;
}

std::vector<ParamSpec> Conv2d::param_specs() const {
  // The fan-in in float: in_c * k * k of a spec can pass int's range (the spec fuzzer found one).
  const float fan_in = static_cast<float>(in_c_) * static_cast<float>(k_) * static_cast<float>(k_);
  const float bound = 1.0f / std::sqrt(fan_in);
  return {{"weight", {out_c_, in_c_, k_, k_}, Init::uniform(bound)},
          {"bias", {out_c_}, Init::uniform(bound)}};
}

void Conv2d::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  be.conv2d_forward(shape(batch), x.as<float>(), param(0), param(1), y.as<float>());
}

void Conv2d::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                      TensorRef dx, int batch) {
  be.conv2d_backward(shape(batch), x.as<float>(), param(0), dy.as<float>(), dx.as<float>(),
                     grads_[0], grads_[1]);
}

}  // namespace dpt
