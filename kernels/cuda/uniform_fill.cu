// Uniform random fill from the counter-based stream of src/core/random.hpp: parameter
// initialisation on the GPU, equal bit for bit to the CPU backend's.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "src/core/random.hpp"

namespace dpt::gpu {

__global__ void fill_uniform_kernel(float* p, size_t n, float bound, uint64_t seed) {
  // __fmul_rn / __fsub_rn: no fused multiply-add, so the rounding is the CPU's.
  for (size_t i = grid_start(); i < n; i += grid_stride())
    p[i] = __fmul_rn(__fsub_rn(__fmul_rn(2.0f, uniform_float(seed, i)), 1.0f), bound);
}

void launch_fill_uniform(float* p, size_t n, float bound, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  fill_uniform_kernel<<<grid_for(n), kBlock, 0, stream>>>(p, n, bound, seed);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
