// ReLU forward and backward, over float or bf16 (typed.cuh).
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

// `x < 0 ? 0 : x` rather than fmaxf: a NaN passes through, as on the CPU and in PyTorch.
template <class T>
__global__ void relu_forward_kernel(const T* x, T* y, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float v = to_float(x[i]);
    y[i] = from_float<T>(v < 0.0f ? 0.0f : v);
  }
}

template <class T>
void launch_relu_forward(const T* x, T* y, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_forward_kernel<<<grid_for(n), kBlock, 0, stream>>>(x, y, n);
  DPT_CUDA_CHECK_LAUNCH();
}

template <class T>
__global__ void relu_backward_kernel(const T* y, const T* dy, T* dx, size_t n) {
  for (size_t i = grid_start(); i < n; i += grid_stride())
    dx[i] = from_float<T>(to_float(y[i]) > 0.0f ? to_float(dy[i]) : 0.0f);
}

template <class T>
void launch_relu_backward(const T* y, const T* dy, T* dx, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  relu_backward_kernel<<<grid_for(n), kBlock, 0, stream>>>(y, dy, dx, n);
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_relu_forward(const float*, float*, size_t, cudaStream_t);
template void launch_relu_forward(const bf16_bits*, bf16_bits*, size_t, cudaStream_t);
template void launch_relu_backward(const float*, const float*, float*, size_t, cudaStream_t);
template void launch_relu_backward(const bf16_bits*, const bf16_bits*, bf16_bits*, size_t,
                                   cudaStream_t);

}  // namespace dpt::gpu
