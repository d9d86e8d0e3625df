// Element-wise kernels: fill, multiply, add, scale, and counting non-finite values.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

__global__ void fill_kernel(float* p, size_t n, float value) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) p[i] = value;
}

void launch_fill(float* p, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, value);
  DPT_CUDA_CHECK_LAUNCH();
}

__global__ void mul_kernel(const float* a, const float* b, float* out, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) out[i] = a[i] * b[i];
}

void launch_mul(const float* a, const float* b, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  mul_kernel<<<grid_for(n), kBlock, 0, stream>>>(a, b, out, n);
  DPT_CUDA_CHECK_LAUNCH();
}

__global__ void add_kernel(const float* a, const float* b, float* out, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) out[i] = a[i] + b[i];
}

void launch_add(const float* a, const float* b, float* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), kBlock, 0, stream>>>(a, b, out, n);
  DPT_CUDA_CHECK_LAUNCH();
}

// One multiply per element, as on the CPU: the same bits.
__global__ void scale_kernel(float* p, size_t n, float alpha) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) p[i] *= alpha;
}

void launch_scale(float* p, size_t n, float alpha, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, alpha);
  DPT_CUDA_CHECK_LAUNCH();
}

// Each block counts its share, then adds it to *count once: integer atomics are exact, so the
// total does not depend on the order the blocks finish in.
__global__ void count_nonfinite_kernel(const float* p, size_t n, unsigned long long* count) {
  unsigned long long local = 0;
  for (size_t i = grid_start(); i < n; i += grid_stride())
    local += (__float_as_uint(p[i]) & 0x7f800000u) == 0x7f800000u;  // all exponent bits set
  local = block_sum(local);
  if (threadIdx.x == 0 && local != 0) atomicAdd(count, local);
}

void launch_count_nonfinite(const float* p, size_t n, unsigned long long* count,
                            cudaStream_t stream) {
  DPT_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(*count), stream));
  if (n == 0) return;
  count_nonfinite_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, count);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
