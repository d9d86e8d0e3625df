// Layer: one step of a Sequential model, or a child of a composite layer (src/model/composite.hpp).
// Set-up fixes its shapes from the per-sample input shape; its parameters are views into the
// model's flat buffers; forward and backward call the Backend.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/ops.hpp"
#include "src/core/shape.hpp"
#include "src/core/tensor_ref.hpp"

namespace dpt {

// Shapes here are per sample, without the batch dimension.

// How a parameter tensor starts out, drawn from the model's seed (Sequential::init_params).
struct Init {
  enum class Kind { Uniform, Normal, Constant };
  Kind kind = Kind::Uniform;
  // Uniform: the bound b of U(-b, b), PyTorch's default for Linear and Conv2d; Normal: the
  // standard deviation, mean 0 (GPT-2's); Constant: the value (LayerNorm's 1 and 0).
  float value = 0;
  static Init uniform(float bound) { return {Kind::Uniform, bound}; }
  static Init normal(float std) { return {Kind::Normal, std}; }
  static Init constant(float v) { return {Kind::Constant, v}; }
};

struct ParamSpec {
  ParamSpec(std::string name_, Shape shape_, Init init_, std::string tied_to_ = {})
      : name(std::move(name_)),
        shape(std::move(shape_)),
        init(init_),
        tied_to(std::move(tied_to_)) {}

  std::string name;  // "weight" or "bias", as PyTorch names them
  Shape shape;       // as PyTorch shapes them
  Init init;
  // Not empty: the tensor belongs to an earlier layer of the model and is named so in full
  // ("transformer.wte.weight", a tied output head's weight). It has no storage of its own: the
  // view is the owner's, and backward adds into the owner's gradient.
  std::string tied_to;
};

// The activations' element type, and the backend that holds them (which may keep less for some
// layers: fused attention).
struct ActivationType {
  Backend& backend;
  DataType dtype;
  size_t elem;  // dtype_size(dtype)
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
  // The element type of its input when the model computes in `activations`: token ids (int32)
  // for an embedding, which must then come first; the activations' type for every other layer.
  virtual DataType input_dtype(DataType activations) const { return activations; }
  // Whether its output per sample, [rows, classes], is one row of logits per position (a
  // language model's head over [T, V]) rather than features that still need flattening.
  virtual bool gives_rows() const { return false; }
  // For a layer that gives rows: the elements from one row of its output to the next, at least
  // the row's width. Wider rows (a tied head pads its vocabulary's rows to a multiple of 64
  // elements) keep every row aligned for the GEMMs that write and read them; the elements
  // between the rows are never read as logits.
  virtual int64_t row_stride() const { return out_.empty() ? 0 : out_.back(); }
  // Output is the input itself (Flatten): no buffer, no work.
  virtual bool aliases_input() const { return false; }
  // Bytes of the buffers the layer keeps for a training batch of `batch` samples on `a.backend`,
  // with activations of type `a.dtype` (`a.elem` bytes each): what forward saves for backward
  // and the gradients between its parts. Its output and the gradient at its input, which the
  // model holds, are not counted, nor is the backend's scratch. For the memory report at start.
  virtual size_t activation_bytes(int batch, const ActivationType& a) const { return 0; }

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

  // The module path its tensors are named under at the top level of a model, as in the PyTorch
  // module's state_dict ("transformer.h.3"); empty (the default): its index in the model, as
  // nn.Sequential names it.
  const std::string& module_name() const { return module_name_; }
  void set_module_name(std::string name) { module_name_ = std::move(name); }

  // Views into the flat parameter and gradient buffers, in param_specs() order. The parameters
  // are typed: the float32 master weights today, a bf16 working copy of them once the model
  // computes in bf16; the gradients are float32 always.
  void bind(std::vector<TensorRef> params, std::vector<float*> grads) {
    params_ = std::move(params);
    grads_ = std::move(grads);
    on_bind();
  }

 protected:
  // Called at the end of bind(): a composite hands each child its share of the views.
  virtual void on_bind() {}

  // Parameter i as float32 (throws SystemError when it is bound to another type).
  const float* param(size_t i) const { return params_[i].as<float>(); }

  Shape in_, out_;
  std::vector<TensorRef> params_;
  std::vector<float*> grads_;

 private:
  std::string module_name_;
};

}  // namespace dpt
