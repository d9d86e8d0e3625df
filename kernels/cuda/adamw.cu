// AdamW (decoupled weight decay, PyTorch's rules), fused into one pass.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

// The CPU backend's loop, operation for operation and in its order of evaluation. The _rn
// intrinsics keep nvcc from contracting a multiply and an add into an FMA, and make division and
// square root the correctly rounded IEEE ones. The CPU's AVX2 loop (adamw_avx2) is compiled with
// FMA and g++ contracts some of its multiply-adds, so the two can differ in the last bits there:
// the parity test compares within a tolerance, not bit for bit.
__global__ void adamw_update_kernel(float* param, const float* grad, float* m, float* v, size_t n,
                                    float decay, float step_size, float bias2_sqrt, float beta2,
                                    float one_minus_beta1, float one_minus_beta2, float eps,
                                    const int32_t* skip) {
  if (skip && *skip != 0) return;
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float g = grad[i];
    float w = __fmul_rn(param[i], decay);
    // m += (1 - beta1) * (g - m)
    const float mi = __fadd_rn(m[i], __fmul_rn(one_minus_beta1, __fsub_rn(g, m[i])));
    // v = beta2 * v + (1 - beta2) * g * g, the products evaluated left to right
    const float vi = __fadd_rn(__fmul_rn(beta2, v[i]), __fmul_rn(__fmul_rn(one_minus_beta2, g), g));
    m[i] = mi;
    v[i] = vi;
    // denom = sqrt(v) / bias2_sqrt + eps; w -= step_size * m / denom
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bias2_sqrt), eps);
    w = __fsub_rn(w, __fdiv_rn(__fmul_rn(step_size, mi), denom));
    param[i] = w;
  }
}

void launch_adamw_update(float* param, const float* grad, float* m, float* v, size_t n, float decay,
                         float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                         const int32_t* skip, cudaStream_t stream) {
  if (n == 0) return;
  // 1 - beta in float, as the CPU loop computes them.
  const float one_minus_beta1 = 1.0f - beta1, one_minus_beta2 = 1.0f - beta2;
  adamw_update_kernel<<<grid_for(n), kBlock, 0, stream>>>(param, grad, m, v, n, decay, step_size,
                                                          bias2_sqrt, beta2, one_minus_beta1,
                                                          one_minus_beta2, eps, skip);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
