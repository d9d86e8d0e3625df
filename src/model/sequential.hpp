// Sequential: layers applied in order, like PyTorch's nn.Sequential, over flat buffers.
//
// All parameters live in one allocation, all gradients in another, laid out in layer order with
// each tensor starting on a 64-element boundary; layers hold views. The flat buffers are float32
// (the master copy of the weights, whatever type the activations take); the activations and
// their gradients have the model's activation type, which the layers' ops must take. When that
// type is bf16, a third buffer of that layout holds the bf16 working copy of the weights, which
// the layers compute with: it is written from the master weights before the first forward after
// they may have changed (anyone who took params() may have written them), rounded to nearest
// or stochastically (set_weight_rounding). Parameter
// names follow nn.Sequential ("0.weight", "2.bias": every layer counts), so weights map onto
// PyTorch by index, unless a layer carries a module name of its own (Layer::module_name: a gpt's
// "transformer.h.3.attn.c_attn.weight"). A composite layer (a residual or transformer block) is
// one layer here: its tensors follow in its children's order, named beneath its index or module
// name as PyTorch nests them ("1.0.weight"), and ParamInfo::layer, the stage backward reports, is
// the index of the block.
//
// A tied tensor (ParamSpec::tied_to: a gpt's output head uses the token embedding's matrix) is
// stored once, by the earlier layer that holds it. The later layer gets a view of it and adds
// into its gradient; the tensor's ParamInfo counts both uses, and tied_params() lists, per
// layer, the tensors it uses without holding them. Its stage stays the holder's, the lower one,
// which is its last use in backward: its gradient is final only after that.
//
// The input is float32 features (converted to the activations' type by forward), or int32 token
// ids [T] when the first layer is an embedding (input_dtype()). The output per sample is [classes],
// or [rows, classes] when the last layer gives one row of logits per position (a language model:
// rows_per_sample() is T).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
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
  Init init;
  // Layers whose backward adds to its gradient: 1, or 2 for an embedding tied to the head.
  int uses = 1;
};

class Sequential {
 public:
  // Throws InputError when a layer does not fit its input, or when the backend does not take
  // `activations` for an op a layer needs (naming the layer).
  // Each tensor starts at a multiple of `align_elems` elements of the flat buffers, and the
  // buffers' size is one: 64 keeps every tensor 256-byte aligned; a multiple of the world size
  // lets ZeRO cut any bucket of whole tensors into equal blocks (see src/train/zero.hpp).
  Sequential(std::vector<std::unique_ptr<Layer>> layers, Backend& backend, const Shape& input,
             DataType activations = DataType::F32, size_t align_elems = kDefaultAlignElems);
  static constexpr size_t kDefaultAlignElems = 64;
  Sequential(const Sequential&) = delete;
  Sequential& operator=(const Sequential&) = delete;

  // Each tensor as its ParamInfo::init says, from a counter-based stream of `seed` per tensor:
  // uniform on the backend, normal drawn on the host and copied, constants filled. The values do
  // not depend on the backend.
  void init_params(uint64_t seed);

  // Runs the layers on a batch (x in this backend's memory, of input_dtype(): float32 features
  // or int32 token ids); returns the output [batch, num_outputs()], of activation_dtype(), its
  // rows output_row_stride() elements apart.
  // Throws SystemError when x has another element type.
  ConstTensorRef forward(ConstTensorRef x, int batch, bool training, uint64_t dropout_seed);
  ConstTensorRef forward(const float* x, int batch, bool training, uint64_t dropout_seed) {
    return forward(ConstTensorRef(x), batch, training, dropout_seed);
  }
  // Back-propagates d(loss)/d(output) (of activation_dtype()) and adds the parameter gradients
  // into grads() (float32).
  // `on_layer_done(i)` is called once layer i's backward is done: its own tensors' gradients are
  // final, and it has added its use of each of tied_params(i).
  void backward(ConstTensorRef doutput, int batch,
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

  // The float32 master weights. Taking them marks the bf16 working copy stale.
  float* params() const {
    working_stale_ = true;
    return params_.data();
  }
  // How the bf16 working copy is written from the master weights: rounded to nearest even, or
  // stochastically (Backend::convert_stochastic) from `seed`, which the caller sets to the same
  // value on every rank (a trainer: from its seed and the optimizer step) so replicas agree.
  enum class WeightRounding { Nearest, Stochastic };
  // A change marks the working copy stale.
  void set_weight_rounding(WeightRounding rounding, uint64_t seed) {
    if (rounding == rounding_ && (rounding == WeightRounding::Nearest || seed == rounding_seed_))
      return;
    rounding_ = rounding;
    rounding_seed_ = seed;
    working_stale_ = true;
  }
  // The working copy (bf16), or the master weights when the model computes in float32; up to
  // date as of the last forward.
  ConstTensorRef working_params() const {
    return work_.count() ? ConstTensorRef(work_.ref()) : ConstTensorRef(params_.data());
  }
  float* grads() const { return grads_.data(); }
  // Elements (float32) in each flat buffer, padding included.
  size_t flat_size() const { return flat_size_; }
  // Bytes of activations a training batch of `batch` samples allocates: each layer's output and
  // the gradient there (but for the model's output, whose gradient the caller holds), and what
  // the layers keep (Layer::activation_bytes).
  size_t activation_bytes(int batch) const;
  size_t align_elems() const { return align_; }
  DataType activation_dtype() const { return act_dtype_; }
  size_t num_params() const;  // parameters, padding excluded
  const std::vector<ParamInfo>& param_info() const { return info_; }
  const Shape& input_shape() const { return shapes_.front(); }
  DataType input_dtype() const { return input_dtype_; }
  // Output elements per sample: rows_per_sample() * num_classes().
  int64_t num_outputs() const { return shape_numel(shapes_.back()); }
  // Rows of logits per sample (1 for a classifier, T for a language model), each of
  // num_classes(): the loss runs over batch * rows_per_sample() rows.
  int64_t rows_per_sample() const { return rows_per_sample_; }
  int64_t num_classes() const { return shapes_.back().back(); }
  // Elements from one row of the output to the next (Layer::row_stride): num_classes(), or
  // more when the last layer pads its rows (a gpt's tied head). forward's output, and the
  // gradient backward takes there, hold batch * rows_per_sample() rows of this many elements;
  // the elements past num_classes() in each row mean nothing.
  int64_t output_row_stride() const { return row_stride_; }
  // Elements per sample of forward's output buffer: rows_per_sample() * output_row_stride().
  int64_t output_elems() const { return rows_per_sample_ * row_stride_; }
  // Indices into param_info() of the tensors layer i uses but another layer holds (ParamSpec::
  // tied_to). Each counts one use of its ParamInfo::uses: a trainer reports it to the gradient
  // Reducer (Reducer::param_done) when layer i's backward is done.
  const std::vector<size_t>& tied_params(size_t i) const { return tied_[i]; }
  // The names a tied tensor also goes by, with the index of the tensor it is ("lm_head.weight"
  // for a gpt's head, as nanoGPT's state_dict lists it beside transformer.wte.weight).
  const std::vector<std::pair<std::string, size_t>>& aliases() const { return aliases_; }
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
  std::vector<std::vector<size_t>> tied_;  // per layer, as tied_params() returns
  std::vector<std::pair<std::string, size_t>> aliases_;
  DataType input_dtype_ = DataType::F32;
  int64_t rows_per_sample_ = 1;
  int64_t row_stride_ = 0;
  // Elements per sample of the buffer after layer i - 1 (i = 0: the input).
  size_t buffer_elems(size_t i) const;
  size_t flat_size_ = 0;
  DeviceBuffer params_, grads_;
  DeviceBuffer work_;        // the bf16 working copy (empty in float32)
  bool cast_input_ = false;  // float32 features into a bf16 model: converted by forward
  DeviceBuffer input_cast_;
  mutable bool working_stale_ = true;
  WeightRounding rounding_ = WeightRounding::Nearest;
  uint64_t rounding_seed_ = 0;
  void refresh_working_copy();
  int batch_ = 0;
  // Activations and their gradients; act_[i] is the input of layer i. Aliased layers share.
  std::vector<DeviceBuffer> act_store_, grad_store_;
  DataType act_dtype_;
  size_t align_ = kDefaultAlignElems;
  std::vector<TensorRef> act_, grad_;
  LayerObserver observer_;
  std::vector<std::string> range_names_;  // each layer's, for Device::begin_range
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
