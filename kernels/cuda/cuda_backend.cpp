// The CUDA backend: cuBLAS for GEMM, cuDNN (through CudnnConv2d and CudnnMaxPool2d) for
// convolution and pooling, own kernels for the rest, on the compute stream of its CudaDevice.
#include "kernels/cuda/cuda_backend.hpp"

#include <cstdint>
#include <initializer_list>
#include <string>

#include "kernels/cuda/attention.hpp"
#include "kernels/cuda/attention_cudnn.hpp"
#include "kernels/cuda/conv2d_cudnn.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/linear_lt.hpp"
#include "kernels/cuda/maxpool2d_cudnn.hpp"

namespace dpt {
namespace {

class CudaBackendImpl final : public CudaBackend {
 public:
  explicit CudaBackendImpl(int device) : CudaBackend(device), stream_(stream()) {
    try {
      DPT_CUBLAS_CHECK(cublasCreate(&cublas_));
      DPT_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
      // FP32 GEMM in FP32. The default math mode keeps at least FP32 precision internally
      // (cublas_api.h: "default types ... guarantee internal storage precision with at least the
      // same precision and range"); TF32 and BF16x9 emulation need CUBLAS_TF32_TENSOR_OP_MATH,
      // CUBLAS_FP32_EMULATED_BF16X9_MATH or a FAST/EMULATED compute type, none used here, and
      // NVIDIA_TF32_OVERRIDE can only switch TF32 off, never on. So CUBLAS_PEDANTIC_MATH, which
      // may be slower, is not needed for the 1e-5 parity with the CPU. Set explicitly in case
      // cuBLAS's default ever changes. A bf16 GEMM's split-K partial sums are added in float,
      // not in its bf16 output type, so that its result is rounded once, as the twin's.
      DPT_CUBLAS_CHECK(cublasSetMathMode(
          cublas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                             CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
      DPT_CUDNN_CHECK(cudnnCreate(&cudnn_));
      DPT_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
      DPT_CUDA_CHECK(cudaMallocHost(&pinned_, kPinnedBytes));
      DPT_CUDA_CHECK(cudaMalloc(&loss_totals_, sizeof(gpu::LossSums)));
      DPT_CUDA_CHECK(cudaMemsetAsync(loss_totals_, 0, sizeof(gpu::LossSums), stream_));
      linear_lt_ = std::make_unique<gpu::LinearLt>();
      cudnn_attention_ = std::make_unique<gpu::CudnnAttention>(cudnn_);
      conv_ = std::make_unique<gpu::CudnnConv2d>(cudnn_, stream_);
      pool_ = std::make_unique<gpu::CudnnMaxPool2d>(cudnn_, stream_);
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaBackendImpl() override { release(); }
  CudaBackendImpl(const CudaBackendImpl&) = delete;
  CudaBackendImpl& operator=(const CudaBackendImpl&) = delete;

  void fill(float* p, size_t n, float value) override {
    make_current();
    gpu::launch_fill(p, n, value, stream_);
  }

  std::string gemm_name() const override { return "cublas"; }
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc) override {
    if (m <= 0 || n <= 0) return;
    make_current();
    // cuBLAS is column-major: a row-major matrix is its transpose there. So compute
    // C^T [N,M] = op(B)^T [N,K] * op(A)^T [K,M], passing B first; the transpose flags and the
    // leading dimensions carry over unchanged.
    DPT_CUBLAS_CHECK(cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a,
                                 lda, &beta, c, ldc));
  }
  void gemm_ex(bool trans_a, bool trans_b, int m, int n, int k, float alpha, ConstTensorRef a,
               int lda, ConstTensorRef b, int ldb, float beta, TensorRef c, int ldc) override {
    check_gemm_ex_types("cuda", a.dtype(), b.dtype(), c.dtype());
    const DataType in = a.dtype();
    if (m <= 0 || n <= 0) return;
    make_current();
    if (in == DataType::F32 && c.dtype() == DataType::BF16) {
      // cuBLAS has no float32 x float32 -> bf16 GEMM: sum into packed float32 scratch (C's rows
      // widened first where beta reads them), then round once, as the twin does.
      auto* wide = static_cast<float*>(scratch(sizeof(float) * static_cast<size_t>(m) * n));
      auto* cp = static_cast<uint16_t*>(c.data());
      const auto each_row = [&](auto&& f) {
        if (ldc == n) return f(0, static_cast<size_t>(m) * n);
        for (int r = 0; r < m; ++r) f(r, static_cast<size_t>(n));
      };
      if (beta != 0)
        each_row([&](int r, size_t len) {
          convert(cp + static_cast<size_t>(r) * ldc, DataType::BF16,
                  wide + static_cast<size_t>(r) * n, DataType::F32, len);
        });
      gemm(trans_a, trans_b, m, n, k, alpha, a.as<float>(), lda, b.as<float>(), ldb, beta, wide, n);
      each_row([&](int r, size_t len) {
        convert(wide + static_cast<size_t>(r) * n, DataType::F32, cp + static_cast<size_t>(r) * ldc,
                DataType::BF16, len);
      });
      return;
    }
    const auto type = [](DataType t) { return t == DataType::BF16 ? CUDA_R_16BF : CUDA_R_32F; };
    // Column-major, as gemm(): C^T = op(B)^T op(A)^T. Float32 operands keep CUBLAS_COMPUTE_32F
    // without tensor-core shortcuts (as gemm); bf16 ones run on tensor cores, summing in float.
    DPT_CUBLAS_CHECK(cublasGemmEx(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                  trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b.data(),
                                  type(in), ldb, a.data(), type(in), lda, &beta, c.data(),
                                  type(c.dtype()), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
  void add_bias_f32(float* y, const float* bias, int outer, int channels, int inner) override {
    make_current();
    gpu::launch_add_bias(y, bias, outer, channels, inner, stream_);
  }
  void bias_grad_f32(const float* dy, float* dbias, int outer, int channels, int inner) override {
    make_current();
    gpu::launch_bias_grad(dy, dbias, outer, channels, inner, bias_partials(outer, channels, inner),
                          stream_);
  }

  void relu_forward_f32(const float* x, float* y, size_t n) override {
    make_current();
    gpu::launch_relu_forward(x, y, n, stream_);
  }
  void relu_backward_f32(const float* y, const float* dy, float* dx, size_t n) override {
    make_current();
    gpu::launch_relu_backward(y, dy, dx, n, stream_);
  }
  void fill_uniform(float* p, size_t n, float bound, uint64_t seed) override {
    make_current();
    gpu::launch_fill_uniform(p, n, bound, seed, stream_);
  }
  void dropout_forward_f32(const float* x, float* y, float* mask, size_t n, float p,
                           uint64_t seed) override {
    make_current();
    gpu::launch_dropout_forward(x, y, mask, n, p, seed, stream_);
  }
  void mul_f32(const float* a, const float* b, float* out, size_t n) override {
    make_current();
    gpu::launch_mul(a, b, out, n, stream_);
  }
  void add_f32(const float* a, const float* b, float* out, size_t n) override {
    make_current();
    gpu::launch_add(a, b, out, n, stream_);
  }

  // The typed ops with bf16 operands run native bf16 kernels: the float kernels templated on the
  // element type (kernels/cuda/typed.cuh), which read bf16 as float and round each bf16 output
  // once, where the bf16 twin rounds, without its float32 copies. The twin, Backend's
  // implementation, keeps what a native kernel does not take: all-float32 calls, and operands of
  // mixed types other than a bf16 gradient times a float32 dropout mask.
  //
  // A bf16 Linear: with a bias, one cuBLASLt GEMM whose epilogue adds it to the float sums
  // before y is rounded; without one, GemmEx straight into bf16 (also one rounding).
  void linear_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef bias, TensorRef y, int m,
                      int in, int out) override {
    if (!all_bf16({x, w, y}) || (bias && bias.dtype() != DataType::BF16))
      return Backend::linear_forward(x, w, bias, y, m, in, out);
    if (!bias) return gemm_ex(false, true, m, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    make_current();
    if (!linear_lt_->run(bf(x), bf(w), bf(bias), bf(y), m, in, out, stream_))
      Backend::linear_forward(x, w, bias, y, m, in, out);
  }
  void add_bias(TensorRef y, ConstTensorRef bias, int outer, int channels, int inner) override {
    if (!all_bf16({y, bias})) return Backend::add_bias(y, bias, outer, channels, inner);
    make_current();
    gpu::launch_add_bias(bf(y), bf(bias), outer, channels, inner, stream_);
  }
  void bias_grad(ConstTensorRef dy, float* dbias, int outer, int channels, int inner) override {
    if (!all_bf16({dy})) return Backend::bias_grad(dy, dbias, outer, channels, inner);
    make_current();
    gpu::launch_bias_grad(bf(dy), dbias, outer, channels, inner,
                          bias_partials(outer, channels, inner), stream_);
  }
  void relu_forward(ConstTensorRef x, TensorRef y, size_t n) override {
    if (!all_bf16({x, y})) return Backend::relu_forward(x, y, n);
    make_current();
    gpu::launch_relu_forward(bf(x), bf(y), n, stream_);
  }
  void relu_backward(ConstTensorRef y, ConstTensorRef dy, TensorRef dx, size_t n) override {
    if (!all_bf16({y, dy, dx})) return Backend::relu_backward(y, dy, dx, n);
    make_current();
    gpu::launch_relu_backward(bf(y), bf(dy), bf(dx), n, stream_);
  }
  void dropout_forward(ConstTensorRef x, TensorRef y, float* mask, size_t n, float p,
                       uint64_t seed) override {
    if (!all_bf16({x, y})) return Backend::dropout_forward(x, y, mask, n, p, seed);
    make_current();
    gpu::launch_dropout_forward(bf(x), bf(y), mask, n, p, seed, stream_);
  }
  void mul(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n) override {
    if (!all_bf16({a, out}) || !b) return Backend::mul(a, b, out, n);
    make_current();
    if (b.dtype() == DataType::BF16)
      gpu::launch_mul(bf(a), bf(b), bf(out), n, stream_);
    else if (b.dtype() == DataType::F32)
      gpu::launch_mul(bf(a), b.as<float>(), bf(out), n, stream_);
    else
      Backend::mul(a, b, out, n);
  }
  void add(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n) override {
    if (!all_bf16({a, b, out})) return Backend::add(a, b, out, n);
    make_current();
    gpu::launch_add(bf(a), bf(b), bf(out), n, stream_);
  }
  void layer_norm_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef b, TensorRef y,
                          float* mean, float* rstd, int64_t rows, int64_t c, float eps) override {
    if (!all_bf16({x, w, b, y}))
      return Backend::layer_norm_forward(x, w, b, y, mean, rstd, rows, c, eps);
    make_current();
    gpu::launch_layer_norm_forward(bf(x), bf(w), bf(b), bf(y), mean, rstd, rows, c, eps, stream_);
  }
  void layer_norm_backward(ConstTensorRef x, ConstTensorRef w, const float* mean, const float* rstd,
                           ConstTensorRef dy, TensorRef dx, float* dw, float* db, int64_t rows,
                           int64_t c) override {
    if (!all_bf16({x, w, dy, dx}))
      return Backend::layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, rows, c);
    make_current();
    auto* partials =
        static_cast<float*>(scratch(sizeof(float) * gpu::layer_norm_backward_partials(rows, c)));
    gpu::launch_layer_norm_backward(bf(x), bf(w), mean, rstd, bf(dy), bf(dx), dw, db, partials,
                                    rows, c, stream_);
  }
  void gelu_forward(ConstTensorRef x, TensorRef y, int64_t n) override {
    if (!all_bf16({x, y})) return Backend::gelu_forward(x, y, n);
    make_current();
    gpu::launch_gelu_forward(bf(x), bf(y), n, stream_);
  }
  void gelu_backward(ConstTensorRef x, ConstTensorRef dy, TensorRef dx, int64_t n) override {
    if (!all_bf16({x, dy, dx})) return Backend::gelu_backward(x, dy, dx, n);
    make_current();
    gpu::launch_gelu_backward(bf(x), bf(dy), bf(dx), n, stream_);
  }
  void embedding_forward(const int32_t* idx, ConstTensorRef wte, ConstTensorRef wpe, TensorRef out,
                         int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    if (!all_bf16({wte, wpe, out}))
      return Backend::embedding_forward(idx, wte, wpe, out, b, t, c, vocab);
    make_current();
    gpu::launch_embedding_forward(idx, bf(wte), bf(wpe), bf(out), b, t, c, vocab, stream_);
  }
  void embedding_backward(const int32_t* idx, ConstTensorRef dout, float* dwte, float* dwpe,
                          int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    if (!all_bf16({dout}))
      return Backend::embedding_backward(idx, dout, dwte, dwpe, b, t, c, vocab);
    make_current();
    void* work = scratch(gpu::embedding_backward_scratch(b * t, vocab));
    gpu::launch_embedding_backward(idx, bf(dout), dwte, dwpe, b, t, c, vocab, work, stream_);
  }
  void attention_forward(ConstTensorRef qkv, TensorRef out, TensorRef att, int64_t b, int64_t t,
                         int64_t c, int64_t n_head) override {
    if (!all_bf16({qkv, out, att}))
      return Backend::attention_forward(qkv, out, att, b, t, c, n_head);
    make_current();
    auto* scores = static_cast<float*>(scratch(gpu::attention_forward_scratch(t, n_head, true)));
    gpu::attention_forward(cublas_, bf(qkv), bf(out), bf(att), scores, b, t, c, n_head, true);
  }
  void attention_backward(ConstTensorRef qkv, ConstTensorRef att, ConstTensorRef dout,
                          TensorRef dqkv, int64_t b, int64_t t, int64_t c,
                          int64_t n_head) override {
    if (!all_bf16({qkv, att, dout, dqkv}))
      return Backend::attention_backward(qkv, att, dout, dqkv, b, t, c, n_head);
    make_current();
    void* ds = scratch(gpu::attention_backward_scratch(t, n_head, true));
    gpu::attention_backward(cublas_, bf(qkv), bf(att), bf(dout), bf(dqkv), ds, b, t, c, n_head,
                            true);
  }
  // bf16 attention on cuDNN's flash attention where cuDNN runs it
  // (kernels/cuda/attention_cudnn.hpp).
  bool fused_attention(DataType dtype, int64_t b, int64_t t, int64_t c, int64_t n_head) override {
    if (dtype != DataType::BF16) return false;
    make_current();
    return cudnn_attention_->supported(b, t, c, n_head);
  }
  std::string why_attention_unfused(int64_t b, int64_t t, int64_t c,
                                    int64_t n_head) const override {
    return cudnn_attention_->why_not(b, t, c, n_head);
  }
  void attention_fused_forward(ConstTensorRef qkv, TensorRef out, float* lse, int64_t b, int64_t t,
                               int64_t c, int64_t n_head) override {
    if (!all_bf16({qkv, out})) throw SystemError("cuda backend: fused attention takes bf16");
    make_current();
    void* ws = scratch(cudnn_attention_->workspace_bytes(b, t, c, n_head));
    cudnn_attention_->forward(bf(qkv), bf(out), lse, ws, b, t, c, n_head);
  }
  void attention_fused_backward(ConstTensorRef qkv, ConstTensorRef out, const float* lse,
                                ConstTensorRef dout, TensorRef dqkv, int64_t b, int64_t t,
                                int64_t c, int64_t n_head) override {
    if (!all_bf16({qkv, out, dout, dqkv}))
      throw SystemError("cuda backend: fused attention takes bf16");
    make_current();
    void* ws = scratch(cudnn_attention_->workspace_bytes(b, t, c, n_head));
    cudnn_attention_->backward(bf(qkv), bf(out), lse, bf(dout), bf(dqkv), ws, b, t, c, n_head);
  }
  // The deferred loss: the kernels add the totals into loss_totals_ on the stream; nothing waits.
  void softmax_cross_entropy_deferred(ConstTensorRef logits, const int32_t* targets, int rows,
                                      int classes, int ld, int32_t ignore_index, float grad_scale,
                                      TensorRef dlogits) override {
    if (all_bf16({logits}) && (!dlogits || dlogits.dtype() == DataType::BF16))
      loss_kernels(bf(logits), targets, rows, classes, ld, ignore_index, grad_scale,
                   dlogits ? bf(dlogits) : nullptr, loss_totals_, true);
    else if (logits.dtype() == DataType::F32 && (!dlogits || dlogits.dtype() == DataType::F32))
      loss_kernels(logits.as<float>(), targets, rows, classes, ld, ignore_index, grad_scale,
                   dlogits.as<float>(), loss_totals_, true);
    else  // mixed types: the twin, at once
      Backend::softmax_cross_entropy_deferred(logits, targets, rows, classes, ld, ignore_index,
                                              grad_scale, dlogits);
  }
  LossResult take_loss_totals() override {
    make_current();
    LossResult r = read_totals(loss_totals_, true);
    r += Backend::take_loss_totals();  // what the twin added, if anything
    return r;
  }
  LossResult softmax_cross_entropy(ConstTensorRef logits, const int32_t* targets, int rows,
                                   int classes, int ld, int32_t ignore_index, float grad_scale,
                                   TensorRef dlogits) override {
    // dlogits may be null (no gradient wanted).
    if (!all_bf16({logits}) || (dlogits && dlogits.dtype() != DataType::BF16))
      return Backend::softmax_cross_entropy(logits, targets, rows, classes, ld, ignore_index,
                                            grad_scale, dlogits);
    return loss_on_device(bf(logits), targets, rows, classes, ld, ignore_index, grad_scale,
                          dlogits ? bf(dlogits) : nullptr);
  }

  // The transformer's ops. Their scratch (backward's partial sums, score gradients, sort
  // buffers) is the device's, grown on demand and reused from call to call.
  void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                              float* rstd, int64_t rows, int64_t c, float eps) override {
    make_current();
    gpu::launch_layer_norm_forward(x, w, b, y, mean, rstd, rows, c, eps, stream_);
  }
  void layer_norm_backward_f32(const float* x, const float* w, const float* mean, const float* rstd,
                               const float* dy, float* dx, float* dw, float* db, int64_t rows,
                               int64_t c) override {
    make_current();
    auto* partials =
        static_cast<float*>(scratch(sizeof(float) * gpu::layer_norm_backward_partials(rows, c)));
    gpu::launch_layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, partials, rows, c, stream_);
  }
  void gelu_forward_f32(const float* x, float* y, int64_t n) override {
    make_current();
    gpu::launch_gelu_forward(x, y, n, stream_);
  }
  void gelu_backward_f32(const float* x, const float* dy, float* dx, int64_t n) override {
    make_current();
    gpu::launch_gelu_backward(x, dy, dx, n, stream_);
  }
  void attention_forward_f32(const float* qkv, float* out, float* att, int64_t b, int64_t t,
                             int64_t c, int64_t n_head, bool round_bf16) override {
    make_current();
    gpu::attention_forward(cublas_, qkv, out, att, nullptr, b, t, c, n_head, round_bf16);
  }
  void attention_backward_f32(const float* qkv, const float* att, const float* dout, float* dqkv,
                              int64_t b, int64_t t, int64_t c, int64_t n_head,
                              bool round_bf16) override {
    make_current();
    void* ds = scratch(gpu::attention_backward_scratch(t, n_head, false));
    gpu::attention_backward(cublas_, qkv, att, dout, dqkv, ds, b, t, c, n_head, round_bf16);
  }
  void embedding_forward_f32(const int32_t* idx, const float* wte, const float* wpe, float* out,
                             int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    make_current();
    gpu::launch_embedding_forward(idx, wte, wpe, out, b, t, c, vocab, stream_);
  }
  void embedding_backward_f32(const int32_t* idx, const float* dout, float* dwte, float* dwpe,
                              int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    make_current();
    void* work = scratch(gpu::embedding_backward_scratch(b * t, vocab));
    gpu::launch_embedding_backward(idx, dout, dwte, dwpe, b, t, c, vocab, work, stream_);
  }

  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                      float* y) override {
    make_current();
    conv_->forward(s, x, w, b, y);
  }
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override {
    make_current();
    conv_->backward(s, x, w, dy, dx, dw, db);
  }

  // cuDNN finds the maxima again from x and y in backward, so argmax stays unwritten.
  void maxpool2d_forward(const PoolShape& s, const float* x, float* y, int32_t*) override {
    make_current();
    pool_->forward(s, x, y);
  }
  void maxpool2d_backward(const PoolShape& s, const float* x, const float* y, const float* dy,
                          const int32_t*, float* dx) override {
    make_current();
    pool_->backward(s, x, y, dy, dx);
  }

  LossResult softmax_cross_entropy_f32(const float* logits, const int32_t* targets, int rows,
                                       int classes, int ld, int32_t ignore_index, float grad_scale,
                                       float* dlogits) override {
    return loss_on_device(logits, targets, rows, classes, ld, ignore_index, grad_scale, dlogits);
  }

  void sgd_update(float* param, const float* grad, float* momentum_buf, size_t n,
                  const SgdParams& p) override {
    make_current();
    gpu::launch_sgd_update(param, grad, momentum_buf, n, p.lr, p.momentum, p.weight_decay,
                           p.nesterov, p.skip, stream_);
  }
  void adamw_update(float* param, const float* grad, float* m, float* v, size_t n,
                    const AdamWParams& p) override {
    make_current();
    const AdamWScalars k = adamw_scalars(p);
    gpu::launch_adamw_update(param, grad, m, v, n, k.decay, k.step_size, k.bias2_sqrt, p.beta1,
                             p.beta2, p.eps, p.skip, stream_);
  }
  size_t count_nonfinite(const float* p, size_t n) override {
    make_current();
    auto* count = static_cast<unsigned long long*>(scratch(sizeof(unsigned long long)));
    gpu::launch_count_nonfinite(p, n, count, stream_);
    auto* host = static_cast<unsigned long long*>(pinned_);
    DPT_CUDA_CHECK(cudaMemcpyAsync(host, count, sizeof(*count), cudaMemcpyDeviceToHost, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return static_cast<size_t>(*host);
  }
  double sum_squares(const float* p, size_t n) override {
    make_current();
    const size_t partials = gpu::sum_squares_partials(n);
    auto* sums = static_cast<double*>(scratch(sizeof(double) * (partials + 1)));
    gpu::launch_sum_squares(p, n, sums + 1, sums, stream_);
    auto* host = static_cast<double*>(pinned_);
    DPT_CUDA_CHECK(cudaMemcpyAsync(host, sums, sizeof(double), cudaMemcpyDeviceToHost, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return *host;
  }
  void scale(float* p, size_t n, float alpha) override {
    make_current();
    gpu::launch_scale(p, n, alpha, stream_);
  }
  // Nothing waits: the sum stays in *sum, for update_gate.
  void sum_squares_into(const float* p, size_t n, double* sum) override {
    make_current();
    auto* partials = static_cast<double*>(scratch(sizeof(double) * gpu::sum_squares_partials(n)));
    gpu::launch_sum_squares(p, n, partials, sum, stream_);
  }
  void update_gate(const double* sum, double max_norm, float* coef, int32_t* skip) override {
    make_current();
    gpu::launch_update_gate(sum, max_norm, coef, skip, stream_);
  }
  void scale_by(float* p, size_t n, const float* coef) override {
    make_current();
    gpu::launch_scale_by(p, n, coef, stream_);
  }
  void convert_stochastic(const float* src, void* dst, size_t n, uint64_t seed) override {
    make_current();
    gpu::launch_f32_to_bf16_stochastic(src, static_cast<uint16_t*>(dst), n, seed, stream_);
  }
  void convert(const void* src, DataType from, void* dst, DataType to, size_t n) override {
    make_current();
    if (from == DataType::F32 && to == DataType::BF16)
      gpu::launch_f32_to_bf16(static_cast<const float*>(src), static_cast<uint16_t*>(dst), n,
                              stream_);
    else if (from == DataType::BF16 && to == DataType::F32)
      gpu::launch_bf16_to_f32(static_cast<const uint16_t*>(src), static_cast<float*>(dst), n,
                              stream_);
    else
      throw SystemError(std::string("cuda backend: no conversion from ") + dtype_name(from) +
                        " to " + dtype_name(to));
  }

 private:
  static constexpr size_t kPinnedBytes = 64;  // holds one LossSums, one count or one sum

  // Scratch for bias_grad's two-pass column sums (null where none is needed).
  float* bias_partials(int outer, int channels, int inner) {
    const size_t n = gpu::bias_grad_partials(outer, channels, inner);
    return n ? static_cast<float*>(scratch(sizeof(float) * n)) : nullptr;
  }
  // Whether every operand is bf16 (the native kernels' case); a null operand counts as float32.
  static bool all_bf16(std::initializer_list<ConstTensorRef> ts) {
    for (const ConstTensorRef& t : ts)
      if (!t || t.dtype() != DataType::BF16) return false;
    return true;
  }
  // A bf16 tensor's memory as the 16-bit words the kernels take.
  static const uint16_t* bf(ConstTensorRef t) { return static_cast<const uint16_t*>(t.data()); }
  static uint16_t* bf(TensorRef t) { return static_cast<uint16_t*>(t.data()); }

  // The softmax cross-entropy kernels over float or bf16 logits, their totals written to (or,
  // with `accumulate`, added to) *sums; nothing waits. Per-row scratch after the first
  // sizeof(LossSums) bytes of the device scratch, which loss_on_device uses for the totals.
  template <class T>
  void loss_kernels(const T* logits, const int32_t* targets, int rows, int classes, int ld,
                    int32_t ignore_index, float grad_scale, T* dlogits, gpu::LossSums* sums,
                    bool accumulate) {
    check_loss_row_stride(name(), classes, ld);
    make_current();
    const size_t n = static_cast<size_t>(rows > 0 ? rows : 0);
    // Scratch: room for the totals, then one double loss and one int32 status per row.
    char* base = static_cast<char*>(scratch(sizeof(gpu::LossSums) + n * 12));
    auto* row_loss = reinterpret_cast<double*>(base + sizeof(gpu::LossSums));
    auto* row_status = reinterpret_cast<int32_t*>(base + sizeof(gpu::LossSums) + n * 8);
    gpu::launch_softmax_cross_entropy(
        logits, targets, rows, classes, ld, ignore_index, grad_scale, dlogits, row_loss, row_status,
        sums ? sums : reinterpret_cast<gpu::LossSums*>(base), accumulate, stream_);
  }
  // The same, with the totals read back at once.
  template <class T>
  LossResult loss_on_device(const T* logits, const int32_t* targets, int rows, int classes, int ld,
                            int32_t ignore_index, float grad_scale, T* dlogits) {
    loss_kernels(logits, targets, rows, classes, ld, ignore_index, grad_scale, dlogits, nullptr,
                 false);
    return read_totals(static_cast<gpu::LossSums*>(scratch(sizeof(gpu::LossSums))), false);
  }
  // Totals on the device, read once the queue has reached them; `reset` zeroes them after.
  LossResult read_totals(gpu::LossSums* sums, bool reset) {
    auto* host = static_cast<gpu::LossSums*>(pinned_);
    DPT_CUDA_CHECK(
        cudaMemcpyAsync(host, sums, sizeof(gpu::LossSums), cudaMemcpyDeviceToHost, stream_));
    if (reset) DPT_CUDA_CHECK(cudaMemsetAsync(sums, 0, sizeof(gpu::LossSums), stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    LossResult r;
    r.loss_sum = host->loss_sum;
    r.count = host->count;
    r.correct = host->correct;
    r.invalid = host->invalid;
    return r;
  }

  // Destroys whatever was created, in reverse order; used by the destructor and by a
  // constructor that failed half-way. Errors are ignored: nothing useful can be done with them.
  // (The stream, the scratch and the markers are the CudaDevice's, released after these.)
  void release() noexcept {
    cudaSetDevice(ordinal());
    cudaStreamSynchronize(stream_);
    release_twin_scratch();
    pool_.reset();
    conv_.reset();
    linear_lt_.reset();
    cudnn_attention_.reset();
    if (pinned_) cudaFreeHost(pinned_);
    if (loss_totals_) cudaFree(loss_totals_);
    loss_totals_ = nullptr;
    if (cudnn_) cudnnDestroy(cudnn_);
    if (cublas_) cublasDestroy(cublas_);
    pinned_ = nullptr;
    cudnn_ = nullptr;
    cublas_ = nullptr;
  }

  const cudaStream_t stream_;  // the CudaDevice's compute stream
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  void* pinned_ = nullptr;  // page-locked landing place for results read back by the host
  gpu::LossSums* loss_totals_ = nullptr;      // the running sum of the deferred losses
  std::unique_ptr<gpu::LinearLt> linear_lt_;  // bf16 Linears with their bias, on cuBLASLt
  std::unique_ptr<gpu::CudnnAttention> cudnn_attention_;  // bf16 flash attention
  std::unique_ptr<gpu::CudnnConv2d> conv_;
  std::unique_ptr<gpu::CudnnMaxPool2d> pool_;
};

// "13.0" from 13000, the encoding of cudaRuntimeGetVersion and cudaDriverGetVersion.
std::string cuda_version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace

std::string cuda_library_versions() {
  int runtime = 0, driver = 0;
  DPT_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  // 0, and no error, when no driver is installed.
  DPT_CUDA_CHECK(cudaDriverGetVersion(&driver));
  // The loaded libraries' own versions (not the headers'); neither query needs a device.
  int cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
  DPT_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &cublas_major));
  DPT_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &cublas_minor));
  DPT_CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &cublas_patch));
  int cudnn_major = 0, cudnn_minor = 0, cudnn_patch = 0;
  DPT_CUDNN_CHECK(cudnnGetProperty(MAJOR_VERSION, &cudnn_major));
  DPT_CUDNN_CHECK(cudnnGetProperty(MINOR_VERSION, &cudnn_minor));
  DPT_CUDNN_CHECK(cudnnGetProperty(PATCH_LEVEL, &cudnn_patch));
  return "CUDA runtime " + cuda_version_text(runtime) + ", driver " +
         (driver ? cuda_version_text(driver) : std::string("none")) + ", cuBLAS " +
         std::to_string(cublas_major) + "." + std::to_string(cublas_minor) + "." +
         std::to_string(cublas_patch) + ", cuDNN " + std::to_string(cudnn_major) + "." +
         std::to_string(cudnn_minor) + "." + std::to_string(cudnn_patch) +
         (gpu::CudnnAttention::built_in()
              ? (gpu::CudnnAttention::enabled()
                     ? " (bf16 flash attention on)"
                     : " (bf16 flash attention off: DPT_CUDNN_ATTENTION=0)")
              : " (bf16 flash attention not built: no cudnn_frontend)");
}

std::unique_ptr<CudaBackend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    throw SystemError("CUDA device " + std::to_string(device) + " is not visible (" +
                      std::to_string(count) + " visible)");
  try {
    return std::make_unique<CudaBackendImpl>(device);
  } catch (const SystemError& e) {
    throw SystemError("CUDA device " + std::to_string(device) + ": " + e.what());
  }
}

}  // namespace dpt
