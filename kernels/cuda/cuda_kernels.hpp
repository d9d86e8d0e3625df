// Host launchers of the CUDA backend's own kernels (one .cu file per concern). Each queues its
// work on `stream` and returns at once; pointers are device memory.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

// Deliberately free of kernels/backend.hpp, so that the .cu files see only what they need.

namespace dpt::gpu {

// elementwise.cu
void launch_fill(float* p, size_t n, float value, cudaStream_t stream);
void launch_mul(const float* a, const float* b, float* out, size_t n, cudaStream_t stream);
void launch_add(const float* a, const float* b, float* out, size_t n, cudaStream_t stream);
// Sets *count (device memory) to the number of NaN or infinite values among p[0, n).
void launch_count_nonfinite(const float* p, size_t n, unsigned long long* count,
                            cudaStream_t stream);
// p[i] *= alpha.
void launch_scale(float* p, size_t n, float alpha, cudaStream_t stream);

// convert.cu: float32 to bfloat16, rounded to nearest even (src/core/bf16.hpp), and back.
void launch_f32_to_bf16(const float* src, uint16_t* dst, size_t n, cudaStream_t stream);
void launch_bf16_to_f32(const uint16_t* src, float* dst, size_t n, cudaStream_t stream);
// Stochastic rounding with the bits of random_u64(seed, i), as the CPU draws them.
void launch_f32_to_bf16_stochastic(const float* src, uint16_t* dst, size_t n, uint64_t seed,
                                   cudaStream_t stream);

// sum_squares.cu: *result (device memory) = the sum of p[i]^2 in double, in an order set by n
// alone. partials is scratch of sum_squares_partials(n) doubles.
size_t sum_squares_partials(size_t n);
void launch_sum_squares(const float* p, size_t n, double* partials, double* result,
                        cudaStream_t stream);

// layer_norm.cu: Backend::layer_norm_forward and layer_norm_backward. Backward's partials is
// scratch of layer_norm_backward_partials(rows, c) floats.
void launch_layer_norm_forward(const float* x, const float* w, const float* b, float* y,
                               float* mean, float* rstd, int64_t rows, int64_t c, float eps,
                               cudaStream_t stream);
size_t layer_norm_backward_partials(int64_t rows, int64_t c);
void launch_layer_norm_backward(const float* x, const float* w, const float* mean,
                                const float* rstd, const float* dy, float* dx, float* dw, float* db,
                                float* partials, int64_t rows, int64_t c, cudaStream_t stream);

// gelu.cu: Backend::gelu_forward and gelu_backward.
void launch_gelu_forward(const float* x, float* y, int64_t n, cudaStream_t stream);
void launch_gelu_backward(const float* x, const float* dy, float* dx, int64_t n,
                          cudaStream_t stream);

// embedding.cu: Backend::embedding_forward and embedding_backward. A token id outside
// [0, vocab) is never read through: its output row is NaN (which the trainer's non-finite check
// reports) and its position adds nothing to either gradient. Backward's scratch is
// embedding_backward_scratch(b * t, vocab) bytes, 256-byte aligned.
void launch_embedding_forward(const int32_t* idx, const float* wte, const float* wpe, float* out,
                              int64_t b, int64_t t, int64_t c, int64_t vocab, cudaStream_t stream);
size_t embedding_backward_scratch(int64_t positions, int64_t vocab);
void launch_embedding_backward(const int32_t* idx, const float* dout, float* dwte, float* dwpe,
                               int64_t b, int64_t t, int64_t c, int64_t vocab, void* scratch,
                               cudaStream_t stream);

// bias.cu: y[o, c, i] += bias[c]; dbias[c] += sum over o, i of dy[o, c, i].
void launch_add_bias(float* y, const float* bias, int outer, int channels, int inner,
                     cudaStream_t stream);
void launch_bias_grad(const float* dy, float* dbias, int outer, int channels, int inner,
                      cudaStream_t stream);

// relu.cu
void launch_relu_forward(const float* x, float* y, size_t n, cudaStream_t stream);
void launch_relu_backward(const float* y, const float* dy, float* dx, size_t n,
                          cudaStream_t stream);

// uniform_fill.cu
void launch_fill_uniform(float* p, size_t n, float bound, uint64_t seed, cudaStream_t stream);

// dropout.cu
void launch_dropout_forward(const float* x, float* y, float* mask, size_t n, float p, uint64_t seed,
                            cudaStream_t stream);

// softmax_cross_entropy.cu: Backend::softmax_cross_entropy. The totals (LossResult's fields)
// land in *sums (device memory); row_loss and row_status are scratch of `rows` entries each.
struct LossSums {
  double loss_sum;
  long long count, correct, invalid;
};
void launch_softmax_cross_entropy(const float* logits, const int32_t* targets, int rows,
                                  int classes, int32_t ignore_index, float grad_scale,
                                  float* dlogits, double* row_loss, int32_t* row_status,
                                  LossSums* sums, cudaStream_t stream);

// sgd.cu: SgdParams' fields.
void launch_sgd_update(float* param, const float* grad, float* momentum_buf, size_t n, float lr,
                       float momentum, float weight_decay, bool nesterov, cudaStream_t stream);
// adamw.cu: decay, step_size and bias2_sqrt from adamw_scalars(), the rest AdamWParams' fields.
void launch_adamw_update(float* param, const float* grad, float* m, float* v, size_t n, float decay,
                         float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                         cudaStream_t stream);

}  // namespace dpt::gpu
