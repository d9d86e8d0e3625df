// Inverted dropout with the counter-based stream of src/core/random.hpp, so that the mask is the
// CPU backend's mask bit for bit. x and y are float or bf16 (typed.cuh); the mask is float.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"
#include "src/core/random.hpp"

namespace dpt::gpu {

template <class T>
__global__ void dropout_forward_kernel(const T* x, T* y, float* mask, size_t n, float p,
                                       float keep_scale, uint64_t seed) {
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const float m = uniform_float(seed, i) < p ? 0.0f : keep_scale;
    mask[i] = m;
    y[i] = from_float<T>(to_float(x[i]) * m);
  }
}

template <class T>
void launch_dropout_forward(const T* x, T* y, float* mask, size_t n, float p, uint64_t seed,
                            cudaStream_t stream) {
  if (n == 0) return;
  // Computed on the host exactly as the CPU backend does (float division), so both agree.
  const float keep_scale = 1.0f / (1.0f - p);
  dropout_forward_kernel<<<grid_for(n), kBlock, 0, stream>>>(x, y, mask, n, p, keep_scale, seed);
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_dropout_forward(const float*, float*, float*, size_t, float, uint64_t,
                                     cudaStream_t);
template void launch_dropout_forward(const bf16_bits*, bf16_bits*, float*, size_t, float, uint64_t,
                                     cudaStream_t);

}  // namespace dpt::gpu
