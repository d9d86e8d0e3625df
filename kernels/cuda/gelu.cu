// GELU with the tanh approximation (GPT-2's), element-wise, forward and backward; the formulas,
// constants and order of operations of the CPU twin (kernels/cpu/gelu.hpp). Four elements per
// thread and load (float4) when every pointer is 16-byte aligned, one otherwise; an element's
// value is the same either way.
#include <cstdint>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

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

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

__global__ void gelu_forward_kernel(const float* x, float* y, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) y[i] = gelu(x[i]);
}

__global__ void gelu_forward_vec4_kernel(const float4* x, float4* y, size_t n4) {
  for (size_t i = grid_start(); i < n4; i += grid_stride()) {
    const float4 v = x[i];
    y[i] = make_float4(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w));
  }
}

__global__ void gelu_backward_kernel(const float* x, const float* dy, float* dx, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dx[i] = gelu_grad(x[i], dy[i]);
}

__global__ void gelu_backward_vec4_kernel(const float4* x, const float4* dy, float4* dx,
                                          size_t n4) {
  for (size_t i = grid_start(); i < n4; i += grid_stride()) {
    const float4 v = x[i], d = dy[i];
    dx[i] = make_float4(gelu_grad(v.x, d.x), gelu_grad(v.y, d.y), gelu_grad(v.z, d.z),
                        gelu_grad(v.w, d.w));
  }
}

// The aligned body in float4, then the last n % 4 elements one by one.
void launch_gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  size_t done = 0;
  if (aligned16(x) && aligned16(y)) {
    const size_t n4 = static_cast<size_t>(n) / 4;
    if (n4 > 0) {
      gelu_forward_vec4_kernel<<<grid_for(n4), kBlock, 0, stream>>>(
          reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), n4);
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

void launch_gelu_backward(const float* x, const float* dy, float* dx, int64_t n,
                          cudaStream_t stream) {
  if (n <= 0) return;
  size_t done = 0;
  if (aligned16(x) && aligned16(dy) && aligned16(dx)) {
    const size_t n4 = static_cast<size_t>(n) / 4;
    if (n4 > 0) {
      gelu_backward_vec4_kernel<<<grid_for(n4), kBlock, 0, stream>>>(
          reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(dy),
          reinterpret_cast<float4*>(dx), n4);
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

}  // namespace dpt::gpu
