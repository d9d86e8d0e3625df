// Element-wise kernels: fill, multiply, add, scale, and counting non-finite values.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

__global__ void fill_kernel(float* p, size_t n, float value) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) p[i] = value;
}

void launch_fill(float* p, size_t n, float value, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, value);
  DPT_CUDA_CHECK_LAUNCH();
}

// a, b and out float or bf16 (typed.cuh); b may be float while a and out are bf16 (a dropout
// mask applied to a bf16 gradient).
template <class T, class U>
__global__ void mul_kernel(const T* a, const U* b, T* out, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    out[i] = from_float<T>(to_float(a[i]) * to_float(b[i]));
}

template <class T, class U>
void launch_mul(const T* a, const U* b, T* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  mul_kernel<<<grid_for(n), kBlock, 0, stream>>>(a, b, out, n);
  DPT_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void add_kernel(const T* a, const T* b, T* out, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    out[i] = from_float<T>(to_float(a[i]) + to_float(b[i]));
}

// Four elements per thread and access when every pointer is aligned to four elements (the
// residual stream of a transformer, the largest add), element by element otherwise.
template <class T>
__global__ void add_vec4_kernel(const T* a, const T* b, T* out, size_t n4) {
  for (size_t i = grid_start(); i < n4; i += grid_stride()) {
    const auto g = static_cast<int64_t>(i);
    const float4 x = load4<true>(a, g), y = load4<true>(b, g);
    store4<true>(out, g, make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w));
  }
}

template <class T>
void launch_add(const T* a, const T* b, T* out, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  size_t done = 0;
  constexpr size_t g = group_bytes<T>();
  if (aligned_to(a, g) && aligned_to(b, g) && aligned_to(out, g) && n >= 4) {
    const size_t n4 = n / 4;
    add_vec4_kernel<<<grid_for(n4), kBlock, 0, stream>>>(a, b, out, n4);
    DPT_CUDA_CHECK_LAUNCH();
    done = n4 * 4;
  }
  if (done < n) {
    add_kernel<<<grid_for(n - done), kBlock, 0, stream>>>(a + done, b + done, out + done, n - done);
    DPT_CUDA_CHECK_LAUNCH();
  }
}

template void launch_mul(const float*, const float*, float*, size_t, cudaStream_t);
template void launch_mul(const bf16_bits*, const bf16_bits*, bf16_bits*, size_t, cudaStream_t);
template void launch_mul(const bf16_bits*, const float*, bf16_bits*, size_t, cudaStream_t);
template void launch_add(const float*, const float*, float*, size_t, cudaStream_t);
template void launch_add(const bf16_bits*, const bf16_bits*, bf16_bits*, size_t, cudaStream_t);

// One multiply per element, as on the CPU: the same bits.
__global__ void scale_kernel(float* p, size_t n, float alpha) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) p[i] *= alpha;
}

void launch_scale(float* p, size_t n, float alpha, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, alpha);
  DPT_CUDA_CHECK_LAUNCH();
}

// As scale_kernel, by *coef (device memory) when it is below 1.
__global__ void scale_by_kernel(float* p, size_t n, const float* coef) {
  const float alpha = *coef;
  if (!(alpha < 1.0f)) return;
  for (size_t i = grid_start(); i < n; i += grid_stride()) p[i] *= alpha;
}

void launch_scale_by(float* p, size_t n, const float* coef, cudaStream_t stream) {
  if (n == 0) return;
  scale_by_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, coef);
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
