// The CPU backend: cpu_gemm.hpp's GEMM (dptrain's AVX2 kernel, or OpenBLAS), im2col + GEMM
// for convolution, plain loops for the rest. It is the reference every other backend is tested
// against.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels/backend.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/cpu_gemm.hpp"
#include "kernels/cpu/embedding.hpp"
#include "kernels/cpu/gelu.hpp"
#include "kernels/cpu/im2col.hpp"
#include "kernels/cpu/layer_norm.hpp"
#include "kernels/cpu/vector_math.hpp"
#include "kernels/gate_coefficient.hpp"
#include "kernels/runtime/cpu_device.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

// Its memory, copies and markers are the CpuDevice's.
class CpuBackend final : public Backend, public CpuDevice {
 public:
  ~CpuBackend() override { release_twin_scratch(); }

  size_t twin_scratch_bytes() const override {
    return Backend::twin_scratch_bytes() +
           sizeof(float) * (wide_a_.capacity() + wide_b_.capacity() + wide_c_.capacity());
  }
  explicit CpuBackend(int threads) { set_cpu_gemm_threads(threads); }

  void fill(float* p, size_t n, float value) override { std::fill(p, p + n, value); }
  void fill_uniform(float* p, size_t n, float bound, uint64_t seed) override {
    for (size_t i = 0; i < n; ++i) p[i] = (2.0f * uniform_float(seed, i) - 1.0f) * bound;
  }

  std::string gemm_name() const override { return cpu_gemm_name(); }
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc) override {
    cpu_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  // The twin of a GPU's mixed-precision GEMM: bf16 operands widened to float (exactly), one
  // float32 GEMM, and a bf16 result rounded once at the end.
  void gemm_ex(bool trans_a, bool trans_b, int m, int n, int k, float alpha, ConstTensorRef a,
               int lda, ConstTensorRef b, int ldb, float beta, TensorRef c, int ldc) override {
    check_gemm_ex_types("cpu", a.dtype(), b.dtype(), c.dtype());
    if (m <= 0 || n <= 0) return;
    // Each operand as a packed float matrix (leading dimension its width).
    const auto widen = [](ConstTensorRef t, int rows, int cols, int ld, std::vector<float>& out,
                          int* out_ld) -> const float* {
      if (t.dtype() == DataType::F32) {
        *out_ld = ld;
        return t.as<float>();
      }
      out.resize(static_cast<size_t>(rows) * cols);
      const auto* p = static_cast<const uint16_t*>(t.data());
      for (int r = 0; r < rows; ++r)
        for (int j = 0; j < cols; ++j)
          out[static_cast<size_t>(r) * cols + j] =
              bf16_to_float(p[static_cast<size_t>(r) * ld + j]);
      *out_ld = cols;
      return out.data();
    };
    int la = 0, lb = 0;
    const float* af = widen(a, trans_a ? k : m, trans_a ? m : k, lda, wide_a_, &la);
    const float* bf = widen(b, trans_b ? n : k, trans_b ? k : n, ldb, wide_b_, &lb);
    if (c.dtype() == DataType::F32) {
      gemm(trans_a, trans_b, m, n, k, alpha, af, la, bf, lb, beta, c.as<float>(), ldc);
      return;
    }
    auto* cp = static_cast<uint16_t*>(c.data());
    wide_c_.assign(static_cast<size_t>(m) * n, 0.0f);
    if (beta != 0)
      for (int r = 0; r < m; ++r)
        for (int j = 0; j < n; ++j)
          wide_c_[static_cast<size_t>(r) * n + j] =
              bf16_to_float(cp[static_cast<size_t>(r) * ldc + j]);
    gemm(trans_a, trans_b, m, n, k, alpha, af, la, bf, lb, beta, wide_c_.data(), n);
    for (int r = 0; r < m; ++r)
      for (int j = 0; j < n; ++j)
        cp[static_cast<size_t>(r) * ldc + j] =
            float_to_bf16(wide_c_[static_cast<size_t>(r) * n + j]);
  }

  void linear_forward_f32(const float* x, const float* w, const float* bias, float* y, int m,
                          int in, int out) override {
    // The bias goes in with the product (cpu_sgemm's bias): the own GEMM adds it as it stores
    // each tile, the library's fallback starts y's rows at the bias (beta 1). Either way one
    // pass over y fewer than a product and an add of the bias after it.
    cpu_sgemm(false, true, m, out, in, 1.0f, x, in, w, in, 0.0f, y, out, Triangle::kNone, bias);
  }

  void add_bias_f32(float* y, const float* bias, int outer, int channels, int inner) override {
    if (inner == 1) {  // a Linear's rows: along each row, so that the loop vectorizes
      for (int o = 0; o < outer; ++o) {
        float* row = y + static_cast<size_t>(o) * channels;
        for (int c = 0; c < channels; ++c) row[c] += bias[c];
      }
      return;
    }
    for (int o = 0; o < outer; ++o)
      for (int c = 0; c < channels; ++c) {
        float* row = y + (static_cast<size_t>(o) * channels + c) * inner;
        const float v = bias[c];
        for (int i = 0; i < inner; ++i) row[i] += v;
      }
  }

  void bias_grad_f32(const float* dy, float* dbias, int outer, int channels, int inner) override {
    // Eight running sums, not one: a single float sum is one dependent add after another (the
    // compiler may not reorder float additions), eight of them vectorize. The order is fixed, so
    // the result is the same on every run.
    constexpr int kLanes = 8;
    if (inner == 1) {
      // A Linear's rows: one running sum per channel, the rows added in order (as the loop below
      // adds them for inner == 1), but along each row, so that the loop vectorizes over channels.
      sums_.assign(static_cast<size_t>(channels), 0.0f);
      (cpu_has_avx2_fma() ? column_sums_avx2 : column_sums_f32)(dy, sums_.data(), outer, channels);
      for (int c = 0; c < channels; ++c) dbias[c] += sums_[c];
      return;
    }
    for (int c = 0; c < channels; ++c) {
      float lane[kLanes] = {};
      float tail = 0;
      for (int o = 0; o < outer; ++o) {
        const float* row = dy + (static_cast<size_t>(o) * channels + c) * inner;
        int i = 0;
        for (; i + kLanes <= inner; i += kLanes)
          for (int k = 0; k < kLanes; ++k) lane[k] += row[i + k];
        for (; i < inner; ++i) tail += row[i];
      }
      float sum = tail;
      for (int k = 0; k < kLanes; ++k) sum += lane[k];
      dbias[c] += sum;
    }
  }

  // e[c] = exp(row[c] - mx), for mx the row's maximum.
  [[gnu::always_inline]] static void shifted_exps(const float* __restrict row, float mx,
                                                  float* __restrict e, int n) {
    for (int c = 0; c < n; ++c) e[c] = exp_nonpositive(row[c] - mx);
  }
  static void shifted_exps_f32(const float* row, float mx, float* e, int n) {
    shifted_exps(row, mx, e, n);
  }
  DPT_AVX2_FMA static void shifted_exps_avx2(const float* row, float mx, float* e, int n) {
    shifted_exps(row, mx, e, n);
  }

  // sum[c] += dy[o, c] over the rows o, in order.
  [[gnu::always_inline]] static void column_sums(const float* __restrict dy, float* __restrict sum,
                                                 int rows, int channels) {
    for (int o = 0; o < rows; ++o) {
      const float* row = dy + static_cast<size_t>(o) * channels;
      for (int c = 0; c < channels; ++c) sum[c] += row[c];
    }
  }
  static void column_sums_f32(const float* dy, float* sum, int rows, int channels) {
    column_sums(dy, sum, rows, channels);
  }
  DPT_AVX2_FMA static void column_sums_avx2(const float* dy, float* sum, int rows, int channels) {
    column_sums(dy, sum, rows, channels);
  }

  void relu_forward_f32(const float* x, float* y, size_t n) override {
    // NaN passes through, as in PyTorch, so that a bad input is not silently zeroed.
    for (size_t i = 0; i < n; ++i) y[i] = x[i] < 0 ? 0.0f : x[i];
  }
  void relu_backward_f32(const float* y, const float* dy, float* dx, size_t n) override {
    // dy is read on every element, not only where y > 0: a load under the condition keeps the
    // compiler from vectorizing the loop (it may not read what the source does not), and the
    // branch it leaves behind mispredicts on real data, 30 times slower.
    for (size_t i = 0; i < n; ++i) {
      const float g = dy[i];
      dx[i] = y[i] > 0 ? g : 0.0f;
    }
  }

  void dropout_forward_f32(const float* x, float* y, float* mask, size_t n, float p,
                           uint64_t seed) override {
    const float keep_scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; ++i) {
      mask[i] = uniform_float(seed, i) < p ? 0.0f : keep_scale;
      y[i] = x[i] * mask[i];
    }
  }
  void mul_f32(const float* a, const float* b, float* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
  }
  void add_f32(const float* a, const float* b, float* out, size_t n) override {
    for (size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
  }

  void layer_norm_forward_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                              float* rstd, int64_t rows, int64_t c, float eps) override {
    dpt::layer_norm_forward(x, w, b, y, mean, rstd, rows, c, eps);
  }
  void layer_norm_backward_f32(const float* x, const float* w, const float* mean, const float* rstd,
                               const float* dy, float* dx, float* dw, float* db, int64_t rows,
                               int64_t c) override {
    dpt::layer_norm_backward(x, w, mean, rstd, dy, dx, dw, db, rows, c);
  }
  void gelu_forward_f32(const float* x, float* y, int64_t n) override {
    dpt::gelu_forward(x, y, n);
  }
  void gelu_backward_f32(const float* x, const float* dy, float* dx, int64_t n) override {
    dpt::gelu_backward(x, dy, dx, n);
  }
  void attention_forward_f32(const float* qkv, float* out, float* att, int64_t b, int64_t t,
                             int64_t c, int64_t n_head, bool round_bf16) override {
    dpt::attention_forward(qkv, out, att, b, t, c, n_head, round_bf16);
  }
  void attention_backward_f32(const float* qkv, const float* att, const float* dout, float* dqkv,
                              int64_t b, int64_t t, int64_t c, int64_t n_head,
                              bool round_bf16) override {
    attention_scratch_.resize(static_cast<size_t>(t * t));
    dpt::attention_backward(qkv, att, dout, dqkv, attention_scratch_.data(), b, t, c, n_head,
                            round_bf16);
  }
  void embedding_forward_f32(const int32_t* idx, const float* wte, const float* wpe, float* out,
                             int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    dpt::embedding_forward(idx, wte, wpe, out, b, t, c, vocab);
  }
  void embedding_backward_f32(const int32_t* idx, const float* dout, float* dwte, float* dwpe,
                              int64_t b, int64_t t, int64_t c, int64_t vocab) override {
    dpt::embedding_backward(idx, dout, dwte, dwpe, b, t, c, vocab);
  }

  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                      float* y) override {
    // Per sample: col [C*kh*kw, OH*OW] = im2col(x_n); y_n [OC, OH*OW] = W [OC, C*kh*kw] * col.
    const int ckk = s.in_c * s.kh * s.kw, ohw = s.out_h() * s.out_w();
    col_.resize(static_cast<size_t>(ckk) * ohw);
    const size_t in_stride = static_cast<size_t>(s.in_c) * s.in_h * s.in_w;
    const size_t out_stride = static_cast<size_t>(s.out_c) * ohw;
    for (int n = 0; n < s.n; ++n) {
      im2col(s, x + n * in_stride, col_.data());
      gemm(false, false, s.out_c, ohw, ckk, 1.0f, w, ckk, col_.data(), ohw, 0.0f,
           y + n * out_stride, ohw);
    }
    if (b) add_bias_f32(y, b, s.n, s.out_c, ohw);
  }

  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override {
    const int ckk = s.in_c * s.kh * s.kw, ohw = s.out_h() * s.out_w();
    col_.resize(static_cast<size_t>(ckk) * ohw);
    const size_t in_stride = static_cast<size_t>(s.in_c) * s.in_h * s.in_w;
    const size_t out_stride = static_cast<size_t>(s.out_c) * ohw;
    if (dx) std::fill(dx, dx + in_stride * s.n, 0.0f);
    for (int n = 0; n < s.n; ++n) {
      const float* dy_n = dy + n * out_stride;
      im2col(s, x + n * in_stride, col_.data());
      // dW [OC, CKK] += dy_n [OC, OHW] * col^T
      gemm(false, true, s.out_c, ckk, ohw, 1.0f, dy_n, ohw, col_.data(), ohw, 1.0f, dw, ckk);
      if (dx) {
        // dcol [CKK, OHW] = W^T * dy_n, then scatter-add back into the image.
        gemm(true, false, ckk, ohw, s.out_c, 1.0f, w, ckk, dy_n, ohw, 0.0f, col_.data(), ohw);
        col2im(s, col_.data(), dx + n * in_stride);
      }
    }
    if (db) bias_grad(dy, db, s.n, s.out_c, ohw);
  }

  void maxpool2d_forward(const PoolShape& s, const float* x, float* y, int32_t* argmax) override {
    const int oh = s.out_h(), ow = s.out_w();
    if (s.k == 2 && s.stride == 2) return maxpool2x2_forward(s, x, y, argmax);
    for (int plane = 0; plane < s.n * s.c; ++plane) {
      const float* xp = x + static_cast<size_t>(plane) * s.in_h * s.in_w;
      float* yp = y + static_cast<size_t>(plane) * oh * ow;
      int32_t* ap = argmax + static_cast<size_t>(plane) * oh * ow;
      for (int i = 0; i < oh; ++i)
        for (int j = 0; j < ow; ++j) {
          float best = -std::numeric_limits<float>::infinity();
          int32_t best_idx = (i * s.stride) * s.in_w + j * s.stride;
          for (int di = 0; di < s.k; ++di)
            for (int dj = 0; dj < s.k; ++dj) {
              const int idx = (i * s.stride + di) * s.in_w + (j * s.stride + dj);
              // NaN propagates like PyTorch: a NaN wins the window.
              if (xp[idx] > best || std::isnan(xp[idx])) {
                best = xp[idx];
                best_idx = idx;
                if (std::isnan(best)) goto done;
              }
            }
        done:
          yp[i * ow + j] = best;
          ap[i * ow + j] = best_idx;
        }
    }
  }

  void maxpool2d_backward(const PoolShape& s, const float* /*x*/, const float* /*y*/,
                          const float* dy, const int32_t* argmax, float* dx) override {
    const size_t plane_in = static_cast<size_t>(s.in_h) * s.in_w;
    const size_t plane_out = static_cast<size_t>(s.out_h()) * s.out_w();
    std::fill(dx, dx + plane_in * s.n * s.c, 0.0f);
    for (size_t plane = 0; plane < static_cast<size_t>(s.n) * s.c; ++plane)
      for (size_t o = 0; o < plane_out; ++o)
        dx[plane * plane_in + argmax[plane * plane_out + o]] += dy[plane * plane_out + o];
  }

  LossResult softmax_cross_entropy_f32(const float* logits, const int32_t* targets, int rows,
                                       int classes, int ld, int32_t ignore_index, float grad_scale,
                                       float* dlogits) override {
    LossResult r;
    for (int i = 0; i < rows; ++i) {
      const int label = targets[i];
      if (label == ignore_index || label < 0 || label >= classes) {
        r.invalid += (label != ignore_index);
        if (dlogits) std::fill_n(dlogits + static_cast<size_t>(i) * ld, classes, 0.0f);
        continue;
      }
      const float* row = logits + static_cast<size_t>(i) * ld;
      int arg = 0;
      for (int c = 1; c < classes; ++c)
        if (row[c] > row[arg]) arg = c;
      const float mx = row[arg];
      // Each exponential once, in float (vector_math.hpp: within about a float ulp), summed in
      // double; the gradient below reuses them.
      exps_.resize(static_cast<size_t>(classes));
      float* e = exps_.data();
      (cpu_has_avx2_fma() ? shifted_exps_avx2 : shifted_exps_f32)(row, mx, e, classes);
      double sum = 0;
      for (int c = 0; c < classes; ++c) sum += e[c];
      r.loss_sum += std::log(sum) - static_cast<double>(row[label] - mx);
      r.correct += (arg == label);
      ++r.count;
      if (dlogits) {
        float* drow = dlogits + static_cast<size_t>(i) * ld;
        const double inv = 1.0 / sum;
        for (int c = 0; c < classes; ++c) {
          const float prob = static_cast<float>(e[c] * inv);
          drow[c] = (prob - (c == label ? 1.0f : 0.0f)) * grad_scale;
        }
      }
    }
    return r;
  }

  void sgd_update(float* param, const float* grad, float* buf, size_t n,
                  const SgdParams& p) override {
    if (p.skip && *p.skip != 0) return;
    // One loop per case, each over restrict pointers with the scalars in locals: otherwise the
    // stores through param could change p's fields as far as the compiler knows, so it would
    // reload them and test the cases on every element, and not vectorize.
    const float lr = p.lr, wd = p.weight_decay, mom = p.momentum;
    const bool decay = wd != 0, momentum = mom != 0;
    if (!momentum)
      decay ? sgd_loop<true, false, false>(param, grad, buf, n, lr, wd, mom)
            : sgd_loop<false, false, false>(param, grad, buf, n, lr, wd, mom);
    else if (p.nesterov)
      decay ? sgd_loop<true, true, true>(param, grad, buf, n, lr, wd, mom)
            : sgd_loop<false, true, true>(param, grad, buf, n, lr, wd, mom);
    else
      decay ? sgd_loop<true, true, false>(param, grad, buf, n, lr, wd, mom)
            : sgd_loop<false, true, false>(param, grad, buf, n, lr, wd, mom);
  }

  template <bool kDecay, bool kMomentum, bool kNesterov>
  static void sgd_loop(float* __restrict param, const float* __restrict grad, float* __restrict buf,
                       size_t n, float lr, float wd, float mom) {
    for (size_t i = 0; i < n; ++i) {
      float g = grad[i];
      if constexpr (kDecay) g += wd * param[i];
      if constexpr (kMomentum) {
        const float b = mom * buf[i] + g;
        buf[i] = b;
        g = kNesterov ? g + mom * b : b;
      }
      param[i] -= lr * g;
    }
  }

  void adamw_update(float* param, const float* grad, float* m, float* v, size_t n,
                    const AdamWParams& p) override {
    if (p.skip && *p.skip != 0) return;
    (cpu_has_avx2_fma() ? adamw_avx2 : adamw_f32)(param, grad, m, v, n, adamw_scalars(p), p.beta1,
                                                  p.beta2, p.eps);
  }
  static void adamw_f32(float* param, const float* grad, float* m, float* v, size_t n,
                        AdamWScalars k, float beta1, float beta2, float eps) {
    adamw_loop(param, grad, m, v, n, k, beta1, beta2, eps);
  }
  DPT_AVX2_FMA static void adamw_avx2(float* param, const float* grad, float* m, float* v, size_t n,
                                      AdamWScalars k, float beta1, float beta2, float eps) {
    adamw_loop(param, grad, m, v, n, k, beta1, beta2, eps);
  }

  // As sgd_loop: restrict pointers and scalars in locals, so that the loop vectorizes.
  [[gnu::always_inline]] static void adamw_loop(float* __restrict param,
                                                const float* __restrict grad, float* __restrict m,
                                                float* __restrict v, size_t n, AdamWScalars k,
                                                float beta1, float beta2, float eps) {
    for (size_t i = 0; i < n; ++i) {
      const float g = grad[i];
      param[i] *= k.decay;
      m[i] += (1.0f - beta1) * (g - m[i]);
      v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
      const float denom = std::sqrt(v[i]) / k.bias2_sqrt + eps;
      param[i] -= k.step_size * m[i] / denom;
    }
  }

  size_t count_nonfinite(const float* p, size_t n) override {
    size_t bad = 0;
    for (size_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
    return bad;
  }

  double sum_squares(const float* p, size_t n) override {
    // Four interleaved partial sums (a fixed order that vectorizes), added in order at the end.
    double s[4] = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
      for (size_t k = 0; k < 4; ++k) s[k] += static_cast<double>(p[i + k]) * p[i + k];
    for (; i < n; ++i) s[0] += static_cast<double>(p[i]) * p[i];
    return ((s[0] + s[1]) + s[2]) + s[3];
  }

  void scale(float* p, size_t n, float alpha) override {
    for (size_t i = 0; i < n; ++i) p[i] *= alpha;
  }
  void sum_squares_into(const float* p, size_t n, double* sum) override {
    *sum = sum_squares(p, n);
  }
  void update_gate(const double* sum, double max_norm, float* coef, int32_t* skip) override {
    *coef = gate_coefficient(*sum, max_norm, skip);
  }
  void scale_by(float* p, size_t n, const float* coef) override {
    if (*coef < 1.0f) scale(p, n, *coef);
  }

  void convert_stochastic(const float* src, void* dst, size_t n, uint64_t seed) override {
    auto* d = static_cast<uint16_t*>(dst);
    for (size_t i = 0; i < n; ++i)
      d[i] = float_to_bf16_stochastic(src[i], static_cast<uint32_t>(random_u64(seed, i)));
  }

  void convert(const void* src, DataType from, void* dst, DataType to, size_t n) override {
    if (from == DataType::F32 && to == DataType::BF16) {
      const auto* s = static_cast<const float*>(src);
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = float_to_bf16(s[i]);
    } else if (from == DataType::BF16 && to == DataType::F32) {
      const auto* s = static_cast<const uint16_t*>(src);
      auto* d = static_cast<float*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = bf16_to_float(s[i]);
    } else {
      throw SystemError(std::string("cpu backend: no conversion from ") + dtype_name(from) +
                        " to " + dtype_name(to));
    }
  }

 private:
  // gemm_ex's float copies of bf16 operands and result, kept between calls.
  std::vector<float> wide_a_, wide_b_, wide_c_;

  // The common 2x2, stride 2 window, unrolled: the general loop's index arithmetic and branches
  // cost more than the comparisons. Same rule: the first NaN wins, else the first maximum.
  static void maxpool2x2_forward(const PoolShape& s, const float* x, float* y, int32_t* argmax) {
    const int oh = s.out_h(), ow = s.out_w();
    for (int plane = 0; plane < s.n * s.c; ++plane) {
      const float* xp = x + static_cast<size_t>(plane) * s.in_h * s.in_w;
      float* yp = y + static_cast<size_t>(plane) * oh * ow;
      int32_t* ap = argmax + static_cast<size_t>(plane) * oh * ow;
      for (int i = 0; i < oh; ++i) {
        const int top = 2 * i * s.in_w;
        const float* r0 = xp + top;
        const float* r1 = r0 + s.in_w;
        int j = 0;
#if defined(__SSE2__)
        j = maxpool2x2_row_sse2(r0, r1, top, s.in_w, ow, yp + i * ow, ap + i * ow);
#endif
        for (; j < ow; ++j) {
          const int c = 2 * j;
          // Selects, not branches: on real data which input wins is unpredictable.
          float best = r0[c];
          int32_t at = top + c;
          const auto take = [&](float v, int32_t where) {
            const bool wins = best == best && (v > best || v != v);  // x != x: NaN
            best = wins ? v : best;
            at = wins ? where : at;
          };
          take(r0[c + 1], top + c + 1);
          take(r1[c], top + s.in_w + c);
          take(r1[c + 1], top + s.in_w + c + 1);
          yp[i * ow + j] = best;
          ap[i * ow + j] = at;
        }
      }
    }
  }

#if defined(__SSE2__)
  // Four windows of one output row at a time, by the scalar loop's rule and in its order of
  // comparison (r0[c], r0[c+1], r1[c], r1[c+1]): the same outputs bit for bit. Returns how many
  // outputs of the row it wrote; the scalar loop does the rest.
  static int maxpool2x2_row_sse2(const float* r0, const float* r1, int top, int in_w, int ow,
                                 float* y, int32_t* argmax) {
    int j = 0;
    for (; j + 4 <= ow; j += 4) {
      const int c = 2 * j;  // reads r0[c .. c+7] and r1[c .. c+7], inside the row as 2*ow <= in_w
      const __m128 a_lo = _mm_loadu_ps(r0 + c), a_hi = _mm_loadu_ps(r0 + c + 4);
      const __m128 b_lo = _mm_loadu_ps(r1 + c), b_hi = _mm_loadu_ps(r1 + c + 4);
      const __m128i first = _mm_add_epi32(_mm_set1_epi32(top + c), _mm_setr_epi32(0, 2, 4, 6));
      __m128 best = _mm_shuffle_ps(a_lo, a_hi, _MM_SHUFFLE(2, 0, 2, 0));  // r0[c] of each window
      __m128i at = first;
      const auto take = [&](__m128 v, int offset) {
        // wins = best is not NaN and (v > best or v is NaN)
        const __m128 wins = _mm_and_ps(_mm_cmpord_ps(best, best),
                                       _mm_or_ps(_mm_cmpgt_ps(v, best), _mm_cmpunord_ps(v, v)));
        best = _mm_or_ps(_mm_and_ps(wins, v), _mm_andnot_ps(wins, best));
        const __m128i w = _mm_castps_si128(wins);
        const __m128i where = _mm_add_epi32(first, _mm_set1_epi32(offset));
        at = _mm_or_si128(_mm_and_si128(w, where), _mm_andnot_si128(w, at));
      };
      take(_mm_shuffle_ps(a_lo, a_hi, _MM_SHUFFLE(3, 1, 3, 1)), 1);
      take(_mm_shuffle_ps(b_lo, b_hi, _MM_SHUFFLE(2, 0, 2, 0)), in_w);
      take(_mm_shuffle_ps(b_lo, b_hi, _MM_SHUFFLE(3, 1, 3, 1)), in_w + 1);
      _mm_storeu_ps(y + j, best);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(argmax + j), at);
    }
    return j;
  }
#endif

  std::vector<float> col_;                // im2col scratch, reused across calls
  std::vector<float> sums_;               // bias_grad's per-channel sums, reused across calls
  std::vector<float> exps_;               // softmax_cross_entropy's exponentials of one row
  std::vector<float> attention_scratch_;  // t * t, for attention_backward
};

}  // namespace

AdamWScalars adamw_scalars(const AdamWParams& p) {
  const double bias1 = 1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(p.step));
  const double bias2 = 1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(p.step));
  return {static_cast<float>(1.0 - static_cast<double>(p.lr) * p.weight_decay),
          static_cast<float>(p.lr / bias1), static_cast<float>(std::sqrt(bias2))};
}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace dpt
