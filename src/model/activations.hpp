// Layers without parameters: ReLU, GELU, Flatten, Dropout.
#pragma once

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

class ReLU final : public Layer {
 public:
  std::string describe() const override { return "ReLU()"; }
  Shape setup(const Shape& input) override { return in_ = out_ = input; }
  std::vector<Op> ops() const override { return {Op::Relu}; }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;
};

// GELU with the tanh approximation, GPT-2's (PyTorch's nn.GELU(approximate='tanh')).
class Gelu final : public Layer {
 public:
  std::string describe() const override { return "GELU(approximate='tanh')"; }
  Shape setup(const Shape& input) override { return in_ = out_ = input; }
  std::vector<Op> ops() const override { return {Op::Gelu}; }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;
};

class Flatten final : public Layer {
 public:
  std::string describe() const override { return "Flatten()"; }
  Shape setup(const Shape& input) override;
  // Sequential gives the output the input's buffers, and its gradient the input gradient's, so
  // there is nothing to compute either way.
  bool aliases_input() const override { return true; }
  std::vector<Op> ops() const override { return {}; }
  void forward(Backend&, ConstTensorRef, TensorRef, int, const ForwardContext&) override {}
  void backward(Backend&, ConstTensorRef, ConstTensorRef, ConstTensorRef, TensorRef, int) override {
  }
};

// Inverted dropout: in training, zeroes each element with probability p and scales the rest by
// 1/(1-p); in evaluation it is the identity.
class Dropout final : public Layer {
 public:
  explicit Dropout(float p) : p_(p) {}
  size_t activation_bytes(int batch,
                          const ActivationType&) const override {  // the mask, when it drops
    return p_ > 0 ? static_cast<size_t>(batch) * shape_numel(in_) * sizeof(float) : 0;
  }
  std::string describe() const override;
  Shape setup(const Shape& input) override { return in_ = out_ = input; }
  std::vector<Op> ops() const override { return {Op::Dropout, Op::Mul}; }
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  float p_;
  bool masked_ = false;  // whether the last forward applied a mask
  DeviceBuffer mask_;
};

}  // namespace dpt
