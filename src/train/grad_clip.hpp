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
  // every rank clips alike).
  GradClipResult clip(float* grads) const;
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
};

}  // namespace dpt
