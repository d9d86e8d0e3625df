// Clipping the averaged gradients by their global L2 norm, as torch.nn.utils.clip_grad_norm_
// does: norm = sqrt(sum of squares of every gradient element), coef = max_norm / (norm + 1e-6),
// and the gradients are multiplied by coef when it is below 1 (PyTorch multiplies by
// min(coef, 1), and multiplying by 1 changes nothing).
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "comm/communicator.hpp"
#include "kernels/backend.hpp"
#include "src/model/sequential.hpp"
#include "src/train/zero.hpp"

namespace dpt {

// [first, last) elements of the flat gradient buffer that `params` cover, from the first
// tensor's start to the last one's end (the alignment padding between them is zero); (0, 0) for
// none.
std::pair<size_t, size_t> gradient_span(const std::vector<ParamInfo>& params);

struct GradClipResult {
  double norm = 0;  // before clipping
  double coef = 1;  // what the gradients were multiplied by (1: left alone)
  bool clipped = false;
};

class GradClipper {
 public:
  // Over the gradient elements of `params` (one contiguous span of the flat buffer, from the
  // first tensor to the end of the last; the alignment padding between them is zero). Throws
  // InputError when max_norm is not a positive number or the backend cannot clip.
  GradClipper(Backend& backend, const std::vector<ParamInfo>& params, double max_norm);
  // Measures and, when needed, scales the gradients in place (every rank holds the same ones, so
  // every rank clips alike): apply(grads, sum_of_squares(grads)).
  GradClipResult clip(float* grads) const { return apply(grads, sum_of_squares(grads)); }
  // The squared global norm, summed in double (allreduced under ZeRO-1). The square of a float
  // is finite in double and so is any sum of them here, so it is finite exactly when every
  // gradient is: the trainer's non-finite check reads it instead of passing over the gradients
  // once more.
  double sum_of_squares(const float* grads) const;
  // Scales the gradients when sqrt(sum_of_squares) is above the bound.
  GradClipResult apply(float* grads, double sum_of_squares) const;
  // Under ZeRO-1 each rank holds the summed gradients of its own blocks only: the norm is then
  // the square root of the allreduced sum of the blocks' sums of squares, and each rank scales
  // its blocks.
  void set_shard(Communicator& comm, std::vector<ShardBlock> blocks) {
    comm_ = &comm;
    shard_ = std::move(blocks);
  }
  double max_norm() const { return max_norm_; }

 private:
  Backend& backend_;
  size_t begin_ = 0, end_ = 0;
  double max_norm_;
  Communicator* comm_ = nullptr;
  std::vector<ShardBlock> shard_;
  // The stretches of the buffer this rank measures and scales: the whole span, or its blocks.
  std::vector<std::pair<size_t, size_t>> spans() const;
};

}  // namespace dpt
