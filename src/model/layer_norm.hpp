// LayerNorm over the last dimension, with a weight and a bias (PyTorch's nn.LayerNorm(C)):
// y = (x - mean) / sqrt(var + eps) * weight + bias per position, var the biased variance.
#pragma once

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

class LayerNorm final : public Layer {
 public:
  // eps 1e-5, PyTorch's default and GPT-2's.
  explicit LayerNorm(float eps = 1e-5f) : eps_(eps) {}
  std::string describe() const override;
  // Any shape; the last dimension is normalised and the output keeps the shape.
  Shape setup(const Shape& input) override;
  // weight [C] starting at 1, bias [C] at 0, as PyTorch starts them.
  std::vector<ParamSpec> param_specs() const override;
  std::vector<Op> ops() const override { return {Op::LayerNorm}; }
  size_t activation_bytes(int batch,
                          const ActivationType&) const override {  // mean and 1/std per row
    return 2 * static_cast<size_t>(batch * rows_) * sizeof(float);
  }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  // Uses the mean and 1/std of the last forward.
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  float eps_;
  int64_t c_ = 0, rows_ = 0;  // rows_ per sample
  DeviceBuffer mean_, rstd_;  // [batch * rows_], from the last forward
  DeviceBuffer scratch_;      // dx when the caller needs none: the op always writes it
};

}  // namespace dpt
