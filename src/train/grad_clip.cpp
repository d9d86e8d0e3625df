#include "src/train/grad_clip.hpp"

#include <algorithm>
#include <cmath>

#include "kernels/gate_coefficient.hpp"
#include "src/core/error.hpp"

namespace dpt {

GradClipper::GradClipper(Backend& backend, const std::vector<ParamInfo>& params, double max_norm)
    : backend_(backend), max_norm_(max_norm) {
  if (!(max_norm > 0) || !std::isfinite(max_norm))
    throw InputError("option --grad-clip: must be a positive number");
  backend.require(Op::SumSquares, DataType::F32, "--grad-clip");
  backend.require(Op::Scale, DataType::F32, "--grad-clip");
  const auto [begin, end] = gradient_span(params);
  begin_ = begin;
  end_ = end;
}

std::pair<size_t, size_t> gradient_span(const std::vector<ParamInfo>& params) {
  if (params.empty()) return {0, 0};
  size_t begin = params.front().elem_offset, end = 0;
  for (const ParamInfo& p : params) {
    begin = std::min(begin, p.elem_offset);
    end = std::max(end, p.elem_offset + p.numel);
  }
  return {begin, end};
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
  int32_t skip = 0;  // the caller has checked the gradients
  const float coef = gate_coefficient(sum_of_squares, max_norm_, &skip);
  if (coef < 1.0f) {
    r.coef = coef;
    r.clipped = true;
    for (const auto& [a, z] : spans()) backend_.scale(grads + a, z - a, coef);
  }
  return r;
}

}  // namespace dpt
