// Sequential: layers applied in order, like PyTorch's nn.Sequential, over flat buffers.
//
// All parameters live in one allocation, all gradients in another, laid out in layer order with
// each tensor starting on a 64-element boundary; layers hold views. The flat buffers are float32
// (the master copy of the weights, whatever type the activations take); the activations and
// their gradients have the model's activation type, which the layers' ops must take. Parameter
// names follow nn.Sequential ("0.weight", "2.bias": every layer counts), so weights map onto
// PyTorch by index. A composite layer (a residual block) is one layer here: its tensors follow in its children's
// order, named beneath its index as PyTorch nests them ("1.0.weight"), and ParamInfo::layer, the
// stage backward reports, is the index of the block.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"
#include "src/model/layer.hpp"

namespace dpt {

struct ParamInfo {
  std::string name;  // "0.weight"
  Shape shape;
  size_t elem_offset = 0;  // in elements (float32) from the start of the flat buffers
  size_t numel = 0;
  int layer = 0;  // index of the top-level layer that holds it
  float init_bound = 0;
};

class Sequential {
 public:
  // Throws InputError when a layer does not fit its input, or when the backend does not take
  // `activations` for an op a layer needs (naming the layer). Only float32 is trained today.
  Sequential(std::vector<std::unique_ptr<Layer>> layers, Backend& backend, const Shape& input,
             DataType activations = DataType::F32);
  Sequential(const Sequential&) = delete;
  Sequential& operator=(const Sequential&) = delete;

  // Uniform(-bound, bound) per tensor from a counter-based stream of `seed`, drawn on the host so
  // the result does not depend on the backend.
  void init_params(uint64_t seed);

  // Runs the layers on a batch (x in this backend's memory); returns the output [batch, outputs].
  // x's element type is the first layer's to check: float32 pixels or features, int32 tokens.
  const float* forward(ConstTensorRef x, int batch, bool training, uint64_t dropout_seed);
  // Back-propagates d(loss)/d(output) and adds the parameter gradients into grads().
  // `on_layer_done(i)` is called once layer i's parameter gradients are final.
  void backward(const float* doutput, int batch,
                const std::function<void(int)>& on_layer_done = nullptr);
  void zero_grad();
  // Called around each layer's forward and backward with (layer, is_backward, start, end) in
  // steady-clock seconds, for timelines; empty to stop. On a backend that computes while the
  // host goes on (a GPU), each layer is bracketed by two markers instead, without waiting, and
  // the observer hears of it from report_layer_times().
  using LayerObserver = std::function<void(int, bool, double, double)>;
  void set_layer_observer(LayerObserver observer) {
    observer_ = std::move(observer);
    pending_.clear();
  }
  // For an asynchronous backend: calls the observer for the layers run since the last call, in
  // the order they ran. Call it after the backend's synchronize() and before clear_markers().
  void report_layer_times();

  float* params() const { return params_.data(); }
  float* grads() const { return grads_.data(); }
  // Elements (float32) in each flat buffer, padding included.
  size_t flat_size() const { return flat_size_; }
  DataType activation_dtype() const { return act_dtype_; }
  size_t num_params() const;                       // parameters, padding excluded
  const std::vector<ParamInfo>& param_info() const { return info_; }
  const Shape& input_shape() const { return shapes_.front(); }
  int64_t num_outputs() const { return shape_numel(shapes_.back()); }
  size_t num_layers() const { return layers_.size(); }
  const Layer& layer(size_t i) const { return *layers_[i]; }
  Backend& backend() const { return backend_; }

  // A printable table of the layers with their output shapes and parameter counts; the children
  // of a composite are listed, indented, under it.
  std::string summary() const;
  // Text that is equal on two ranks exactly when they built the same parameter names and shapes.
  std::string signature() const;

  std::vector<float> params_to_host() const;
  void params_from_host(const std::vector<float>& host);

 private:
  void reshape(int batch);

  Backend& backend_;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> shapes_;  // shapes_[0] input, shapes_[i + 1] output of layer i
  std::vector<ParamInfo> info_;
  size_t flat_size_ = 0;
  DeviceBuffer params_, grads_;
  int batch_ = 0;
  // Activations and their gradients; act_[i] is the input of layer i. Aliased layers share.
  std::vector<DeviceBuffer> act_store_, grad_store_;
  DataType act_dtype_;
  std::vector<TensorRef> act_, grad_;
  LayerObserver observer_;
  struct PendingSpan {
    int layer;
    bool backward;
    int start_marker, end_marker;
  };
  std::vector<PendingSpan> pending_;  // layers timed by markers, not reported yet

  // Starts timing a layer for the observer; returns a start marker (asynchronous backend) or
  // -1 and sets *start (host time).
  int time_begin(double* start);
  void time_end(int layer, bool backward, int start_marker, double start);
};

}  // namespace dpt
