#pragma once

#include "src/model/layer.hpp"

namespace dpt {

// y = x W^T + b, with W [out, in] as PyTorch stores it.
class Linear final : public Layer {
 public:
  // Over the whole sample, its trailing dimensions flattened (in = their product), initialised
  // as PyTorch's nn.Linear is: U(-1/sqrt(in), 1/sqrt(in)) for both tensors.
  explicit Linear(int64_t out_features) : out_features_(out_features) {}
  // Over the last dimension, position by position ([T, in] -> [T, out], as nn.Linear maps
  // [..., in]), with the initialisation given: a transformer's projections.
  Linear(int64_t out_features, Init weight, Init bias)
      : out_features_(out_features), per_position_(true), weight_init_(weight), bias_init_(bias) {}
  std::string describe() const override;
  Shape setup(const Shape& input) override;
  std::vector<ParamSpec> param_specs() const override;
  std::vector<Op> ops() const override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  int64_t in_features_ = 0, out_features_;
  int64_t rows_ = 1;  // rows per sample: the positions when per position, else 1
  bool per_position_ = false;
  Init weight_init_, bias_init_;
};

}  // namespace dpt
