#include "src/train/grad_clip.hpp"

#include <algorithm>
#include <cmath>

#include "src/core/error.hpp"

namespace dpt {

GradClipper::GradClipper(Backend& backend, const std::vector<ParamInfo>& params, double max_norm)
    : backend_(backend), max_norm_(max_norm) {
  if (!(max_norm > 0) || !std::isfinite(max_norm))
    throw InputError("option --grad-clip: must be a positive number");
  backend.require(Op::SumSquares, DataType::F32, "--grad-clip");
  backend.require(Op::Scale, DataType::F32, "--grad-clip");
  if (params.empty()) return;
  begin_ = params.front().elem_offset;
  for (const ParamInfo& p : params) {
    begin_ = std::min(begin_, p.elem_offset);
    end_ = std::max(end_, p.elem_offset + p.numel);
  }
}

std::vector<std::pair<size_t, size_t>> GradClipper::spans() const {
  std::vector<std::pair<size_t, size_t>> out;
  if (shard_.empty()) {
    out.emplace_back(begin_, end_);
  } else {
    for (const ShardBlock& b : shard_) {
      const size_t a = std::max(begin_, b.elem_offset);
      const size_t z = std::min(end_, b.elem_offset + b.numel);
      if (a < z) out.emplace_back(a, z);
    }
  }
  return out;
}

double GradClipper::sum_of_squares(const float* grads) const {
  double sum = 0;
  for (const auto& [a, z] : spans()) sum += backend_.sum_squares(grads + a, z - a);
  if (comm_) sum = comm_->allreduce_sum(sum);
  return sum;
}

GradClipResult GradClipper::apply(float* grads, double sum_of_squares) const {
  GradClipResult r;
  r.norm = std::sqrt(sum_of_squares);
  const double coef = max_norm_ / (r.norm + 1e-6);
  if (coef < 1) {
    r.coef = static_cast<float>(coef);
    r.clipped = true;
    for (const auto& [a, z] : spans()) backend_.scale(grads + a, z - a, static_cast<float>(coef));
  }
  return r;
}

}  // namespace dpt
