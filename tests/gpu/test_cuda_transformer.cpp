// The transformer's ops of the CUDA backend (LayerNorm, GELU, causal attention, embeddings, and
// the clipping pair sum_squares / scale) against the CPU backend: at small and odd sizes, at
// GPT-2 small's (c = 768, 12 heads, t = 1024, vocabulary 50,257), and run twice for the same
// bits. Outputs an op must write in full are poisoned with NaN on the GPU first.
//
// Tolerances. The CPU kernels are within a few 1e-7 of the exact values (measured against double
// in tests/unit/test_transformer_kernels.cpp); the GPU computes the same formulas with its own
// summation orders, FMA contractions and expf / tanhf (within 2 ulp), and lands as close. Each
// bound below is derived from float rounding (the reasoning is beside it) and is several times
// what rounding alone can make of |gpu - cpu|; a wrong formula, index or mask is off by 1e-2 or
// more. Where the GPU adds in the CPU's order (embeddings) or computes one rounding per element
// (scale), the results must be identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "tests/gpu/cuda_parity.hpp"

namespace dpt::gputest {
namespace {

class CudaTransformerOps : public CudaParity {};

// The fixture's helpers, for the checking functions outside it.
Backend& gpu() { return CudaParity::gpu(); }
Backend& cpu() { return CudaParity::cpu(); }
Mirror mirror(const std::vector<float>& host) { return CudaParity::mirror(host); }
Mirror zeros(size_t n) { return CudaParity::zeros(n); }
Mirror poisoned(size_t n) { return CudaParity::poisoned(n); }
std::vector<float> from_cpu(const Mirror& m) { return CudaParity::from_cpu(m); }
std::vector<float> from_gpu(const Mirror& m) { return CudaParity::from_gpu(m); }
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  return CudaParity::random_floats(n, seed, lo, hi);
}
template <class T>
DeviceBuffer upload(Backend& be, const std::vector<T>& host) {
  return CudaParity::upload(be, host);
}
std::vector<float> download(Backend& be, const float* p, size_t n) {
  return CudaParity::download(be, p, n);
}

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kLnEps = 1e-5f;

// The worst of |got - want| / bound(i), and where; a NaN or infinity in one but not the other
// (or of another sign) counts as infinitely far.
struct Worst {
  double ratio = 0;
  size_t at = 0;
};
template <class Bound>
Worst worst_ratio(const std::vector<float>& got, const std::vector<float>& want, Bound bound) {
  Worst w;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const float g = got[i], e = want[i];
    double r;
    if (!std::isfinite(g) || !std::isfinite(e))
      r = (std::isnan(g) && std::isnan(e)) || g == e ? 0 : std::numeric_limits<double>::infinity();
    else
      r = std::fabs(static_cast<double>(g) - e) / bound(i);
    if (r > w.ratio) {
      w.ratio = r;
      w.at = i;
    }
  }
  return w;
}

// |got[i] - want[i]| <= bound(i) for every i.
template <class Bound>
void expect_each_within(const std::vector<float>& got, const std::vector<float>& want, Bound bound,
                        const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Worst w = worst_ratio(got, want, bound);
  EXPECT_LE(w.ratio, 1.0) << what << ": at [" << w.at << "] gpu " << got[w.at] << ", cpu "
                          << want[w.at] << ", bound " << bound(w.at);
}

void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b,
                      const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
}

// ---------------------------------------------------------------- LayerNorm

struct LnCase {
  int64_t rows, c;
  float offset;  // added to every input: a row mean far from zero tests the two-pass variance
  std::string name() const {
    return "layer_norm rows=" + std::to_string(rows) + " c=" + std::to_string(c) +
           " offset=" + std::to_string(static_cast<int>(offset));
  }
};

// Odd widths (c % 4 != 0 takes the one-float path), one row, rows that fill no whole block, and
// GPT-2 small's B*T = 2048 rows of 768; offsets of 8 and 300 (E[x^2] - mean^2 in float loses
// the variance of 0.33 entirely at 300, and visibly at 8).
const LnCase kLnCases[] = {{1, 1, 0},      {7, 3, 0},     {5, 5, 0},    {33, 64, 0},
                           {9, 100, 0},    {17, 130, 0},  {3, 1023, 0}, {64, 768, 8},
                           {16, 768, 300}, {2048, 768, 0}};

// x in [-1, 1) + offset, w in [0.5, 1.5), b in [-0.5, 0.5).
struct LnInputs {
  std::vector<float> x, w, b;
  LnInputs(const LnCase& s, uint64_t seed)
      : x(CudaParity::random_floats(static_cast<size_t>(s.rows * s.c), seed)),
        w(CudaParity::random_floats(static_cast<size_t>(s.c), seed + 1, 0.5f, 1.5f)),
        b(CudaParity::random_floats(static_cast<size_t>(s.c), seed + 2, -0.5f, 0.5f)) {
    for (float& v : x) v += s.offset;
  }
};

// Forward, bounds per element, scaled by k = 1 + offset. The mean is off by the rounding of a
// sum of c values of size k (both backends: about 1e-7 * k relative to a value, measured 1.5e-6
// at k = 9 on the CPU); the deviations x - mean carry it, times rstd (about 1.7) and w (< 1.5):
// y within 1e-5 * k, mean within 1e-5 * k. The variance of the deviations (O(1) terms) is off by
// about 1e-7 relative whatever the offset: rstd within 1e-5 relative.
void check_layer_norm_forward(const LnCase& s, size_t misalign, uint64_t seed) {
  const LnInputs in(s, seed);
  const size_t n = static_cast<size_t>(s.rows * s.c), rows = static_cast<size_t>(s.rows);
  const std::string name = s.name() + (misalign ? " (unaligned)" : "");
  // The GPU's copies start `misalign` floats into their buffers: float4 loads are then not
  // possible, and the one-float path runs instead.
  auto shifted = [&](const std::vector<float>& v) {
    std::vector<float> h(misalign, 0.0f);
    h.insert(h.end(), v.begin(), v.end());
    return CudaParity::upload(CudaParity::gpu(), h);
  };
  Mirror x = mirror(in.x), w = mirror(in.w), b = mirror(in.b);
  DeviceBuffer gx = shifted(in.x), gw = shifted(in.w), gb = shifted(in.b);
  DeviceBuffer gy(gpu(), DataType::F32, n + misalign);
  gpu().fill(gy.data(), n + misalign, kNaN);
  Mirror y = zeros(n), mean = poisoned(rows), rstd = poisoned(rows);
  cpu().layer_norm_forward(x.c(), w.c(), b.c(), y.c(), mean.c(), rstd.c(), s.rows, s.c, kLnEps);
  gpu().layer_norm_forward(gx.data() + misalign, gw.data() + misalign, gb.data() + misalign,
                           gy.data() + misalign, mean.g(), rstd.g(), s.rows, s.c, kLnEps);
  const double k = 1.0 + s.offset;
  expect_each_within(
      download(gpu(), gy.data() + misalign, n), from_cpu(y), [&](size_t) { return 1e-5 * k; },
      name + " y");
  expect_each_within(
      from_gpu(mean), from_cpu(mean), [&](size_t) { return 1e-5 * k; }, name + " mean");
  const std::vector<float> rstd_cpu = from_cpu(rstd);
  expect_each_within(
      from_gpu(rstd), rstd_cpu, [&](size_t i) { return 1e-5 * std::fabs(rstd_cpu[i]); },
      name + " rstd");
}

TEST_F(CudaTransformerOps, LayerNormForward) {
  uint64_t seed = 3000;
  for (const LnCase& s : kLnCases) check_layer_norm_forward(s, 0, seed += 10);
  // The one-float path where c % 4 == 0 but the pointers are not 16-byte aligned.
  check_layer_norm_forward({33, 64, 0}, 1, 3500);
  check_layer_norm_forward({64, 768, 8}, 3, 3510);
}

// Backward from the CPU's saved statistics (the same on both), dw and db starting non-zero (they
// accumulate). dx: row sums of c terms, a few 1e-7 relative on either side (CPU measured 2.3e-7
// against double); dw and db: sums over the rows, the CPU's one row after another (about
// 1.3e-8 * sqrt(rows) relative, 6e-7 at 2048 rows), the GPU's in splits. Norm-wise within 1e-5.
TEST_F(CudaTransformerOps, LayerNormBackwardAccumulates) {
  uint64_t seed = 3100;
  for (const LnCase& s : kLnCases) {
    const LnInputs in(s, seed += 10);
    const size_t n = static_cast<size_t>(s.rows * s.c), rows = static_cast<size_t>(s.rows),
                 c = static_cast<size_t>(s.c);
    Mirror x = mirror(in.x), w = mirror(in.w), b = mirror(in.b), y = zeros(n);
    Mirror mean = zeros(rows), rstd = zeros(rows);
    cpu().layer_norm_forward(x.c(), w.c(), b.c(), y.c(), mean.c(), rstd.c(), s.rows, s.c, kLnEps);
    mean = mirror(from_cpu(mean));
    rstd = mirror(from_cpu(rstd));
    Mirror dy = mirror(random_floats(n, seed + 5)), dx = poisoned(n);
    Mirror dw = mirror(random_floats(c, seed + 6)), db = mirror(random_floats(c, seed + 7));
    cpu().layer_norm_backward(x.c(), w.c(), mean.c(), rstd.c(), dy.c(), dx.c(), dw.c(), db.c(),
                              s.rows, s.c);
    gpu().layer_norm_backward(x.g(), w.g(), mean.g(), rstd.g(), dy.g(), dx.g(), dw.g(), db.g(),
                              s.rows, s.c);
    expect_close(from_gpu(dx), from_cpu(dx), kTol, s.name() + " dx");
    expect_close(from_gpu(dw), from_cpu(dw), kTol, s.name() + " dw");
    expect_close(from_gpu(db), from_cpu(db), kTol, s.name() + " db");
  }
}

// ---------------------------------------------------------------- GELU

// Mostly [-6, 6), and zeros, tiny values, values where tanh saturates, and a NaN.
std::vector<float> gelu_inputs(size_t n, uint64_t seed) {
  std::vector<float> x = CudaParity::random_floats(n, seed, -6.0f, 6.0f);
  const float special[] = {0.0f, -0.0f, 12.0f, -12.0f, 1e-4f, -1e-4f, 30.0f, -30.0f, kNaN};
  std::copy(std::begin(special), std::begin(special) + std::min(n, std::size(special)), x.begin());
  return x;
}

// u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2), in double.
double gelu_du(double x) { return 0.7978845608028654 * (1 + 3 * 0.044715 * x * x); }

// Both backends compute each element from the same formula; tanh differs (CUDA's tanhf within
// 2 ulp; the CPU's exp-based tanh within about 2e-7 absolute, and its AVX2 build contracts
// multiply-adds), so the two are a few 1e-7 apart at most. Forward:
// 0.5 x (1 + tanh u) moves by 0.5 |x| 2.4e-7, plus a rounding or two of y (|y| <= |x|):
// within 1e-6 (1 + |x|). Backward: the factor 0.5 (1 + th) + 0.5 x (1 - th^2) u' moves by
// 2.4e-7 (0.5 + |x| u'), plus roundings of terms of that size: within 1e-6 |dy| (1 + |x| u').
void check_gelu(size_t n, size_t misalign, uint64_t seed) {
  const std::vector<float> x = gelu_inputs(n, seed), dy = random_floats(n, seed + 1);
  const std::string name = "gelu n=" + std::to_string(n) + (misalign ? " (unaligned)" : "");
  auto padded = [&](const std::vector<float>& v) {
    std::vector<float> h(misalign, 0.0f);
    h.insert(h.end(), v.begin(), v.end());
    return h;
  };
  Mirror xm = mirror(padded(x)), dym = mirror(padded(dy));
  Mirror y = poisoned(n + misalign), dx = poisoned(n + misalign);
  cpu().gelu_forward(xm.c() + misalign, y.c() + misalign, static_cast<int64_t>(n));
  gpu().gelu_forward(xm.g() + misalign, y.g() + misalign, static_cast<int64_t>(n));
  cpu().gelu_backward(xm.c() + misalign, dym.c() + misalign, dx.c() + misalign,
                      static_cast<int64_t>(n));
  gpu().gelu_backward(xm.g() + misalign, dym.g() + misalign, dx.g() + misalign,
                      static_cast<int64_t>(n));
  auto tail = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(misalign), v.end());
  };
  expect_each_within(
      tail(from_gpu(y)), tail(from_cpu(y)), [&](size_t i) { return 1e-6 * (1 + std::fabs(x[i])); },
      name + " forward");
  expect_each_within(
      tail(from_gpu(dx)), tail(from_cpu(dx)),
      [&](size_t i) { return 1e-6 * std::fabs(dy[i]) * (1 + std::fabs(x[i]) * gelu_du(x[i])); },
      name + " backward");
}

TEST_F(CudaTransformerOps, GeluForwardBackward) {
  uint64_t seed = 3200;
  // n % 4 from 0 to 3 (the float4 body and the one-by-one rest), and GPT-2 small's MLP
  // activation at B*T = 2048 (2048 * 3072 values).
  for (const size_t n : {size_t{1}, size_t{3}, size_t{4}, size_t{9}, size_t{1001},
                         (size_t{1} << 20) + 3, size_t{2048} * 3072})
    check_gelu(n, 0, seed += 10);
  check_gelu(1001, 1, 3300);  // not 16-byte aligned: one float at a time throughout
}

TEST_F(CudaTransformerOps, GeluIsTheSameOnEveryPath) {
  // An element's value does not depend on the path (float4 or one float at a time): the same
  // inputs at an aligned and an unaligned address give the same bits.
  const size_t n = 100003;
  const std::vector<float> x = gelu_inputs(n, 3400), dy = random_floats(n, 3401);
  std::vector<float> xs(1, 0.0f), dys(1, 0.0f);
  xs.insert(xs.end(), x.begin(), x.end());
  dys.insert(dys.end(), dy.begin(), dy.end());
  DeviceBuffer xa = upload(gpu(), x), dya = upload(gpu(), dy), xu = upload(gpu(), xs),
               dyu = upload(gpu(), dys);
  DeviceBuffer ya(gpu(), DataType::F32, n), yu(gpu(), DataType::F32, n + 1);
  DeviceBuffer dxa(gpu(), DataType::F32, n), dxu(gpu(), DataType::F32, n + 1);
  gpu().gelu_forward(xa.data(), ya.data(), n);
  gpu().gelu_forward(xu.data() + 1, yu.data() + 1, n);
  gpu().gelu_backward(xa.data(), dya.data(), dxa.data(), n);
  gpu().gelu_backward(xu.data() + 1, dyu.data() + 1, dxu.data() + 1, n);
  expect_identical(download(gpu(), yu.data() + 1, n), download(gpu(), ya.data(), n),
                   "gelu forward, unaligned against aligned");
  expect_identical(download(gpu(), dxu.data() + 1, n), download(gpu(), dxa.data(), n),
                   "gelu backward, unaligned against aligned");
}

// ---------------------------------------------------------------- attention

struct AttnCase {
  int64_t b, t, c, n_head;
  float q_scale = 1;  // q times this: sharper softmax rows
  std::string name() const {
    return "attention b=" + std::to_string(b) + " t=" + std::to_string(t) +
           " c=" + std::to_string(c) + " heads=" + std::to_string(n_head) +
           (q_scale != 1 ? " q*" + std::to_string(static_cast<int>(q_scale)) : "");
  }
};

// One position; heads of 4, 16, 48 and 64; t not a multiple of the warp (33, 130); GPT-2
// small's width and heads at t = 1024 over two batch rows, also with sharper rows.
const AttnCase kAttnCases[] = {{1, 1, 8, 2},       {2, 5, 8, 2},         {3, 33, 48, 3},
                               {2, 64, 64, 4},     {1, 130, 96, 2},      {2, 64, 64, 4, 4},
                               {2, 1024, 768, 12}, {1, 1024, 768, 12, 4}};

// qkv in [-1, 1), q scaled by q_scale.
std::vector<float> attention_inputs(const AttnCase& s, uint64_t seed) {
  std::vector<float> qkv =
      CudaParity::random_floats(static_cast<size_t>(s.b * s.t * 3 * s.c), seed);
  for (int64_t p = 0; p < s.b * s.t; ++p)
    for (int64_t e = 0; e < s.c; ++e) qkv[static_cast<size_t>(p * 3 * s.c + e)] *= s.q_scale;
  return qkv;
}

// Every probability above the diagonal exactly zero (the GPU's att was poisoned with NaN).
void expect_causal(const std::vector<float>& att, int64_t rows, int64_t t,
                   const std::string& what) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = r % t + 1; j < t; ++j)
      if (att[static_cast<size_t>(r * t + j)] != 0.0f) {
        ADD_FAILURE() << what << ": row " << r << ", column " << j << " is "
                      << att[static_cast<size_t>(r * t + j)] << ", not 0";
        return;
      }
}

// Forward: scores are dot products of hs terms (cuBLAS and the CPU's GEMM each off by about
// sqrt(hs) * 6e-8 relative), exp and the normaliser add a few 6e-8, out sums t products: both a
// few 1e-7 from exact (CPU measured 1.1e-7): out and att within 1e-5 norm-wise. Backward: the
// same sums and three more GEMMs (CPU measured 2.3e-7 against double at t = 64; sums over
// t = 1024 terms are about 4 times rougher): dqkv within 1e-5 norm-wise.
TEST_F(CudaTransformerOps, AttentionForwardBackward) {
  uint64_t seed = 3600;
  for (const AttnCase& s : kAttnCases) {
    const std::string name = s.name();
    const size_t nqkv = static_cast<size_t>(s.b * s.t * 3 * s.c),
                 nout = static_cast<size_t>(s.b * s.t * s.c),
                 natt = static_cast<size_t>(s.b * s.n_head * s.t * s.t);
    Mirror qkv = mirror(attention_inputs(s, seed += 10));
    Mirror out = poisoned(nout), att = poisoned(natt);
    cpu().attention_forward(qkv.c(), out.c(), att.c(), s.b, s.t, s.c, s.n_head);
    gpu().attention_forward(qkv.g(), out.g(), att.g(), s.b, s.t, s.c, s.n_head);
    const std::vector<float> att_gpu = from_gpu(att);
    expect_close(from_gpu(out), from_cpu(out), kTol, name + " out");
    expect_close(att_gpu, from_cpu(att), kTol, name + " att");
    expect_causal(att_gpu, s.b * s.n_head * s.t, s.t, name + " att");

    // Backward from each backend's own probabilities, as training runs it.
    Mirror dout = mirror(random_floats(nout, seed + 1)), dqkv = poisoned(nqkv);
    cpu().attention_backward(qkv.c(), att.c(), dout.c(), dqkv.c(), s.b, s.t, s.c, s.n_head);
    gpu().attention_backward(qkv.g(), att.g(), dout.g(), dqkv.g(), s.b, s.t, s.c, s.n_head);
    expect_close(from_gpu(dqkv), from_cpu(dqkv), kTol, name + " dqkv");
  }
}

TEST_F(CudaTransformerOps, AttentionSoftmaxIsSafeFromLargeScores) {
  // As the CPU kernel's test: queries in [5, 20), keys in [-10, 10), and the last position's key
  // 100 everywhere, so that every earlier row has a masked score between 1000 and 4000 that
  // must not be taken for the row's maximum (every visible exp would underflow: 0 / 0). Visible
  // scores reach 400 and each backend's is off by up to about 5e-5; a probability moves by at
  // most as much, and so does out (|v| < 1): within 2e-4 of each other.
  const AttnCase s{2, 6, 8, 2};
  std::vector<float> qkv = attention_inputs(s, 3700);
  for (int64_t p = 0; p < s.b * s.t; ++p)
    for (int64_t e = 0; e < s.c; ++e) {
      float* row = qkv.data() + p * 3 * s.c;
      row[e] = 10.0f * (1.5f + 0.5f * row[e]);
      row[s.c + e] = (p % s.t == s.t - 1) ? 100.0f : 10.0f * row[s.c + e];
    }
  Mirror q = mirror(qkv), out = poisoned(static_cast<size_t>(s.b * s.t * s.c)),
         att = poisoned(static_cast<size_t>(s.b * s.n_head * s.t * s.t));
  cpu().attention_forward(q.c(), out.c(), att.c(), s.b, s.t, s.c, s.n_head);
  gpu().attention_forward(q.g(), out.g(), att.g(), s.b, s.t, s.c, s.n_head);
  expect_each_within(
      from_gpu(att), from_cpu(att), [](size_t) { return 2e-4; }, "att");
  expect_each_within(
      from_gpu(out), from_cpu(out), [](size_t) { return 2e-4; }, "out");
}

TEST_F(CudaTransformerOps, AttentionRefusesAWidthThatTheHeadsDoNotDivide) {
  DeviceBuffer qkv(gpu(), DataType::F32, 30), out(gpu(), DataType::F32, 10),
      att(gpu(), DataType::F32, 3);
  try {
    gpu().attention_forward(qkv.data(), out.data(), att.data(), 1, 1, 10, 3);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "attention: the embedding width 10 is not a multiple of the number of heads 3");
  }
  EXPECT_THROW(
      gpu().attention_backward(qkv.data(), att.data(), out.data(), qkv.data(), 1, 1, 10, 0),
      InputError);
}

// ---------------------------------------------------------------- embeddings

struct EmbCase {
  int64_t b, t, c, vocab;
  size_t misalign = 0;  // floats into the GPU's buffers (no float4 loads)
  std::string name() const {
    return "embedding b=" + std::to_string(b) + " t=" + std::to_string(t) +
           " c=" + std::to_string(c) + " vocab=" + std::to_string(vocab) +
           (misalign ? " (unaligned)" : "");
  }
};

// Token ids with many repeats: half of the positions take one of 16 common ids (among them the
// first and the last of the vocabulary), the others any id.
std::vector<int32_t> embedding_tokens(const EmbCase& s, uint64_t seed) {
  std::vector<int32_t> idx(static_cast<size_t>(s.b * s.t));
  for (size_t i = 0; i < idx.size(); ++i) {
    const uint64_t r = random_u64(seed, i);
    const auto k = static_cast<int64_t>(r % 16);
    const int64_t common = k == 0 ? 0 : k == 1 ? s.vocab - 1 : k * 7 % s.vocab;
    const auto any = static_cast<int64_t>((r >> 9) % static_cast<uint64_t>(s.vocab));
    idx[i] = static_cast<int32_t>((r >> 8) % 2 ? common : any);
  }
  return idx;
}

// The GPU adds in the CPU's order (forward: one addition per element; backward: each row of
// dwte and dwpe summed over its positions in increasing order), so every bit matches.
void check_embedding(const EmbCase& s, const std::vector<int32_t>& idx, uint64_t seed) {
  const size_t nte = static_cast<size_t>(s.vocab * s.c), npe = static_cast<size_t>(s.t * s.c),
               nout = static_cast<size_t>(s.b * s.t * s.c), m = s.misalign;
  auto padded = [&](const std::vector<float>& v) {
    std::vector<float> h(m, 0.0f);
    h.insert(h.end(), v.begin(), v.end());
    return h;
  };
  auto tail = [&](const std::vector<float>& v) {
    return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(m), v.end());
  };
  const std::vector<float> wte = CudaParity::random_floats(nte, seed),
                           wpe = CudaParity::random_floats(npe, seed + 1),
                           dout = CudaParity::random_floats(nout, seed + 2),
                           dwte0 = CudaParity::random_floats(nte, seed + 3),
                           dwpe0 = CudaParity::random_floats(npe, seed + 4);
  DeviceBuffer idx_cpu = CudaParity::upload(CudaParity::cpu(), idx),
               idx_gpu = CudaParity::upload(CudaParity::gpu(), idx);
  Mirror te = CudaParity::mirror(padded(wte)), pe = CudaParity::mirror(padded(wpe)),
         out = CudaParity::poisoned(nout + m);
  CudaParity::cpu().embedding_forward(idx_cpu.as<int32_t>(), te.c() + m, pe.c() + m, out.c() + m,
                                      s.b, s.t, s.c, s.vocab);
  CudaParity::gpu().embedding_forward(idx_gpu.as<int32_t>(), te.g() + m, pe.g() + m, out.g() + m,
                                      s.b, s.t, s.c, s.vocab);
  expect_identical(tail(CudaParity::from_gpu(out)), tail(CudaParity::from_cpu(out)),
                   s.name() + " forward");

  // dwte and dwpe start non-zero: backward adds to them.
  Mirror d = CudaParity::mirror(padded(dout)), dte = CudaParity::mirror(padded(dwte0)),
         dpe = CudaParity::mirror(padded(dwpe0));
  CudaParity::cpu().embedding_backward(idx_cpu.as<int32_t>(), d.c() + m, dte.c() + m, dpe.c() + m,
                                       s.b, s.t, s.c, s.vocab);
  CudaParity::gpu().embedding_backward(idx_gpu.as<int32_t>(), d.g() + m, dte.g() + m, dpe.g() + m,
                                       s.b, s.t, s.c, s.vocab);
  const std::vector<float> dte_gpu = tail(CudaParity::from_gpu(dte));
  expect_identical(dte_gpu, tail(CudaParity::from_cpu(dte)), s.name() + " dwte");
  expect_identical(tail(CudaParity::from_gpu(dpe)), tail(CudaParity::from_cpu(dpe)),
                   s.name() + " dwpe");
  // A token that does not occur keeps its row as it was.
  std::vector<bool> seen(static_cast<size_t>(s.vocab), false);
  for (const int32_t id : idx) seen[static_cast<size_t>(id)] = true;
  const auto unused = std::find(seen.begin(), seen.end(), false);
  if (unused != seen.end()) {
    const size_t row = static_cast<size_t>(unused - seen.begin()) * static_cast<size_t>(s.c);
    EXPECT_TRUE(std::equal(dte_gpu.begin() + static_cast<std::ptrdiff_t>(row),
                           dte_gpu.begin() + static_cast<std::ptrdiff_t>(row + s.c),
                           dwte0.begin() + static_cast<std::ptrdiff_t>(row)))
        << s.name() << ": the row of an unused token changed";
  }
}

TEST_F(CudaTransformerOps, EmbeddingForwardBackwardEqualCpuExactly) {
  uint64_t seed = 3800;
  // The CPU kernel test's tokens (token 3 three times, token 6 never), odd widths, a GPT-2 small
  // batch (4 x 1024 positions, vocabulary 50,257), unaligned tables.
  const EmbCase tiny{2, 5, 8, 7};
  check_embedding(tiny, {3, 0, 3, 5, 1, 2, 3, 4, 0, 5}, seed);
  for (const EmbCase& s :
       {EmbCase{3, 33, 10, 11}, EmbCase{2, 17, 5, 1000}, EmbCase{4, 1024, 768, 50257},
        EmbCase{2, 9, 8, 7, 1}, EmbCase{2, 64, 768, 50257, 3}}) {
    seed += 10;
    check_embedding(s, embedding_tokens(s, seed), seed + 5);
  }
  // One token everywhere: a single run of all b * t positions.
  const EmbCase one{4, 256, 64, 50257};
  check_embedding(one, std::vector<int32_t>(static_cast<size_t>(one.b * one.t), 42), 3900);
}

TEST_F(CudaTransformerOps, EmbeddingTokenOutsideTheVocabularyIsNeverRead) {
  // The CPU refuses such ids (InputError) before writing; the GPU cannot stop the queue, so it
  // never reads through them: the output row is NaN (the trainer's non-finite check sees it), and
  // the position adds nothing to dwte or dwpe. The other rows are as the CPU computes them with
  // the bad ids replaced by 0 and their gradient rows zeroed (adding +0 changes nothing).
  const int64_t b = 2, t = 8, c = 16, vocab = 10;
  std::vector<int32_t> idx = embedding_tokens({b, t, c, vocab}, 3950);
  const std::vector<size_t> bad = {3, 9, 15};
  idx[3] = -1;
  idx[9] = static_cast<int32_t>(vocab);
  idx[15] = 1 << 30;
  std::vector<int32_t> fixed = idx;
  std::vector<float> dout = random_floats(static_cast<size_t>(b * t * c), 3951), dout_fixed = dout;
  for (const size_t p : bad) {
    fixed[p] = 0;
    std::fill(dout_fixed.begin() + static_cast<std::ptrdiff_t>(p * c),
              dout_fixed.begin() + static_cast<std::ptrdiff_t>((p + 1) * c), 0.0f);
  }
  const std::vector<float> wte = random_floats(static_cast<size_t>(vocab * c), 3952),
                           wpe = random_floats(static_cast<size_t>(t * c), 3953);
  DeviceBuffer idx_gpu = upload(gpu(), idx), idx_cpu = upload(cpu(), fixed);
  Mirror te = mirror(wte), pe = mirror(wpe), out = poisoned(static_cast<size_t>(b * t * c));
  cpu().embedding_forward(idx_cpu.as<int32_t>(), te.c(), pe.c(), out.c(), b, t, c, vocab);
  gpu().embedding_forward(idx_gpu.as<int32_t>(), te.g(), pe.g(), out.g(), b, t, c, vocab);
  std::vector<float> got = from_gpu(out), want = from_cpu(out);
  for (const size_t p : bad)
    std::fill(want.begin() + static_cast<std::ptrdiff_t>(p * c),
              want.begin() + static_cast<std::ptrdiff_t>((p + 1) * c), kNaN);
  expect_identical(got, want, "forward");
  EXPECT_TRUE(std::isnan(got[3 * c]));

  Mirror d_cpu = mirror(dout_fixed), d_gpu = mirror(dout);
  Mirror dte = mirror(random_floats(wte.size(), 3954)),
         dpe = mirror(random_floats(wpe.size(), 3955));
  cpu().embedding_backward(idx_cpu.as<int32_t>(), d_cpu.c(), dte.c(), dpe.c(), b, t, c, vocab);
  gpu().embedding_backward(idx_gpu.as<int32_t>(), d_gpu.g(), dte.g(), dpe.g(), b, t, c, vocab);
  expect_identical(from_gpu(dte), from_cpu(dte), "dwte");
  expect_identical(from_gpu(dpe), from_cpu(dpe), "dwpe");
}

// ---------------------------------------------------------------- sum_squares and scale

bool gpu_memory_at_least(size_t bytes) {
  return cuda_device_info(CudaParity::gpu_->ordinal()).total_memory >= bytes;
}

// Both sum exact double squares (a float's square is exact in double) of non-negative terms, so
// each is within (additions along the longest chain) * 2^-53 of the exact sum, relatively: the
// CPU's four lanes chain n / 4 additions (3.5e-9 at GPT-2's 124M parameters), the GPU's threads
// a few hundred. So |gpu - cpu| <= (n / 4 + 1000) * 2^-53 * sum.
void check_sum_squares(const float* p_cpu, const float* p_gpu, size_t n, const std::string& what) {
  const double c = CudaParity::cpu().sum_squares(p_cpu, n);
  const double g = CudaParity::gpu().sum_squares(p_gpu, n);
  const double bound = (static_cast<double>(n) / 4 + 1000) * std::ldexp(1.0, -53) * c;
  EXPECT_LE(std::fabs(g - c), bound) << what << ": gpu " << g << ", cpu " << c;
}

TEST_F(CudaTransformerOps, SumSquares) {
  for (const size_t n :
       {size_t{0}, size_t{1}, size_t{3}, size_t{1000}, (size_t{1} << 20) + 5, size_t{10000019}}) {
    Mirror p = mirror(random_floats(n, 4000 + n, -2.0f, 2.0f));
    check_sum_squares(p.c(), p.g(), n, "sum_squares n=" + std::to_string(n));
    if (n > 2)
      check_sum_squares(p.c() + 1, p.g() + 1, n - 2,
                        "sum_squares, unaligned n=" + std::to_string(n - 2));
  }
  EXPECT_EQ(gpu().sum_squares(nullptr, 0), 0.0);
  // Exact where every partial sum is: 3^2 + 4^2 + 12^2 = 169.
  Mirror small = mirror({3.0f, -4.0f, 12.0f});
  EXPECT_EQ(gpu().sum_squares(small.g(), 3), 169.0);
  // A NaN or an infinity shows in the norm (clipping must not hide it).
  Mirror bad = mirror({1.0f, kNaN, 2.0f});
  EXPECT_TRUE(std::isnan(gpu().sum_squares(bad.g(), 3)));
  Mirror inf = mirror({1.0f, std::numeric_limits<float>::infinity(), 2.0f});
  EXPECT_TRUE(std::isinf(gpu().sum_squares(inf.g(), 3)));
}

TEST_F(CudaTransformerOps, SumSquaresAtGpt2SizeRepeats) {
  // GPT-2 small's 124,439,808 parameters, as the gradient clipping sees them; filled on each
  // backend with the same bits (fill_uniform is identical on both).
  const size_t n = 124439808;
  if (!gpu_memory_at_least(size_t{2} << 30)) GTEST_SKIP() << "needs 2 GiB of GPU memory";
  Mirror p = zeros(n);
  cpu().fill_uniform(p.c(), n, 0.05f, 4100);
  gpu().fill_uniform(p.g(), n, 0.05f, 4100);
  check_sum_squares(p.c(), p.g(), n, "sum_squares n=124439808");
  const double first = gpu().sum_squares(p.g(), n), second = gpu().sum_squares(p.g(), n);
  EXPECT_EQ(std::memcmp(&first, &second, sizeof(double)), 0) << first << " then " << second;
}

TEST_F(CudaTransformerOps, ScaleEqualsCpuExactly) {
  // One multiply per element on both: the same bits, in place, at any offset.
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1000}, (size_t{1} << 20) + 3})
    for (const float alpha : {0.37f, 0.0f, -2.0f}) {
      std::vector<float> x = random_floats(n, 4200 + n, -3.0f, 3.0f);
      if (n > 5) x[5] = kNaN;
      Mirror p = mirror(x);
      cpu().scale(p.c(), n, alpha);
      gpu().scale(p.g(), n, alpha);
      if (n > 2) {
        cpu().scale(p.c() + 1, n - 2, alpha);
        gpu().scale(p.g() + 1, n - 2, alpha);
      }
      expect_identical(from_gpu(p), from_cpu(p),
                       "scale n=" + std::to_string(n) + " alpha=" + std::to_string(alpha));
    }
}

// ---------------------------------------------------------------- determinism

// Each op run twice on the same inputs, at GPT-2 small's sizes: the same bits every time (no
// atomics on floats; cuBLAS is deterministic on one stream).
TEST_F(CudaTransformerOps, BackwardPassesRepeatBitForBit) {
  {
    const LnCase s{2048, 768, 0};
    const LnInputs in(s, 4300);
    const size_t n = static_cast<size_t>(s.rows * s.c), rows = static_cast<size_t>(s.rows),
                 c = static_cast<size_t>(s.c);
    DeviceBuffer x = upload(gpu(), in.x), w = upload(gpu(), in.w), b = upload(gpu(), in.b),
                 dy = upload(gpu(), random_floats(n, 4301));
    DeviceBuffer y(gpu(), DataType::F32, n), mean(gpu(), DataType::F32, rows),
        rstd(gpu(), DataType::F32, rows);
    std::vector<float> runs[2][4];
    for (auto& run : runs) {
      gpu().layer_norm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(),
                               s.rows, s.c, kLnEps);
      DeviceBuffer dx(gpu(), DataType::F32, n);
      DeviceBuffer dw = upload(gpu(), random_floats(c, 4302)),
                   db = upload(gpu(), random_floats(c, 4303));
      gpu().layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), dy.data(), dx.data(),
                                dw.data(), db.data(), s.rows, s.c);
      run[0] = download(gpu(), y.data(), n);
      run[1] = download(gpu(), dx.data(), n);
      run[2] = download(gpu(), dw.data(), c);
      run[3] = download(gpu(), db.data(), c);
    }
    const char* names[] = {"layer_norm y", "layer_norm dx", "layer_norm dw", "layer_norm db"};
    for (int i = 0; i < 4; ++i) expect_same_bits(runs[0][i], runs[1][i], names[i]);
  }
  {
    const AttnCase s{2, 1024, 768, 12};
    const size_t nqkv = static_cast<size_t>(s.b * s.t * 3 * s.c),
                 nout = static_cast<size_t>(s.b * s.t * s.c),
                 natt = static_cast<size_t>(s.b * s.n_head * s.t * s.t);
    DeviceBuffer qkv = upload(gpu(), attention_inputs(s, 4310)),
                 dout = upload(gpu(), random_floats(nout, 4311));
    DeviceBuffer out(gpu(), DataType::F32, nout), att(gpu(), DataType::F32, natt),
        dqkv(gpu(), DataType::F32, nqkv);
    std::vector<float> runs[2][2];
    for (auto& run : runs) {
      gpu().attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
      gpu().attention_backward(qkv.data(), att.data(), dout.data(), dqkv.data(), s.b, s.t, s.c,
                               s.n_head);
      run[0] = download(gpu(), out.data(), nout);
      run[1] = download(gpu(), dqkv.data(), nqkv);
    }
    expect_same_bits(runs[0][0], runs[1][0], "attention out");
    expect_same_bits(runs[0][1], runs[1][1], "attention dqkv");
  }
  {
    const EmbCase s{4, 1024, 768, 50257};
    const std::vector<int32_t> idx = embedding_tokens(s, 4320);
    DeviceBuffer idx_gpu = upload(gpu(), idx),
                 dout = upload(gpu(), random_floats(static_cast<size_t>(s.b * s.t * s.c), 4321));
    const size_t nte = static_cast<size_t>(s.vocab * s.c), npe = static_cast<size_t>(s.t * s.c);
    std::vector<float> runs[2][2];
    for (auto& run : runs) {
      DeviceBuffer dwte(gpu(), DataType::F32, nte), dwpe(gpu(), DataType::F32, npe);
      gpu().embedding_backward(idx_gpu.as<int32_t>(), dout.data(), dwte.data(), dwpe.data(), s.b,
                               s.t, s.c, s.vocab);
      run[0] = download(gpu(), dwte.data(), nte);
      run[1] = download(gpu(), dwpe.data(), npe);
    }
    expect_same_bits(runs[0][0], runs[1][0], "embedding dwte");
    expect_same_bits(runs[0][1], runs[1][1], "embedding dwpe");
  }
  {
    const size_t n = 3 * 2048 * 768;
    DeviceBuffer x = upload(gpu(), gelu_inputs(n, 4330)),
                 dy = upload(gpu(), random_floats(n, 4331));
    DeviceBuffer dx(gpu(), DataType::F32, n);
    std::vector<float> runs[2];
    for (auto& run : runs) {
      gpu().gelu_backward(x.data(), dy.data(), dx.data(), static_cast<int64_t>(n));
      run = download(gpu(), dx.data(), n);
    }
    expect_same_bits(runs[0], runs[1], "gelu dx");
  }
}

}  // namespace
}  // namespace dpt::gputest
