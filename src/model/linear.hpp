#pragma once

#include "src/model/layer.hpp"

namespace dpt {

// y = x W^T + b, with W [out, in] as PyTorch stores it. Trailing input dimensions are flattened.
class Linear final : public Layer {
 public:
  explicit Linear(int64_t out_features) : out_features_(out_features) {}
  std::string describe() const override;
  Shape setup(const Shape& input) override;
  std::vector<ParamSpec> param_specs() const override;
  std::vector<Op> ops() const override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy,
                TensorRef dx, int batch) override;

 private:
  int64_t in_features_ = 0, out_features_;
};

}  // namespace dpt
