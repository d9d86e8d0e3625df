// LayerNorm over rows [rows, c], forward and backward, the CPU twin's formulas
// (kernels/cpu/layer_norm.hpp) with the GPU's own summation order.
//
// One warp per row, 8 rows per block of 256 threads. Statistics in float and in two passes (the
// mean, then the mean of the squared deviations from it), as on the CPU: no cancellation, at the
// cost of reading the row a second time (from L1; a GPT-2 row is 3 KiB).
//
// Row sums, in one order that depends on c alone: lane l adds the groups of four elements
// g = l, l + 32, ... (elements 4g .. 4g + 3 in turn), then the one element past the last full
// group that falls to it (c % 4 of them, lanes 0..2), then warp_sum's butterfly adds the lanes.
// The groups are loaded in one access when c % 4 == 0 and the pointers are aligned to four
// elements, one element at a time otherwise, in the same order.
//
// x, w, b, y, dy and dx are float or bf16 (typed.cuh), all of one type; the statistics, dw and
// db are float. A bf16 kernel computes the float kernel's values and rounds y and dx once.
//
// Backward: dx one warp per row as above; dw and db by columns, without atomics: a block of
// 32 columns x 8 row lanes sums a split of kRowsPerSplit rows into a partial per split (each lane
// its rows in increasing order, then the 8 lanes in order), and a second kernel adds the splits'
// partials in order, then adds the total to dw and db. The splits depend on rows alone, so the
// sums repeat bit for bit.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

namespace {

constexpr int kRowsPerBlock = 8;  // one warp each
constexpr int kColumns = 32;      // columns per block of the dw/db pass
constexpr int kRowLanes = 8;      // rows summed side by side there
constexpr int64_t kRowsPerSplit = 128;
constexpr int64_t kMaxSplits = 4096;  // past 512k rows the splits grow instead

int64_t rows_per_split(int64_t rows) {
  return std::max(kRowsPerSplit, (rows + kMaxSplits - 1) / kMaxSplits);
}
int64_t splits_for(int64_t rows) {
  const int64_t per = rows_per_split(rows);
  return (rows + per - 1) / per;
}

}  // namespace

template <bool kVec, class T>
__global__ void layer_norm_forward_kernel(const T* x, const T* w, const T* b, T* y, float* mean,
                                          float* rstd, int64_t rows, int64_t c, float eps) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // a whole warp leaves together; no block-wide barrier follows
  const T* xr = x + row * c;
  T* yr = y + row * c;
  const int64_t groups = c / 4, tail = groups * 4 + lane;
  const float inv_c = 1.0f / static_cast<float>(c);

  float sum = 0.0f;
  for (int64_t g = lane; g < groups; g += 32) {
    const float4 v = load4<kVec>(xr, g);
    sum += v.x;
    sum += v.y;
    sum += v.z;
    sum += v.w;
  }
  if (tail < c) sum += to_float(xr[tail]);
  const float m = warp_sum(sum) * inv_c;

  float sq = 0.0f;
  for (int64_t g = lane; g < groups; g += 32) {
    const float4 v = load4<kVec>(xr, g);
    const float d0 = v.x - m, d1 = v.y - m, d2 = v.z - m, d3 = v.w - m;
    sq += d0 * d0;
    sq += d1 * d1;
    sq += d2 * d2;
    sq += d3 * d3;
  }
  if (tail < c) {
    const float d = to_float(xr[tail]) - m;
    sq += d * d;
  }
  const float var = warp_sum(sq) * inv_c;
  const float s = 1.0f / sqrtf(var + eps);

  for (int64_t g = lane; g < groups; g += 32) {
    const float4 v = load4<kVec>(xr, g), wv = load4<kVec>(w, g), bv = load4<kVec>(b, g);
    store4<kVec>(yr, g,
                 make_float4((v.x - m) * s * wv.x + bv.x, (v.y - m) * s * wv.y + bv.y,
                             (v.z - m) * s * wv.z + bv.z, (v.w - m) * s * wv.w + bv.w));
  }
  if (tail < c)
    yr[tail] = from_float<T>((to_float(xr[tail]) - m) * s * to_float(w[tail]) + to_float(b[tail]));
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w, xhat = (x - mean) * rstd,
// as on the CPU.
template <bool kVec, class T>
__global__ void layer_norm_backward_dx_kernel(const T* x, const T* w, const float* mean,
                                              const float* rstd, const T* dy, T* dx, int64_t rows,
                                              int64_t c) {
  const unsigned lane = threadIdx.x % 32;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;
  const T* xr = x + row * c;
  const T* dyr = dy + row * c;
  T* dxr = dx + row * c;
  const int64_t groups = c / 4, tail = groups * 4 + lane;
  const float inv_c = 1.0f / static_cast<float>(c);
  const float m = mean[row], s = rstd[row];

  float sum_g = 0.0f, sum_gx = 0.0f;
  // g = dy * w rounded on its own (__fmul_rn: never contracted into the subtraction below), as
  // on the CPU: where a row's g - mean(g) is exactly 0 (one column), an FMA would leave the
  // product's rounding error there, times rstd.
  auto add = [&](float xv, float dyv, float wv) {
    const float g = __fmul_rn(dyv, wv);
    sum_g += g;
    sum_gx += g * ((xv - m) * s);
  };
  for (int64_t g = lane; g < groups; g += 32) {
    const float4 v = load4<kVec>(xr, g), d = load4<kVec>(dyr, g), wv = load4<kVec>(w, g);
    add(v.x, d.x, wv.x);
    add(v.y, d.y, wv.y);
    add(v.z, d.z, wv.z);
    add(v.w, d.w, wv.w);
  }
  if (tail < c) add(to_float(xr[tail]), to_float(dyr[tail]), to_float(w[tail]));
  const float mean_g = warp_sum(sum_g) * inv_c;
  const float mean_gx = warp_sum(sum_gx) * inv_c;

  auto grad = [&](float xv, float dyv, float wv) {
    return s * (__fmul_rn(dyv, wv) - mean_g - (xv - m) * s * mean_gx);
  };
  for (int64_t g = lane; g < groups; g += 32) {
    const float4 v = load4<kVec>(xr, g), d = load4<kVec>(dyr, g), wv = load4<kVec>(w, g);
    store4<kVec>(dxr, g,
                 make_float4(grad(v.x, d.x, wv.x), grad(v.y, d.y, wv.y), grad(v.z, d.z, wv.z),
                             grad(v.w, d.w, wv.w)));
  }
  if (tail < c)
    dxr[tail] = from_float<T>(grad(to_float(xr[tail]), to_float(dyr[tail]), to_float(w[tail])));
}

// Block (column tile blockIdx.x, split blockIdx.y), threads 32 columns x 8 row lanes: partials
// [2, splits, c], the dw sums then the db sums.
template <class T>
__global__ void layer_norm_param_partials_kernel(const T* x, const float* mean, const float* rstd,
                                                 const T* dy, float* partials, int64_t rows,
                                                 int64_t c, int64_t per_split) {
  __shared__ float tile_w[kRowLanes][kColumns], tile_b[kRowLanes][kColumns];
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kColumns + threadIdx.x;
  const int64_t split = blockIdx.y, splits = gridDim.y;
  float sw = 0.0f, sb = 0.0f;
  if (col < c) {
    const int64_t end = (split + 1) * per_split < rows ? (split + 1) * per_split : rows;
    for (int64_t r = split * per_split + threadIdx.y; r < end; r += kRowLanes) {
      const float d = to_float(dy[r * c + col]);
      sw += d * ((to_float(x[r * c + col]) - mean[r]) * rstd[r]);
      sb += d;
    }
  }
  tile_w[threadIdx.y][threadIdx.x] = sw;
  tile_b[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y == 0 && col < c) {
    for (int k = 1; k < kRowLanes; ++k) {
      sw += tile_w[k][threadIdx.x];
      sb += tile_b[k][threadIdx.x];
    }
    partials[split * c + col] = sw;
    partials[(splits + split) * c + col] = sb;
  }
}

__global__ void layer_norm_param_sum_kernel(const float* partials, float* dw, float* db, int64_t c,
                                            int64_t splits) {
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= c) return;
  float sw = 0.0f, sb = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    sw += partials[s * c + col];
    sb += partials[(splits + s) * c + col];
  }
  dw[col] += sw;
  db[col] += sb;
}

template <class T>
void launch_layer_norm_forward(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                               int64_t rows, int64_t c, float eps, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  constexpr size_t g = group_bytes<T>();
  if (c % 4 == 0 && aligned_to(x, g) && aligned_to(w, g) && aligned_to(b, g) && aligned_to(y, g))
    layer_norm_forward_kernel<true>
        <<<blocks, 32 * kRowsPerBlock, 0, stream>>>(x, w, b, y, mean, rstd, rows, c, eps);
  else
    layer_norm_forward_kernel<false>
        <<<blocks, 32 * kRowsPerBlock, 0, stream>>>(x, w, b, y, mean, rstd, rows, c, eps);
  DPT_CUDA_CHECK_LAUNCH();
}

size_t layer_norm_backward_partials(int64_t rows, int64_t c) {
  return rows <= 0 || c <= 0 ? 0 : static_cast<size_t>(2 * splits_for(rows) * c);
}

template <class T>
void launch_layer_norm_backward(const T* x, const T* w, const float* mean, const float* rstd,
                                const T* dy, T* dx, float* dw, float* db, float* partials,
                                int64_t rows, int64_t c, cudaStream_t stream) {
  if (rows <= 0 || c <= 0) return;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  constexpr size_t g = group_bytes<T>();
  if (c % 4 == 0 && aligned_to(x, g) && aligned_to(w, g) && aligned_to(dy, g) && aligned_to(dx, g))
    layer_norm_backward_dx_kernel<true>
        <<<blocks, 32 * kRowsPerBlock, 0, stream>>>(x, w, mean, rstd, dy, dx, rows, c);
  else
    layer_norm_backward_dx_kernel<false>
        <<<blocks, 32 * kRowsPerBlock, 0, stream>>>(x, w, mean, rstd, dy, dx, rows, c);
  DPT_CUDA_CHECK_LAUNCH();

  const int64_t per = rows_per_split(rows), splits = splits_for(rows);
  const dim3 grid(static_cast<unsigned>((c + kColumns - 1) / kColumns),
                  static_cast<unsigned>(splits));
  layer_norm_param_partials_kernel<<<grid, dim3(kColumns, kRowLanes), 0, stream>>>(
      x, mean, rstd, dy, partials, rows, c, per);
  DPT_CUDA_CHECK_LAUNCH();
  layer_norm_param_sum_kernel<<<static_cast<unsigned>((c + kBlock - 1) / kBlock), kBlock, 0,
                                stream>>>(partials, dw, db, c, splits);
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_layer_norm_forward(const float*, const float*, const float*, float*, float*,
                                        float*, int64_t, int64_t, float, cudaStream_t);
template void launch_layer_norm_forward(const bf16_bits*, const bf16_bits*, const bf16_bits*,
                                        bf16_bits*, float*, float*, int64_t, int64_t, float,
                                        cudaStream_t);
template void launch_layer_norm_backward(const float*, const float*, const float*, const float*,
                                         const float*, float*, float*, float*, float*, int64_t,
                                         int64_t, cudaStream_t);
template void launch_layer_norm_backward(const bf16_bits*, const bf16_bits*, const float*,
                                         const float*, const bf16_bits*, bf16_bits*, float*, float*,
                                         float*, int64_t, int64_t, cudaStream_t);

}  // namespace dpt::gpu
