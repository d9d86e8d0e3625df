#include "src/model/sequential.hpp"

#include <algorithm>
#include <sstream>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"
#include "src/model/composite.hpp"

namespace dpt {

namespace {
size_t align_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

// The tensors a layer holds; a tied one counts with its holder.
size_t count_params(const Layer& layer) {
  size_t n = 0;
  for (const ParamSpec& p : layer.param_specs())
    if (p.tied_to.empty()) n += static_cast<size_t>(shape_numel(p.shape));
  return n;
}

// The name its tensors go under: its module name, or its index as nn.Sequential has it.
std::string top_name(const Layer& layer, size_t index) {
  return layer.module_name().empty() ? std::to_string(index) : layer.module_name();
}

// One line per layer: "(name) what -> output shape  params N"; a composite gets its kind on its
// line and its children on indented lines beneath, as PyTorch prints nested modules.
void summary_line(std::ostringstream& os, const std::string& indent, const std::string& name,
                  const Layer& layer, const Shape& output) {
  const auto* composite = dynamic_cast<const Composite*>(&layer);
  os << indent << "(" << name << ") " << (composite ? composite->kind() : layer.describe())
     << " -> " << shape_str(output);
  if (const size_t count = count_params(layer)) os << "  params " << count;
  for (const ParamSpec& p : layer.param_specs())
    if (!p.tied_to.empty()) os << "  (weight tied to " << p.tied_to << ")";
  os << "\n";
  if (composite)
    for (size_t i = 0; i < composite->num_children(); ++i)
      summary_line(os, indent + "  ", composite->child_name(i), composite->child(i),
                   composite->child_output(i));
}
}  // namespace

Sequential::Sequential(std::vector<std::unique_ptr<Layer>> layers, Backend& backend,
                       const Shape& input, DataType activations, size_t align_elems)
    : backend_(backend), layers_(std::move(layers)), act_dtype_(activations), align_(align_elems) {
  if (align_ == 0) throw SystemError("Sequential: alignment of 0 elements");
  shapes_.push_back(input);
  tied_.resize(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) range_names_.push_back(top_name(*layers_[i], i));
  if (!layers_.empty()) input_dtype_ = layers_[0]->input_dtype(act_dtype_);
  // Features come as float32 whatever the model computes in: forward converts them.
  if (input_dtype_ == act_dtype_ && act_dtype_ != DataType::F32) {
    input_dtype_ = DataType::F32;
    cast_input_ = true;
  }
  // Per layer, the tensors of its views in param_specs() order (indices into info_).
  std::vector<std::vector<size_t>> views(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = *layers_[i];
    if (i > 0 && layer.input_dtype(act_dtype_) != act_dtype_)
      throw InputError("model: layer " + std::to_string(i) + " " + layer.describe() + " takes " +
                       dtype_name(layer.input_dtype(act_dtype_)) +
                       " inputs (token ids), so it must be the first layer");
    shapes_.push_back(layer.setup(shapes_.back()));
    const std::string who = "model: layer " + std::to_string(i) + " " + layer.describe();
    for (Op op : layer.ops()) backend_.require(op, act_dtype_, who);
    const std::string prefix = top_name(layer, i) + ".";
    for (const ParamSpec& p : layer.param_specs()) {
      if (!p.tied_to.empty()) {
        const auto owner = std::find_if(info_.begin(), info_.end(),
                                        [&](const ParamInfo& q) { return q.name == p.tied_to; });
        if (owner == info_.end())
          throw InputError(who + ": its tensor is tied to " + p.tied_to +
                           ", which no layer before it holds");
        if (owner->shape != p.shape)
          throw InputError(who + ": its tensor is tied to " + p.tied_to + " " +
                           shape_str(owner->shape) + " but has the shape " + shape_str(p.shape));
        ++owner->uses;
        const size_t index = static_cast<size_t>(owner - info_.begin());
        tied_[i].push_back(index);
        aliases_.emplace_back(prefix + p.name, index);
        views[i].push_back(index);
        continue;
      }
      ParamInfo info;
      info.name = prefix + p.name;
      if (std::any_of(info_.begin(), info_.end(),
                      [&](const ParamInfo& q) { return q.name == info.name; }))
        throw InputError(who + ": a second tensor named " + info.name);
      info.shape = p.shape;
      info.numel = static_cast<size_t>(shape_numel(p.shape));
      info.elem_offset = flat_size_;
      info.layer = static_cast<int>(i);
      info.init = p.init;
      flat_size_ = align_up(flat_size_ + info.numel, align_);
      views[i].push_back(info_.size());
      info_.push_back(info);
    }
  }
  const Shape& out = shapes_.back();
  const bool rows = !layers_.empty() && layers_.back()->gives_rows() && out.size() == 2;
  if (out.size() != 1 && !rows)
    throw InputError("model: the last layer must give flat outputs, got " + shape_str(out) +
                     " (add flatten and linear)");
  rows_per_sample_ = rows ? out[0] : 1;
  row_stride_ = rows ? layers_.back()->row_stride() : out.back();
  if (row_stride_ < out.back())
    throw SystemError("model: the last layer's rows are " + std::to_string(row_stride_) +
                      " elements apart, narrower than its " + std::to_string(out.back()) +
                      " outputs");
  params_.resize(backend_, DataType::F32, std::max<size_t>(flat_size_, 1));
  grads_.resize(backend_, DataType::F32, std::max<size_t>(flat_size_, 1));
  const bool working = act_dtype_ != DataType::F32;
  if (working) {
    if (!convertible(DataType::F32, act_dtype_))
      throw InputError(std::string("model: no working copy of the weights in ") +
                       dtype_name(act_dtype_));
    work_.resize(backend_, act_dtype_, std::max<size_t>(flat_size_, 1));
  }
  const size_t elem = dtype_size(act_dtype_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    std::vector<TensorRef> p;
    std::vector<float*> g;
    for (size_t t : views[i]) {
      const size_t at = info_[t].elem_offset;
      p.push_back(working
                      ? TensorRef(static_cast<char*>(work_.ref().data()) + at * elem, act_dtype_)
                      : TensorRef(params_.data() + at));
      g.push_back(grads_.data() + info_[t].elem_offset);
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
  // Uniform and constant tensors are filled on the backend, so that a GPU's parameters need not
  // pass through the host; normal ones are drawn on the host, where the draw is defined
  // (normal_float), and copied. The values are the same on every backend.
  backend_.fill(params_.data(), flat_size_, 0.0f);  // the padding between tensors too
  std::vector<float> host;
  for (size_t t = 0; t < info_.size(); ++t) {
    const ParamInfo& p = info_[t];
    const uint64_t stream = mix64(seed ^ (0x5851f42d4c957f2dULL * (t + 1)));
    float* dst = params_.data() + p.elem_offset;
    switch (p.init.kind) {
      case Init::Kind::Uniform:
        backend_.fill_uniform(dst, p.numel, p.init.value, stream);
        break;
      case Init::Kind::Constant:
        backend_.fill(dst, p.numel, p.init.value);
        break;
      case Init::Kind::Normal:
        // One tensor at a time: the host buffer is at most the largest tensor.
        host.resize(p.numel);
        for (size_t i = 0; i < p.numel; ++i) host[i] = p.init.value * normal_float(stream, i);
        backend_.copy_from_host(dst, host.data(), sizeof(float) * p.numel);
        break;
    }
  }
  working_stale_ = true;
}

size_t Sequential::buffer_elems(size_t i) const {
  if (i == layers_.size() && i > 0) return static_cast<size_t>(output_elems());
  return static_cast<size_t>(shape_numel(shapes_[i]));
}

size_t Sequential::activation_bytes(int batch) const {
  // As reshape() allocates them.
  const size_t elem = dtype_size(act_dtype_);
  size_t bytes = cast_input_ ? static_cast<size_t>(batch) * shape_numel(shapes_[0]) * elem : 0;
  for (size_t i = 1; i <= layers_.size(); ++i) {
    const size_t count = static_cast<size_t>(batch) * buffer_elems(i);
    if (i < layers_.size()) bytes += count * elem;                // the gradient there
    if (!layers_[i - 1]->aliases_input()) bytes += count * elem;  // the output
    bytes += layers_[i - 1]->activation_bytes(batch, {backend_, act_dtype_, elem});
  }
  return bytes;
}

void Sequential::reshape(int batch) {
  if (batch == batch_) return;
  batch_ = batch;
  const size_t n = layers_.size();
  act_store_.resize(n + 1);
  grad_store_.resize(n + 1);
  act_.assign(n + 1, nullptr);
  grad_.assign(n + 1, nullptr);
  // The output's gradient is the caller's (backward's doutput): no buffer for it here. A gpt's
  // logits are the largest activation there is (B x T x 50,304), so that saves their size again.
  for (size_t i = 1; i <= n; ++i) {
    const size_t count = static_cast<size_t>(batch) * buffer_elems(i);
    if (i < n) {
      grad_store_[i].resize(backend_, act_dtype_, count);
      grad_[i] = grad_store_[i].ref();
    }
    if (layers_[i - 1]->aliases_input()) continue;
    act_store_[i].resize(backend_, act_dtype_, count);
    act_[i] = act_store_[i].ref();
  }
  // The first layer's input gradient is never needed; aliased layers share their input's
  // buffers so that their backward is free.
  for (size_t i = 1; i <= n; ++i)
    if (layers_[i - 1]->aliases_input() && i > 1) grad_[i] = grad_[i - 1];
}

void Sequential::refresh_working_copy() {
  working_stale_ = false;
  if (!work_.count()) return;
  if (rounding_ == WeightRounding::Stochastic)
    backend_.convert_stochastic(params_.data(), work_.ref().data(), flat_size_, rounding_seed_);
  else
    backend_.convert(params_.data(), DataType::F32, work_.ref().data(), act_dtype_, flat_size_);
}

ConstTensorRef Sequential::forward(ConstTensorRef x, int batch, bool training,
                                   uint64_t dropout_seed) {
  if (x.dtype() != input_dtype_)
    throw SystemError(std::string("Sequential::forward: the input is ") + dtype_name(x.dtype()) +
                      ", the model takes " + dtype_name(input_dtype_));
  if (working_stale_) refresh_working_copy();
  reshape(batch);
  act_[0] = TensorRef(const_cast<void*>(x.data()), x.dtype());
  if (cast_input_) {
    const size_t n = static_cast<size_t>(batch) * shape_numel(shapes_[0]);
    input_cast_.resize(backend_, act_dtype_, n);
    backend_.convert(x.data(), x.dtype(), input_cast_.ref().data(), act_dtype_, n);
    act_[0] = input_cast_.ref();
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i]->aliases_input()) {
      act_[i + 1] = act_[i];
      continue;
    }
    ForwardContext ctx{training, mix64(dropout_seed ^ (0x2545f4914f6cdd1dULL * (i + 1)))};
    double start = 0;
    const int marker = observer_ ? time_begin(&start) : -1;
    {
      ScopedRange range(backend_, range_names_[i].c_str());
      layers_[i]->forward(backend_, act_[i], act_[i + 1], batch, ctx);
    }
    if (observer_) time_end(static_cast<int>(i), false, marker, start);
  }
  return act_.back();
}

void Sequential::backward(ConstTensorRef doutput, int batch,
                          const std::function<void(int)>& on_layer_done) {
  if (batch != batch_) throw SystemError("Sequential::backward: batch differs from forward");
  const size_t n = layers_.size();
  if (doutput.dtype() != act_dtype_)
    throw SystemError(std::string("Sequential::backward: the output gradient is ") +
                      dtype_name(doutput.dtype()) + ", the activations are " +
                      dtype_name(act_dtype_));
  ConstTensorRef dy = doutput;
  for (size_t i = n; i-- > 0;) {
    const TensorRef dx = i == 0 ? TensorRef() : grad_[i];
    if (layers_[i]->aliases_input()) {
      // The input's gradient buffer must hold dy: copy unless they are one buffer already.
      if (dx && dx.data() != dy.data())
        backend_.copy(dx.data(), dy.data(), dtype_size(act_dtype_) * batch * buffer_elems(i));
    } else {
      double start = 0;
      const int marker = observer_ ? time_begin(&start) : -1;
      {
        ScopedRange range(backend_, range_names_[i].c_str());
        layers_[i]->backward(backend_, act_[i], act_[i + 1], dy, dx, batch);
      }
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
    summary_line(os, "  ", top_name(*layers_[i], i), *layers_[i], shapes_[i + 1]);
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
  working_stale_ = true;
}

}  // namespace dpt
