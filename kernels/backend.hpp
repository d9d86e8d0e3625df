// Backend: the compute operations the layers, losses and optimizers need, on one device.
//
// A Backend is a Device (kernels/runtime/device.hpp: memory, copies, queue, markers) with ops.
// Pointers passed to a backend point into its own memory (host memory for the CPU backend,
// device memory for CUDA). Layers never touch that memory directly: they call these ops, so the
// same layer code runs on every backend. Every op of a backend has a twin on the CPU backend,
// which is the reference the parity tests compare against.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/ops.hpp"
#include "kernels/runtime/device.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/core/dtype.hpp"
#include "src/core/tensor_ref.hpp"

namespace dpt {

// Geometry of a 2-D convolution over a batch in NCHW layout; weights are [out_c, in_c, kh, kw].
struct ConvShape {
  int n = 0, in_c = 0, in_h = 0, in_w = 0;
  int out_c = 0, kh = 0, kw = 0, stride = 1, pad = 0;
  // 0 when the kernel does not fit (integer division would round a negative span up to 1).
  int out_h() const { return in_h + 2 * pad < kh ? 0 : (in_h + 2 * pad - kh) / stride + 1; }
  int out_w() const { return in_w + 2 * pad < kw ? 0 : (in_w + 2 * pad - kw) / stride + 1; }
};

// Geometry of 2-D max pooling (no padding) over a batch in NCHW layout.
struct PoolShape {
  int n = 0, c = 0, in_h = 0, in_w = 0, k = 2, stride = 2;
  int out_h() const { return in_h < k ? 0 : (in_h - k) / stride + 1; }
  int out_w() const { return in_w < k ? 0 : (in_w - k) / stride + 1; }
};

// Totals of a loss over rows. Only counted rows contribute: a row whose target is the ignore
// index is skipped, and so is one whose target is no class at all (counted in `invalid`).
struct LossResult {
  double loss_sum = 0;  // sum over the counted rows of -log softmax(logits)[target]
  int64_t count = 0;    // counted rows
  int64_t correct = 0;  // counted rows whose arg-max logit equals the target
  int64_t invalid = 0;  // rows whose target is neither the ignore index nor in [0, classes)

  // Adds another call's totals (deferred losses add up until taken).
  LossResult& operator+=(const LossResult& o) {
    loss_sum += o.loss_sum;
    count += o.count;
    correct += o.correct;
    invalid += o.invalid;
    return *this;
  }
};

struct SgdParams {
  float lr = 0.01f, momentum = 0, weight_decay = 0;
  bool nesterov = false;
  // Backend memory, read when the update runs: *skip != 0 leaves the parameters and the state
  // alone (a step whose gradients are not finite, Backend::update_gate). Null: never skip.
  const int32_t* skip = nullptr;
};

struct AdamWParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.01f;
  int64_t step = 1;               // 1-based count of updates including this one (bias correction)
  const int32_t* skip = nullptr;  // as SgdParams::skip
};

// Scalars of one AdamW update shared by every backend, so that all compute them alike.
struct AdamWScalars {
  float decay;       // 1 - lr * weight_decay
  float step_size;   // lr / (1 - beta1^step)
  float bias2_sqrt;  // sqrt(1 - beta2^step)
};
AdamWScalars adamw_scalars(const AdamWParams& p);

// Whether `op` takes bfloat16 on every backend (through the bf16 twin at least): gemm, convert,
// and the ops of a transformer's and an MLP's step; not conv2d, maxpool2d nor the optimizers.
bool takes_bf16(Op op);

// Virtual inheritance: a backend's implementation also derives from the Device implementation
// of its runtime (CpuDevice, CudaDevice), and both must be the one Device it is.
class Backend : public virtual Device {
 public:
  // Whether `op` takes tensors of element type `t` on this backend (its floating-point operands:
  // labels, indices and the float32 gradients of parameters keep their own types). Every op
  // takes float32; the ops a transformer's or an MLP's step needs (takes_bf16) take bfloat16
  // too, on every backend, through the twin below unless the backend computes them natively.
  virtual bool takes(Op op, DataType t) const {
    return t == DataType::F32 || (t == DataType::BF16 && takes_bf16(op));
  }
  // Throws InputError when `op` does not take `t` here, naming `who` (the layer or optimizer
  // that asked), the backend, the op and the type.
  void require(Op op, DataType t, const std::string& who) const;

  virtual void fill(float* p, size_t n, float value) = 0;
  // p[i] = (2 u - 1) * bound with u = uniform_float(seed, i): the same values on every backend
  // (parameter initialisation, PyTorch's U(-bound, bound)).
  virtual void fill_uniform(float* p, size_t n, float bound, uint64_t seed) = 0;

  // Which GEMM gemm() runs, for reports: "cublas"; on the CPU "avx2" (dptrain's own), "openblas"
  // or "builtin" (kernels/cpu/cpu_gemm.hpp).
  virtual std::string gemm_name() const = 0;
  // Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, with leading dimensions.
  virtual void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                    int lda, const float* b, int ldb, float beta, float* c, int ldc) = 0;
  // The same product over typed operands, as mixed precision runs it: A and B both float32 or
  // both bfloat16, C float32 or bfloat16, products and sums in float32 (on a GPU, cuBLAS's
  // CUBLAS_COMPUTE_32F on tensor cores). A bf16 C is read as float for beta and the result is
  // rounded to bf16 once, at the end. Throws SystemError for other types. gemm() is the float32
  // case.
  virtual void gemm_ex(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                       ConstTensorRef a, int lda, ConstTensorRef b, int ldb, float beta,
                       TensorRef c, int ldc) = 0;

  // The ops below take typed tensors: float32, or bfloat16 activations and weights (the
  // accumulated gradients of parameters, LayerNorm's statistics and the dropout mask stay
  // float32). Each is computed in float32 and every bf16 output is rounded once, when it is
  // stored: an all-float32 call goes to the backend's float kernel (the *_f32 functions below);
  // one with bf16 operands, unless a backend overrides the typed function, to the bf16 twin,
  // which widens the bf16 inputs into float32 scratch on the device, runs that same kernel and
  // rounds its outputs (kernels/backend.cpp). So the twin fixes the rounding points that a
  // native bf16 kernel must keep. Outputs may not overlap inputs unless an op says so.
  //
  // A Linear's forward over m rows: y[m, out] = x[m, in] w[out, in]^T (+ bias[out] unless null).
  // With bf16 operands: gemm_ex into float32, the bias added in float32, y rounded once.
  virtual void linear_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef bias, TensorRef y,
                              int m, int in, int out);
  // y[o, c, i] += bias[c] for o < outer, c < channels, i < inner.
  virtual void add_bias(TensorRef y, ConstTensorRef bias, int outer, int channels, int inner);
  // dbias[c] += sum over o, i of dy[o, c, i].
  virtual void bias_grad(ConstTensorRef dy, float* dbias, int outer, int channels, int inner);

  virtual void relu_forward(ConstTensorRef x, TensorRef y, size_t n);
  // dx = dy where y > 0, else 0.
  virtual void relu_backward(ConstTensorRef y, ConstTensorRef dy, TensorRef dx, size_t n);

  // Inverted dropout: mask[i] = 0 or 1/(1-p) drawn from (seed, i); y = x * mask.
  virtual void dropout_forward(ConstTensorRef x, TensorRef y, float* mask, size_t n, float p,
                               uint64_t seed);
  // out = a * b element-wise; out may be a or b.
  virtual void mul(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n);
  // out = a + b element-wise (residual connections); out may be a or b.
  virtual void add(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n);

  // The transformer's ops (nanoGPT's GPT). Sizes are int64_t: B·T·C grows past 2^31 at gpt2
  // scale.
  //
  // LayerNorm over rows [rows, c]: y = (x - mean) * rstd * w + b with rstd = 1/sqrt(var + eps),
  // the biased variance; writes mean and rstd [rows] (float32) for backward.
  virtual void layer_norm_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef b, TensorRef y,
                                  float* mean, float* rstd, int64_t rows, int64_t c, float eps);
  // Writes dx; adds into dw and db.
  virtual void layer_norm_backward(ConstTensorRef x, ConstTensorRef w, const float* mean,
                                   const float* rstd, ConstTensorRef dy, TensorRef dx, float* dw,
                                   float* db, int64_t rows, int64_t c);
  // GELU with the tanh approximation (GPT-2's; PyTorch's approximate='tanh'), element-wise.
  virtual void gelu_forward(ConstTensorRef x, TensorRef y, int64_t n);
  // dx = dy * gelu'(x).
  virtual void gelu_backward(ConstTensorRef x, ConstTensorRef dy, TensorRef dx, int64_t n);
  // Causal self-attention on a fused projection qkv [b, t, 3c] (q, k, v in that order, each of
  // n_head heads of c / n_head): out [b, t, c] is the heads' softmax(mask(q k^T / sqrt(hs))) v
  // side by side; att [b, n_head, t, t] keeps the probabilities for backward (zero above the
  // diagonal). c must be a multiple of n_head. In bf16 the probabilities are rounded to bf16
  // before they multiply v (and stored so), as bf16 GEMMs take them; in backward, the score
  // gradients are rounded before they multiply k and q (kernels/cpu/attention.hpp).
  virtual void attention_forward(ConstTensorRef qkv, TensorRef out, TensorRef att, int64_t b,
                                 int64_t t, int64_t c, int64_t n_head);
  // Writes dqkv [b, t, 3c] (every element) from dout [b, t, c].
  virtual void attention_backward(ConstTensorRef qkv, ConstTensorRef att, ConstTensorRef dout,
                                  TensorRef dqkv, int64_t b, int64_t t, int64_t c, int64_t n_head);
  // Fused (flash) attention: the same attention without the t x t probabilities, which it
  // recomputes in backward from each row's log-sum-exp of the scaled scores (lse, float32
  // [b, n_head, t]), kept instead. fused_attention says whether this backend computes it for
  // operands of type `dtype` at this size; the layer asks before each forward and takes one way
  // for both passes. The CPU backend never does: its probabilities are the reference that the
  // twin rounds. A fused kernel rounds where its own blocks round (the probabilities before they
  // multiply v, as the twin does, but unnormalised), so it matches the twin closely, not in bits.
  virtual bool fused_attention(DataType dtype, int64_t b, int64_t t, int64_t c, int64_t n_head) {
    return false;
  }
  virtual void attention_fused_forward(ConstTensorRef qkv, TensorRef out, float* lse, int64_t b,
                                       int64_t t, int64_t c, int64_t n_head);
  // Writes dqkv from dout, with qkv, out and lse of the forward pass.
  virtual void attention_fused_backward(ConstTensorRef qkv, ConstTensorRef out, const float* lse,
                                        ConstTensorRef dout, TensorRef dqkv, int64_t b, int64_t t,
                                        int64_t c, int64_t n_head);
  // out[i, j, :] = wte[idx[i, j], :] + wpe[j, :] for i < b, j < t; every idx must be in
  // [0, vocab) (the token readers check it).
  virtual void embedding_forward(const int32_t* idx, ConstTensorRef wte, ConstTensorRef wpe,
                                 TensorRef out, int64_t b, int64_t t, int64_t c, int64_t vocab);
  // Adds dout's rows into dwte (by token) and dwpe (by position), in an order that does not
  // change from run to run, so that the sums repeat bit for bit.
  virtual void embedding_backward(const int32_t* idx, ConstTensorRef dout, float* dwte, float* dwpe,
                                  int64_t b, int64_t t, int64_t c, int64_t vocab);

  // Softmax cross-entropy over the rows of logits [rows, classes], one target per row, each row
  // `ld` (>= classes) elements after the one before it, in logits and dlogits alike. The arg-max
  // is the first maximum (a NaN wins only as the first logit). When dlogits is not null, the
  // first `classes` elements of each of its rows are written: (softmax - onehot) * grad_scale
  // on counted rows, zero on the others (rows whose target is ignore_index, and invalid ones);
  // the elements between rows are not read, and are left alone or given any value.
  // Deterministic: the same inputs give the same bits on every call. The loss sums in double
  // whatever the logits' type.
  virtual LossResult softmax_cross_entropy(ConstTensorRef logits, const int32_t* targets, int rows,
                                           int classes, int ld, int32_t ignore_index,
                                           float grad_scale, TensorRef dlogits);

  // The same loss, deferred: queued without waiting for it, its totals added to a running sum
  // on the backend, which take_loss_totals() returns (and zeroes) once the queue has reached
  // them. So a training step need not wait for forward before it queues backward; it reads the
  // loss where it waits anyway, at the step's end. Here (the CPU's way) the loss is computed at
  // once; a GPU backend keeps the sum on the device.
  virtual void softmax_cross_entropy_deferred(ConstTensorRef logits, const int32_t* targets,
                                              int rows, int classes, int ld, int32_t ignore_index,
                                              float grad_scale, TensorRef dlogits);
  virtual LossResult take_loss_totals();

  virtual void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                              float* y) = 0;
  // Accumulates into dw and db; writes dx when it is not null.
  virtual void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                               float* dx, float* dw, float* db) = 0;

  // argmax records, per output, the flat index of the winning input within its plane; a
  // backend may leave it unwritten and use x and y in backward instead (cuDNN does).
  virtual void maxpool2d_forward(const PoolShape& s, const float* x, float* y, int32_t* argmax) = 0;
  // Writes dx (every element): each dy goes to its window's winning input.
  virtual void maxpool2d_backward(const PoolShape& s, const float* x, const float* y,
                                  const float* dy, const int32_t* argmax, float* dx) = 0;

  // One optimizer update over flat buffers of n floats, in one pass (PyTorch's semantics).
  virtual void sgd_update(float* param, const float* grad, float* momentum_buf, size_t n,
                          const SgdParams& p) = 0;
  virtual void adamw_update(float* param, const float* grad, float* m, float* v, size_t n,
                            const AdamWParams& p) = 0;
  // Number of NaN or infinite values among n floats.
  virtual size_t count_nonfinite(const float* p, size_t n) = 0;
  // The sum of the squares of n floats, accumulated in double in an order that does not change
  // from run to run (the gradients' global L2 norm, for clipping).
  virtual double sum_squares(const float* p, size_t n) = 0;
  // p[i] *= alpha (clipping the gradients by their norm).
  virtual void scale(float* p, size_t n, float alpha) = 0;

  // The gate between backward and the optimizer, decided where the gradients are, so that a GPU
  // needs no wait for the host in the middle of a step. Each op is queued like any other; the
  // pointers are backend memory.
  // *sum = sum_squares(p, n): the same additions in the same order.
  virtual void sum_squares_into(const float* p, size_t n, double* sum) = 0;
  // From the gradients' sum of squares: *skip = 1 when it is not finite (it is not exactly when
  // some gradient is not: a float's square, and any sum of them here, is finite in double), else
  // 0; and *coef, what clipping to max_norm multiplies the gradients by, as GradClipper does:
  // max_norm / (sqrt(*sum) + 1e-6) in double, rounded to float, where that is below 1, else 1
  // (and 1 when skipping, or when max_norm is 0: no clipping).
  virtual void update_gate(const double* sum, double max_norm, float* coef, int32_t* skip) = 0;
  // p[i] *= *coef when *coef is below 1; p is left alone otherwise.
  virtual void scale_by(float* p, size_t n, const float* coef) = 0;
  // dst[i] = src[i] converted, for float32 to bfloat16 (rounded to nearest even,
  // src/core/bf16.hpp) and back (exact). Throws SystemError for other pairs.
  virtual void convert(const void* src, DataType from, void* dst, DataType to, size_t n) = 0;
  // dst[i] (bfloat16) = src[i] rounded up or down at random, so that its expectation is src[i]
  // (stochastic rounding, for writing bf16 weights from float32 masters as llm.c does): with the
  // low 16 bits of random_u64(seed, i) (src/core/bf16.hpp), the same bits on every backend.
  virtual void convert_stochastic(const float* src, void* dst, size_t n, uint64_t seed) = 0;
  // Bytes the bf16 twin holds now: its float32 copies of bf16 operands (grown to the largest op
  // so far), and what a backend's gemm_ex widens bf16 operands into.
  virtual size_t twin_scratch_bytes() const {
    size_t bytes = 0;
    for (const DeviceBuffer& b : twin_scratch_) bytes += b.bytes();
    return bytes;
  }

 protected:
  // Frees the bf16 twin's scratch: each backend calls it in its destructor, while its Device
  // part, which the scratch lives in, still exists.
  void release_twin_scratch() noexcept { twin_scratch_.clear(); }

  // The float32 kernels of the typed ops above, which every backend implements.
  virtual void linear_forward_f32(const float* x, const float* w, const float* bias, float* y,
                                  int m, int in, int out) {
    // A backend may do both in one pass over y.
    gemm(false, true, m, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    if (bias) add_bias_f32(y, bias, m, out, 1);
  }
  virtual void add_bias_f32(float* y, const float* bias, int outer, int channels, int inner) = 0;
  virtual void bias_grad_f32(const float* dy, float* dbias, int outer, int channels, int inner) = 0;
  virtual void relu_forward_f32(const float* x, float* y, size_t n) = 0;
  virtual void relu_backward_f32(const float* y, const float* dy, float* dx, size_t n) = 0;
  virtual void dropout_forward_f32(const float* x, float* y, float* mask, size_t n, float p,
                                   uint64_t seed) = 0;
  virtual void mul_f32(const float* a, const float* b, float* out, size_t n) = 0;
  virtual void add_f32(const float* a, const float* b, float* out, size_t n) = 0;
  virtual void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y,
                                      float* mean, float* rstd, int64_t rows, int64_t c,
                                      float eps) = 0;
  virtual void layer_norm_backward_f32(const float* x, const float* w, const float* mean,
                                       const float* rstd, const float* dy, float* dx, float* dw,
                                       float* db, int64_t rows, int64_t c) = 0;
  virtual void gelu_forward_f32(const float* x, float* y, int64_t n) = 0;
  virtual void gelu_backward_f32(const float* x, const float* dy, float* dx, int64_t n) = 0;
  // round_bf16: with the bf16 twin's extra rounding points (kernels/cpu/attention.hpp).
  virtual void attention_forward_f32(const float* qkv, float* out, float* att, int64_t b, int64_t t,
                                     int64_t c, int64_t n_head, bool round_bf16) = 0;
  virtual void attention_backward_f32(const float* qkv, const float* att, const float* dout,
                                      float* dqkv, int64_t b, int64_t t, int64_t c, int64_t n_head,
                                      bool round_bf16) = 0;
  virtual void embedding_forward_f32(const int32_t* idx, const float* wte, const float* wpe,
                                     float* out, int64_t b, int64_t t, int64_t c,
                                     int64_t vocab) = 0;
  virtual void embedding_backward_f32(const int32_t* idx, const float* dout, float* dwte,
                                      float* dwpe, int64_t b, int64_t t, int64_t c,
                                      int64_t vocab) = 0;
  virtual LossResult softmax_cross_entropy_f32(const float* logits, const int32_t* targets,
                                               int rows, int classes, int ld, int32_t ignore_index,
                                               float grad_scale, float* dlogits) = 0;

 private:
  friend class Bf16Twin;
  // The twin's float32 copies of bf16 operands, grown to the largest op and kept (slot i holds
  // the i-th operand an op widens).
  std::vector<DeviceBuffer> twin_scratch_;
  LossResult deferred_loss_;  // the running sum of the base softmax_cross_entropy_deferred
};

// Throws SystemError, naming `backend`, unless gemm_ex takes these operand types: A and B both
// float32 or both bfloat16, C float32 or bfloat16.
void check_gemm_ex_types(const std::string& backend, DataType a, DataType b, DataType c);
// Throws SystemError, naming `backend`, when softmax_cross_entropy's rows lie fewer than
// `classes` elements apart.
void check_loss_row_stride(const std::string& backend, int classes, int ld);

// Whether convert() takes the pair.
inline bool convertible(DataType from, DataType to) {
  return (from == DataType::F32 && to == DataType::BF16) ||
         (from == DataType::BF16 && to == DataType::F32);
}

// The CPU backend (OpenBLAS). `threads` sets the BLAS thread count for this process.
std::unique_ptr<Backend> make_cpu_backend(int threads);

}  // namespace dpt
