// Host launchers of the CUDA backend's own kernels (one .cu file per concern). Each queues its
// work on `stream` and returns at once; pointers are device memory.
//
// A launcher templated on T takes float, or bf16 as its 16 bits in a uint16_t (kernels/cuda/
// typed.cuh): it computes in float and rounds each bf16 output once, when it is stored, as the
// bf16 twin of kernels/backend.cpp does. Each .cu file instantiates both.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

// Deliberately free of kernels/backend.hpp, so that the .cu files see only what they need.

namespace dpt::gpu {

// elementwise.cu
void launch_fill(float* p, size_t n, float value, cudaStream_t stream);
// out = a * b (U is T, or float while T is bf16); out = a + b. out may be a or b.
template <class T, class U>
void launch_mul(const T* a, const U* b, T* out, size_t n, cudaStream_t stream);
template <class T>
void launch_add(const T* a, const T* b, T* out, size_t n, cudaStream_t stream);
// Sets *count (device memory) to the number of NaN or infinite values among p[0, n).
void launch_count_nonfinite(const float* p, size_t n, unsigned long long* count,
                            cudaStream_t stream);
// p[i] *= alpha.
void launch_scale(float* p, size_t n, float alpha, cudaStream_t stream);
// p[i] *= *coef (device memory) when *coef < 1; nothing otherwise.
void launch_scale_by(float* p, size_t n, const float* coef, cudaStream_t stream);

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
// Backend::update_gate, in one thread.
void launch_update_gate(const double* sum, double max_norm, float* coef, int32_t* skip,
                        cudaStream_t stream);

// layer_norm.cu: Backend::layer_norm_forward and layer_norm_backward. Backward's partials is
// scratch of layer_norm_backward_partials(rows, c) floats.
template <class T>
void launch_layer_norm_forward(const T* x, const T* w, const T* b, T* y, float* mean, float* rstd,
                               int64_t rows, int64_t c, float eps, cudaStream_t stream);
size_t layer_norm_backward_partials(int64_t rows, int64_t c);
template <class T>
void launch_layer_norm_backward(const T* x, const T* w, const float* mean, const float* rstd,
                                const T* dy, T* dx, float* dw, float* db, float* partials,
                                int64_t rows, int64_t c, cudaStream_t stream);

// gelu.cu: Backend::gelu_forward and gelu_backward.
template <class T>
void launch_gelu_forward(const T* x, T* y, int64_t n, cudaStream_t stream);
template <class T>
void launch_gelu_backward(const T* x, const T* dy, T* dx, int64_t n, cudaStream_t stream);

// embedding.cu: Backend::embedding_forward and embedding_backward. A token id outside
// [0, vocab) is never read through: its output row is NaN (which the trainer's non-finite check
// reports) and its position adds nothing to either gradient. Backward's scratch is
// embedding_backward_scratch(b * t, vocab) bytes, 256-byte aligned.
template <class T>
void launch_embedding_forward(const int32_t* idx, const T* wte, const T* wpe, T* out, int64_t b,
                              int64_t t, int64_t c, int64_t vocab, cudaStream_t stream);
size_t embedding_backward_scratch(int64_t positions, int64_t vocab);
template <class T>
void launch_embedding_backward(const int32_t* idx, const T* dout, float* dwte, float* dwpe,
                               int64_t b, int64_t t, int64_t c, int64_t vocab, void* scratch,
                               cudaStream_t stream);

// bias.cu: y[o, c, i] += bias[c]; dbias[c] += sum over o, i of dy[o, c, i].
template <class T>
void launch_add_bias(T* y, const T* bias, int outer, int channels, int inner, cudaStream_t stream);
// partials: scratch of bias_grad_partials() floats for a Linear's (inner == 1) two-pass sum;
// null takes one pass, a thread per column (slow for many rows).
size_t bias_grad_partials(int outer, int channels, int inner);
template <class T>
void launch_bias_grad(const T* dy, float* dbias, int outer, int channels, int inner,
                      float* partials, cudaStream_t stream);

// relu.cu
template <class T>
void launch_relu_forward(const T* x, T* y, size_t n, cudaStream_t stream);
template <class T>
void launch_relu_backward(const T* y, const T* dy, T* dx, size_t n, cudaStream_t stream);

// uniform_fill.cu
void launch_fill_uniform(float* p, size_t n, float bound, uint64_t seed, cudaStream_t stream);

// dropout.cu
template <class T>
void launch_dropout_forward(const T* x, T* y, float* mask, size_t n, float p, uint64_t seed,
                            cudaStream_t stream);

// softmax_cross_entropy.cu: Backend::softmax_cross_entropy (rows `ld` elements apart). The totals
// (LossResult's fields) land in *sums (device memory), or with `accumulate` are added to it;
// row_loss and row_status are scratch of `rows` entries each.
struct LossSums {
  double loss_sum;
  long long count, correct, invalid;
};
template <class T>
void launch_softmax_cross_entropy(const T* logits, const int32_t* targets, int rows, int classes,
                                  int ld, int32_t ignore_index, float grad_scale, T* dlogits,
                                  double* row_loss, int32_t* row_status, LossSums* sums,
                                  bool accumulate, cudaStream_t stream);

// sgd.cu: SgdParams' fields.
// skip: null, or device memory whose non-zero value leaves everything alone (both updates).
void launch_sgd_update(float* param, const float* grad, float* momentum_buf, size_t n, float lr,
                       float momentum, float weight_decay, bool nesterov, const int32_t* skip,
                       cudaStream_t stream);
// adamw.cu: decay, step_size and bias2_sqrt from adamw_scalars(), the rest AdamWParams' fields.
void launch_adamw_update(float* param, const float* grad, float* m, float* v, size_t n, float decay,
                         float step_size, float bias2_sqrt, float beta1, float beta2, float eps,
                         const int32_t* skip, cudaStream_t stream);

}  // namespace dpt::gpu
