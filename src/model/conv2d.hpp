#pragma once

#include "src/model/layer.hpp"

namespace dpt {

// 2-D convolution over NCHW input with square kernels; weight [out_c, in_c, k, k], bias [out_c].
class Conv2d final : public Layer {
 public:
  Conv2d(int out_channels, int kernel, int stride, int padding)
      : out_c_(out_channels), k_(kernel), stride_(stride), pad_(padding) {}
  std::string describe() const override;
  Shape setup(const Shape& input) override;
  std::vector<ParamSpec> param_specs() const override;
  std::vector<Op> ops() const override { return {Op::Conv2d}; }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  ConvShape shape(int batch) const;
  int out_c_, k_, stride_, pad_;
  int in_c_ = 0, in_h_ = 0, in_w_ = 0;
};

}  // namespace dpt
