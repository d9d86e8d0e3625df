// Comparing two models' parameters tensor by tensor. Models built for different world sizes lay
// their flat buffers out with different alignments (src/train/zero.hpp), so the tests compare
// the tensors, never the buffers with their padding.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "src/model/sequential.hpp"

namespace dpt::testing {

// Every tensor's values, one after the other, without the padding between them.
inline std::vector<float> packed_params(const Sequential& net) {
  const std::vector<float> flat = net.params_to_host();
  std::vector<float> out;
  for (const ParamInfo& p : net.param_info())
    out.insert(out.end(), flat.begin() + static_cast<std::ptrdiff_t>(p.elem_offset),
               flat.begin() + static_cast<std::ptrdiff_t>(p.elem_offset + p.numel));
  return out;
}

// A model's output rows without the elements between them (Sequential::output_row_stride):
// `rows` rows of `width` values, each `ld` elements after the one before in `strided`.
inline std::vector<float> packed_rows(const std::vector<float>& strided, size_t rows, size_t width,
                                      size_t ld) {
  std::vector<float> out;
  out.reserve(rows * width);
  for (size_t r = 0; r < rows; ++r)
    out.insert(out.end(), strided.begin() + static_cast<std::ptrdiff_t>(r * ld),
               strided.begin() + static_cast<std::ptrdiff_t>(r * ld + width));
  return out;
}

// The largest difference between two models' parameters (the same tensors, any layout), per
// tensor relative to that tensor's largest magnitude in `want` (float sums in another order
// differ in the last bits, and an element near zero would turn that into a large ratio of its
// own). `skip(tensor, i)` leaves element i of a tensor out.
inline double max_relative_difference(
    const Sequential& got, const Sequential& want,
    const std::function<bool(const ParamInfo&, size_t)>& skip = nullptr) {
  const std::vector<float> g = got.params_to_host(), w = want.params_to_host();
  double max_rel = 0;
  for (size_t t = 0; t < want.param_info().size(); ++t) {
    const ParamInfo& info = want.param_info()[t];
    const size_t go = got.param_info().at(t).elem_offset;
    double scale = 0, diff = 0;
    for (size_t i = 0; i < info.numel; ++i) {
      if (skip && skip(info, i)) continue;
      const double wv = w[info.elem_offset + i];
      scale = std::max(scale, std::fabs(wv));
      diff = std::max(diff, std::fabs(static_cast<double>(g[go + i]) - wv));
    }
    if (scale > 0) max_rel = std::max(max_rel, diff / scale);
  }
  return max_rel;
}

}  // namespace dpt::testing
