#pragma once

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

// Max pooling over k x k windows with the given stride (no padding), NCHW.
class MaxPool2d final : public Layer {
 public:
  MaxPool2d(int kernel, int stride) : k_(kernel), stride_(stride) {}
  std::string describe() const override;
  Shape setup(const Shape& input) override;
  std::vector<Op> ops() const override { return {Op::MaxPool2d}; }
  size_t activation_bytes(int batch,
                          const ActivationType&) const override {  // the winners' indices
    const PoolShape s = shape(batch);
    return static_cast<size_t>(s.n) * s.c * s.out_h() * s.out_w() * sizeof(int32_t);
  }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  PoolShape shape(int batch) const;
  int k_, stride_;
  DeviceBuffer argmax_;  // winner of each output window, kept for backward
};

}  // namespace dpt
