// GELU with the tanh approximation (GPT-2's), element-wise, forward and backward; the formulas,
// constants and order of operations of the CPU twin (kernels/cpu/gelu.hpp), over float or bf16
// (typed.cuh). Four elements per thread and access when every pointer is aligned to four
// elements, one otherwise; an element's value is the same either way.
#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

namespace {

// sqrt(2 / pi) and the cubic coefficient, rounded to float as the CPU rounds them.
constexpr float kBeta = static_cast<float>(0.79788456080286535587989211986876);
constexpr float kKappa = static_cast<float>(0.044715);
constexpr float kKappa3 = 3.0f * kKappa;

// The CPU's expressions, operation by operation: the _rn intrinsics are never fused into an FMA,
// so a value depends only on tanhf (within 2 ulp, against the CPU's tanh) and is the same in
// every kernel that computes it.
__device__ inline float gelu(float v) {
  const float cube = __fmul_rn(__fmul_rn(__fmul_rn(kKappa, v), v), v);
  const float inner = __fmul_rn(kBeta, __fadd_rn(v, cube));
  return __fmul_rn(__fmul_rn(0.5f, v), __fadd_rn(1.0f, tanhf(inner)));
}

// dy * d/dx [0.5 x (1 + tanh u)] = dy * (0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'), with
// u = sqrt(2/pi) (x + 0.044715 x^3) and u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
__device__ inline float gelu_grad(float v, float dy) {
  const float v2 = __fmul_rn(v, v);
  const float th = tanhf(__fmul_rn(kBeta, __fadd_rn(v, __fmul_rn(__fmul_rn(kKappa, v2), v))));
  const float du = __fmul_rn(kBeta, __fadd_rn(1.0f, __fmul_rn(kKappa3, v2)));
  const float left = __fmul_rn(0.5f, __fadd_rn(1.0f, th));
  const float right =
      __fmul_rn(__fmul_rn(__fmul_rn(0.5f, v), __fsub_rn(1.0f, __fmul_rn(th, th))), du);
  return __fmul_rn(dy, __fadd_rn(left, right));
}

}  // namespace

template <class T>
__global__ void gelu_forward_kernel(const T* x, T* y, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    y[i] = from_float<T>(gelu(to_float(x[i])));
}

template <class T>
__global__ void gelu_forward_vec4_kernel(const T* x, T* y, size_t n4) {
  for (size_t i = grid_start(); i < n4; i += grid_stride()) {
    const float4 v = load4<true>(x, static_cast<int64_t>(i));
    store4<true>(y, static_cast<int64_t>(i),
                 make_float4(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)));
  }
}

template <class T>
__global__ void gelu_backward_kernel(const T* x, const T* dy, T* dx, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    dx[i] = from_float<T>(gelu_grad(to_float(x[i]), to_float(dy[i])));
}

template <class T>
__global__ void gelu_backward_vec4_kernel(const T* x, const T* dy, T* dx, size_t n4) {
  for (size_t i = grid_start(); i < n4; i += grid_stride()) {
    const auto g = static_cast<int64_t>(i);
    const float4 v = load4<true>(x, g), d = load4<true>(dy, g);
    store4<true>(dx, g,
                 make_float4(gelu_grad(v.x, d.x), gelu_grad(v.y, d.y), gelu_grad(v.z, d.z),
                             gelu_grad(v.w, d.w)));
  }
}

// The aligned body in groups of four, then the last n % 4 elements one by one.
template <class T>
void launch_gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  size_t done = 0;
  if (aligned_to(x, group_bytes<T>()) && aligned_to(y, group_bytes<T>())) {
    const size_t n4 = static_cast<size_t>(n) / 4;
    if (n4 > 0) {
      gelu_forward_vec4_kernel<<<grid_for(n4), kBlock, 0, stream>>>(x, y, n4);
      DPT_CUDA_CHECK_LAUNCH();
    }
    done = n4 * 4;
  }
  const size_t rest = static_cast<size_t>(n) - done;
  if (rest > 0) {
    gelu_forward_kernel<<<grid_for(rest), kBlock, 0, stream>>>(x + done, y + done, rest);
    DPT_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void launch_gelu_backward(const T* x, const T* dy, T* dx, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  size_t done = 0;
  constexpr size_t g = group_bytes<T>();
  if (aligned_to(x, g) && aligned_to(dy, g) && aligned_to(dx, g)) {
    const size_t n4 = static_cast<size_t>(n) / 4;
    if (n4 > 0) {
      gelu_backward_vec4_kernel<<<grid_for(n4), kBlock, 0, stream>>>(x, dy, dx, n4);
      DPT_CUDA_CHECK_LAUNCH();
    }
    done = n4 * 4;
  }
  const size_t rest = static_cast<size_t>(n) - done;
  if (rest > 0) {
    gelu_backward_kernel<<<grid_for(rest), kBlock, 0, stream>>>(x + done, dy + done, dx + done,
                                                                rest);
    DPT_CUDA_CHECK_LAUNCH();
  }
}

template void launch_gelu_forward(const float*, float*, int64_t, cudaStream_t);
template void launch_gelu_forward(const bf16_bits*, bf16_bits*, int64_t, cudaStream_t);
template void launch_gelu_backward(const float*, const float*, float*, int64_t, cudaStream_t);
template void launch_gelu_backward(const bf16_bits*, const bf16_bits*, bf16_bits*, int64_t,
                                   cudaStream_t);

}  // namespace dpt::gpu
