// The mixed-precision GEMM's CPU twin (Backend::gemm_ex): bf16 operands, products and sums in
// float32, a bf16 result rounded once; against a float64 reference on the same bf16 inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

// A [rows, cols] matrix stored with leading dimension ld (> cols: padding that must not be
// read or written), values of bf16 precision in [-1, 1).
struct Matrix {
  int rows, cols, ld;
  std::vector<uint16_t> b;
  Matrix(int r, int c, uint64_t seed)
      : rows(r), cols(c), ld(c + 3), b(static_cast<size_t>(r) * (c + 3)) {
    for (size_t i = 0; i < b.size(); ++i) b[i] = float_to_bf16(2 * uniform_float(seed, i) - 1);
  }
  float at(int r, int c) const { return bf16_to_float(b[static_cast<size_t>(r) * ld + c]); }
  std::vector<float> widened() const {
    std::vector<float> f(b.size());
    for (size_t i = 0; i < b.size(); ++i) f[i] = bf16_to_float(b[i]);
    return f;
  }
};

TEST(GemmEx, Bf16OperandsSumInFloatAndRoundTheResultOnce) {
  const auto be = make_cpu_backend(1);
  const int m = 37, n = 29, k = 300;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const Matrix a(ta ? k : m, ta ? m : k, 1 + ta), b(tb ? n : k, tb ? k : n, 3 + tb);
      Matrix c0(m, n, 7);  // the bf16 C that beta scales
      // float64 reference: alpha A B + beta C on the bf16 values.
      const float alpha = 0.75f, beta = 0.5f;
      std::vector<double> ref(static_cast<size_t>(m) * n);
      double scale = 0;
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double s = 0, mag = 0;
          for (int p = 0; p < k; ++p) {
            const double x = ta ? a.at(p, i) : a.at(i, p), y = tb ? b.at(j, p) : b.at(p, j);
            s += x * y;
            mag += std::fabs(x * y);
          }
          ref[static_cast<size_t>(i) * n + j] = alpha * s + beta * c0.at(i, j);
          scale = std::max(scale, alpha * mag);
        }
      // Into float32: within float32's rounding of k sums (k * 2^-24 of the magnitudes).
      std::vector<float> cf(static_cast<size_t>(m) * (n + 3), 0.0f);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) cf[static_cast<size_t>(i) * (n + 3) + j] = c0.at(i, j);
      be->gemm_ex(ta, tb, m, n, k, alpha, ConstTensorRef(a.b.data(), DataType::BF16), a.ld,
                  ConstTensorRef(b.b.data(), DataType::BF16), b.ld, beta,
                  TensorRef(cf.data(), DataType::F32), n + 3);
      // Into bf16, in place of C.
      Matrix c = c0;
      be->gemm_ex(ta, tb, m, n, k, alpha, ConstTensorRef(a.b.data(), DataType::BF16), a.ld,
                  ConstTensorRef(b.b.data(), DataType::BF16), b.ld, beta,
                  TensorRef(c.b.data(), DataType::BF16), c.ld);
      size_t off_f32 = 0, off_bf16 = 0, not_once = 0;
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          const double r = ref[static_cast<size_t>(i) * n + j];
          const float f = cf[static_cast<size_t>(i) * (n + 3) + j];
          off_f32 += std::fabs(f - r) > k * std::ldexp(scale, -24) + 1e-7;
          // One rounding of the float result to bf16: the bf16 nearest to f, exactly.
          const float h = c.at(i, j);
          not_once += float_to_bf16(f) != c.b[static_cast<size_t>(i) * c.ld + j];
          off_bf16 += std::fabs(h - r) > std::ldexp(std::fabs(r), -8) + k * std::ldexp(scale, -24);
        }
      EXPECT_EQ(off_f32, 0u) << "ta " << ta << " tb " << tb;
      EXPECT_EQ(off_bf16, 0u) << "ta " << ta << " tb " << tb;
      EXPECT_EQ(not_once, 0u) << "ta " << ta << " tb " << tb;
      // The padding past each row of C was left alone.
      for (int i = 0; i < m; ++i)
        for (int j = n; j < n + 3; ++j) {
          ASSERT_EQ(c.b[static_cast<size_t>(i) * c.ld + j],
                    c0.b[static_cast<size_t>(i) * c0.ld + j]);
          ASSERT_EQ(cf[static_cast<size_t>(i) * (n + 3) + j], 0.0f);
        }
    }
}

TEST(GemmEx, Float32OperandsAreGemmItself) {
  const auto be = make_cpu_backend(1);
  const int m = 5, n = 4, k = 3;
  std::vector<float> a(m * k), b(k * n), c1(m * n, 1.0f), c2(m * n, 1.0f);
  for (size_t i = 0; i < a.size(); ++i) a[i] = uniform_float(1, i);
  for (size_t i = 0; i < b.size(); ++i) b[i] = uniform_float(2, i);
  be->gemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.5f, c1.data(), n);
  be->gemm_ex(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.5f, TensorRef(c2.data()), n);
  EXPECT_EQ(c1, c2);
}

TEST(GemmEx, MixedOrOtherOperandTypesAreRefused) {
  const auto be = make_cpu_backend(1);
  std::vector<float> f(4);
  std::vector<uint16_t> h(4);
  EXPECT_THROW(
      be->gemm_ex(false, false, 2, 2, 2, 1.0f, ConstTensorRef(f.data()), 2,
                  ConstTensorRef(h.data(), DataType::BF16), 2, 0.0f, TensorRef(f.data()), 2),
      SystemError);
  std::vector<double> d(4);
  EXPECT_THROW(be->gemm_ex(false, false, 2, 2, 2, 1.0f, ConstTensorRef(f.data()), 2,
                           ConstTensorRef(f.data()), 2, 0.0f, TensorRef(d.data()), 2),
               SystemError);
}

}  // namespace
}  // namespace dpt
