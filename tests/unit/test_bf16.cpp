// bfloat16 rounding (src/core/bf16.hpp) against a reference worked out in double, and the CPU
// backend's conversions, which the GPU's must match bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The nearest bf16 to a finite f by exhaustive comparison of its two neighbours in double, ties
// to the one with an even last bit; past the largest bf16 (by half an ulp or more), infinity.
uint16_t reference_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t down = static_cast<uint16_t>(u >> 16);
  const uint16_t up = static_cast<uint16_t>(down + 1);  // the next bf16 away from zero
  const double x = std::fabs(static_cast<double>(f));
  const double lo = std::fabs(static_cast<double>(bf16_to_float(down)));
  // The next magnitude above the largest finite bf16 is where infinity starts (2^128).
  const double hi = (up & 0x7fff) == 0x7f80 ? std::ldexp(1.0, 128)
                                            : std::fabs(static_cast<double>(bf16_to_float(up)));
  if (x - lo < hi - x) return down;
  if (hi - x < x - lo) return up;
  return (down & 1) ? up : down;
}

TEST(Bf16, RoundsToNearestEvenLikeAReferenceInDouble) {
  size_t checked = 0;
  for (uint64_t i = 0; i < 2000000; ++i) {
    const uint32_t u = static_cast<uint32_t>(random_u64(17, i));
    const float f = from_bits(u);
    if (!std::isfinite(f)) continue;
    ASSERT_EQ(float_to_bf16(f), reference_round(f)) << "bits " << std::hex << u;
    ++checked;
  }
  EXPECT_GT(checked, 1900000u);
  // Ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to the even one, 1; 1 + 3 * 2^-8
  // goes up to 1 + 2^-6.
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  EXPECT_EQ(bf16_to_float(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))),
            1.0f + std::ldexp(1.0f, -6));
}

TEST(Bf16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16_to_float(float_to_bf16(inf)), inf);
  EXPECT_EQ(bf16_to_float(float_to_bf16(-inf)), -inf);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
  // A NaN whose payload sits only in the low bits must not round into an infinity.
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001u)))));
  EXPECT_TRUE(std::signbit(bf16_to_float(float_to_bf16(-0.0f))));
  EXPECT_EQ(bf16_to_float(float_to_bf16(std::numeric_limits<float>::max())), inf);
  EXPECT_EQ(bf16_to_float(float_to_bf16(from_bits(0x7f7f0000u))), from_bits(0x7f7f0000u));
  // Every bf16 converts to float and back unchanged.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16(f), b);
  }
}

TEST(Bf16, StochasticRoundingIsUnbiased) {
  // 1 + 0.3 ulp of bf16: rounds up three times in ten.
  const float x = 1.0f + 0.3f * std::ldexp(1.0f, -7);
  const uint16_t down = float_to_bf16(1.0f), up = static_cast<uint16_t>(down + 1);
  const int n = 100000;
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const uint16_t b = float_to_bf16_stochastic(x, static_cast<uint32_t>(random_u64(5, i)));
    ASSERT_TRUE(b == down || b == up);
    sum += bf16_to_float(b);
  }
  // The mean's standard error is ulp * sqrt(0.3 * 0.7 / n) = 1.1e-5; 5 of them allowed.
  EXPECT_NEAR(sum / n, x, 5 * std::ldexp(1.0, -7) * std::sqrt(0.21 / n));
  EXPECT_EQ(float_to_bf16_stochastic(1.0f, 0xffff), down);  // exact values never move
}

TEST(Bf16, CpuBackendConvertsAsTheScalarRounding) {
  const auto be = make_cpu_backend(1);
  EXPECT_TRUE(be->takes(Op::Convert, DataType::BF16));
  EXPECT_FALSE(be->takes(Op::Conv2d, DataType::BF16));
  std::vector<float> x(4099), back(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = 100.0f * (uniform_float(3, i) - 0.5f);
  std::vector<uint16_t> b(x.size());
  be->convert(x.data(), DataType::F32, b.data(), DataType::BF16, x.size());
  be->convert(b.data(), DataType::BF16, back.data(), DataType::F32, x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(b[i], float_to_bf16(x[i]));
    ASSERT_EQ(back[i], bf16_to_float(b[i]));
  }
  EXPECT_THROW(be->convert(x.data(), DataType::F32, b.data(), DataType::F64, 1), SystemError);
}

// The backend's stochastic rounding: each element from its own counter-based draw (so a seed
// repeats, and another seed differs), always one of the two neighbours, and unbiased over seeds.
TEST(Bf16, CpuBackendRoundsStochasticallyFromTheSeed) {
  const auto be = make_cpu_backend(1);
  const size_t n = 1000;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = 1.0f + (static_cast<float>(i % 100) + 0.5f) / 12800.0f;
  std::vector<uint16_t> a(n), b(n), c(n);
  be->convert_stochastic(x.data(), a.data(), n, 7);
  be->convert_stochastic(x.data(), b.data(), n, 7);
  be->convert_stochastic(x.data(), c.data(), n, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(a[i], float_to_bf16_stochastic(x[i], static_cast<uint32_t>(random_u64(7, i))));
    const uint16_t down = static_cast<uint16_t>(float_to_bf16(1.0f));
    ASSERT_TRUE(a[i] == down || a[i] == down + 1);
  }
  // Over 400 seeds, each element's mean is within 5 standard errors of its value.
  const int seeds = 400;
  std::vector<double> mean(n, 0.0);
  for (int s = 0; s < seeds; ++s) {
    be->convert_stochastic(x.data(), a.data(), n, 100 + s);
    for (size_t i = 0; i < n; ++i) mean[i] += bf16_to_float(a[i]) / seeds;
  }
  const double ulp = std::ldexp(1.0, -7);
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    const double p = (x[i] - 1.0) / ulp;  // the chance of rounding up
    off += std::fabs(mean[i] - x[i]) > 5 * ulp * std::sqrt(p * (1 - p) / seeds) + 1e-12;
  }
  EXPECT_EQ(off, 0u);
}

}  // namespace
}  // namespace dpt
