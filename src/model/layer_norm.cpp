#include "src/model/layer_norm.hpp"

#include <sstream>

#include "src/core/error.hpp"

namespace dpt {

std::string LayerNorm::describe() const {
  std::ostringstream os;
  os << "LayerNorm((" << c_ << ",), eps=" << eps_ << ")";
  return os.str();
}

Shape LayerNorm::setup(const Shape& input) {
  if (input.empty() || input.back() <= 0)
    throw InputError("model: LayerNorm needs an input with a feature dimension, got " +
                     shape_str(input));
  c_ = input.back();
  rows_ = shape_numel(input) / c_;
  return in_ = out_ = input;
}

std::vector<ParamSpec> LayerNorm::param_specs() const {
  return {{"weight", {c_}, Init::constant(1.0f)}, {"bias", {c_}, Init::constant(0.0f)}};
}

void LayerNorm::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                        const ForwardContext&) {
  const int64_t rows = batch * rows_;
  mean_.resize(be, DataType::F32, static_cast<size_t>(rows));
  rstd_.resize(be, DataType::F32, static_cast<size_t>(rows));
  be.layer_norm_forward(x, params_[0], params_[1], y, mean_.data(), rstd_.data(), rows, c_, eps_);
}

void LayerNorm::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                         TensorRef dx, int batch) {
  const int64_t rows = batch * rows_;
  TensorRef out = dx;
  if (!out) {
    scratch_.resize(be, dy.dtype(), static_cast<size_t>(rows * c_));
    out = scratch_.ref();
  }
  be.layer_norm_backward(x, params_[0], mean_.data(), rstd_.data(), dy, out, grads_[0], grads_[1],
                         rows, c_);
}

}  // namespace dpt
