#include "src/model/sequential.hpp"

#include <sstream>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/model/composite.hpp"

namespace dpt {

namespace {
constexpr size_t kAlignFloats = 64;
size_t align_up(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

size_t count_params(const Layer& layer) {
  size_t n = 0;
  for (const ParamSpec& p : layer.param_specs()) n += static_cast<size_t>(shape_numel(p.shape));
  return n;
}

// One line per layer: "(name) what -> output shape  params N"; a composite gets its kind on its
// line and its children on indented lines beneath, as PyTorch prints nested modules.
void summary_line(std::ostringstream& os, const std::string& indent, const std::string& name,
                  const Layer& layer, const Shape& output) {
  const auto* composite = dynamic_cast<const Composite*>(&layer);
  os << indent << "(" << name << ") " << (composite ? composite->kind() : layer.describe())
     << " -> " << shape_str(output);
  if (const size_t count = count_params(layer)) os << "  params " << count;
  os << "\n";
  if (composite)
    for (size_t i = 0; i < composite->num_children(); ++i)
      summary_line(os, indent + "  ", composite->child_name(i), composite->child(i),
                   composite->child_output(i));
}
}  // namespace

Sequential::Sequential(std::vector<std::unique_ptr<Layer>> layers, Backend& backend,
                       const Shape& input, DataType activations)
    : backend_(backend), layers_(std::move(layers)), act_dtype_(activations) {
  shapes_.push_back(input);
  for (size_t i = 0; i < layers_.size(); ++i) {
    shapes_.push_back(layers_[i]->setup(shapes_.back()));
    for (Op op : layers_[i]->ops())
      backend_.require(op, act_dtype_,
                       "model: layer " + std::to_string(i) + " " + layers_[i]->describe());
    for (const ParamSpec& p : layers_[i]->param_specs()) {
      ParamInfo info;
      info.name = std::to_string(i) + "." + p.name;
      info.shape = p.shape;
      info.numel = static_cast<size_t>(shape_numel(p.shape));
      info.elem_offset = flat_size_;
      info.layer = static_cast<int>(i);
      info.init_bound = p.init_bound;
      flat_size_ = align_up(flat_size_ + info.numel);
      info_.push_back(info);
    }
  }
  if (shapes_.back().size() != 1)
    throw InputError("model: the last layer must give flat outputs, got " +
                     shape_str(shapes_.back()) + " (add flatten and linear)");
  params_.resize(backend_, DataType::F32, std::max<size_t>(flat_size_, 1));
  grads_.resize(backend_, DataType::F32, std::max<size_t>(flat_size_, 1));
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<float*> p, g;
    for (const ParamInfo& info : info_)
      if (info.layer == static_cast<int>(i)) {
        p.push_back(params_.data() + info.elem_offset);
        g.push_back(grads_.data() + info.elem_offset);
      }
    layers_[i]->bind(std::move(p), std::move(g));
  }
}

size_t Sequential::num_params() const {
  size_t n = 0;
  for (const ParamInfo& p : info_) n += p.numel;
  return n;
}

void Sequential::init_params(uint64_t seed) {
  // On the backend, so that a GPU's parameters never pass through the host; the values are the
  // same on every backend.
  backend_.fill(params_.data(), flat_size_, 0.0f);  // the padding between tensors too
  for (size_t t = 0; t < info_.size(); ++t) {
    const ParamInfo& p = info_[t];
    const uint64_t stream = mix64(seed ^ (0x5851f42d4c957f2dULL * (t + 1)));
    backend_.fill_uniform(params_.data() + p.elem_offset, p.numel, p.init_bound, stream);
  }
}

void Sequential::reshape(int batch) {
  if (batch == batch_) return;
  batch_ = batch;
  const size_t n = layers_.size();
  act_store_.resize(n + 1);
  grad_store_.resize(n + 1);
  act_.assign(n + 1, nullptr);
  grad_.assign(n + 1, nullptr);
  for (size_t i = 1; i <= n; ++i) {
    const size_t count = static_cast<size_t>(batch) * shape_numel(shapes_[i]);
    grad_store_[i].resize(backend_, act_dtype_, count);
    grad_[i] = grad_store_[i].ref();
    if (layers_[i - 1]->aliases_input()) continue;
    act_store_[i].resize(backend_, act_dtype_, count);
    act_[i] = act_store_[i].ref();
  }
  // The first layer's input gradient is never needed; aliased layers share their input's
  // buffers so that their backward is free.
  for (size_t i = 1; i <= n; ++i)
    if (layers_[i - 1]->aliases_input() && i > 1) grad_[i] = grad_[i - 1];
}

const float* Sequential::forward(ConstTensorRef x, int batch, bool training,
                                 uint64_t dropout_seed) {
  reshape(batch);
  // Layers only read their input; TensorRef is the one type the list of activations holds.
  act_[0] = TensorRef(const_cast<void*>(x.data()), x.dtype());
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->aliases_input()) {
      act_[i + 1] = act_[i];
      continue;
    }
    ForwardContext ctx{training, mix64(dropout_seed ^ (0x2545f4914f6cdd1dULL * (i + 1)))};
    double start = 0;
    const int marker = observer_ ? time_begin(&start) : -1;
    layers_[i]->forward(backend_, act_[i], act_[i + 1], batch, ctx);
    if (observer_) time_end(static_cast<int>(i), false, marker, start);
  }
  return act_.back().as<float>();
}

void Sequential::backward(const float* doutput, int batch,
                          const std::function<void(int)>& on_layer_done) {
  if (batch != batch_) throw SystemError("Sequential::backward: batch differs from forward");
  const size_t n = layers_.size();
  ConstTensorRef dy = doutput;
  for (size_t i = n; i-- > 0;) {
    const TensorRef dx = i == 0 ? TensorRef() : grad_[i];
    if (layers_[i]->aliases_input()) {
      // The input's gradient buffer must hold dy: copy unless they are one buffer already.
      if (dx && dx.data() != dy.data())
        backend_.copy(dx.data(), dy.data(),
                      dtype_size(act_dtype_) * batch * shape_numel(shapes_[i]));
    } else {
      double start = 0;
      const int marker = observer_ ? time_begin(&start) : -1;
      layers_[i]->backward(backend_, act_[i], act_[i + 1], dy, dx, batch);
      if (observer_) time_end(static_cast<int>(i), true, marker, start);
    }
    if (on_layer_done) on_layer_done(static_cast<int>(i));
    dy = dx;
  }
}

int Sequential::time_begin(double* start) {
  if (backend_.asynchronous()) return backend_.record_marker();
  *start = steady_seconds();
  return -1;
}

void Sequential::time_end(int layer, bool backward, int start_marker, double start) {
  if (start_marker >= 0)
    pending_.push_back({layer, backward, start_marker, backend_.record_marker()});
  else
    observer_(layer, backward, start, steady_seconds());
}

void Sequential::report_layer_times() {
  if (observer_)
    for (const PendingSpan& p : pending_)
      observer_(p.layer, p.backward, backend_.marker_time(p.start_marker),
                backend_.marker_time(p.end_marker));
  pending_.clear();
}

void Sequential::zero_grad() { backend_.fill(grads_.data(), flat_size_, 0.0f); }

std::string Sequential::summary() const {
  std::ostringstream os;
  os << "  input " << shape_str(shapes_[0]) << "\n";
  for (size_t i = 0; i < layers_.size(); ++i)
    summary_line(os, "  ", std::to_string(i), *layers_[i], shapes_[i + 1]);
  os << "  total parameters " << num_params();
  return os.str();
}

std::string Sequential::signature() const {
  std::string s = shape_str(shapes_[0]);
  for (const ParamInfo& p : info_) s += ";" + p.name + shape_str(p.shape);
  return s;
}

std::vector<float> Sequential::params_to_host() const {
  std::vector<float> host(flat_size_);
  backend_.copy_to_host(host.data(), params_.data(), sizeof(float) * flat_size_);
  return host;
}

void Sequential::params_from_host(const std::vector<float>& host) {
  if (host.size() != flat_size_) throw SystemError("params_from_host: size mismatch");
  backend_.copy_from_host(params_.data(), host.data(), sizeof(float) * flat_size_);
}

}  // namespace dpt
