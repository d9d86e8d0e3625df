// The CPU backend's own sgemms against a plain double-precision product, with cblas_sgemm's
// row-major contract: both transposes, leading dimensions wider than the matrices, alpha and
// beta, and beta == 0 overwriting a NaN. The built-in one (a build without OpenBLAS) everywhere;
// the AVX2 one (gemm_avx2.hpp) where the CPU has AVX2 and FMA, with its causal-attention
// triangles; and which one cpu_sgemm picks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/builtin_gemm.hpp"
#include "kernels/cpu/cpu_gemm.hpp"
#include "kernels/cpu/gemm_avx2.hpp"

namespace {

using Sgemm = void (*)(bool, bool, int, int, int, float, const float*, int, const float*, int,
                       float, float*, int);

#if DPT_HAVE_AVX2_SGEMM
void avx2(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  dpt::avx2_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
#endif

// The CPU itself, whatever DPT_CPU_VECTOR says (tests/cross_cpu.sh sets it for the dispatch).
bool cpu_runs_avx2() {
#if defined(__x86_64__) && defined(__GNUC__)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

struct Impl {
  const char* name;
  Sgemm fn;
};

// The GEMMs this CPU can run.
std::vector<Impl> impls() {
  std::vector<Impl> v{{"builtin", dpt::builtin_sgemm}};
#if DPT_HAVE_AVX2_SGEMM
  if (cpu_runs_avx2()) v.push_back({"avx2", avx2});
#endif
  return v;
}

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

void check(const Impl& impl, const Shape& s, bool ta, bool tb, float alpha, float beta,
           bool nan_in_c) {
  SCOPED_TRACE(std::string(impl.name) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
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

  impl.fn(ta, tb, s.m, s.n, s.k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);

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

// Odd sizes, and sizes past the block edges so that partial blocks, several blocks and each
// kernel's remainder rows and columns are all exercised: the built-in one's 64 rows, 256 columns
// and depth and four-row kernel; the AVX2 one's 6 x 16 tiles, 256 columns and depth.
const Shape kShapes[] = {{1, 1, 1},    {3, 5, 7},   {7, 3, 1},    {13, 1, 17},  {1, 19, 23},
                         {31, 37, 41}, {65, 33, 9}, {67, 259, 3}, {5, 7, 300},  {70, 261, 262},
                         {6, 16, 8},   {12, 32, 1}, {11, 17, 513}, {130, 48, 64}};

TEST(CpuGemm, MatchesDoubleReferenceForAllTransposes) {
  for (const Impl& impl : impls())
    for (const Shape& s : kShapes)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          check(impl, s, ta, tb, 1.0f, 0.0f, /*nan_in_c=*/false);
          check(impl, s, ta, tb, -1.5f, 0.5f, false);
          check(impl, s, ta, tb, 0.25f, 1.0f, false);
        }
}

TEST(CpuGemm, BetaZeroOverwritesNaN) {
  for (const Impl& impl : impls())
    for (const Shape& s : {Shape{3, 5, 7}, Shape{70, 261, 262}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) check(impl, s, ta, tb, 2.0f, 0.0f, /*nan_in_c=*/true);
}

// alpha == 0 and k == 0 scale C by beta and leave A and B unread (here: NaN that would show).
TEST(CpuGemm, AlphaZeroOrEmptyKOnlyScalesC) {
  const int m = 3, n = 4, k = 5;
  const std::vector<float> a(m * k, kNaN), b(k * n, kNaN);
  for (const Impl& impl : impls())
    for (const int kk : {k, 0}) {
      const float alpha = kk == 0 ? 1.0f : 0.0f;
      std::vector<float> c = values(m * n, 9);
      const std::vector<float> c0 = c;
      impl.fn(false, false, m, n, kk, alpha, a.data(), k, b.data(), n, -2.0f, c.data(), n);
      for (size_t i = 0; i < c.size(); ++i)
        EXPECT_EQ(c[i], -2.0f * c0[i]) << impl.name << " k=" << kk;
      impl.fn(false, false, m, n, kk, alpha, a.data(), k, b.data(), n, 0.0f, c.data(), n);
      for (float v : c) EXPECT_EQ(v, 0.0f) << impl.name << " k=" << kk;
    }
}

// An empty C (m or n zero) is left alone, its pointer unused.
TEST(CpuGemm, EmptyOutputIsANoOp) {
  const std::vector<float> a(8, 1.0f), b(8, 1.0f);
  for (const Impl& impl : impls()) {
    impl.fn(false, false, 0, 4, 2, 1.0f, a.data(), 2, b.data(), 4, 0.0f, nullptr, 4);
    impl.fn(true, true, 4, 0, 2, 1.0f, a.data(), 4, b.data(), 2, 0.0f, nullptr, 1);
  }
}

// The triangles of causal attention (t x t operands): skipping what a triangular op(A) makes zero
// gives the very bits of the full product (the skipped terms add exact zeros), and kLowerC gives
// the full product's bits on and below the diagonal and leaves C above it as it was. Depths past
// one block (300 > 256) and sizes off the tile edges are among them.
TEST(CpuGemm, Avx2TrianglesSkipOnlyWhatTheMaskZeroes) {
  if (!cpu_runs_avx2()) {
    // Not a skip: on such a CPU the backend must not pick the AVX2 kernel.
    EXPECT_STRNE(dpt::cpu_gemm_name(), "avx2");
    return;
  }
#if DPT_HAVE_AVX2_SGEMM
  using dpt::Triangle;
  for (const int t : {1, 5, 7, 16, 33, 128, 300})
    for (const int n : {1, 16, 32, 37}) {
      SCOPED_TRACE("t=" + std::to_string(t) + " n=" + std::to_string(n));
      // Lower-triangular L (zero above the diagonal) and its transpose, as A for op(A).
      std::vector<float> lower = values(static_cast<size_t>(t) * t, 4);
      for (int i = 0; i < t; ++i)
        for (int p = i + 1; p < t; ++p) lower[static_cast<size_t>(i) * t + p] = 0.0f;
      const std::vector<float> b = values(static_cast<size_t>(t) * n, 5);
      const auto full = [&](bool ta, const std::vector<float>& a, float beta) {
        std::vector<float> c = values(static_cast<size_t>(t) * n, 6);
        dpt::avx2_sgemm(ta, false, t, n, t, 0.5f, a.data(), t, b.data(), n, beta, c.data(), n);
        return c;
      };
      for (const float beta : {0.0f, 1.0f, 0.5f}) {
        // kLowerA: op(A) = L; kUpperA: op(A) = L^T, stored as L and transposed.
        std::vector<float> c = values(static_cast<size_t>(t) * n, 6);
        dpt::avx2_sgemm(false, false, t, n, t, 0.5f, lower.data(), t, b.data(), n, beta, c.data(),
                        n, Triangle::kLowerA);
        EXPECT_EQ(c, full(false, lower, beta)) << "kLowerA, beta " << beta;
        c = values(static_cast<size_t>(t) * n, 6);
        dpt::avx2_sgemm(true, false, t, n, t, 0.5f, lower.data(), t, b.data(), n, beta, c.data(), n,
                        Triangle::kUpperA);
        EXPECT_EQ(c, full(true, lower, beta)) << "kUpperA, beta " << beta;
      }
      // kLowerC: C [t, t] = A B^T with B [t, n]; A = b here, so op(B) = b^T.
      std::vector<float> want(static_cast<size_t>(t) * t, 0.0f);
      dpt::avx2_sgemm(false, true, t, t, n, 0.25f, b.data(), n, b.data(), n, 0.0f, want.data(), t);
      std::vector<float> c(static_cast<size_t>(t) * t, kNaN);
      dpt::avx2_sgemm(false, true, t, t, n, 0.25f, b.data(), n, b.data(), n, 0.0f, c.data(), t,
                      Triangle::kLowerC);
      int wrong = 0;
      for (int i = 0; i < t; ++i)
        for (int j = 0; j <= i; ++j)
          if (c[static_cast<size_t>(i) * t + j] != want[static_cast<size_t>(i) * t + j] &&
              ++wrong <= 5)
            ADD_FAILURE() << "kLowerC: C[" << i << "," << j << "] differs from the full product";
      EXPECT_EQ(wrong, 0);
    }
#endif
}

// A bias row goes in with the product, C = alpha op(A) op(B) + bias + beta C, in the AVX2 kernel
// (added as each tile is stored) and in cpu_sgemm either way; past the tile edges, over two
// blocks of depth, and with alpha == 0 (the bias alone).
TEST(CpuGemm, BiasIsAddedToEveryRow) {
  const auto run = [](const char* name, auto fn) {
    for (const Shape& s : {Shape{1, 1, 1}, Shape{13, 37, 300}, Shape{70, 261, 9}})
      for (const float alpha : {1.0f, 0.0f})
        for (const float beta : {0.0f, 1.0f, 0.5f}) {
          SCOPED_TRACE(std::string(name) + " m=" + std::to_string(s.m) + " n=" +
                       std::to_string(s.n) + " alpha=" + std::to_string(alpha) +
                       " beta=" + std::to_string(beta));
          const std::vector<float> a = values(static_cast<size_t>(s.m) * s.k, 11);
          const std::vector<float> b = values(static_cast<size_t>(s.n) * s.k, 12);  // [n, k]
          const std::vector<float> bias = values(s.n, 13);
          std::vector<float> c = values(static_cast<size_t>(s.m) * s.n, 14);
          const std::vector<float> c0 = c;
          fn(s.m, s.n, s.k, alpha, a.data(), b.data(), beta, c.data(), bias.data());
          int wrong = 0;
          for (int i = 0; i < s.m; ++i)
            for (int j = 0; j < s.n; ++j) {
              double sum = 0, magnitude = 0;
              for (int p = 0; p < s.k; ++p) {
                const double t = static_cast<double>(a[static_cast<size_t>(i) * s.k + p]) *
                                 b[static_cast<size_t>(j) * s.k + p];
                sum += t;
                magnitude += std::fabs(t);
              }
              const size_t at = static_cast<size_t>(i) * s.n + j;
              const double old = beta == 0 ? 0.0 : beta * static_cast<double>(c0[at]);
              const double want = alpha * sum + bias[j] + old;
              const double tol = 2e-7 * (s.k + 4) *
                                 (std::fabs(alpha) * magnitude + std::fabs(bias[j]) + std::fabs(old));
              if (!(std::fabs(c[at] - want) <= tol) && ++wrong <= 5)
                ADD_FAILURE() << "C[" << i << "," << j << "] = " << c[at] << ", want " << want;
            }
          EXPECT_EQ(wrong, 0);
        }
  };
#if DPT_HAVE_AVX2_SGEMM
  if (cpu_runs_avx2())
    run("avx2", [](int m, int n, int k, float alpha, const float* a, const float* b, float beta,
                   float* c, const float* bias) {
      dpt::avx2_sgemm(false, true, m, n, k, alpha, a, k, b, k, beta, c, n, dpt::Triangle::kNone,
                      bias);
    });
#endif
  for (const int threads : {1, 2}) {  // cpu_sgemm: the own kernel, then the library's path
    dpt::set_cpu_gemm_threads(threads);
    run(threads == 1 ? "cpu_sgemm, 1 thread" : "cpu_sgemm, 2 threads",
        [](int m, int n, int k, float alpha, const float* a, const float* b, float beta, float* c,
           const float* bias) {
          dpt::cpu_sgemm(false, true, m, n, k, alpha, a, k, b, k, beta, c, n,
                         dpt::Triangle::kNone, bias);
        });
  }
  dpt::set_cpu_gemm_threads(1);
}

// Which GEMM cpu_sgemm runs: the AVX2 one on one thread where the CPU has it (and neither
// DPT_CPU_GEMM=blas nor DPT_CPU_VECTOR=baseline is set), the library's on several threads.
TEST(CpuGemm, DispatchPicksTheAvx2KernelOnlyOnOneThreadOfAnAvx2Cpu) {
  const char* gemm_env = std::getenv("DPT_CPU_GEMM");
  const char* vector_env = std::getenv("DPT_CPU_VECTOR");
  const bool forced = (gemm_env && std::string(gemm_env) == "blas") ||
                      (vector_env && std::string(vector_env) == "baseline");
  dpt::set_cpu_gemm_threads(2);
  EXPECT_STRNE(dpt::cpu_gemm_name(), "avx2");
  dpt::set_cpu_gemm_threads(1);
  EXPECT_EQ(std::string(dpt::cpu_gemm_name()) == "avx2", cpu_runs_avx2() && !forced)
      << dpt::cpu_gemm_name();
  // Either way the product is right.
  check({"cpu_sgemm",
         [](bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc) {
           dpt::cpu_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
         }},
        Shape{70, 261, 262}, true, false, 1.0f, 0.5f, false);
}

}  // namespace
