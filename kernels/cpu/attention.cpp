#include "kernels/cpu/attention.hpp"

#if DPT_WITH_OPENBLAS
#include <cblas.h>
#endif

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/cpu/cpu_gemm.hpp"
#include "kernels/cpu/lane_sum.hpp"
#include "kernels/cpu/vector_math.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {

// Row-major C[m,n] = alpha * op(A) op(B) + beta * C, in the element type: the backend's sgemm
// (cpu_gemm.hpp) for training, which may skip what the causal mask makes zero or unused (tri),
// and dgemm for the gradient checks (OpenBLAS's when the build has it), which computes it all.
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
          Triangle tri) {
  cpu_sgemm(trans_a, trans_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha,
            a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc),
            tri);
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
          const double* a, int64_t lda, const double* b, int64_t ldb, double beta, double* c,
          int64_t ldc, Triangle) {
#if DPT_WITH_OPENBLAS
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta,
              c, static_cast<int>(ldc));
#else
  // Plain loops: double only serves the gradient checks, where speed does not matter.
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += (trans_a ? a[p * lda + i] : a[i * lda + p]) *
               (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j]);
    }
#endif
}

void check_heads(int64_t c, int64_t n_head) {
  if (n_head <= 0 || c % n_head != 0)
    throw InputError("attention: the embedding width " + std::to_string(c) +
                     " is not a multiple of the number of heads " + std::to_string(n_head));
}

// Row i of the t x t scores p becomes softmax(p[i, 0..i]) and zeros after: row i sees positions
// 0..i. The exponentials are of the scores less their row's maximum, so never above zero: in
// float exp_nonpositive, which vectorizes.
template <typename T>
[[gnu::always_inline]] inline void causal_softmax(T* p, int64_t t) {
  for (int64_t i = 0; i < t; ++i) {
    T* row = p + i * t;
    const int64_t n = i + 1;
    T mx = row[0];
    for (int64_t j = 1; j < n; ++j) mx = std::max(mx, row[j]);
    if constexpr (std::is_same_v<T, float>)
      for (int64_t j = 0; j < n; ++j) row[j] = exp_nonpositive(row[j] - mx);
    else
      for (int64_t j = 0; j < n; ++j) row[j] = std::exp(row[j] - mx);
    const T inv = T(1) / lane_sum<T>(n, [&](int64_t j) { return row[j]; });
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    std::fill(row + n, row + t, T(0));
  }
}

// Each of p[0, n) to the nearest bf16 value (a double through float first).
template <typename T>
void round_to_bf16(T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    p[i] = static_cast<T>(bf16_to_float(float_to_bf16(static_cast<float>(p[i]))));
}

void causal_softmax_f32(float* p, int64_t t) { causal_softmax(p, t); }
DPT_AVX2_FMA void causal_softmax_avx2(float* p, int64_t t) { causal_softmax(p, t); }

}  // namespace

template <typename T>
void attention_forward(const T* qkv, T* out, T* att, int64_t b, int64_t t, int64_t c,
                       int64_t n_head, bool round_bf16) {
  check_heads(c, n_head);
  const int64_t hs = c / n_head, c3 = 3 * c;
  const T scale = T(1) / std::sqrt(static_cast<T>(hs));
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < n_head; ++h) {
      const T* q = qkv + bi * t * c3 + h * hs;
      const T* k = q + c;
      const T* v = q + 2 * c;
      T* p = att + (bi * n_head + h) * t * t;
      gemm(false, true, t, t, hs, scale, q, c3, k, c3, T(0), p, t, Triangle::kLowerC);
      if constexpr (std::is_same_v<T, float>)
        cpu_has_avx2_fma() ? causal_softmax_avx2(p, t) : causal_softmax_f32(p, t);
      else
        causal_softmax(p, t);
      if (round_bf16) round_to_bf16(p, t * t);
      gemm(false, false, t, hs, t, T(1), p, t, v, c3, T(0), out + bi * t * c + h * hs, c,
           Triangle::kLowerA);
    }
}

template <typename T>
void attention_backward(const T* qkv, const T* att, const T* dout, T* dqkv, T* scratch, int64_t b,
                        int64_t t, int64_t c, int64_t n_head, bool round_bf16) {
  // Per head, with S = scale * q k^T and P = softmax(mask(S)):
  //   dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(P * dP)),
  //   dq = scale * dS k,  dk = scale * dS^T q.
  // dS is zero above the diagonal (P is), so the GEMMs add nothing from the future, and those that
  // may skip the zeros do (and dP above the diagonal, which is never read).
  check_heads(c, n_head);
  const int64_t hs = c / n_head, c3 = 3 * c;
  const T scale = T(1) / std::sqrt(static_cast<T>(hs));
  T* ds = scratch;
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t at = bi * t * c3 + h * hs;
      const T* q = qkv + at;
      const T* k = q + c;
      const T* v = q + 2 * c;
      T* dq = dqkv + at;
      T* dk = dq + c;
      T* dv = dq + 2 * c;
      const T* p = att + (bi * n_head + h) * t * t;
      const T* dy = dout + bi * t * c + h * hs;
      gemm(true, false, t, hs, t, T(1), p, t, dy, c, T(0), dv, c3, Triangle::kUpperA);
      gemm(false, true, t, t, hs, T(1), dy, c, v, c3, T(0), ds, t, Triangle::kLowerC);
      for (int64_t i = 0; i < t; ++i) {
        const T* pr = p + i * t;
        T* row = ds + i * t;
        const int64_t n = i + 1;
        const T dot = lane_sum<T>(n, [&](int64_t j) { return pr[j] * row[j]; });
        for (int64_t j = 0; j < n; ++j) row[j] = pr[j] * (row[j] - dot);
        std::fill(row + n, row + t, T(0));
      }
      if (round_bf16) round_to_bf16(ds, t * t);
      gemm(false, false, t, hs, t, scale, ds, t, k, c3, T(0), dq, c3, Triangle::kLowerA);
      gemm(true, false, t, hs, t, scale, ds, t, q, c3, T(0), dk, c3, Triangle::kUpperA);
    }
}

template void attention_forward<float>(const float*, float*, float*, int64_t, int64_t, int64_t,
                                       int64_t, bool);
template void attention_forward<double>(const double*, double*, double*, int64_t, int64_t, int64_t,
                                        int64_t, bool);
template void attention_backward<float>(const float*, const float*, const float*, float*, float*,
                                        int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward<double>(const double*, const double*, const double*, double*,
                                         double*, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace dpt
