// The built-in sgemm (the CPU backend's GEMM in a build without OpenBLAS) against a plain
// double-precision product, with cblas_sgemm's row-major contract: both transposes, leading
// dimensions wider than the matrices, alpha and beta, and beta == 0 overwriting a NaN.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/builtin_gemm.hpp"

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kPad = -777.0f;  // in the padding past each row; must stay untouched

struct Shape {
  int m, n, k;
};

// Deterministic values in [-1, 1).
std::vector<float> values(size_t count, uint32_t seed) {
  std::vector<float> v(count);
  uint32_t x = seed * 2654435761u + 1;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(x >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return v;
}

// A stored [rows, cols] with leading dimension ld (> cols): its padding holds kPad.
std::vector<float> padded(int rows, int cols, int ld, uint32_t seed) {
  std::vector<float> v = values(static_cast<size_t>(rows) * ld, seed);
  for (int r = 0; r < rows; ++r)
    for (int c = cols; c < ld; ++c) v[static_cast<size_t>(r) * ld + c] = kPad;
  return v;
}

void check(const Shape& s, bool ta, bool tb, float alpha, float beta, bool nan_in_c) {
  SCOPED_TRACE("m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
               " k=" + std::to_string(s.k) + " trans_a=" + std::to_string(ta) +
               " trans_b=" + std::to_string(tb) + " alpha=" + std::to_string(alpha) +
               " beta=" + std::to_string(beta));
  // op(A) is [m, k]: stored as A [m, k] or, transposed, A [k, m]; likewise B.
  const int a_rows = ta ? s.k : s.m, a_cols = ta ? s.m : s.k;
  const int b_rows = tb ? s.n : s.k, b_cols = tb ? s.k : s.n;
  const int lda = a_cols + 3, ldb = b_cols + 5, ldc = s.n + 2;
  const std::vector<float> a = padded(a_rows, a_cols, lda, 1);
  const std::vector<float> b = padded(b_rows, b_cols, ldb, 2);
  std::vector<float> c = padded(s.m, s.n, ldc, 3);
  if (nan_in_c)
    for (int i = 0; i < s.m; ++i)
      for (int j = 0; j < s.n; ++j) c[static_cast<size_t>(i) * ldc + j] = kNaN;
  const std::vector<float> c_before = c;

  dpt::builtin_sgemm(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(),
                     ldc);

  const auto op_a = [&](int i, int p) {
    return static_cast<double>(ta ? a[static_cast<size_t>(p) * lda + i]
                                  : a[static_cast<size_t>(i) * lda + p]);
  };
  const auto op_b = [&](int p, int j) {
    return static_cast<double>(tb ? b[static_cast<size_t>(j) * ldb + p]
                                  : b[static_cast<size_t>(p) * ldb + j]);
  };
  int wrong = 0;
  for (int i = 0; i < s.m; ++i) {
    for (int j = 0; j < s.n; ++j) {
      double sum = 0, magnitude = 0;
      for (int p = 0; p < s.k; ++p) {
        sum += op_a(i, p) * op_b(p, j);
        magnitude += std::fabs(op_a(i, p) * op_b(p, j));
      }
      const size_t at = static_cast<size_t>(i) * ldc + j;
      const double old = beta == 0 ? 0.0 : static_cast<double>(c_before[at]);
      const double want = alpha * sum + beta * old;
      // Rounding error of a float sum of k products, scaled: at most about (k + 4) * 2^-24 times
      // the magnitudes involved.
      const double tol = 2e-7 * (s.k + 4) * (std::fabs(alpha) * magnitude + std::fabs(beta * old));
      if (!(std::fabs(c[at] - want) <= tol) && ++wrong <= 5)
        ADD_FAILURE() << "C[" << i << "," << j << "] = " << c[at] << ", want " << want;
    }
    for (int j = s.n; j < ldc; ++j)
      EXPECT_EQ(c[static_cast<size_t>(i) * ldc + j], kPad) << "padding of C written, row " << i;
  }
  EXPECT_EQ(wrong, 0);
}

// Odd sizes, and sizes past the block edges (64 rows, 256 columns and depth) so that partial
// blocks, several blocks and the four-row kernel's remainder rows are all exercised.
const Shape kShapes[] = {{1, 1, 1},    {3, 5, 7},   {7, 3, 1},    {13, 1, 17}, {1, 19, 23},
                         {31, 37, 41}, {65, 33, 9}, {67, 259, 3}, {5, 7, 300}, {70, 261, 262}};

TEST(BuiltinGemm, MatchesDoubleReferenceForAllTransposes) {
  for (const Shape& s : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        check(s, ta, tb, 1.0f, 0.0f, /*nan_in_c=*/false);
        check(s, ta, tb, -1.5f, 0.5f, false);
        check(s, ta, tb, 0.25f, 1.0f, false);
      }
}

TEST(BuiltinGemm, BetaZeroOverwritesNaN) {
  for (const Shape& s : {Shape{3, 5, 7}, Shape{70, 261, 262}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) check(s, ta, tb, 2.0f, 0.0f, /*nan_in_c=*/true);
}

// alpha == 0 and k == 0 scale C by beta and leave A and B unread (here: NaN that would show).
TEST(BuiltinGemm, AlphaZeroOrEmptyKOnlyScalesC) {
  const int m = 3, n = 4, k = 5;
  const std::vector<float> a(m * k, kNaN), b(k * n, kNaN);
  for (const int kk : {k, 0}) {
    const float alpha = kk == 0 ? 1.0f : 0.0f;
    std::vector<float> c = values(m * n, 9);
    const std::vector<float> c0 = c;
    dpt::builtin_sgemm(false, false, m, n, kk, alpha, a.data(), k, b.data(), n, -2.0f, c.data(), n);
    for (size_t i = 0; i < c.size(); ++i) EXPECT_EQ(c[i], -2.0f * c0[i]) << "k=" << kk;
    dpt::builtin_sgemm(false, false, m, n, kk, alpha, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    for (float v : c) EXPECT_EQ(v, 0.0f) << "k=" << kk;
  }
}

// An empty C (m or n zero) is left alone, its pointer unused.
TEST(BuiltinGemm, EmptyOutputIsANoOp) {
  const std::vector<float> a(8, 1.0f), b(8, 1.0f);
  dpt::builtin_sgemm(false, false, 0, 4, 2, 1.0f, a.data(), 2, b.data(), 4, 0.0f, nullptr, 4);
  dpt::builtin_sgemm(true, true, 4, 0, 2, 1.0f, a.data(), 4, b.data(), 2, 0.0f, nullptr, 1);
}

}  // namespace
