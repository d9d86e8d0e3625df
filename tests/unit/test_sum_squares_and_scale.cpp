// The CPU backend's sum_squares and scale (clipping gradients by their global norm) against plain
// references: a long double sum of the squares, and one double product rounded to float.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

std::vector<float> random_floats(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * uniform_float(seed, i);
  return v;
}

TEST(SumSquares, MatchesALongDoubleSum) {
  // A float's square is exact in double, so only the additions round. All terms being
  // non-negative, a sum whose longest chain of additions is d long is within d * 2^-53 of the
  // exact sum, relatively; the CPU's four lanes make d at most n / 4 + 6. The long double
  // reference (64-bit mantissa) is within n * 2^-64, far closer.
  const std::unique_ptr<Backend> be = make_cpu_backend(1);
  for (const size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5},
                         size_t{7}, size_t{8}, size_t{1000}, size_t{1000003}, size_t{10000019}}) {
    const std::vector<float> x = random_floats(n, 500 + n, -3.0f, 3.0f);
    long double exact = 0;
    for (const float v : x) exact += static_cast<long double>(v) * v;
    const double got = be->sum_squares(x.data(), n);
    const double bound =
        (static_cast<double>(n) / 4 + 6) * std::ldexp(1.0, -53) * static_cast<double>(exact);
    EXPECT_LE(std::fabs(got - static_cast<double>(exact)), bound) << "n=" << n;
    // The same order every time: the same bits.
    const double again = be->sum_squares(x.data(), n);
    EXPECT_EQ(std::memcmp(&got, &again, sizeof(double)), 0) << "n=" << n;
  }
  // Exact where every partial sum is.
  const std::vector<float> small = {3.0f, -4.0f, 12.0f, 0.5f, -0.25f};
  EXPECT_EQ(be->sum_squares(small.data(), small.size()), 169.3125);
  EXPECT_EQ(be->sum_squares(small.data(), 0), 0.0);
  const float tenth = 0.1f;
  EXPECT_EQ(be->sum_squares(&tenth, 1), static_cast<double>(tenth) * tenth);
}

TEST(SumSquares, ShowsNanAndInfinity) {
  // Clipping by a norm that hid a NaN would spread it silently.
  const std::unique_ptr<Backend> be = make_cpu_backend(1);
  std::vector<float> x = random_floats(37, 600, -1.0f, 1.0f);
  x[20] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(be->sum_squares(x.data(), x.size())));
  x[20] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(be->sum_squares(x.data(), x.size()), std::numeric_limits<double>::infinity());
  // A float's largest value squared overflows float, not double.
  const float big[] = {std::numeric_limits<float>::max(), std::numeric_limits<float>::max()};
  const double want = 2.0 * static_cast<double>(big[0]) * big[0];
  EXPECT_EQ(be->sum_squares(big, 2), want);
}

TEST(Scale, IsOneRoundedMultiplyPerElement) {
  // float(double(p) * alpha) is the correctly rounded float product (the double product of two
  // floats is exact), which is what p * alpha in float gives: equal bits.
  const std::unique_ptr<Backend> be = make_cpu_backend(1);
  for (const size_t n : {size_t{0}, size_t{1}, size_t{5}, size_t{100003}})
    for (const float alpha : {0.37f, -2.0f, 0.0f, 1e-30f, 1.0f}) {
      std::vector<float> x = random_floats(n, 700 + n, -3.0f, 3.0f);
      if (n > 3) x[3] = std::numeric_limits<float>::quiet_NaN();
      std::vector<float> p = x;
      be->scale(p.data(), n, alpha);
      for (size_t i = 0; i < n; ++i) {
        const float want = static_cast<float>(static_cast<double>(x[i]) * alpha);
        if (std::isnan(want)) {
          ASSERT_TRUE(std::isnan(p[i])) << "n=" << n << " alpha=" << alpha << " at " << i;
        } else {
          ASSERT_EQ(std::memcmp(&p[i], &want, sizeof(float)), 0)
              << "n=" << n << " alpha=" << alpha << " at " << i << ": " << p[i] << " vs " << want;
        }
      }
    }
  // In place on a sub-range: the elements around it stay.
  std::vector<float> p(10, 1.5f);
  be->scale(p.data() + 2, 5, 2.0f);
  const std::vector<float> want = {1.5f, 1.5f, 3, 3, 3, 3, 3, 1.5f, 1.5f, 1.5f};
  EXPECT_EQ(p, want);
}

}  // namespace
}  // namespace dpt
