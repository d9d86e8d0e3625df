// Conversions between float32 and bfloat16, with the host's rounding (src/core/bf16.hpp), so
// that a GPU's bf16 values are bit for bit the CPU twin's.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "src/core/bf16.hpp"
#include "src/core/random.hpp"

namespace dpt::gpu {

__global__ void f32_to_bf16_kernel(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dst[i] = float_to_bf16(src[i]);
}

void launch_f32_to_bf16(const float* src, uint16_t* dst, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<grid_for(n), kBlock, 0, stream>>>(src, dst, n);
  DPT_CUDA_CHECK_LAUNCH();
}

__global__ void bf16_to_f32_kernel(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dst[i] = bf16_to_float(src[i]);
}

void launch_bf16_to_f32(const uint16_t* src, float* dst, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<grid_for(n), kBlock, 0, stream>>>(src, dst, n);
  DPT_CUDA_CHECK_LAUNCH();
}

__global__ void f32_to_bf16_stochastic_kernel(const float* src, uint16_t* dst, size_t n,
                                              uint64_t seed) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    dst[i] = float_to_bf16_stochastic(src[i], static_cast<uint32_t>(random_u64(seed, i)));
}

void launch_f32_to_bf16_stochastic(const float* src, uint16_t* dst, size_t n, uint64_t seed,
                                   cudaStream_t stream) {
  if (n == 0) return;
  f32_to_bf16_stochastic_kernel<<<grid_for(n), kBlock, 0, stream>>>(src, dst, n, seed);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
