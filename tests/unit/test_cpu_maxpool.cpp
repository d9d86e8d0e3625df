// The CPU backend's max pooling against the rule written out plainly: per window, in row-major
// order, the first NaN wins; otherwise the first maximum. Ties, NaNs and -inf are drawn on
// purpose, with odd sizes that drop a last row and column, for the 2x2 path (four windows at a
// time where SSE2 is there, the rest one by one) and the general one.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

void reference(const PoolShape& s, const std::vector<float>& x, std::vector<float>& y,
               std::vector<int32_t>& at) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int p = 0; p < s.n * s.c; ++p)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        int32_t best = -1;
        for (int di = 0; di < s.k; ++di)
          for (int dj = 0; dj < s.k; ++dj) {
            const int32_t idx = (i * s.stride + di) * s.in_w + j * s.stride + dj;
            const float v = x[static_cast<size_t>(p) * s.in_h * s.in_w + idx];
            const float b = best < 0 ? 0 : x[static_cast<size_t>(p) * s.in_h * s.in_w + best];
            if (best >= 0 && std::isnan(b)) continue;  // a NaN already won
            if (best < 0 || std::isnan(v) || v > b) best = idx;
          }
        const size_t o = (static_cast<size_t>(p) * oh + i) * ow + j;
        at[o] = best;
        y[o] = x[static_cast<size_t>(p) * s.in_h * s.in_w + best];
      }
}

TEST(CpuMaxPool, FirstNanElseFirstMaximumWins) {
  std::unique_ptr<Backend> cpu = make_cpu_backend(1);
  const float inf = std::numeric_limits<float>::infinity();
  const float levels[] = {-1.0f, 0.0f, 1.0f, -inf, std::nanf(""), 2.0f};
  uint64_t seed = 11;
  for (const int k : {2, 3})
    for (const auto& [h, w] : {std::pair{2, 2}, {7, 9}, {8, 8}, {5, 12}, {6, 28}, {3, 17}}) {
      PoolShape s;
      s.n = 3;
      s.c = 2;
      s.in_h = h;
      s.in_w = w;
      s.k = k;
      s.stride = 2;
      if (s.out_h() == 0 || s.out_w() == 0) continue;
      std::vector<float> x(static_cast<size_t>(s.n) * s.c * h * w);
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = levels[random_u64(seed, i) % (random_u64(seed + 1, i) % 4 == 0 ? 6 : 3)];
      ++seed;
      const size_t outs = static_cast<size_t>(s.n) * s.c * s.out_h() * s.out_w();
      std::vector<float> y(outs, 7.0f), want_y(outs);
      std::vector<int32_t> at(outs, -5), want_at(outs);
      cpu->maxpool2d_forward(s, x.data(), y.data(), at.data());
      reference(s, x, want_y, want_at);
      for (size_t o = 0; o < outs; ++o) {
        ASSERT_EQ(at[o], want_at[o]) << "k " << k << ", " << h << "x" << w << ", output " << o;
        ASSERT_TRUE(y[o] == want_y[o] || (std::isnan(y[o]) && std::isnan(want_y[o])))
            << "k " << k << ", output " << o << ": " << y[o] << " vs " << want_y[o];
      }
    }
}

}  // namespace
}  // namespace dpt
