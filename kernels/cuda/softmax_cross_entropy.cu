// Softmax cross-entropy over the rows of [rows, classes] logits, each row `ld` elements after the
// one before (a gpt's head pads them to a multiple of 64): one block per row computes the
// row's loss, arg-max hit and (optionally) gradient; then one block sums the per-row results in a
// fixed order. Rows may be as long as a language model's vocabulary (50,257 classes for GPT-2).
// logits and dlogits are float or bf16 (typed.cuh), both of one type: a bf16 row is read as
// float and each gradient is rounded once, as the bf16 twin does.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

// What became of a row, for the totals.
enum RowStatus : int32_t { kIgnored = 0, kMiss = 1, kHit = 2, kInvalid = 3 };

// Threads per row: about 8 classes each, a multiple of 32 from one warp (10 classes) to 512
// (a 50,257-class row: about 98 each).
inline int threads_per_row(int classes) {
  const int warps = (classes / 8 + 31) / 32;
  return 32 * std::clamp(warps, 1, 16);
}

// The better of two arg-max candidates: the larger value, then the lower index; -1 is none.
__device__ inline void take_better(float& best, int& best_i, float other, int other_i) {
  if (other_i >= 0 && (best_i < 0 || other > best || (other == best && other_i < best_i))) {
    best = other;
    best_i = other_i;
  }
}

// The block's best candidate, returned to every thread. The result does not depend on the order
// of the comparisons, as ties go to the lower index. Same conditions as block_sum.
__device__ void block_argmax(float& best, int& best_i) {
  __shared__ float value[32];
  __shared__ int index[32];
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int offset = 16; offset > 0; offset >>= 1)
    take_better(best, best_i, __shfl_xor_sync(0xffffffffu, best, offset),
                __shfl_xor_sync(0xffffffffu, best_i, offset));
  if (lane == 0) {
    value[warp] = best;
    index[warp] = best_i;
  }
  __syncthreads();
  best = lane < blockDim.x / 32 ? value[lane] : 0.0f;
  best_i = lane < blockDim.x / 32 ? index[lane] : -1;
  for (int offset = 16; offset > 0; offset >>= 1)
    take_better(best, best_i, __shfl_xor_sync(0xffffffffu, best, offset),
                __shfl_xor_sync(0xffffffffu, best_i, offset));
  __syncthreads();  // value and index may be reused by the next call
}

// Row blockIdx.x, like the CPU backend: the arg-max (first maximum wins; a NaN never wins unless
// it is the first logit, when the arg-max stays 0), mx = row[arg], each exp(row - mx) in float
// (expf, within 2 ulp; the CPU's vectorized exp is within about 1) summed in double, the loss
// log(sum) - (row[target] - mx) in double, and dlogits = (softmax - onehot) * grad_scale, each
// probability the float exponential times 1/sum in double, rounded once. An ignored or invalid
// row gets a zero gradient. (Exponentials in double compile to some 37 FP64 operations each,
// estimated at a millisecond per step over gpt2's 8192 x 50,257 logits; not measured.)
// Class loops run over unsigned ints: classes + blockDim.x cannot overflow them.
template <class T>
__global__ void softmax_cross_entropy_rows_kernel(const T* logits, const int32_t* targets,
                                                  int classes, int ld, int32_t ignore_index,
                                                  float grad_scale, T* dlogits, double* row_loss,
                                                  int32_t* row_status) {
  const unsigned r = blockIdx.x, n = static_cast<unsigned>(classes);
  const size_t offset = static_cast<size_t>(r) * ld;  // 64 bits: rows * ld may pass 2^31
  const int target = targets[r];
  // The whole block takes the same branch, so leaving early skips no __syncthreads.
  if (target == ignore_index || target < 0 || target >= classes) {
    if (dlogits)
      for (unsigned c = threadIdx.x; c < n; c += blockDim.x)
        dlogits[offset + c] = from_float<T>(0.0f);
    if (threadIdx.x == 0) {
      row_loss[r] = 0.0;
      row_status[r] = target == ignore_index ? kIgnored : kInvalid;
    }
    return;
  }
  const T* row = logits + offset;

  float best = 0.0f;
  int best_i = -1;
  for (unsigned c = threadIdx.x; c < n; c += blockDim.x) {
    const float v = to_float(row[c]);
    if (v != v) continue;  // NaN
    // Each thread visits its classes in rising order, so a tie keeps the lower index.
    if (best_i < 0 || v > best) {
      best = v;
      best_i = static_cast<int>(c);
    }
  }
  block_argmax(best, best_i);
  const float first = to_float(row[0]);
  const int arg = (first != first || best_i < 0) ? 0 : best_i;
  const float mx = to_float(row[arg]);

  double sum = 0.0;
  for (unsigned c = threadIdx.x; c < n; c += blockDim.x)
    sum += static_cast<double>(expf(to_float(row[c]) - mx));
  sum = block_sum(sum);

  if (threadIdx.x == 0) {
    row_loss[r] = log(sum) - static_cast<double>(to_float(row[target]) - mx);
    row_status[r] = arg == target ? kHit : kMiss;
  }
  if (dlogits) {
    const double inv = 1.0 / sum;
    T* drow = dlogits + offset;
    for (unsigned c = threadIdx.x; c < n; c += blockDim.x) {
      const double e = expf(to_float(row[c]) - mx);
      const float prob = static_cast<float>(e * inv);
      drow[c] = from_float<T>((prob - (static_cast<int>(c) == target ? 1.0f : 0.0f)) * grad_scale);
    }
  }
}

// One block sums the per-row results in a fixed order: the same totals on every run, where
// atomics on doubles would add in whatever order the rows finish.
// accumulate: add the totals to *sums (a deferred loss's running sum) instead of writing them.
__global__ void softmax_cross_entropy_sum_kernel(const double* row_loss, const int32_t* row_status,
                                                 int rows, LossSums* sums, bool accumulate) {
  double loss = 0.0;
  long long count = 0, correct = 0, invalid = 0;
  for (unsigned i = threadIdx.x; i < static_cast<unsigned>(rows); i += blockDim.x) {
    loss += row_loss[i];  // 0 for the rows that do not count
    const int32_t s = row_status[i];
    count += s == kMiss || s == kHit;
    correct += s == kHit;
    invalid += s == kInvalid;
  }
  loss = block_sum(loss);
  count = block_sum(count);
  correct = block_sum(correct);
  invalid = block_sum(invalid);
  if (threadIdx.x == 0) {
    if (!accumulate) *sums = LossSums{};
    sums->loss_sum += loss;
    sums->count += count;
    sums->correct += correct;
    sums->invalid += invalid;
  }
}

template <class T>
void launch_softmax_cross_entropy(const T* logits, const int32_t* targets, int rows, int classes,
                                  int ld, int32_t ignore_index, float grad_scale, T* dlogits,
                                  double* row_loss, int32_t* row_status, LossSums* sums,
                                  bool accumulate, cudaStream_t stream) {
  if (rows <= 0 || classes <= 0) {
    if (!accumulate) DPT_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(*sums), stream));
    return;
  }
  softmax_cross_entropy_rows_kernel<<<static_cast<unsigned>(rows), threads_per_row(classes), 0,
                                      stream>>>(logits, targets, classes, ld, ignore_index,
                                                grad_scale, dlogits, row_loss, row_status);
  DPT_CUDA_CHECK_LAUNCH();
  softmax_cross_entropy_sum_kernel<<<1, 1024, 0, stream>>>(row_loss, row_status, rows, sums,
                                                           accumulate);
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_softmax_cross_entropy(const float*, const int32_t*, int, int, int, int32_t,
                                           float, float*, double*, int32_t*, LossSums*, bool,
                                           cudaStream_t);
template void launch_softmax_cross_entropy(const bf16_bits*, const int32_t*, int, int, int, int32_t,
                                           float, bf16_bits*, double*, int32_t*, LossSums*, bool,
                                           cudaStream_t);

}  // namespace dpt::gpu
