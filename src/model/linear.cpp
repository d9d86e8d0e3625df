#include "src/model/linear.hpp"

#include <cmath>

#include "src/core/error.hpp"

namespace dpt {

std::string Linear::describe() const {
  return "Linear(" + std::to_string(in_features_) + ", " + std::to_string(out_features_) + ")";
}

Shape Linear::setup(const Shape& input) {
  in_ = input;
  in_features_ = shape_numel(input);
  out_ = {out_features_};
  return out_;
}

std::vector<ParamSpec> Linear::param_specs() const {
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_features_));
  return {{"weight", {out_features_, in_features_}, Init::uniform(bound)},
          {"bias", {out_features_}, Init::uniform(bound)}};
}

std::vector<Op> Linear::ops() const { return {Op::Gemm, Op::AddBias, Op::BiasGrad}; }

void Linear::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  const int in = static_cast<int>(in_features_), out = static_cast<int>(out_features_);
  float* yf = y.as<float>();
  be.gemm(false, true, batch, out, in, 1.0f, x.as<float>(), in, params_[0], in, 0.0f, yf, out);
  be.add_bias(yf, params_[1], batch, out, 1);
}

void Linear::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                      TensorRef dx, int batch) {
  const int in = static_cast<int>(in_features_), out = static_cast<int>(out_features_);
  const float* dyf = dy.as<float>();
  be.gemm(true, false, out, in, batch, 1.0f, dyf, out, x.as<float>(), in, 1.0f, grads_[0], in);
  be.bias_grad(dyf, grads_[1], batch, out, 1);
  if (dx)
    be.gemm(false, false, batch, in, out, 1.0f, dyf, out, params_[0], in, 0.0f, dx.as<float>(),
            in);
}

}  // namespace dpt
