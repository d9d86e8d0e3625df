// The sum of the squares of n floats in double (the gradients' global norm, for clipping), in
// two passes with no atomics: each block of the first writes its partial sum, and one block adds
// those up. The order of the additions depends on n alone (the grid is a function of n, not of
// the device), so the result repeats bit for bit on every run and every GPU.
#include <algorithm>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/gate_coefficient.hpp"

namespace dpt::gpu {

namespace {

// Blocks of the first pass: 1024 blocks of 256 threads keep any current GPU busy; fewer for
// small n (one block per 256 elements).
constexpr size_t kMaxBlocks = 1024;

}  // namespace

size_t sum_squares_partials(size_t n) { return std::min<size_t>(grid_for(n), kMaxBlocks); }

// Thread i adds p[i], p[i + stride], ... in turn; the block adds its threads' sums (block_sum's
// fixed tree). The square of a float is exact in double, so only the additions round.
__global__ void sum_squares_partials_kernel(const float* p, size_t n, double* partials) {
  double sum = 0.0;
  for (size_t i = grid_start(); i < n; i += grid_stride()) {
    const double v = p[i];
    sum += v * v;
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = sum;
}

// One block: thread i adds partials i, i + 1024, ..., then the block's tree.
__global__ void sum_squares_total_kernel(const double* partials, size_t count, double* result) {
  double sum = 0.0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *result = sum;
}

void launch_sum_squares(const float* p, size_t n, double* partials, double* result,
                        cudaStream_t stream) {
  const size_t blocks = sum_squares_partials(n);
  sum_squares_partials_kernel<<<static_cast<unsigned>(blocks), kBlock, 0, stream>>>(p, n, partials);
  DPT_CUDA_CHECK_LAUNCH();
  sum_squares_total_kernel<<<1, 1024, 0, stream>>>(partials, blocks, result);
  DPT_CUDA_CHECK_LAUNCH();
}

// One thread: Backend::update_gate from the sum the kernels above left in *sum.
__global__ void update_gate_kernel(const double* sum, double max_norm, float* coef, int32_t* skip) {
  *coef = gate_coefficient(*sum, max_norm, skip);
}

void launch_update_gate(const double* sum, double max_norm, float* coef, int32_t* skip,
                        cudaStream_t stream) {
  update_gate_kernel<<<1, 1, 0, stream>>>(sum, max_norm, coef, skip);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
