#include "src/model/linear.hpp"

#include <cmath>

#include "src/core/error.hpp"

namespace dpt {

std::string Linear::describe() const {
  return "Linear(" + std::to_string(in_features_) + ", " + std::to_string(out_features_) + ")";
}

Shape Linear::setup(const Shape& input) {
  in_ = input;
  if (per_position_) {
    if (input.empty())
      throw InputError("model: Linear(" + std::to_string(out_features_) +
                       ") per position needs an input with a feature dimension, got " +
                       shape_str(input));
    in_features_ = input.back();
    rows_ = shape_numel(input) / in_features_;
    out_ = input;
    out_.back() = out_features_;
  } else {
    in_features_ = shape_numel(input);
    rows_ = 1;
    out_ = {out_features_};
  }
  return out_;
}

std::vector<ParamSpec> Linear::param_specs() const {
  if (per_position_)
    return {{"weight", {out_features_, in_features_}, weight_init_},
            {"bias", {out_features_}, bias_init_}};
  const float bound = 1.0f / std::sqrt(static_cast<float>(in_features_));
  return {{"weight", {out_features_, in_features_}, Init::uniform(bound)},
          {"bias", {out_features_}, Init::uniform(bound)}};
}

std::vector<Op> Linear::ops() const { return {Op::Gemm, Op::AddBias, Op::BiasGrad}; }

void Linear::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch, const ForwardContext&) {
  const int in = static_cast<int>(in_features_), out = static_cast<int>(out_features_);
  const int m = batch * static_cast<int>(rows_);
  be.linear_forward(x, params_[0], params_[1], y, m, in, out);
}

void Linear::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                      TensorRef dx, int batch) {
  const int in = static_cast<int>(in_features_), out = static_cast<int>(out_features_);
  const int m = batch * static_cast<int>(rows_);
  // The weight's gradient accumulates in float32 whatever the activations' type.
  be.gemm_ex(true, false, out, in, m, 1.0f, dy, out, x, in, 1.0f, grads_[0], in);
  be.bias_grad(dy, grads_[1], m, out, 1);
  if (dx) be.gemm_ex(false, false, m, in, out, 1.0f, dy, out, params_[0], in, 0.0f, dx, in);
}

}  // namespace dpt
