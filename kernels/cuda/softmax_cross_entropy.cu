// Softmax cross-entropy over the rows of [batch, classes] logits: per-row loss, arg-max hit and
// (optionally) the gradient, then the batch totals reduced on the device in a fixed order.
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"

namespace dpt::gpu {

constexpr int kRowsPerBlock = kBlock / 32;  // one warp per row: class counts are small

// Per row, like the CPU backend: the arg-max (first maximum wins; NaNs never win unless the first
// logit is one, when the arg-max stays 0), mx = row[arg], sum of exp(row - mx) in double, loss
// log(sum) - (row[label] - mx) in double, and dlogits = (softmax - onehot) * grad_scale.
__global__ void softmax_cross_entropy_rows_kernel(const float* logits, const int32_t* labels,
                                                  int batch, int classes, float grad_scale,
                                                  float* dlogits, double* row_loss,
                                                  int32_t* row_correct) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int r = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.x / 32);
  if (r >= batch) return;  // the whole warp leaves together; no block-wide sync follows
  const float* row = logits + static_cast<size_t>(r) * classes;

  // Each lane's best over its classes (lowest index on ties), then a butterfly over the warp
  // with the same order: larger value first, then lower index; -1 marks "nothing yet".
  float best = 0.0f;
  int best_i = -1;
  for (int c = lane; c < classes; c += 32) {
    const float v = row[c];
    if (v != v) continue;  // NaN
    if (best_i < 0 || v > best) {
      best = v;
      best_i = c;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_i = __shfl_xor_sync(0xffffffffu, best_i, offset);
    if (other_i >= 0 && (best_i < 0 || other > best || (other == best && other_i < best_i))) {
      best = other;
      best_i = other_i;
    }
  }
  const float first = row[0];
  const int arg = (first != first || best_i < 0) ? 0 : best_i;
  const float mx = row[arg];

  double sum = 0.0;
  for (int c = lane; c < classes; c += 32) sum += exp(static_cast<double>(row[c] - mx));
  sum = warp_sum(sum);

  const int label = labels[r];
  // An out-of-range label (the data readers reject them) gives a NaN loss instead of a stray read.
  const bool valid = label >= 0 && label < classes;
  if (lane == 0) {
    row_loss[r] = valid ? log(sum) - static_cast<double>(row[label] - mx)
                        : __longlong_as_double(0x7ff8000000000000LL);
    row_correct[r] = valid && arg == label ? 1 : 0;
  }
  if (dlogits) {
    const double inv = 1.0 / sum;
    float* drow = dlogits + static_cast<size_t>(r) * classes;
    for (int c = lane; c < classes; c += 32) {
      const float prob = static_cast<float>(exp(static_cast<double>(row[c] - mx)) * inv);
      drow[c] = (prob - (c == label ? 1.0f : 0.0f)) * grad_scale;
    }
  }
}

// One block sums the per-row results in a fixed order: the same total on every run.
__global__ void softmax_cross_entropy_sum_kernel(const double* row_loss, const int32_t* row_correct,
                                                 int batch, LossSums* sums) {
  double loss = 0.0;
  long long correct = 0;
  for (int i = static_cast<int>(threadIdx.x); i < batch; i += static_cast<int>(blockDim.x)) {
    loss += row_loss[i];
    correct += row_correct[i];
  }
  loss = block_sum(loss);
  correct = block_sum(correct);
  if (threadIdx.x == 0) {
    sums->loss_sum = loss;
    sums->correct = correct;
  }
}

void launch_softmax_cross_entropy(const float* logits, const int32_t* labels, int batch,
                                  int classes, float grad_scale, float* dlogits, double* row_loss,
                                  int32_t* row_correct, LossSums* sums, cudaStream_t stream) {
  if (batch <= 0 || classes <= 0) {
    DPT_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(*sums), stream));
    return;
  }
  const unsigned blocks = static_cast<unsigned>((batch + kRowsPerBlock - 1) / kRowsPerBlock);
  softmax_cross_entropy_rows_kernel<<<blocks, kBlock, 0, stream>>>(
      logits, labels, batch, classes, grad_scale, dlogits, row_loss, row_correct);
  DPT_CUDA_CHECK_LAUNCH();
  softmax_cross_entropy_sum_kernel<<<1, 1024, 0, stream>>>(row_loss, row_correct, batch, sums);
  DPT_CUDA_CHECK_LAUNCH();
}

}  // namespace dpt::gpu
