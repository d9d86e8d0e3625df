// Helpers shared by the kernels of the CUDA backend: launch geometry and block reductions.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>

namespace dpt::gpu {

constexpr int kBlock = 256;

// Blocks for a grid-stride loop over n elements: enough to fill any current GPU many times over,
// capped so that the count fits gridDim.x; the loop covers the rest.
inline unsigned grid_for(size_t n, int block = kBlock) {
  const size_t blocks = (n + static_cast<size_t>(block) - 1) / static_cast<size_t>(block);
  return static_cast<unsigned>(std::min<size_t>(std::max<size_t>(blocks, 1), 65536));
}

// Index and stride of a grid-stride loop, in 64 bits: n may exceed 2^31.
__device__ inline size_t grid_start() {
  return static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline size_t grid_stride() { return static_cast<size_t>(blockDim.x) * gridDim.x; }

template <class T>
__device__ inline T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block, returned to every thread. The order of additions depends only on
// blockDim, so results are reproducible. Needs blockDim.x a multiple of 32 (at most 1024), and
// every thread of the block must call it.
template <class T>
__device__ T block_sum(T v) {
  __shared__ T partial[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  T total = lane < blockDim.x / 32 ? partial[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();  // partial may be reused by the next call
  return total;
}

}  // namespace dpt::gpu
