// Causal self-attention: cuBLAS strided-batched GEMMs for the products, and one warp per row of
// t scores for the masked softmax and its gradient. In float32 the GEMMs are float32 (the
// handle's math mode is the backend's: no TF32); in bf16 they take bf16 operands on tensor cores
// and sum in float, with the scores, the softmax and its gradient in float, and the probabilities
// and score gradients rounded to bf16 where the GEMMs take them (the bf16 twin's rounding
// points, kernels/cpu/attention.hpp). Like the CPU twin's library GEMM, the GEMMs also compute
// the masked upper triangle, which the softmax then discards and writes as zero.
//
// Row sums (the softmax's normaliser, the gradient's row dot product): lane l adds entries
// l, l + 32, ... in turn, then warp_sum adds the lanes; the order depends on t alone.
#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

namespace {

constexpr int kRowsPerBlock = 8;  // one warp each

void check_heads(int64_t c, int64_t n_head) {
  if (n_head <= 0 || c % n_head != 0)
    throw InputError("attention: the embedding width " + std::to_string(c) +
                     " is not a multiple of the number of heads " + std::to_string(n_head));
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

cudaStream_t stream_of(cublasHandle_t cublas) {
  cudaStream_t stream = nullptr;
  DPT_CUBLAS_CHECK(cublasGetStream(cublas, &stream));
  return stream;
}

unsigned row_blocks(int64_t rows) {
  return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
}

}  // namespace

// Rows [rows, t] of scaled scores s, row r being query position i = r % t, into the
// probabilities p: the softmax of entries 0..i after subtracting their maximum, and zero for
// i + 1 .. t - 1. p is float (s itself, in place) or bf16; `round` rounds float probabilities to
// bf16 values (the bf16 twin), and bf16 ones are rounded as they are stored.
template <class TP>
__global__ void causal_softmax_kernel(const float* s, TP* p, int64_t rows, int64_t t, bool round) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;  // a whole warp leaves together
  const float* srow = s + r * t;
  TP* prow = p + r * t;
  const int64_t n = r % t + 1;  // visible entries
  float mx = -INFINITY;
  for (int64_t j = lane; j < n; j += 32) mx = fmaxf(mx, srow[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int64_t j = lane; j < n; j += 32) {
    const float e = expf(srow[j] - mx);
    if constexpr (std::is_same_v<TP, float>) prow[j] = e;  // s[j] is not read again
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int64_t j = lane; j < n; j += 32) {
    float e;
    if constexpr (std::is_same_v<TP, float>)
      e = prow[j];
    else
      e = expf(srow[j] - mx);  // the same value as in the sum
    const float v = e * inv;
    prow[j] = from_float<TP>(round ? bf16_to_float(float_to_bf16(v)) : v);
  }
  for (int64_t j = n + lane; j < t; j += 32) prow[j] = from_float<TP>(0.0f);
}

// Rows [rows, t] of dP = dout v^T (float) with P the probabilities (float or bf16) into the score
// gradients dS = P * (dP - sum_j P dP) for the visible entries, zero for the masked ones. dS is
// float (dp itself, in place) or bf16; `round` as in causal_softmax_kernel.
template <class TP, class TD>
__global__ void causal_softmax_backward_kernel(const TP* att, const float* dp, TD* ds, int64_t rows,
                                               int64_t t, bool round) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;
  const TP* p = att + r * t;
  const float* g = dp + r * t;
  TD* d = ds + r * t;
  const int64_t n = r % t + 1;
  float dot = 0.0f;
  for (int64_t j = lane; j < n; j += 32) dot += to_float(p[j]) * g[j];
  dot = warp_sum(dot);
  for (int64_t j = lane; j < n; j += 32) {
    const float v = to_float(p[j]) * (g[j] - dot);
    d[j] = from_float<TD>(round ? bf16_to_float(float_to_bf16(v)) : v);
  }
  for (int64_t j = n + lane; j < t; j += 32) d[j] = from_float<TD>(0.0f);
}

namespace {

// One strided-batched GEMM over the heads of a batch row, column-major as cuBLAS sees it (each
// row-major product C = A B is passed as C^T = B^T A^T, B first, as in the backend's gemm).
// float32 operands run cublasSgemmStridedBatched (the handle's math mode: no TF32); bf16 ones run
// on tensor cores and sum in float, into C of the type given.
struct Operand {
  const void* p;
  cudaDataType_t type;
  int ld;
  long long stride;
};
void batched_gemm(cublasHandle_t cublas, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                  int k, float alpha, Operand a, Operand b, void* c, cudaDataType_t c_type, int ldc,
                  long long stride_c, int batch) {
  const float beta = 0.0f;
  if (a.type == CUDA_R_32F && b.type == CUDA_R_32F && c_type == CUDA_R_32F) {
    DPT_CUBLAS_CHECK(
        cublasSgemmStridedBatched(cublas, ta, tb, m, n, k, &alpha, static_cast<const float*>(a.p),
                                  a.ld, a.stride, static_cast<const float*>(b.p), b.ld, b.stride,
                                  &beta, static_cast<float*>(c), ldc, stride_c, batch));
    return;
  }
  DPT_CUBLAS_CHECK(cublasGemmStridedBatchedEx(
      cublas, ta, tb, m, n, k, &alpha, a.p, a.type, a.ld, a.stride, b.p, b.type, b.ld, b.stride,
      &beta, c, c_type, ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

template <class T>
constexpr cudaDataType_t cuda_type() {
  return std::is_same_v<T, float> ? CUDA_R_32F : CUDA_R_16BF;
}

}  // namespace

// Per batch row: S = scale * q k^T into float (scores), the softmax into att, out = P v. The
// float32 call keeps S in att itself (scores == nullptr); the bf16 one writes S to scores.
template <class T>
void attention_forward(cublasHandle_t cublas, const T* qkv, T* out, T* att, float* scores,
                       int64_t b, int64_t t, int64_t c, int64_t n_head, bool round) {
  check_heads(c, n_head);
  if (b <= 0 || t <= 0 || c <= 0) return;
  const cudaStream_t stream = stream_of(cublas);
  constexpr cudaDataType_t type = cuda_type<T>();
  const int ti = static_cast<int>(t), hs = static_cast<int>(c / n_head),
            heads = static_cast<int>(n_head);
  const int ld = static_cast<int>(3 * c), ldo = static_cast<int>(c);
  const long long tt = static_cast<long long>(t) * t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  for (int64_t bi = 0; bi < b; ++bi) {
    const T* q = qkv + bi * t * 3 * c;
    const T* k = q + c;
    const T* v = q + 2 * c;
    T* p = att + bi * n_head * tt;
    float* s = scores ? scores : reinterpret_cast<float*>(p);
    // S[h] = scale * Q[h] K[h]^T  [t, t]
    batched_gemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, ti, ti, hs, scale, {k, type, ld, hs},
                 {q, type, ld, hs}, s, CUDA_R_32F, ti, tt, heads);
    causal_softmax_kernel<<<row_blocks(n_head * t), 32 * kRowsPerBlock, 0, stream>>>(
        s, p, n_head * t, t, round);
    DPT_CUDA_CHECK_LAUNCH();
    // out[h] = P[h] V[h]  [t, hs], at column h * hs of out's rows
    batched_gemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, ti, ti, 1.0f, {v, type, ld, hs},
                 {p, type, ti, tt}, out + bi * t * c, type, ldo, hs, heads);
  }
}

size_t attention_forward_scratch(int64_t t, int64_t n_head, bool bf16) {
  return bf16 ? sizeof(float) * static_cast<size_t>(n_head * t * t) : 0;
}

size_t attention_backward_scratch(int64_t t, int64_t n_head, bool bf16) {
  const auto tt = static_cast<size_t>(n_head * t * t);
  return sizeof(float) * tt + (bf16 ? sizeof(uint16_t) * tt : 0);
}

// Per head, with S = scale * q k^T and P = softmax(mask(S)), as on the CPU:
//   dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(P * dP)),
//   dq = scale * dS k,  dk = scale * dS^T q.
// dP is float (scratch); dS is float in place over it, or bf16 after it in the scratch.
template <class T>
void attention_backward(cublasHandle_t cublas, const T* qkv, const T* att, const T* dout, T* dqkv,
                        void* scratch, int64_t b, int64_t t, int64_t c, int64_t n_head,
                        bool round) {
  check_heads(c, n_head);
  if (b <= 0 || t <= 0 || c <= 0) return;
  const cudaStream_t stream = stream_of(cublas);
  constexpr cudaDataType_t type = cuda_type<T>();
  const int ti = static_cast<int>(t), hs = static_cast<int>(c / n_head),
            heads = static_cast<int>(n_head);
  const int ld = static_cast<int>(3 * c), ldo = static_cast<int>(c);
  const long long tt = static_cast<long long>(t) * t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  auto* dp = static_cast<float*>(scratch);
  T* ds = std::is_same_v<T, float> ? reinterpret_cast<T*>(dp)
                                   : reinterpret_cast<T*>(dp + static_cast<size_t>(n_head) * tt);
  for (int64_t bi = 0; bi < b; ++bi) {
    const int64_t at = bi * t * 3 * c;
    const T* q = qkv + at;
    const T* k = q + c;
    const T* v = q + 2 * c;
    T* dq = dqkv + at;
    T* dk = dq + c;
    T* dv = dq + 2 * c;
    const T* p = att + bi * n_head * tt;
    const T* dy = dout + bi * t * c;
    // dv[h] = P[h]^T dout[h]  [t, hs]
    batched_gemm(cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, ti, ti, 1.0f, {dy, type, ldo, hs},
                 {p, type, ti, tt}, dv, type, ld, hs, heads);
    // dP[h] = dout[h] V[h]^T  [t, t], then dS
    batched_gemm(cublas, CUBLAS_OP_T, CUBLAS_OP_N, ti, ti, hs, 1.0f, {v, type, ld, hs},
                 {dy, type, ldo, hs}, dp, CUDA_R_32F, ti, tt, heads);
    causal_softmax_backward_kernel<<<row_blocks(n_head * t), 32 * kRowsPerBlock, 0, stream>>>(
        p, dp, ds, n_head * t, t, round);
    DPT_CUDA_CHECK_LAUNCH();
    // dq[h] = scale * dS[h] K[h]  [t, hs]
    batched_gemm(cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, ti, ti, scale, {k, type, ld, hs},
                 {ds, type, ti, tt}, dq, type, ld, hs, heads);
    // dk[h] = scale * dS[h]^T Q[h]  [t, hs]
    batched_gemm(cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, ti, ti, scale, {q, type, ld, hs},
                 {ds, type, ti, tt}, dk, type, ld, hs, heads);
  }
}

template void attention_forward(cublasHandle_t, const float*, float*, float*, float*, int64_t,
                                int64_t, int64_t, int64_t, bool);
template void attention_forward(cublasHandle_t, const uint16_t*, uint16_t*, uint16_t*, float*,
                                int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward(cublasHandle_t, const float*, const float*, const float*, float*,
                                 void*, int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward(cublasHandle_t, const uint16_t*, const uint16_t*, const uint16_t*,
                                 uint16_t*, void*, int64_t, int64_t, int64_t, int64_t, bool);

}  // namespace dpt::gpu
