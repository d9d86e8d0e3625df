// SGD with momentum, Nesterov and weight decay (PyTorch's rules), fused into one pass.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

// The CPU backend's loop, operation for operation. The _rn intrinsics keep nvcc from fusing a
// multiply and an add into one FMA (which rounds once instead of twice), so the result is the
// CPU's bit for bit wherever the host compiler does not contract either (x86-64 without -mfma).
__global__ void sgd_update_kernel(float* param, const float* grad, float* buf, size_t n, float lr,
                                  float momentum, float weight_decay, bool nesterov,
                                  const int32_t* skip) {
  if (skip && *skip != 0) return;
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    float g = grad[i];
    if (weight_decay != 0.0f) g = __fadd_rn(g, __fmul_rn(weight_decay, param[i]));
    if (momentum != 0.0f) {
      const float b = __fadd_rn(__fmul_rn(momentum, buf[i]), g);
      buf[i] = b;
      g = nesterov ? __fadd_rn(g, __fmul_rn(momentum, b)) : b;
    }
    param[i] = __fsub_rn(param[i], __fmul_rn(lr, g));
  }
}

void launch_sgd_update(float* param, const float* grad, float* momentum_buf, size_t n, float lr,
                       float momentum, float weight_decay, bool nesterov, const int32_t* skip,
                       cudaStream_t stream) {
  if (n == 0) return;
  sgd_update_kernel<<<grid_for(n), kBlock, 0, stream>>>(param, grad, momentum_buf, n, lr, momentum,
                                                        weight_decay, nesterov, skip);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
