#include "src/model/tied_head.hpp"

#include "src/core/error.hpp"

namespace dpt {

std::string TiedHead::describe() const {
  return "Linear(" + std::to_string(c_) + ", " + std::to_string(vocab_) + ", bias=False)";
}

Shape TiedHead::setup(const Shape& input) {
  if (input.size() != 2 || input[1] != c_)
    throw InputError("model: " + describe() + " needs [T, " + std::to_string(c_) + "], got " +
                     shape_str(input));
  t_ = input[0];
  in_ = input;
  out_ = {t_, vocab_};
  return out_;
}

std::vector<ParamSpec> TiedHead::param_specs() const {
  return {{"weight", {vocab_, c_}, Init{}, tied_to_}};
}

void TiedHead::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                       const ForwardContext&) {
  const int m = batch * static_cast<int>(t_), v = static_cast<int>(vocab_),
            c = static_cast<int>(c_), ld = static_cast<int>(row_stride());
  be.gemm_ex(false, true, m, v, c, 1.0f, x, c, params_[0], c, 0.0f, y, ld);
}

void TiedHead::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                        TensorRef dx, int batch) {
  const int m = batch * static_cast<int>(t_), v = static_cast<int>(vocab_),
            c = static_cast<int>(c_), ld = static_cast<int>(row_stride());
  // beta 1: the embedding's gradient gathers both uses.
  be.gemm_ex(true, false, v, c, m, 1.0f, dy, ld, x, c, 1.0f, grads_[0], c);
  if (dx) be.gemm_ex(false, false, m, c, v, 1.0f, dy, ld, params_[0], c, 0.0f, dx, c);
}

}  // namespace dpt
