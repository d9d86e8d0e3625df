// Residual: y = x + body(x), with a body of layers run in order that keeps the shape, as in a
// ResNet block or each half of a transformer block. Its PyTorch twin is nn.Sequential with a skip
// connection, so the body's tensors are named as nn.Sequential names them ("0.weight", "2.bias"):
//
//   class Residual(nn.Sequential):
//       def forward(self, x):
//           return x + super().forward(x)
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/model/composite.hpp"

namespace dpt {

class Residual final : public Composite {
 public:
  // `spec` is the block as a model spec wrote it ("residual(linear(64) relu)"), for messages.
  explicit Residual(std::vector<std::unique_ptr<Layer>> body, std::string spec = "residual(...)");
  std::string kind() const override { return "Residual"; }
  // The body's output is a buffer of its own: the skip connection adds it into y.
  bool chain_writes_output() const override { return false; }
  // Throws InputError when the body changes the shape: x + body(x) needs both alike.
  Shape setup(const Shape& input) override;
  // The body's ops and the add of the skip connection.
  std::vector<Op> ops() const override;
  void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
               const ForwardContext& ctx) override;
  // dx = dy + the body's input gradient; the body's parameter gradients are added as usual.
  void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy, TensorRef dx,
                int batch) override;

 private:
  std::string spec_;
};

}  // namespace dpt
