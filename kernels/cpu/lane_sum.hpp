// The one summation order of the transformer kernels' row reductions (LayerNorm statistics and
// gradients, softmax normalisers and gradients).
//
// sum over i < n of term(i), as eight interleaved partial sums: lane k adds term(k), term(k + 8),
// term(k + 16), ... in increasing i; the terms past the last full group of eight are added in
// order to a zero, then lanes 0..7 are added to that in order. A single running float sum is one
// dependent add after another (the compiler may not reorder float additions); eight of them
// vectorise, and the order is fixed, so a result is the same on every run.
#pragma once

#include <cstdint>

namespace dpt {

template <typename T, typename Term>
inline T lane_sum(int64_t n, Term term) {
  constexpr int kLanes = 8;
  T lane[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) lane[k] += term(i + k);
  T sum = 0;
  for (; i < n; ++i) sum += term(i);
  for (int k = 0; k < kLanes; ++k) sum += lane[k];
  return sum;
}

}  // namespace dpt
