#include "kernels/cpu/builtin_gemm.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace dpt {
namespace {

// op(A) and op(B) are multiplied in blocks packed row-major into contiguous buffers: an A block of
// kMc x kKc (64 KiB) and a B block of kKc x kNc (256 KiB, sized for L2), so that every row of the
// A block sweeps one B block that stays in cache, whatever the transposes and leading dimensions.
constexpr int kMc = 64, kKc = 256, kNc = 256;

// dst[r * cols + c] = scale * op(src)(r0 + r, c0 + c), where op(src)(r, c) is src[r * ld + c], or
// src[c * ld + r] when trans.
void pack(bool trans, const float* src, int ld, int r0, int c0, int rows, int cols, float scale,
          float* dst) {
  if (!trans) {
    for (int r = 0; r < rows; ++r) {
      const float* s = src + static_cast<size_t>(r0 + r) * ld + c0;
      float* d = dst + static_cast<size_t>(r) * cols;
      for (int c = 0; c < cols; ++c) d[c] = scale * s[c];
    }
  } else {
    // Reads src along its rows (contiguous) and scatters into dst's columns.
    for (int c = 0; c < cols; ++c) {
      const float* s = src + static_cast<size_t>(c0 + c) * ld + r0;
      for (int r = 0; r < rows; ++r) dst[static_cast<size_t>(r) * cols + c] = scale * s[r];
    }
  }
}

// c0..c3[j] += x0..x3 * b[j]: four rows of C share each load of b. The restrict parameters let
// the compiler vectorise without alias checks (the rows of C never overlap: ldc >= n).
inline void axpy4(int n, float x0, float x1, float x2, float x3, const float* __restrict b,
                  float* __restrict c0, float* __restrict c1, float* __restrict c2,
                  float* __restrict c3) {
  for (int j = 0; j < n; ++j) {
    const float v = b[j];
    c0[j] += x0 * v;
    c1[j] += x1 * v;
    c2[j] += x2 * v;
    c3[j] += x3 * v;
  }
}

inline void axpy1(int n, float x, const float* __restrict b, float* __restrict c) {
  for (int j = 0; j < n; ++j) c[j] += x * b[j];
}

// C block [mc, nc] (leading dimension ldc) += A block [mc, kc] * B block [kc, nc], both packed.
void multiply_block(int mc, int nc, int kc, const float* ap, const float* bp, float* c, int ldc) {
  int i = 0;
  for (; i + 4 <= mc; i += 4) {
    float* c0 = c + static_cast<size_t>(i) * ldc;
    const float* a0 = ap + static_cast<size_t>(i) * kc;
    for (int p = 0; p < kc; ++p)
      axpy4(nc, a0[p], a0[kc + p], a0[2 * kc + p], a0[3 * kc + p], bp + static_cast<size_t>(p) * nc,
            c0, c0 + ldc, c0 + 2 * static_cast<size_t>(ldc), c0 + 3 * static_cast<size_t>(ldc));
  }
  for (; i < mc; ++i) {
    float* ci = c + static_cast<size_t>(i) * ldc;
    const float* ai = ap + static_cast<size_t>(i) * kc;
    for (int p = 0; p < kc; ++p) axpy1(nc, ai[p], bp + static_cast<size_t>(p) * nc, ci);
  }
}

}  // namespace

void builtin_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                   int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  // beta first, as BLAS does: zero means overwrite, so C's old contents (NaN too) are never read.
  if (beta != 1.0f) {
    for (int i = 0; i < m; ++i) {
      float* row = c + static_cast<size_t>(i) * ldc;
      if (beta == 0.0f)
        std::fill(row, row + n, 0.0f);
      else
        for (int j = 0; j < n; ++j) row[j] *= beta;
    }
  }
  if (alpha == 0.0f || k <= 0) return;

  // Per thread, kept between calls: the CPU backend calls this for every layer and sample.
  thread_local std::vector<float> a_pack, b_pack;
  a_pack.resize(static_cast<size_t>(kMc) * kKc);
  b_pack.resize(static_cast<size_t>(kKc) * kNc);
  for (int j0 = 0; j0 < n; j0 += kNc) {
    const int nc = std::min(kNc, n - j0);
    for (int p0 = 0; p0 < k; p0 += kKc) {
      const int kc = std::min(kKc, k - p0);
      pack(trans_b, b, ldb, p0, j0, kc, nc, 1.0f, b_pack.data());
      for (int i0 = 0; i0 < m; i0 += kMc) {
        const int mc = std::min(kMc, m - i0);
        pack(trans_a, a, lda, i0, p0, mc, kc, alpha, a_pack.data());
        multiply_block(mc, nc, kc, a_pack.data(), b_pack.data(),
                       c + static_cast<size_t>(i0) * ldc + j0, ldc);
      }
    }
  }
}

}  // namespace dpt
