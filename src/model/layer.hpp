// Layer: one step of a Sequential model, or a child of a composite layer (src/model/composite.hpp).
// Set-up fixes its shapes from the per-sample input shape; its parameters are views into the
// model's flat buffers; forward and backward call the Backend.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/ops.hpp"
#include "src/core/shape.hpp"
#include "src/core/tensor_ref.hpp"

namespace dpt {

// Shapes here are per sample, without the batch dimension.

struct ParamSpec {
  std::string name;  // "weight" or "bias", as PyTorch names them
  Shape shape;       // as PyTorch shapes them
  float init_bound;  // initialised uniform in [-bound, bound], like PyTorch's default
};

struct ForwardContext {
  bool training = true;
  uint64_t seed = 0;  // random stream for this layer and step (dropout)
};

class Layer {
 public:
  virtual ~Layer() = default;
  // The layer as PyTorch would print it, e.g. "Linear(784, 256)" (after set-up).
  virtual std::string describe() const = 0;
  // Fixes the layer's shapes from its per-sample input shape; returns the output shape.
  // Throws InputError when the input does not fit (e.g. a conv on flat features).
  virtual Shape setup(const Shape& input) = 0;
  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  // Output is the input itself (Flatten): no buffer, no work.
  virtual bool aliases_input() const { return false; }

  // The backend ops forward and backward call on the activations. The model asks the backend,
  // when it is built, whether each takes the activations' element type (Backend::require), so
  // that a type a layer cannot compute in is refused up front, naming the layer.
  virtual std::vector<Op> ops() const = 0;

  // Activations and their gradients carry their element type (float32 for now; the
  // parameters are float32 always). A layer reads them with as<float>(), which checks it.
  virtual void forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                       const ForwardContext& ctx) = 0;
  // Accumulates parameter gradients; writes dx unless it is null (the first layer).
  virtual void backward(Backend& be, ConstTensorRef x, ConstTensorRef y, ConstTensorRef dy,
                        TensorRef dx, int batch) = 0;

  // Views into the flat parameter and gradient buffers, in param_specs() order.
  void bind(std::vector<float*> params, std::vector<float*> grads) {
    params_ = std::move(params);
    grads_ = std::move(grads);
    on_bind();
  }

 protected:
  // Called at the end of bind(): a composite hands each child its share of the views.
  virtual void on_bind() {}

  Shape in_, out_;
  std::vector<float*> params_, grads_;
};

}  // namespace dpt
