// The CUDA backend's native bf16 kernels (kernels/cuda/typed.cuh) against the bf16 twin
// (kernels/backend.cpp), called with the same bf16 operands three ways: natively on the GPU, the
// twin on the GPU (Backend's own implementation, which widens to float32 scratch, runs the float
// kernel and rounds), and the twin on the CPU.
//
// - Native against the GPU twin: the same bits. The native kernels are the float kernels
//   templated on the element type, adding in the same order and rounding where the twin rounds,
//   so any difference is a wrong load, store, rounding point or index. Attention is the
//   exception: its native GEMMs take bf16 operands on tensor cores, where the twin runs float32
//   GEMMs on the same values, so the sums are added in other orders (checked as against the CPU).
// - Against the CPU twin: close. The float kernels of the two devices differ by their summation
//   orders and by tanhf / expf (a few float32 ulp), and a bf16 output rounds such a float result
//   once; where the two float results straddle a rounding boundary, the bf16 outputs are one bf16
//   step apart (2^-8 relative). Norm-wise that is at most 2^-8 = 3.9e-3 even if every element
//   flipped; kBf16Tol = 8e-3 leaves room for attention, whose rounded probabilities feed a second
//   product. A wrong formula or index is off by 1e-1 or more. float32 outputs (the accumulators
//   of parameter gradients) within the float parity bound kTol.
//
// Every case runs at an aligned offset and at one bf16 element past it, so that both the grouped
// (8-byte) and the element-by-element paths run, and at sizes that are not multiples of four.
// Outputs are poisoned with NaN bits first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/attention_cudnn.hpp"
#include "src/core/bf16.hpp"
#include "tests/gpu/cuda_parity.hpp"

namespace dpt::gputest {
namespace {

class CudaBf16Ops : public CudaParity {};

constexpr double kBf16Tol = 8e-3;
constexpr uint16_t kPoison = 0x7fc1;  // a NaN

// What one call of an op produced, downloaded.
struct Outs {
  std::vector<std::vector<uint16_t>> bf16;
  std::vector<std::vector<float>> f32;
  double loss = 0;
};

// The operands of one call on one backend, `offset` bf16 elements into their buffers.
class Call {
 public:
  Call(Backend& be, size_t offset) : be_(be), offset_(offset) {}
  Backend& be() { return be_; }

  // The values rounded to bf16, as an input.
  TensorRef in(const std::vector<float>& values) {
    std::vector<uint16_t> bits(values.size());
    for (size_t i = 0; i < values.size(); ++i) bits[i] = float_to_bf16(values[i]);
    return place(bits);
  }
  // A bf16 output of n elements (poisoned), downloaded by result().
  TensorRef out(size_t n) {
    const TensorRef t = place(std::vector<uint16_t>(n, kPoison));
    bf16_outs_.push_back({t, n});
    return t;
  }
  // A float32 buffer holding `values`, downloaded by result() when `output`.
  float* f32(const std::vector<float>& values, bool output) {
    bufs_.push_back(CudaParity::upload(be_, values));
    float* p = bufs_.back().data();
    if (output) f32_outs_.push_back({p, values.size()});
    return p;
  }
  const int32_t* ints(const std::vector<int32_t>& values) {
    bufs_.push_back(CudaParity::upload(be_, values));
    return bufs_.back().as<int32_t>();
  }
  Outs result() {
    Outs o;
    for (const auto& [t, n] : bf16_outs_) {
      std::vector<uint16_t> h(n);
      be_.copy_to_host(h.data(), t.data(), sizeof(uint16_t) * n);
      o.bf16.push_back(std::move(h));
    }
    for (const auto& [p, n] : f32_outs_) o.f32.push_back(CudaParity::download(be_, p, n));
    return o;
  }

 private:
  TensorRef place(const std::vector<uint16_t>& bits) {
    bufs_.emplace_back(be_, DataType::BF16, bits.size() + offset_ + 1);
    auto* p = static_cast<uint16_t*>(bufs_.back().ref().data()) + offset_;
    if (!bits.empty()) be_.copy_from_host(p, bits.data(), sizeof(uint16_t) * bits.size());
    return TensorRef(p, DataType::BF16);
  }

  Backend& be_;
  size_t offset_;
  std::vector<DeviceBuffer> bufs_;
  std::vector<std::pair<TensorRef, size_t>> bf16_outs_;
  std::vector<std::pair<float*, size_t>> f32_outs_;
};

std::vector<float> widen(const std::vector<uint16_t>& bits) {
  std::vector<float> f(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) f[i] = bf16_to_float(bits[i]);
  return f;
}

void expect_same(const Outs& a, const Outs& b, const std::string& what) {
  ASSERT_EQ(a.bf16.size(), b.bf16.size());
  ASSERT_EQ(a.f32.size(), b.f32.size());
  for (size_t k = 0; k < a.bf16.size(); ++k) {
    const auto& x = a.bf16[k];
    const auto& y = b.bf16[k];
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      // Any NaN equals any NaN (the payload of a propagated NaN is not specified).
      const bool nan_x = std::isnan(bf16_to_float(x[i])), nan_y = std::isnan(bf16_to_float(y[i]));
      if (x[i] != y[i] && !(nan_x && nan_y)) {
        ADD_FAILURE() << what << ": bf16 output " << k << " differs first at [" << i << "]: native "
                      << bf16_to_float(x[i]) << ", twin " << bf16_to_float(y[i]);
        break;
      }
    }
  }
  for (size_t k = 0; k < a.f32.size(); ++k)
    expect_identical(a.f32[k], b.f32[k], what + ": float32 output " + std::to_string(k));
  EXPECT_EQ(a.loss, b.loss) << what;
}

// min_same: the share of bf16 outputs that must be the CPU twin's bits.
void expect_near(const Outs& gpu, const Outs& cpu, const std::string& what, double min_same) {
  ASSERT_EQ(gpu.bf16.size(), cpu.bf16.size());
  for (size_t k = 0; k < gpu.bf16.size(); ++k) {
    expect_close(widen(gpu.bf16[k]), widen(cpu.bf16[k]), kBf16Tol,
                 what + ": bf16 output " + std::to_string(k));
    size_t same = 0;
    for (size_t i = 0; i < gpu.bf16[k].size(); ++i) same += gpu.bf16[k][i] == cpu.bf16[k][i];
    const double share = static_cast<double>(same) / static_cast<double>(gpu.bf16[k].size());
    EXPECT_GE(share, min_same) << what << ": bf16 output " << k << " is the CPU twin's bits in "
                               << same << " of " << gpu.bf16[k].size() << " elements";
  }
  for (size_t k = 0; k < gpu.f32.size(); ++k)
    expect_close(gpu.f32[k], cpu.f32[k], kTol, what + ": float32 output " + std::to_string(k));
  EXPECT_NEAR(gpu.loss, cpu.loss, 1e-6 * std::max(1.0, std::fabs(cpu.loss))) << what;
}

// Runs op(call, twin) natively on the GPU, through the twin on the GPU and on the CPU, at both
// offsets, and compares. `exact`: native and GPU twin must agree bit for bit. min_same: see
// expect_near.
template <class Op>
void check(const std::string& what, Op op, bool exact = true, double min_same = 0.0) {
  for (const size_t offset : {0, 1}) {
    const std::string at = what + " at offset " + std::to_string(offset);
    Call native(CudaParity::gpu(), offset), twin(CudaParity::gpu(), offset),
        cpu(CudaParity::cpu(), offset);
    Outs a = op(native, false), b = op(twin, true), c = op(cpu, true);
    Outs ra = native.result(), rb = twin.result(), rc = cpu.result();
    ra.loss = a.loss;
    rb.loss = b.loss;
    rc.loss = c.loss;
    if (exact) expect_same(ra, rb, at + ", native against the GPU twin");
    expect_near(ra, rc, at + ", native against the CPU twin", min_same);
    expect_near(rb, rc, at + ", GPU twin against the CPU twin", min_same);
  }
}

std::vector<float> rnd(size_t n, uint64_t seed, float lo = -2, float hi = 2) {
  return CudaParity::random_floats(n, seed, lo, hi);
}

// The op natively, or Backend's own implementation of it (the bf16 twin) on the same backend.
#define DPT_OP(k, twin, op, ...) \
  ((twin) ? (k).be().Backend::op(__VA_ARGS__) : (k).be().op(__VA_ARGS__))

TEST_F(CudaBf16Ops, ElementwiseOpsEqualTheTwin) {
  for (const size_t n : {size_t{1}, size_t{7}, size_t{1030}, size_t{100003}}) {
    const std::string size = " n=" + std::to_string(n);
    const auto x = rnd(n, 11), y = rnd(n, 12), d = rnd(n, 13);
    const auto n64 = static_cast<int64_t>(n);
    check("gelu" + size, [&](Call& k, bool twin) {
      const TensorRef xi = k.in(x), di = k.in(d);
      DPT_OP(k, twin, gelu_forward, xi, k.out(n), n64);
      DPT_OP(k, twin, gelu_backward, xi, di, k.out(n), n64);
      return Outs{};
    });
    check("relu" + size, [&](Call& k, bool twin) {
      const TensorRef xi = k.in(x), di = k.in(d), yo = k.out(n);
      DPT_OP(k, twin, relu_forward, xi, yo, n);
      DPT_OP(k, twin, relu_backward, yo, di, k.out(n), n);
      return Outs{};
    });
    check("add and mul" + size, [&](Call& k, bool twin) {
      const TensorRef xi = k.in(x), yi = k.in(y);
      DPT_OP(k, twin, add, xi, yi, k.out(n), n);
      DPT_OP(k, twin, mul, xi, yi, k.out(n), n);
      // A bf16 gradient times a float32 dropout mask.
      DPT_OP(k, twin, mul, xi, ConstTensorRef(k.f32(d, false)), k.out(n), n);
      // In place, as a residual's backward adds.
      const TensorRef acc = k.out(n);
      DPT_OP(k, twin, add, xi, yi, acc, n);
      DPT_OP(k, twin, add, acc, xi, acc, n);
      return Outs{};
    });
    check("dropout" + size, [&](Call& k, bool twin) {
      float* mask = k.f32(std::vector<float>(n, -1.0f), true);
      DPT_OP(k, twin, dropout_forward, k.in(x), k.out(n), mask, n, 0.3f, 99);
      return Outs{};
    });
  }
}

TEST_F(CudaBf16Ops, BiasEqualsTheTwin) {
  struct Shape {
    int outer, channels, inner;
  };
  // A Linear's [rows, features] (inner 1) and a convolution's [n, channels, h*w].
  for (const Shape s : {Shape{1, 1, 1}, Shape{37, 5, 1}, Shape{256, 768, 1}, Shape{64, 2305, 1},
                        Shape{3, 5, 49}, Shape{2, 16, 1031}}) {
    const size_t n = static_cast<size_t>(s.outer) * s.channels * s.inner;
    const auto y = rnd(n, 21), bias = rnd(static_cast<size_t>(s.channels), 22), dy = rnd(n, 23);
    const auto db0 = rnd(static_cast<size_t>(s.channels), 24);
    check("bias " + std::to_string(s.outer) + "x" + std::to_string(s.channels) + "x" +
              std::to_string(s.inner),
          [&](Call& k, bool twin) {
            const TensorRef yo = k.out(n);
            k.be().copy(yo.data(), k.in(y).data(), sizeof(uint16_t) * n);
            DPT_OP(k, twin, add_bias, yo, k.in(bias), s.outer, s.channels, s.inner);
            DPT_OP(k, twin, bias_grad, k.in(dy), k.f32(db0, true), s.outer, s.channels, s.inner);
            return Outs{};
          });
  }
}

TEST_F(CudaBf16Ops, LayerNormEqualsTheTwin) {
  struct Shape {
    int64_t rows, c;
  };
  for (const Shape s : {Shape{1, 1}, Shape{7, 3}, Shape{9, 100}, Shape{17, 130}, Shape{64, 768},
                        Shape{2048, 768}}) {
    const auto n = static_cast<size_t>(s.rows * s.c), c = static_cast<size_t>(s.c),
               rows = static_cast<size_t>(s.rows);
    const auto x = rnd(n, 31), w = rnd(c, 32, 0.5f, 1.5f), b = rnd(c, 33, -0.5f, 0.5f),
               dy = rnd(n, 34), dw0 = rnd(c, 35), db0 = rnd(c, 36);
    check("layer_norm rows=" + std::to_string(s.rows) + " c=" + std::to_string(s.c),
          [&](Call& k, bool twin) {
            const TensorRef xi = k.in(x), wi = k.in(w);
            float* mean = k.f32(std::vector<float>(rows, -1.0f), true);
            float* rstd = k.f32(std::vector<float>(rows, -1.0f), true);
            DPT_OP(k, twin, layer_norm_forward, xi, wi, k.in(b), k.out(n), mean, rstd, s.rows, s.c,
                   1e-5f);
            DPT_OP(k, twin, layer_norm_backward, xi, wi, mean, rstd, k.in(dy), k.out(n),
                   k.f32(dw0, true), k.f32(db0, true), s.rows, s.c);
            return Outs{};
          });
  }
}

TEST_F(CudaBf16Ops, EmbeddingEqualsTheTwin) {
  struct Shape {
    int64_t b, t, c, vocab;
  };
  for (const Shape s : {Shape{2, 16, 32, 37}, Shape{2, 5, 7, 11}, Shape{4, 64, 768, 1000}}) {
    const auto rows = static_cast<size_t>(s.b * s.t), c = static_cast<size_t>(s.c);
    std::vector<int32_t> idx = CudaParity::random_labels(rows, static_cast<int>(s.vocab), 41);
    idx[rows / 2] = idx[0];  // a repeated token sums its gradient rows
    const auto wte = rnd(static_cast<size_t>(s.vocab) * c, 42),
               wpe = rnd(static_cast<size_t>(s.t) * c, 43), dout = rnd(rows * c, 44),
               dwte0 = rnd(static_cast<size_t>(s.vocab) * c, 45),
               dwpe0 = rnd(static_cast<size_t>(s.t) * c, 46);
    check("embedding c=" + std::to_string(s.c), [&](Call& k, bool twin) {
      const int32_t* ids = k.ints(idx);
      DPT_OP(k, twin, embedding_forward, ids, k.in(wte), k.in(wpe), k.out(rows * c), s.b, s.t, s.c,
             s.vocab);
      DPT_OP(k, twin, embedding_backward, ids, k.in(dout), k.f32(dwte0, true), k.f32(dwpe0, true),
             s.b, s.t, s.c, s.vocab);
      return Outs{};
    });
  }
}

TEST_F(CudaBf16Ops, SoftmaxCrossEntropyEqualsTheTwin) {
  struct Shape {
    int rows, classes;
  };
  for (const Shape s : {Shape{5, 10}, Shape{3, 1}, Shape{64, 50257}}) {
    const size_t n = static_cast<size_t>(s.rows) * s.classes;
    const auto logits = rnd(n, 51, -8, 8);
    std::vector<int32_t> targets = CudaParity::random_labels(s.rows, s.classes, 52);
    targets[0] = -100;                       // ignored
    if (s.rows > 2) targets[2] = s.classes;  // invalid
    check("softmax_cross_entropy " + std::to_string(s.rows) + "x" + std::to_string(s.classes),
          [&](Call& k, bool twin) {
            const int32_t* t = k.ints(targets);
            const LossResult r = DPT_OP(k, twin, softmax_cross_entropy, k.in(logits), t, s.rows,
                                        s.classes, s.classes, -100, 0.25f, k.out(n));
            // Without a gradient the loss is the same.
            const LossResult r2 = DPT_OP(k, twin, softmax_cross_entropy, k.in(logits), t, s.rows,
                                         s.classes, s.classes, -100, 0.25f, nullptr);
            EXPECT_EQ(r.loss_sum, r2.loss_sum);
            EXPECT_EQ(r.count, s.rows - (s.rows > 2 ? 2 : 1));
            EXPECT_EQ(r.invalid, s.rows > 2 ? 1 : 0);
            Outs o;
            o.loss = r.loss_sum;
            return o;
          });
  }
}

// A Linear's forward: cuBLASLt with the bias in its epilogue (or GemmEx without a bias), where
// the twin runs GemmEx into float32, adds the bias and rounds. The float sums differ only in
// their order (a few float32 ulp), so the bf16 results are the same bits except where such a sum
// lies within that distance of a rounding midpoint: at least 98% of them. A second rounding (the
// product rounded to bf16 before the bias is added) would miss on some 28% of the elements
// (tests/unit/test_bf16_ops.cpp measures that on the CPU). At offset 1 the pointers are 2-byte
// aligned, and the backend takes the twin's way (cuBLASLt only sees 16-byte aligned operands).
TEST_F(CudaBf16Ops, LinearRoundsOnceAfterTheBias) {
  struct Shape {
    int m, in, out;
  };
  for (const Shape s :
       {Shape{37, 5, 7}, Shape{256, 768, 2304}, Shape{64, 3072, 768}, Shape{33, 100, 130}}) {
    const size_t nx = static_cast<size_t>(s.m) * s.in, nw = static_cast<size_t>(s.out) * s.in,
                 ny = static_cast<size_t>(s.m) * s.out;
    const auto x = rnd(nx, 71, -1, 1), w = rnd(nw, 72, -0.1f, 0.1f),
               bias = rnd(static_cast<size_t>(s.out), 73, -1, 1);
    for (const bool with_bias : {true, false})
      check(
          "linear " + std::to_string(s.m) + "x" + std::to_string(s.in) + "->" +
              std::to_string(s.out) + (with_bias ? " with bias" : " without bias"),
          [&](Call& k, bool twin) {
            const TensorRef b = with_bias ? k.in(bias) : TensorRef();
            DPT_OP(k, twin, linear_forward, k.in(x), k.in(w), b, k.out(ny), s.m, s.in, s.out);
            return Outs{};
          },
          false, 0.98);
  }
}

// Native attention sums on tensor cores: close to the twins, not equal.
TEST_F(CudaBf16Ops, AttentionIsCloseToTheTwin) {
  struct Shape {
    int64_t b, t, c, n_head;
  };
  for (const Shape s :
       {Shape{2, 16, 32, 4}, Shape{1, 7, 12, 3}, Shape{2, 128, 96, 3}, Shape{1, 1024, 768, 12}}) {
    const auto qkv_n = static_cast<size_t>(s.b * s.t * 3 * s.c),
               out_n = static_cast<size_t>(s.b * s.t * s.c),
               att_n = static_cast<size_t>(s.b * s.n_head * s.t * s.t);
    const auto qkv = rnd(qkv_n, 61, -1, 1), dout = rnd(out_n, 62, -1, 1);
    check(
        "attention t=" + std::to_string(s.t) + " c=" + std::to_string(s.c),
        [&](Call& k, bool twin) {
          const TensorRef q = k.in(qkv), att = k.out(att_n);
          DPT_OP(k, twin, attention_forward, q, k.out(out_n), att, s.b, s.t, s.c, s.n_head);
          DPT_OP(k, twin, attention_backward, q, att, k.in(dout), k.out(qkv_n), s.b, s.t, s.c,
                 s.n_head);
          return Outs{};
        },
        false);
  }
}

// Fused attention (cuDNN's flash attention, bf16) against the CPU twin's unfused attention on
// the same bf16 operands: out, each row's log-sum-exp and dqkv. The fused kernel rounds its
// unnormalised probabilities to bf16 block by block where the twin rounds the normalised ones,
// and adds in its own order, so the two are close (kBf16Tol), not equal. The log-sum-exp against
// one computed here in double from the same bf16 q and k: within 1e-3 (float32 sums of up to
// 1024 terms, and exp2-based exponentials). Run twice for the same bits: backward is cuDNN's
// deterministic algorithm. The GPT-2 size must be supported wherever this build has the
// cudnn_frontend headers and DPT_CUDNN_ATTENTION does not turn them off.
TEST_F(CudaBf16Ops, FusedAttentionIsCloseToTheTwin) {
  struct Shape {
    int64_t b, t, c, n_head;
  };
  const bool expected = gpu::CudnnAttention::enabled();
  for (const Shape s : {Shape{2, 16, 32, 4}, Shape{2, 128, 128, 2}, Shape{2, 1024, 768, 12}}) {
    const std::string what = "fused attention t=" + std::to_string(s.t) +
                             " c=" + std::to_string(s.c) + " heads=" + std::to_string(s.n_head);
    const bool fused = gpu().fused_attention(DataType::BF16, s.b, s.t, s.c, s.n_head);
    const std::string why = CudaParity::gpu_->why_attention_unfused(s.b, s.t, s.c, s.n_head);
    if (s.c == 768) {
      EXPECT_EQ(fused, expected) << what << ": GPT-2's size; " << why;
    }
    if (!fused) {
      std::printf("%s: not fused here (%s); the unfused path serves it\n", what.c_str(),
                  why.c_str());
      continue;
    }
    const auto qkv_n = static_cast<size_t>(s.b * s.t * 3 * s.c),
               out_n = static_cast<size_t>(s.b * s.t * s.c),
               att_n = static_cast<size_t>(s.b * s.n_head * s.t * s.t),
               rows = static_cast<size_t>(s.b * s.n_head * s.t);
    const auto qkv = rnd(qkv_n, 81, -1, 1), dout = rnd(out_n, 82, -1, 1);
    const auto run_fused = [&]() {
      Call k(gpu(), 0);
      const TensorRef q = k.in(qkv), out = k.out(out_n), dq = k.out(qkv_n);
      float* lse = k.f32(std::vector<float>(rows, std::nanf("")), true);
      gpu().attention_fused_forward(q, out, lse, s.b, s.t, s.c, s.n_head);
      gpu().attention_fused_backward(q, out, lse, k.in(dout), dq, s.b, s.t, s.c, s.n_head);
      return k.result();
    };
    const Outs a = run_fused(), again = run_fused();
    expect_same(a, again, what + ", run twice");
    Call k(cpu(), 0);
    const TensorRef q = k.in(qkv), out = k.out(out_n), probs = k.out(att_n);
    cpu().attention_forward(q, out, probs, s.b, s.t, s.c, s.n_head);
    cpu().attention_backward(q, probs, k.in(dout), k.out(qkv_n), s.b, s.t, s.c, s.n_head);
    const Outs ref = k.result();  // out, probabilities, dqkv
    expect_close(widen(a.bf16[0]), widen(ref.bf16[0]), kBf16Tol, what + ": out");
    expect_close(widen(a.bf16[1]), widen(ref.bf16[2]), kBf16Tol, what + ": dqkv");
    // The log-sum-exp of row (bi, h, i): log sum_{j <= i} exp(scale q_i . k_j), from the bf16
    // values in double.
    std::vector<double> qd(qkv_n);
    for (size_t i = 0; i < qkv_n; ++i) qd[i] = bf16_to_float(float_to_bf16(qkv[i]));
    const int64_t hs = s.c / s.n_head;
    const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
    double worst = 0;
    std::vector<double> z(static_cast<size_t>(s.t));
    for (int64_t bi = 0; bi < s.b; ++bi)
      for (int64_t h = 0; h < s.n_head; ++h)
        for (int64_t i = 0; i < s.t; ++i) {
          const double* qi = qd.data() + (bi * s.t + i) * 3 * s.c + h * hs;
          double mx = -INFINITY;
          for (int64_t j = 0; j <= i; ++j) {
            const double* kj = qd.data() + (bi * s.t + j) * 3 * s.c + s.c + h * hs;
            double dot = 0;
            for (int64_t e = 0; e < hs; ++e) dot += qi[e] * kj[e];
            z[static_cast<size_t>(j)] = scale * dot;
            mx = std::max(mx, scale * dot);
          }
          double sum = 0;
          for (int64_t j = 0; j <= i; ++j) sum += std::exp(z[static_cast<size_t>(j)] - mx);
          const double want = mx + std::log(sum);
          const double got = a.f32[0][static_cast<size_t>((bi * s.n_head + h) * s.t + i)];
          worst = std::max(worst, std::isfinite(got) ? std::fabs(got - want) : HUGE_VAL);
        }
    EXPECT_LE(worst, 1e-3) << what << ": the log-sum-exp of the rows";
  }
}

#undef DPT_OP

}  // namespace
}  // namespace dpt::gputest
