#include "kernels/cpu/gemm_avx2.hpp"

#include <algorithm>
#include <cstddef>
#include <vector>

#include "kernels/cpu/vector_math.hpp"

#if DPT_HAVE_AVX2_SGEMM
#include <immintrin.h>

namespace dpt {
namespace {

// The blocking. A micro-tile of C is kMr x kNr: 6 rows of two 8-float registers, 12 accumulators
// that stay in registers over a block of kKc terms. op(B) is copied per kKc x kNc block into
// panels of kNr columns, each kKc x kNr contiguous (zero-padded past n), so that the tile's loads
// of B are sequential; the block (256 KiB at most) stays in L2 while every row tile of A passes
// over it, kMb tiles at a time per panel. A is read where it lies, or, transposed, copied a tile
// at a time (pack_a_tile).
constexpr int kMr = 6, kNr = 16, kKc = 256, kNc = 256, kMb = 4;

// What a micro-tile does with C: overwrite it (beta 0, C unread), add to it (beta 1, and every
// block of k after the first), or scale it by beta first.
enum class Store { kOverwrite, kAdd, kScale };

// op(B)[k0 .. k0+kc, j0 .. j0+nc] into panels of kNr columns: panel p holds columns
// j0 + p*kNr .. +kNr as kc rows of kNr floats, padded with zeros past nc.
DPT_AVX2_FMA void pack_b(bool trans_b, const float* b, int ldb, int k0, int kc, int j0, int nc,
                         float* out) {
  for (int p = 0; p < nc; p += kNr) {
    const int w = std::min(kNr, nc - p);
    float* panel = out + static_cast<size_t>(p) * kc;
    if (!trans_b) {  // rows of B: kNr contiguous floats each
      for (int kk = 0; kk < kc; ++kk) {
        const float* src = b + static_cast<size_t>(k0 + kk) * ldb + j0 + p;
        float* dst = panel + static_cast<size_t>(kk) * kNr;
        if (w == kNr) {
          _mm256_storeu_ps(dst, _mm256_loadu_ps(src));
          _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(src + 8));
        } else {
          std::copy_n(src, w, dst);
          std::fill(dst + w, dst + kNr, 0.0f);
        }
      }
    } else {  // op(B)[kk, j] = B[j, kk]: each row of B becomes a column of the panel
      for (int j = 0; j < kNr; ++j) {
        if (j < w) {
          const float* src = b + static_cast<size_t>(j0 + p + j) * ldb + k0;
          for (int kk = 0; kk < kc; ++kk) panel[static_cast<size_t>(kk) * kNr + j] = src[kk];
        } else {
          for (int kk = 0; kk < kc; ++kk) panel[static_cast<size_t>(kk) * kNr + j] = 0.0f;
        }
      }
    }
  }
}

// Transposed A: op(A)[i + r, k0 + kk] = A[k0 + kk, i + r], for the tile's rows r < rows, copied
// to out[kk * kMr + r]. Read in place, each term's values would lie in a row of A of their own,
// a cache line each, and the tile would read them once per panel of B: over a long k (a weight
// gradient sums over every row of the batch) those lines fall out of L1 between panels.
DPT_AVX2_FMA void pack_a_tile(const float* a, int lda, int k0, int kc, int i, int rows,
                              float* out) {
  // Six floats a term by one masked load (lanes 6 and 7 are not read, so never past A's end) and
  // one store of eight, whose last two the next term's store overwrites: out has kMr + 2 floats
  // of room past kc * kMr.
  const __m256i six = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
  for (int kk = 0; kk < kc; ++kk) {
    const float* src = a + static_cast<size_t>(k0 + kk) * lda + i;
    float* dst = out + static_cast<size_t>(kk) * kMr;
    if (rows == kMr) {
      _mm256_storeu_ps(dst, _mm256_maskload_ps(src, six));
    } else {
      for (int r = 0; r < rows; ++r) dst[r] = src[r];
    }
  }
}

// C[0..R, 0..w] (w <= kNr) from R rows of op(A) over kc terms and one packed panel of B. Row r's
// term kk of op(A) is a[r * lda + kk] (A where it lies), or, in a transposed copy (kCopy,
// pack_a_tile), a[kk * kMr + r]. Each element of C is one sum over kk in order, by fused
// multiply-adds; alpha times it, plus bias[j] where bias is given, is then stored as `store`
// says. Every loop over lo and hi is unrolled, or they would live on the stack instead of in
// registers; the loop over kk is unrolled by 4 for fewer loop instructions per multiply-add.
template <int R, bool kCopy>
[[gnu::always_inline]] DPT_AVX2_FMA inline void micro_tile(int kc, const float* a, size_t lda,
                                                           const float* panel, float* c, int ldc,
                                                           int w, float alpha, float beta,
                                                           const float* bias, Store store) {
  __m256 lo[R], hi[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int kk = 0; kk < kc; ++kk) {
    const __m256 b0 = _mm256_loadu_ps(panel + static_cast<size_t>(kk) * kNr);
    const __m256 b1 = _mm256_loadu_ps(panel + static_cast<size_t>(kk) * kNr + 8);
    const float* ak = a + (kCopy ? static_cast<size_t>(kk) * kMr : static_cast<size_t>(kk));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 x = _mm256_broadcast_ss(ak + (kCopy ? r : r * lda));
      lo[r] = _mm256_fmadd_ps(x, b0, lo[r]);
      hi[r] = _mm256_fmadd_ps(x, b1, hi[r]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (w == kNr) {
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      float* row = c + static_cast<size_t>(r) * ldc;
      __m256 x0 = alpha == 1.0f ? lo[r] : _mm256_mul_ps(lo[r], va);
      __m256 x1 = alpha == 1.0f ? hi[r] : _mm256_mul_ps(hi[r], va);
      if (bias) {
        x0 = _mm256_add_ps(x0, _mm256_loadu_ps(bias));
        x1 = _mm256_add_ps(x1, _mm256_loadu_ps(bias + 8));
      }
      if (store == Store::kAdd) {
        x0 = _mm256_add_ps(x0, _mm256_loadu_ps(row));
        x1 = _mm256_add_ps(x1, _mm256_loadu_ps(row + 8));
      } else if (store == Store::kScale) {
        x0 = _mm256_add_ps(x0, _mm256_mul_ps(vb, _mm256_loadu_ps(row)));
        x1 = _mm256_add_ps(x1, _mm256_mul_ps(vb, _mm256_loadu_ps(row + 8)));
      }
      _mm256_storeu_ps(row, x0);
      _mm256_storeu_ps(row + 8, x1);
    }
    return;
  }
  // The last columns of C (n not a multiple of kNr): through a buffer, so that nothing past
  // column w is touched.
  alignas(32) float t[kNr];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    float* row = c + static_cast<size_t>(r) * ldc;
    _mm256_store_ps(t, alpha == 1.0f ? lo[r] : _mm256_mul_ps(lo[r], va));
    _mm256_store_ps(t + 8, alpha == 1.0f ? hi[r] : _mm256_mul_ps(hi[r], va));
    if (bias)
      for (int j = 0; j < w; ++j) t[j] += bias[j];
    for (int j = 0; j < w; ++j)
      row[j] = store == Store::kOverwrite ? t[j]
               : store == Store::kAdd     ? t[j] + row[j]
                                          : t[j] + beta * row[j];
  }
}

template <bool kCopy>
DPT_AVX2_FMA void tile(int rows, int kc, const float* a, size_t lda, const float* panel, float* c,
                       int ldc, int w, float alpha, float beta, const float* bias, Store store) {
  switch (rows) {
    case 6: return micro_tile<6, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
    case 5: return micro_tile<5, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
    case 4: return micro_tile<4, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
    case 3: return micro_tile<3, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
    case 2: return micro_tile<2, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
    default: return micro_tile<1, kCopy>(kc, a, lda, panel, c, ldc, w, alpha, beta, bias, store);
  }
}

}  // namespace

DPT_AVX2_FMA void avx2_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                             const float* a, int lda, const float* b, int ldb, float beta,
                             float* c, int ldc, Triangle tri, const float* bias) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {  // C = beta * C (+ bias), A and B unread
    for (int i = 0; i < m; ++i) {
      float* row = c + static_cast<size_t>(i) * ldc;
      for (int j = 0; j < n; ++j)
        row[j] = (beta == 0.0f ? 0.0f : beta * row[j]) + (bias ? bias[j] : 0.0f);
    }
    return;
  }
  static thread_local std::vector<float> packed;
  packed.resize(static_cast<size_t>(kKc) * kNc);
  static thread_local std::vector<float> a_copies;  // transposed A: each tile's copy
  if (trans_a) a_copies.resize(static_cast<size_t>(kMb) * kKc * kMr + 2);
  float* a_tiles = a_copies.data();
  for (int j0 = 0; j0 < n; j0 += kNc) {
    const int nc = std::min(kNc, n - j0);
    for (int k0 = 0; k0 < k; k0 += kKc) {
      const int kc = std::min(kKc, k - k0);
      pack_b(trans_b, b, ldb, k0, kc, j0, nc, packed.data());
      const Store store = k0 > 0        ? Store::kAdd
                          : beta == 0.0f ? Store::kOverwrite
                          : beta == 1.0f ? Store::kAdd
                                         : Store::kScale;
      // Row tiles kMb at a time: each panel of B (kc x kNr, from L2) serves kMb tiles while it
      // sits in L1 beside their rows of A.
      for (int ib = 0; ib < m; ib += kMb * kMr) {
        struct RowTile {
          int i, rows, lo_k, hi_k;
          const float* a;  // its rows of op(A) at term lo_k
        } tiles[kMb];
        int count = 0;
        for (int i = ib; i < std::min(m, ib + kMb * kMr); i += kMr) {
          RowTile& t = tiles[count];
          t.i = i;
          t.rows = std::min(kMr, m - i);
          // The terms kk (of this block) the tile sums: all, or those a triangular op(A) can
          // make other than zero (the rest would add exact zeros). An empty range still stores:
          // zeros for beta 0, C unchanged otherwise.
          t.lo_k = 0;
          t.hi_k = kc;
          if (tri == Triangle::kLowerA) t.hi_k = std::clamp(i + t.rows - k0, 0, kc);
          if (tri == Triangle::kUpperA) t.lo_k = std::clamp(i - k0, 0, kc);
          if (t.hi_k < t.lo_k) t.hi_k = t.lo_k;
          if (k0 > 0 && t.hi_k == t.lo_k) continue;  // adds nothing
          // op(A)'s rows i.., terms k0 + lo_k..: A's rows where they lie, or, transposed, a copy.
          if (trans_a) {
            float* copy = a_tiles + static_cast<size_t>(count) * kKc * kMr;
            pack_a_tile(a, lda, k0 + t.lo_k, t.hi_k - t.lo_k, i, t.rows, copy);
            t.a = copy;
          } else {
            t.a = a + static_cast<size_t>(i) * lda + k0 + t.lo_k;
          }
          ++count;
        }
        for (int p = 0; p < nc; p += kNr) {
          const float* panel = packed.data() + static_cast<size_t>(p) * kc;
          for (int q = 0; q < count; ++q) {
            const RowTile& t = tiles[q];
            if (tri == Triangle::kLowerC && j0 + p > t.i + t.rows - 1) continue;  // above
            float* ct = c + static_cast<size_t>(t.i) * ldc + j0 + p;
            const float* bt = panel + static_cast<size_t>(t.lo_k) * kNr;
            const float* bias_t = bias && k0 == 0 ? bias + j0 + p : nullptr;
            const int w = std::min(kNr, nc - p);
            if (trans_a)
              tile<true>(t.rows, t.hi_k - t.lo_k, t.a, 0, bt, ct, ldc, w, alpha, beta, bias_t,
                         store);
            else
              tile<false>(t.rows, t.hi_k - t.lo_k, t.a, static_cast<size_t>(lda), bt, ct, ldc, w,
                          alpha, beta, bias_t, store);
          }
        }
      }
    }
  }
}

}  // namespace dpt

#endif
