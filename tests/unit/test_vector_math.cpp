// The CPU kernels' vectorizable exp (kernels/cpu/vector_math.hpp), in this file's baseline build
// and, where the CPU has AVX2 and FMA, in the build the kernels run there.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/vector_math.hpp"

namespace {

void exps_baseline(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = dpt::exp_nonpositive(x[i]);
}
DPT_AVX2_FMA void exps_avx2(const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = dpt::exp_nonpositive(x[i]);
}

// The worst error relative to double exp over 1M points spread over [-87, 0], each float
// argument taken exactly.
double worst_relative_error(void (*exps)(const float*, float*, size_t)) {
  constexpr size_t n = 1 << 20;
  std::vector<float> x(n), y(n);
  for (size_t i = 0; i < n; ++i) x[i] = -87.0f * static_cast<float>(i) / n;
  exps(x.data(), y.data(), n);
  double worst = 0;
  for (size_t i = 0; i < n; ++i) {
    const double want = std::exp(static_cast<double>(x[i]));
    worst = std::max(worst, std::fabs(y[i] - want) / want);
  }
  return worst;
}

void check_edges(void (*exps)(const float*, float*, size_t)) {
  const float inf = std::numeric_limits<float>::infinity();
  const float x[] = {0.0f, -0.0f, -87.0f, -87.5f, -1000.0f, -inf, std::nanf("")};
  float y[std::size(x)];
  exps(x, y, std::size(x));
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f);
  EXPECT_NEAR(y[2], std::exp(-87.0), 2e-7 * std::exp(-87.0));
  EXPECT_EQ(y[3], 0.0f);  // below -87: zero, not a wrong normal float
  EXPECT_EQ(y[4], 0.0f);
  EXPECT_EQ(y[5], 0.0f);
  EXPECT_TRUE(std::isnan(y[6]));
}

TEST(VectorMath, ExpNonpositiveIsWithinAboutAFloatUlp) {
  // Measured 1.02e-7 in both builds (a float ulp is 6e-8 to 1.2e-7 relative).
  EXPECT_LE(worst_relative_error(exps_baseline), 1.5e-7);
  check_edges(exps_baseline);
  if (dpt::cpu_has_avx2_fma()) {
    EXPECT_LE(worst_relative_error(exps_avx2), 1.5e-7);
    check_edges(exps_avx2);
  } else {
    std::printf("this CPU (or DPT_CPU_VECTOR=baseline) has no AVX2/FMA build: baseline only\n");
  }
}

}  // namespace
