// Composite: a layer made of child layers, as a PyTorch module is made of submodules.
//
// Its parameters are its children's, in child order, each named "<child>.<name>" as PyTorch's
// state_dict names a submodule's tensors. Children numbered as in nn.Sequential give "0.weight",
// "2.bias"; the model prefixes the composite's own index, so child 0 of the composite at index 1
// owns "1.0.weight", and a composite nested inside another adds one more level ("1.1.0.weight").
// The tensors stay contiguous in the model's flat buffers, in that order; bind() hands each child
// its share of the views.
//
// A composite owns the activations between its children and their gradients, so to the model
// around it it is one layer: one forward, one backward, one stage for the gradient Reducer.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

class Composite : public Layer {
 public:
  struct Child {
    std::string name;  // the attribute name of the PyTorch submodule: "0", "1", ... or "attn"
    std::unique_ptr<Layer> layer;
  };
  // Children named "0", "1", ... as nn.Sequential names them.
  static std::vector<Child> numbered(std::vector<std::unique_ptr<Layer>> layers);

  explicit Composite(std::vector<Child> children);

  // The kind of block without its children ("Residual"), for tree printouts.
  virtual std::string kind() const = 0;
  // One line: the kind with the children inside, "Residual(Linear(64, 64), ReLU())".
  std::string describe() const override;
  std::vector<ParamSpec> param_specs() const override;
  // Every op of its children, once each.
  std::vector<Op> ops() const override;
  // Its children's, and the chain's outputs and gradients between them (forward_chain's).
  size_t activation_bytes(int batch, const ActivationType& a) const override;

  size_t num_children() const { return children_.size(); }
  const Layer& child(size_t i) const { return *children_[i].layer; }
  const std::string& child_name(size_t i) const { return children_[i].name; }
  // Output shape of child i (after set-up).
  const Shape& child_output(size_t i) const { return shapes_[i + 1]; }

 protected:
  void on_bind() override;

  // Whether forward_chain is given the caller's output for its last child (the estimate of
  // activation_bytes counts no buffer for it then).
  virtual bool chain_writes_output() const { return true; }

  // Child i, to run it (a composite whose forward is not a plain chain).
  Layer& child_layer(size_t i) { return *children_[i].layer; }

  // The children as a chain, each fed the previous one's output (what nn.Sequential does).
  // Sets them up from `input`; returns the last child's output shape.
  Shape setup_chain(const Shape& input);
  // Runs the chain on x; returns its output, which stays valid until the next forward (it is x
  // itself when every child aliases its input). The activations between children take x's
  // element type. Child i draws its random numbers from a stream of its own, derived from
  // ctx.seed and i. With y given (a composite that is its chain and nothing more), the last
  // child writes its output into y, which must stay as it is until backward_chain, instead of
  // into a buffer of the composite's; y is returned.
  ConstTensorRef forward_chain(Backend& be, ConstTensorRef x, int batch, const ForwardContext& ctx,
                               TensorRef y = nullptr);
  // Back-propagates dy, the gradient at the chain's output, through the children in reverse:
  // adds their parameter gradients and writes dx, the gradient at x, unless dx is null.
  // x is the input of the last forward_chain, with the same batch.
  void backward_chain(Backend& be, ConstTensorRef x, ConstTensorRef dy, TensorRef dx, int batch);

 private:
  void reshape(Backend& be, int batch, DataType dtype, bool into_y);

  std::vector<Child> children_;
  std::vector<Shape> shapes_;  // shapes_[0] the chain's input, shapes_[i + 1] child i's output
  int batch_ = 0;
  DataType dtype_ = DataType::F32;    // of the activations below
  bool into_y_ = false;               // whether the last child writes into the caller's y
  const Backend* backend_ = nullptr;  // where the buffers below live
  // acts_[i]: child i's output, in out_store_[i] or, when child i aliases, its input's buffer.
  // grad_store_[i]: the gradient at child i's output, written by child i + 1's backward (the
  // last child's output gradient is the caller's dy).
  std::vector<DeviceBuffer> out_store_, grad_store_;
  std::vector<ConstTensorRef> acts_;
};

}  // namespace dpt
