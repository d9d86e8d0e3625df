#include "comm/reducer.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"

namespace dpt {

std::vector<Bucket> assign_buckets(const std::vector<ParamRange>& params, size_t first_cap_bytes,
                                   size_t cap_bytes) {
  std::vector<Bucket> buckets;
  Bucket current;
  size_t cap = cap_bytes == 0 ? SIZE_MAX : first_cap_bytes;
  const auto close = [&] {
    if (current.tensors.empty()) return;
    const ParamRange& low = params[current.tensors.back()];
    const ParamRange& high = params[current.tensors.front()];
    current.elem_offset = low.elem_offset;
    current.numel = high.elem_offset + high.numel - low.elem_offset;
    current.lowest_layer = low.stage;
    buckets.push_back(std::move(current));
    current = Bucket{};
    if (cap_bytes != 0) cap = cap_bytes;
  };
  for (size_t i = params.size(); i-- > 0;) {
    const size_t bytes = params[i].numel * sizeof(float);
    if (!current.tensors.empty() && current.bytes + bytes > cap) close();
    current.tensors.push_back(i);
    current.bytes += bytes;
  }
  close();
  return buckets;
}

Reducer::Reducer(Communicator& comm, Device& device, std::vector<Bucket> buckets,
                 std::vector<ParamRange> params, GradReduction mode, WireCodec* codec)
    : comm_(comm),
      mode_(mode),
      codec_(comm.size() > 1 ? codec : nullptr),
      accounting_(device),
      buckets_(std::move(buckets)),
      params_(std::move(params)),
      bucket_of_(params_.size(), SIZE_MAX),
      uses_pending_(params_.size()),
      params_pending_(buckets_.size()) {
  for (size_t b = 0; b < buckets_.size(); ++b)
    for (size_t t : buckets_[b].tensors) {
      if (t >= params_.size() || bucket_of_[t] != SIZE_MAX)
        throw SystemError("Reducer: bucket " + std::to_string(b) + " names parameter " +
                          std::to_string(t) + ", which is out of range or in two buckets");
      bucket_of_[t] = b;
    }
  if (codec_) {
    size_t end = 0;
    for (const Bucket& b : buckets_) end = std::max(end, b.elem_offset + b.numel);
    wire_.resize(device, codec_->type(), std::max<size_t>(end, 1));
  }
  if (mode_ == GradReduction::ReduceScatter)
    for (const Bucket& b : buckets_)
      if (b.numel % static_cast<size_t>(comm_.size()) != 0)
        throw SystemError("Reducer: a bucket of " + std::to_string(b.numel) +
                          " elements cannot be reduce-scattered over " +
                          std::to_string(comm_.size()) + " ranks (pad it)");
}

void Reducer::step_begin() { accounting_.step_begin(); }

void Reducer::begin(TensorRef grads) {
  if (!work_.empty()) throw SystemError("Reducer::begin: the previous step was not finished");
  grads_ = grads;
  next_ = 0;
  launched_.clear();
  stats_ = StepCommStats{};
  for (size_t i = 0; i < params_.size(); ++i) uses_pending_[i] = params_[i].uses;
  for (size_t b = 0; b < buckets_.size(); ++b) params_pending_[b] = buckets_[b].tensors.size();
}

void Reducer::launch(size_t index) {
  // One rank: the sum over ranks is the buffer itself, so there is nothing to send (on a GPU
  // that saves a collective launch per bucket, on the CPU a pass through MPI).
  if (comm_.size() == 1) return;
  const Bucket& b = buckets_[index];
  launched_.push_back(index);
  // What travels: the gradients themselves, or their encoding at the same offset of the wire.
  TensorRef buf = grads_;
  if (codec_) {
    codec_->encode(grads_.as<float>() + b.elem_offset,
                   static_cast<unsigned char*>(wire_.ref().data()) +
                       b.elem_offset * dtype_size(codec_->type()),
                   b.numel);
    buf = wire_.ref();
  }
  const size_t elem = dtype_size(buf.dtype());
  auto* first = static_cast<unsigned char*>(buf.data()) + b.elem_offset * elem;
  if (mode_ == GradReduction::Allreduce) {
    work_.push_back(comm_.allreduce_async(first, b.numel, buf.dtype(), ReduceOp::Sum));
    return;
  }
  // In place: this rank's block of the bucket receives its sums.
  const size_t count = b.numel / static_cast<size_t>(comm_.size());
  void* block = first + static_cast<size_t>(comm_.rank()) * count * elem;
  work_.push_back(comm_.reduce_scatter_async(first, block, count, buf.dtype(), ReduceOp::Sum));
}

void Reducer::gather_params(TensorRef params) {
  if (mode_ != GradReduction::ReduceScatter)
    throw SystemError("Reducer::gather_params: the gradients were allreduced, not sharded");
  if (comm_.size() == 1) return;
  const size_t elem = dtype_size(params.dtype());
  const size_t p = static_cast<size_t>(comm_.size());
  std::vector<std::unique_ptr<Work>> gathers;
  for (const Bucket& b : buckets_) {
    auto* first = static_cast<unsigned char*>(params.data()) + b.elem_offset * elem;
    const size_t count = b.numel / p;
    gathers.push_back(comm_.allgather_async(
        first + static_cast<size_t>(comm_.rank()) * count * elem, first, count, params.dtype()));
  }
  for (auto& w : gathers) w->wait();
  for (auto& w : gathers) stats_.gather_seconds += w->end_time() - w->start_time();
}

void Reducer::param_done(size_t param) {
  if (param >= params_.size() || uses_pending_[param] <= 0)
    throw SystemError("Reducer: parameter " + std::to_string(param) +
                      " reported done more often than its uses");
  if (--uses_pending_[param] > 0) return;
  const size_t b = bucket_of_[param];
  if (b == SIZE_MAX) return;  // in no bucket: nothing to reduce
  --params_pending_[b];
  // In build order only, so that every rank starts the same collectives in the same order.
  while (next_ < buckets_.size() && params_pending_[next_] == 0) launch(next_++);
}

void Reducer::stage_done(int stage) {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].stage == stage) param_done(i);
}

void Reducer::backward_done() { accounting_.backward_done(); }

void Reducer::finish() {
  while (next_ < buckets_.size()) launch(next_++);
  const double wait_start = steady_seconds();
  for (auto& w : work_) w->wait();
  const double wait_end = steady_seconds();
  for (auto& w : work_) {
    stats_.buckets.push_back({w->start_time(), w->end_time()});
    stats_.total_seconds += w->end_time() - w->start_time();
  }
  stats_.wait_seconds = wait_end - wait_start;
  work_.clear();
  if (codec_) {
    // The sums back into the gradients: a bucket's, or (reduce-scattered) this rank's block.
    const size_t wire_elem = dtype_size(codec_->type());
    for (size_t index : launched_) {
      const Bucket& b = buckets_[index];
      size_t offset = b.elem_offset, n = b.numel;
      if (mode_ == GradReduction::ReduceScatter) {
        n = b.numel / static_cast<size_t>(comm_.size());
        offset += static_cast<size_t>(comm_.rank()) * n;
      }
      codec_->decode(static_cast<const unsigned char*>(wire_.ref().data()) + offset * wire_elem,
                     grads_.as<float>() + offset, n);
    }
  }
  launched_.clear();
}

StepCommStats Reducer::step_end() {
  stats_.total_seconds += stats_.gather_seconds;
  stats_.exposed_seconds =
      accounting_.exposed_seconds(stats_.buckets, stats_.total_seconds, stats_.gather_seconds);
  return stats_;
}

}  // namespace dpt
