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

GradClipResult GradClipper::clip(float* grads) const {
  GradClipResult r;
  r.norm = std::sqrt(backend_.sum_squares(grads + begin_, end_ - begin_));
  const double coef = max_norm_ / (r.norm + 1e-6);
  if (coef < 1) {
    r.coef = static_cast<float>(coef);
    r.clipped = true;
    backend_.scale(grads + begin_, end_ - begin_, static_cast<float>(coef));
  }
  return r;
}

}  // namespace dpt
