// Causal self-attention: cuBLAS strided-batched GEMMs in float32 (the handle's math mode is the
// backend's: no TF32) for the products, and one warp per row of t scores for the masked softmax
// and its gradient. Like the CPU twin, the GEMMs also compute the masked upper triangle, which
// the softmax then discards and writes as zero.
//
// Row sums (the softmax's normaliser, the gradient's row dot product): lane l adds entries
// l, l + 32, ... in turn, then warp_sum adds the lanes; the order depends on t alone.
#include <cmath>
#include <string>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/launch.cuh"

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

// In place over rows [rows, t] of scaled scores, row r being query position i = r % t: the
// softmax of entries 0..i after subtracting their maximum, and zero for i + 1 .. t - 1.
__global__ void causal_softmax_kernel(float* att, int64_t rows, int64_t t) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;  // a whole warp leaves together
  float* row = att + r * t;
  const int64_t n = r % t + 1;  // visible entries
  float mx = -INFINITY;
  for (int64_t j = lane; j < n; j += 32) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int64_t j = lane; j < n; j += 32) {
    const float e = expf(row[j] - mx);
    row[j] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int64_t j = lane; j < n; j += 32) row[j] *= inv;
  for (int64_t j = n + lane; j < t; j += 32) row[j] = 0.0f;
}

// In place over rows [rows, t] of dP = dout v^T, with P the probabilities:
// dS = P * (dP - sum_j P dP) for the visible entries, zero for the masked ones.
__global__ void causal_softmax_backward_kernel(const float* att, float* ds, int64_t rows,
                                               int64_t t) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (r >= rows) return;
  const float* p = att + r * t;
  float* d = ds + r * t;
  const int64_t n = r % t + 1;
  float dot = 0.0f;
  for (int64_t j = lane; j < n; j += 32) dot += p[j] * d[j];
  dot = warp_sum(dot);
  for (int64_t j = lane; j < n; j += 32) d[j] = p[j] * (d[j] - dot);
  for (int64_t j = n + lane; j < t; j += 32) d[j] = 0.0f;
}

// cuBLAS is column-major: a row-major [rows, cols] matrix with leading dimension ld is the
// column-major [cols, rows] one, so each row-major product C = A B below is passed as
// C^T = B^T A^T (B first), as in the backend's gemm.
void attention_forward(cublasHandle_t cublas, const float* qkv, float* out, float* att, int64_t b,
                       int64_t t, int64_t c, int64_t n_head) {
  check_heads(c, n_head);
  if (b <= 0 || t <= 0 || c <= 0) return;
  const cudaStream_t stream = stream_of(cublas);
  const int ti = static_cast<int>(t), hs = static_cast<int>(c / n_head),
            heads = static_cast<int>(n_head);
  const int ld = static_cast<int>(3 * c), ldo = static_cast<int>(c);
  const long long tt = static_cast<long long>(t) * t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs)), one = 1.0f, zero = 0.0f;
  for (int64_t bi = 0; bi < b; ++bi) {
    const float* q = qkv + bi * t * 3 * c;
    const float* k = q + c;
    const float* v = q + 2 * c;
    float* p = att + bi * n_head * tt;
    // P[h] = scale * Q[h] K[h]^T  [t, t]
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_T, CUBLAS_OP_N, ti, ti, hs, &scale,
                                               k, ld, hs, q, ld, hs, &zero, p, ti, tt, heads));
    causal_softmax_kernel<<<row_blocks(n_head * t), 32 * kRowsPerBlock, 0, stream>>>(p, n_head * t,
                                                                                     t);
    DPT_CUDA_CHECK_LAUNCH();
    // out[h] = P[h] V[h]  [t, hs], at column h * hs of out's rows
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, ti, ti, &one,
                                               v, ld, hs, p, ti, tt, &zero, out + bi * t * c, ldo,
                                               hs, heads));
  }
}

size_t attention_backward_scratch(int64_t t, int64_t n_head) {
  return static_cast<size_t>(n_head * t * t);
}

// Per head, with S = scale * q k^T and P = softmax(mask(S)), as on the CPU:
//   dv = P^T dout,  dP = dout v^T,  dS = P * (dP - rowsum(P * dP)),
//   dq = scale * dS k,  dk = scale * dS^T q.
void attention_backward(cublasHandle_t cublas, const float* qkv, const float* att,
                        const float* dout, float* dqkv, float* scratch, int64_t b, int64_t t,
                        int64_t c, int64_t n_head) {
  check_heads(c, n_head);
  if (b <= 0 || t <= 0 || c <= 0) return;
  const cudaStream_t stream = stream_of(cublas);
  const int ti = static_cast<int>(t), hs = static_cast<int>(c / n_head),
            heads = static_cast<int>(n_head);
  const int ld = static_cast<int>(3 * c), ldo = static_cast<int>(c);
  const long long tt = static_cast<long long>(t) * t;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs)), one = 1.0f, zero = 0.0f;
  float* ds = scratch;
  for (int64_t bi = 0; bi < b; ++bi) {
    const int64_t at = bi * t * 3 * c;
    const float* q = qkv + at;
    const float* k = q + c;
    const float* v = q + 2 * c;
    float* dq = dqkv + at;
    float* dk = dq + c;
    float* dv = dq + 2 * c;
    const float* p = att + bi * n_head * tt;
    const float* dy = dout + bi * t * c;
    // dv[h] = P[h]^T dout[h]  [t, hs]
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, ti, ti, &one,
                                               dy, ldo, hs, p, ti, tt, &zero, dv, ld, hs, heads));
    // dP[h] = dout[h] V[h]^T  [t, t], then dS in place
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_T, CUBLAS_OP_N, ti, ti, hs, &one,
                                               v, ld, hs, dy, ldo, hs, &zero, ds, ti, tt, heads));
    causal_softmax_backward_kernel<<<row_blocks(n_head * t), 32 * kRowsPerBlock, 0, stream>>>(
        p, ds, n_head * t, t);
    DPT_CUDA_CHECK_LAUNCH();
    // dq[h] = scale * dS[h] K[h]  [t, hs]
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_N, CUBLAS_OP_N, hs, ti, ti, &scale,
                                               k, ld, hs, ds, ti, tt, &zero, dq, ld, hs, heads));
    // dk[h] = scale * dS[h]^T Q[h]  [t, hs]
    DPT_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas, CUBLAS_OP_N, CUBLAS_OP_T, hs, ti, ti, &scale,
                                               q, ld, hs, ds, ti, tt, &zero, dk, ld, hs, heads));
  }
}

}  // namespace dpt::gpu
