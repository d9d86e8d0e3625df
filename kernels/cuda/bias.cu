// Bias over the channel axis of [outer, channels, inner] tensors: added in forward, summed in
// backward.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

__global__ void add_bias_kernel(float* y, const float* bias, size_t total, int channels,
                                int inner) {
  for (size_t i = grid_start(); i < total; i += grid_stride())
    y[i] += bias[(i / static_cast<size_t>(inner)) % static_cast<size_t>(channels)];
}

void launch_add_bias(float* y, const float* bias, int outer, int channels, int inner,
                     cudaStream_t stream) {
  const size_t total = static_cast<size_t>(outer) * channels * inner;
  if (outer <= 0 || channels <= 0 || inner <= 0) return;
  add_bias_kernel<<<grid_for(total), kBlock, 0, stream>>>(y, bias, total, channels, inner);
  DPT_CUDA_CHECK_LAUNCH();
}

// One block per channel reduces its outer * inner values in a fixed order (no float atomics),
// so the result is the same on every run.
__global__ void bias_grad_kernel(const float* dy, float* dbias, int outer, int channels,
                                 int inner) {
  const int c = static_cast<int>(blockIdx.x);
  const size_t per_channel = static_cast<size_t>(outer) * inner;
  float sum = 0.0f;
  for (size_t j = threadIdx.x; j < per_channel; j += blockDim.x) {
    const size_t o = j / static_cast<size_t>(inner), i = j % static_cast<size_t>(inner);
    sum += dy[(o * static_cast<size_t>(channels) + static_cast<size_t>(c)) * inner + i];
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) dbias[c] += sum;
}

void launch_bias_grad(const float* dy, float* dbias, int outer, int channels, int inner,
                      cudaStream_t stream) {
  if (outer <= 0 || channels <= 0 || inner <= 0) return;
  bias_grad_kernel<<<static_cast<unsigned>(channels), kBlock, 0, stream>>>(dy, dbias, outer,
                                                                           channels, inner);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
