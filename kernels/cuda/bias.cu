// Bias over the channel axis of [outer, channels, inner] tensors: added in forward, summed in
// backward. y, bias and dy are float or bf16 (typed.cuh); dbias is float.
#include <algorithm>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

// Rows of `inner` values share one bias: blockIdx.y walks the rows (channel = row % channels),
// the threads walk a row. No division per element.
template <class T>
__global__ void add_bias_rows_kernel(T* y, const T* bias, size_t rows, int channels, int inner) {
  for (size_t row = blockIdx.y; row < rows; row += gridDim.y) {
    const float b = to_float(bias[row % static_cast<size_t>(channels)]);
    T* r = y + row * static_cast<size_t>(inner);
    for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < inner;
         i += static_cast<int>(gridDim.x * blockDim.x))
      r[i] = from_float<T>(to_float(r[i]) + b);
  }
}

// inner == 1 (a Linear layer's [batch, features]): one thread per feature, rows in turn.
template <class T>
__global__ void add_bias_columns_kernel(T* y, const T* bias, int outer, int channels) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= channels) return;
  const float b = to_float(bias[c]);
  for (int o = static_cast<int>(blockIdx.y); o < outer; o += static_cast<int>(gridDim.y)) {
    T& v = y[static_cast<size_t>(o) * channels + c];
    v = from_float<T>(to_float(v) + b);
  }
}

template <class T>
void launch_add_bias(T* y, const T* bias, int outer, int channels, int inner, cudaStream_t stream) {
  if (outer <= 0 || channels <= 0 || inner <= 0) return;
  if (inner == 1) {
    const dim3 grid((static_cast<unsigned>(channels) + kBlock - 1) / kBlock,
                    static_cast<unsigned>(std::min(outer, 65535)));
    add_bias_columns_kernel<<<grid, kBlock, 0, stream>>>(y, bias, outer, channels);
  } else {
    const size_t rows = static_cast<size_t>(outer) * channels;
    const dim3 grid((static_cast<unsigned>(inner) + kBlock - 1) / kBlock,
                    static_cast<unsigned>(std::min<size_t>(rows, 65535)));
    add_bias_rows_kernel<<<grid, kBlock, 0, stream>>>(y, bias, rows, channels, inner);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

// The gradient sums each channel's outer * inner values in a fixed order (no float atomics), so
// the result is the same on every run.
// inner > 1 (a convolution's [n, channels, h*w]): one block per channel walks the images in turn
// and its threads walk each image's plane, with no division per element.
template <class T>
__global__ void bias_grad_planes_kernel(const T* dy, float* dbias, int outer, int channels,
                                        int inner) {
  const int c = static_cast<int>(blockIdx.x);
  float sum = 0.0f;
  for (int o = 0; o < outer; ++o) {
    const T* plane = dy + (static_cast<size_t>(o) * channels + c) * inner;
    for (int i = static_cast<int>(threadIdx.x); i < inner; i += static_cast<int>(blockDim.x))
      sum += to_float(plane[i]);
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) dbias[c] += sum;
}

// inner == 1 (a Linear layer's [rows, features]) without scratch: one thread per feature sums
// its column, the loads of a warp side by side in memory. Few threads for many rows (a
// transformer's B*T = 8192): each walks its whole column, one load after another.
template <class T>
__global__ void bias_grad_columns_kernel(const T* dy, float* dbias, int outer, int channels) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= channels) return;
  float sum = 0.0f;
  for (int o = 0; o < outer; ++o) sum += to_float(dy[static_cast<size_t>(o) * channels + c]);
  dbias[c] += sum;
}

// inner == 1 with scratch, in two passes, as LayerNorm's dw and db: blocks of 32 columns x 8 row
// lanes sum splits of kRowsPerSplit rows into a partial per split (each lane its rows in
// increasing order, then the 8 lanes in order); then one thread per column adds the splits'
// partials in order into dbias. The splits depend on the row count alone: the same sums on
// every run. At most kMaxSplits of them (the grid's y extent stops at 65,535): past 512k rows
// each split takes more rows instead.
constexpr int kColumns = 32, kRowLanes = 8, kRowsPerSplit = 128, kMaxSplits = 4096;

int rows_per_split(int outer) {
  return std::max(kRowsPerSplit,
                  static_cast<int>((static_cast<int64_t>(outer) + kMaxSplits - 1) / kMaxSplits));
}
int column_splits(int outer) {
  const int per = rows_per_split(outer);
  return static_cast<int>((static_cast<int64_t>(outer) + per - 1) / per);
}

template <class T>
__global__ void bias_grad_partials_kernel(const T* dy, float* partials, int outer, int channels,
                                          int per_split) {
  __shared__ float tile[kRowLanes][kColumns];
  const int col = static_cast<int>(blockIdx.x) * kColumns + static_cast<int>(threadIdx.x);
  const int64_t split = blockIdx.y;
  float sum = 0.0f;
  if (col < channels) {
    const int64_t stop = (split + 1) * per_split, end = stop < outer ? stop : outer;
    for (int64_t r = split * per_split + threadIdx.y; r < end; r += kRowLanes)
      sum += to_float(dy[static_cast<size_t>(r) * channels + col]);
  }
  tile[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && col < channels) {
    for (int k = 1; k < kRowLanes; ++k) sum += tile[k][threadIdx.x];
    partials[static_cast<size_t>(split) * channels + col] = sum;
  }
}

__global__ void bias_grad_sum_kernel(const float* partials, float* dbias, int channels,
                                     int splits) {
  const int col = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (col >= channels) return;
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) sum += partials[static_cast<size_t>(s) * channels + col];
  dbias[col] += sum;
}

size_t bias_grad_partials(int outer, int channels, int inner) {
  if (outer <= 0 || channels <= 0 || inner != 1) return 0;
  return static_cast<size_t>(column_splits(outer)) * static_cast<size_t>(channels);
}

template <class T>
void launch_bias_grad(const T* dy, float* dbias, int outer, int channels, int inner,
                      float* partials, cudaStream_t stream) {
  if (outer <= 0 || channels <= 0 || inner <= 0) return;
  if (inner == 1 && partials) {
    const int splits = column_splits(outer);
    const dim3 grid(static_cast<unsigned>((channels + kColumns - 1) / kColumns),
                    static_cast<unsigned>(splits));
    bias_grad_partials_kernel<<<grid, dim3(kColumns, kRowLanes), 0, stream>>>(
        dy, partials, outer, channels, rows_per_split(outer));
    DPT_CUDA_CHECK_LAUNCH();
    bias_grad_sum_kernel<<<(static_cast<unsigned>(channels) + kBlock - 1) / kBlock, kBlock, 0,
                           stream>>>(partials, dbias, channels, splits);
  } else if (inner == 1) {
    bias_grad_columns_kernel<<<(static_cast<unsigned>(channels) + kBlock - 1) / kBlock, kBlock, 0,
                               stream>>>(dy, dbias, outer, channels);
  } else {
    bias_grad_planes_kernel<<<static_cast<unsigned>(channels), 512, 0, stream>>>(dy, dbias, outer,
                                                                                 channels, inner);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_add_bias(float*, const float*, int, int, int, cudaStream_t);
template void launch_add_bias(bf16_bits*, const bf16_bits*, int, int, int, cudaStream_t);
template void launch_bias_grad(const float*, float*, int, int, int, float*, cudaStream_t);
template void launch_bias_grad(const bf16_bits*, float*, int, int, int, float*, cudaStream_t);

}  // namespace dpt::gpu
