// ReLU forward and backward.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

// `x < 0 ? 0 : x` rather than fmaxf: a NaN passes through, as on the CPU and in PyTorch.
__global__ void relu_forward_kernel(const float* x, float* y, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

void launch_relu_forward(const float* x, float* y, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n), kBlock, 0, stream>>>(x, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

__global__ void relu_backward_kernel(const float* y, const float* dy, float* dx, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void launch_relu_backward(const float* y, const float* dy, float* dx, size_t n,
                          cudaStream_t stream) {
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n), kBlock, 0, stream>>>(y, dy, dx, n);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
