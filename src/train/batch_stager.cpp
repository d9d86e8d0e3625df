#include "src/train/batch_stager.hpp"

#include <algorithm>

namespace dpt {

BatchStager::BatchStager(Device& device, const BatchSource& data, const DistributedSampler& sampler,
                         int batch, int micro_batches)
    : device_(device),
      data_(data),
      sampler_(sampler),
      batch_(batch),
      x_count_(static_cast<size_t>(batch) * shape_numel(data.sample_shape())),
      y_count_(static_cast<size_t>(batch) * data.targets_per_sample()),
      indices_(static_cast<size_t>(batch) * micro_batches),
      x_dev_(device, data.input_dtype(), x_count_),
      y_dev_(device, DataType::I32, y_count_) {
  for (int m = 0; m <= std::max(1, micro_batches); ++m) {
    host_.push_back(std::make_unique<HostSlot>(device));
    host_.back()->x.get(x_count_ * dtype_size(data.input_dtype()));
    host_.back()->y.as<int32_t>(y_count_);
  }
}

void BatchStager::stage(const std::vector<int64_t>& perm, int64_t s, int64_t step, int micro) {
  if (micro == 0) {
    sampler_.batch_indices(perm, s, indices_.data());
    if (staged_step_ == step) return;
  }
  send(indices_.data() + static_cast<size_t>(micro) * batch_, step, micro,
       static_cast<size_t>(micro));
}

void BatchStager::prefetch(const std::vector<int64_t>& perm, int64_t s, int64_t step) {
  sampler_.batch_indices(perm, s, indices_.data());
  send(indices_.data(), step, 0, host_.size() - 1);
  staged_step_ = step;
}

void BatchStager::send(const int64_t* indices, int64_t step, int micro, size_t slot) {
  HostSlot& host = *host_.at(slot);
  void* x_host = host.x.get(x_count_ * dtype_size(data_.input_dtype()));
  int32_t* y_host = host.y.as<int32_t>(y_count_);
  data_.gather(indices, batch_, x_host, y_host);
  if (host_hook_) host_hook_(step, micro, TensorRef(x_host, data_.input_dtype()));
  device_.copy_from_host_async(x_dev_.ref().data(), x_host,
                               x_count_ * dtype_size(data_.input_dtype()));
  device_.copy_from_host_async(y_dev_.as<int32_t>(), y_host, sizeof(int32_t) * y_count_);
}

}  // namespace dpt
