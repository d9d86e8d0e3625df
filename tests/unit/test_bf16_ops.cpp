// Every typed op of the CPU backend with bfloat16 operands (the bf16 twin, kernels/backend.cpp)
// against a float64 reference on the same inputs: the inputs are drawn as floats and rounded to
// bf16 first, and the reference reads those bf16 values widened (exactly) to double, so that any
// difference is the op's own. The references are the double instantiations of the CPU kernels
// for LayerNorm, GELU, attention and the embeddings (checked against their written-out
// definitions in test_transformer_kernels.cpp), and a few plain lines each for the others.
//
// A bf16 output `got` of exact value `ref` is checked two ways:
//  - faithful: |got - ref| <= ulp(ref) + slack, with ulp(ref) = 2^(floor(log2 |ref|) - 7) the
//    bf16 spacing at |ref| and slack = 1e-5 * max |ref| over the tensor. The twin computes in
//    float32 and rounds once, so got is within half a bf16 ulp of the float result, which is
//    within a few float32 roundings of sums (a few 1e-7 of the tensor's magnitude) of ref; the
//    slack covers those where |ref| is small. A value rounded twice (an intermediate stored in
//    bf16 and rounded again) can be off by more than an ulp, one computed from garbage by far.
//  - sharp: at least 98% of the elements equal float_to_bf16(float(ref)), the bf16 nearest to
//    ref. float32's error is about 2^-16 of a bf16 ulp relative, so a single rounding of the
//    float result lands elsewhere only when ref lies within that distance of a midpoint between
//    two bf16 values. A missing final rounding, or an extra rounding of an intermediate, misses
//    nearest on a large share of the elements (linear with its bias added after a rounding of
//    x w^T: 28.6% of them; the test checks that this share is above 2%). Where the float32
//    result is float(ref) itself (relu, dropout, mul, add, add_bias, the embeddings' sum: one
//    correctly rounded float32 operation on exact values), 100% is required.
//  Measured: every element of every op is nearest (100% sharp), within 0.5 bf16 ulp of ref,
//  at most 0.50 of the faithful bound.
// The float32 outputs (parameter-gradient accumulators, LayerNorm's mean and rstd) are compared
// norm-wise with the reference within 1e-5, float32's rounding of short sums (measured at most
// 1.1e-7, LayerNorm's dw); accumulators start at nonzero values, to see that the op adds to
// them. The loss sum, added in double, within 1e-6 relative (measured at most 9.4e-10). Each op
// is also called with float32 tensors holding the same (bf16-exact) values: its float32 result is
// within 1e-5 of the reference too, and the bf16 result is that result rounded to nearest for at
// least 98% of the elements (measured: all of them, linear with a bias included, although its
// float32 kernel adds the bias before the GEMM's sum and the twin after it).
//
// Measured under OpenBLAS's Haswell and Sandybridge kernels (the latter with
// DPT_CPU_VECTOR=baseline) and the machine's own (Zen, an AMD EPYC with AVX2; SkylakeX cannot
// run there); the figures are recorded as test properties (--gtest_output=xml) named
// <op>_<output>_{ulps,bound,sharp,f32_agree,rel}.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/embedding.hpp"
#include "kernels/cpu/gelu.hpp"
#include "kernels/cpu/layer_norm.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

using Bits = std::vector<uint16_t>;  // a bf16 tensor's storage

constexpr float kLnEps = 1e-5f;
constexpr double kSlack = 1e-5;     // of the tensor's largest |ref|: float32's sums
constexpr double kMinSharp = 0.98;  // share of the elements that must be nearest(ref)
constexpr double kFloatTol = 1e-5;  // norm-wise relative error of float32 outputs

// Uniform in [lo, hi), rounded to bf16.
Bits random_bf16(size_t n, uint64_t seed, float lo = -2, float hi = 2) {
  Bits v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float_to_bf16(lo + (hi - lo) * uniform_float(seed, i));
  return v;
}

std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -2, float hi = 2) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * uniform_float(seed, i);
  return v;
}

std::vector<float> to_float(const Bits& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = bf16_to_float(v[i]);
  return f;
}

std::vector<double> to_double(const Bits& v) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = bf16_to_float(v[i]);
  return d;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

ConstTensorRef bf16(const Bits& v) { return ConstTensorRef(v.data(), DataType::BF16); }
TensorRef bf16(Bits& v) { return TensorRef(v.data(), DataType::BF16); }

// The spacing of bf16 values at |r| (subnormals' below 2^-126).
double bf16_ulp(double r) { return std::ldexp(1.0, std::max(std::ilogb(r), -126) - 7); }

// The CPU backend of the tests below, one for all: it reuses the twin's scratch slots across ops
// of different sizes, as a training step does. (Its destruction is checked by Bf16OpsDeathTest.)
Backend& cpu_backend() {
  static const std::unique_ptr<Backend> be = make_cpu_backend(1);
  return *be;
}

// The property names of gtest's XML output take no spaces.
void record(const std::string& what, const std::string& figure, double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g", value);
  ::testing::Test::RecordProperty(what + "_" + figure, text);
}

struct Rounding {
  size_t n = 0, sharp = 0;
  double worst_ulps = 0;   // max |got - ref| / ulp(ref)
  double worst_bound = 0;  // max |got - ref| / (ulp(ref) + slack): at most 1
  double sharp_fraction() const { return n ? static_cast<double>(sharp) / n : 0; }
  std::string describe() const {
    char text[160];
    std::snprintf(text, sizeof(text),
                  "worst %.3g ulp, %.3g of the faithful bound; %.2f%% of %zu elements nearest",
                  worst_ulps, worst_bound, 100 * sharp_fraction(), n);
    return text;
  }
};

Rounding measure(const Bits& got, const std::vector<double>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  Rounding r;
  r.n = std::min(got.size(), ref.size());
  double scale = 0;
  for (size_t i = 0; i < r.n; ++i) scale = std::max(scale, std::fabs(ref[i]));
  const double slack = kSlack * scale;
  for (size_t i = 0; i < r.n; ++i) {
    const double g = bf16_to_float(got[i]);
    double err = std::fabs(g - ref[i]);
    if (!std::isfinite(err)) err = HUGE_VAL;
    const double ulp = bf16_ulp(ref[i]);
    r.worst_ulps = std::max(r.worst_ulps, err / ulp);
    r.worst_bound = std::max(r.worst_bound, err / (ulp + slack));
    // By value: +0 and -0 are both the nearest to a zero.
    r.sharp += g == bf16_to_float(float_to_bf16(static_cast<float>(ref[i])));
  }
  return r;
}

// The faithful and sharp checks of a bf16 output (see the top of the file).
void expect_rounded(const std::string& what, const Bits& got, const std::vector<double>& ref,
                    double min_sharp = kMinSharp) {
  const Rounding r = measure(got, ref);
  EXPECT_LE(r.worst_bound, 1.0) << what << ": not faithfully rounded: " << r.describe();
  EXPECT_GE(r.sharp_fraction(), min_sharp) << what << ": not rounded once: " << r.describe();
  record(what, "ulps", r.worst_ulps);
  record(what, "bound", r.worst_bound);
  record(what, "sharp", r.sharp_fraction());
}

// The bf16 result of an op against its float32 result on the same values: the latter rounded
// to nearest, for at least `min_share` of the elements.
void expect_rounded_from(const std::string& what, const Bits& got, const std::vector<float>& f32,
                         double min_share = kMinSharp) {
  ASSERT_EQ(got.size(), f32.size());
  size_t same = 0;
  for (size_t i = 0; i < got.size(); ++i) same += got[i] == float_to_bf16(f32[i]);
  const double share = static_cast<double>(same) / got.size();
  EXPECT_GE(share, min_share) << what << ": the bf16 result is the float32 result rounded for "
                              << same << " of " << got.size() << " elements";
  record(what, "f32_agree", share);
}

// ||got - want|| / ||want||, recorded; checked against kFloatTol.
void expect_close(const std::string& what, const std::vector<float>& got,
                  const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::isfinite(got[i]) ? got[i] - want[i] : HUGE_VAL;
    diff += d * d;
    norm += want[i] * want[i];
  }
  const double rel = std::sqrt(diff / norm);
  EXPECT_LE(rel, kFloatTol) << what << ": norm-wise relative error " << rel;
  record(what, "rel", rel);
}

// ---- Linear, bias, ReLU, dropout, mul, add ---------------------------------------------------

// y[m, out] = x[m, in] w[out, in]^T (+ b[out] unless b is empty).
std::vector<double> linear_ref(const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& b, int m, int in, int out) {
  std::vector<double> y(static_cast<size_t>(m) * out);
  for (int r = 0; r < m; ++r)
    for (int o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int k = 0; k < in; ++k) s += x[r * in + k] * w[o * in + k];
      y[r * out + o] = s;
    }
  return y;
}

TEST(Bf16Ops, LinearRoundsOnceAfterTheBias) {
  Backend* const be = &cpu_backend();
  const int m = 24, in = 48, out = 40;
  const Bits x = random_bf16(m * in, 1), w = random_bf16(out * in, 2), b = random_bf16(out, 3);
  const std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b);
  const std::vector<float> xf = to_float(x), wf = to_float(w), bf = to_float(b);
  for (bool with_bias : {false, true}) {
    const std::string what = with_bias ? "linear_bias_y" : "linear_y";
    SCOPED_TRACE(what);
    const std::vector<double> ref =
        linear_ref(xd, wd, with_bias ? bd : std::vector<double>{}, m, in, out);
    Bits y(ref.size(), 0xffff);  // NaN: every element must be written
    be->linear_forward(bf16(x), bf16(w), with_bias ? bf16(b) : nullptr, bf16(y), m, in, out);
    // Sharp against nearest(x w^T + b): the bias is added in float32 before the one rounding.
    expect_rounded(what, y, ref);

    std::vector<float> yf(ref.size());
    be->linear_forward(xf.data(), wf.data(), with_bias ? bf.data() : nullptr, yf.data(), m, in,
                       out);
    expect_close(what, yf, ref);
    expect_rounded_from(what, y, yf);
  }
  // The check above can tell: adding the bias after rounding x w^T would miss nearest on far
  // more than 2% of the elements (measured 28.6%).
  const std::vector<double> prod = linear_ref(xd, wd, {}, m, in, out),
                            ref = linear_ref(xd, wd, bd, m, in, out);
  size_t differ = 0;
  for (int r = 0; r < m; ++r)
    for (int o = 0; o < out; ++o) {
      const float early = bf16_to_float(float_to_bf16(static_cast<float>(prod[r * out + o]))) +
                          static_cast<float>(bd[o]);
      differ += float_to_bf16(early) != float_to_bf16(static_cast<float>(ref[r * out + o]));
    }
  const double missed = static_cast<double>(differ) / ref.size();
  EXPECT_GT(missed, 1 - kMinSharp);
  record("linear_late_bias", "missed", missed);
}

TEST(Bf16Ops, AddBiasAddsInFloat32AndRoundsOnce) {
  Backend* const be = &cpu_backend();
  // inner 1 is a Linear's rows (the CPU kernel's separate loop), inner 10 a channel plane.
  for (int inner : {1, 10}) {
    const int outer = inner == 1 ? 24 : 4, channels = inner == 1 ? 48 : 12;
    const std::string what = "add_bias_inner" + std::to_string(inner);
    SCOPED_TRACE(what);
    const size_t n = static_cast<size_t>(outer) * channels * inner;
    const Bits y0 = random_bf16(n, 11), bias = random_bf16(channels, 12);
    std::vector<double> ref = to_double(y0);
    for (size_t i = 0; i < n; ++i) ref[i] += bf16_to_float(bias[(i / inner) % channels]);
    Bits y = y0;
    be->add_bias(bf16(y), bf16(bias), outer, channels, inner);
    expect_rounded(what, y, ref, 1.0);  // the float sum of two bf16 values is exact

    std::vector<float> yf = to_float(y0);
    const std::vector<float> biasf = to_float(bias);
    be->add_bias(yf.data(), biasf.data(), outer, channels, inner);
    expect_close(what, yf, ref);
    expect_rounded_from(what, y, yf);
  }
}

TEST(Bf16Ops, BiasGradAddsIntoFloat32) {
  Backend* const be = &cpu_backend();
  for (int inner : {1, 10}) {
    const int outer = inner == 1 ? 24 : 4, channels = inner == 1 ? 48 : 12;
    const std::string what = "bias_grad_inner" + std::to_string(inner);
    SCOPED_TRACE(what);
    const size_t n = static_cast<size_t>(outer) * channels * inner;
    const Bits dy = random_bf16(n, 21);
    const std::vector<float> dbias0 = random_floats(channels, 22);  // it adds to these
    std::vector<double> ref = to_double(dbias0);
    for (size_t i = 0; i < n; ++i) ref[(i / inner) % channels] += bf16_to_float(dy[i]);
    std::vector<float> dbias = dbias0;
    be->bias_grad(bf16(dy), dbias.data(), outer, channels, inner);
    expect_close(what, dbias, ref);

    std::vector<float> dbias_f = dbias0;
    const std::vector<float> dyf = to_float(dy);
    be->bias_grad(dyf.data(), dbias_f.data(), outer, channels, inner);
    expect_close(what + "_f32", dbias_f, ref);
  }
}

TEST(Bf16Ops, Relu) {
  Backend* const be = &cpu_backend();
  const size_t n = 24 * 48;
  const Bits x = random_bf16(n, 31), dy = random_bf16(n, 32);
  std::vector<double> y_ref(n), dx_ref(n);
  for (size_t i = 0; i < n; ++i) {
    const double v = bf16_to_float(x[i]);
    y_ref[i] = v < 0 ? 0.0 : v;
    dx_ref[i] = v > 0 ? bf16_to_float(dy[i]) : 0.0;  // x as the forward output y
  }
  Bits y(n, 0xffff), dx(n, 0xffff);
  be->relu_forward(bf16(x), bf16(y), n);
  be->relu_backward(bf16(x), bf16(dy), bf16(dx), n);
  expect_rounded("relu_y", y, y_ref, 1.0);
  expect_rounded("relu_dx", dx, dx_ref, 1.0);

  const std::vector<float> xf = to_float(x), dyf = to_float(dy);
  std::vector<float> yf(n), dxf(n);
  be->relu_forward(xf.data(), yf.data(), n);
  be->relu_backward(xf.data(), dyf.data(), dxf.data(), n);
  expect_close("relu_y", yf, y_ref);
  expect_close("relu_dx", dxf, dx_ref);
  expect_rounded_from("relu_y", y, yf);
  expect_rounded_from("relu_dx", dx, dxf);
}

TEST(Bf16Ops, DropoutRoundsTheFloatProductAndKeepsAFloat32Mask) {
  Backend* const be = &cpu_backend();
  const size_t n = 24 * 48;
  const float p = 0.25f;
  const uint64_t seed = 41;
  const Bits x = random_bf16(n, 42);
  Bits y(n, 0xffff);
  std::vector<float> mask(n, -1.0f);
  be->dropout_forward(bf16(x), bf16(y), mask.data(), n, p, seed);

  const float keep = 1.0f / (1.0f - p);
  size_t dropped = 0;
  std::vector<double> ref(n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(mask[i] == 0.0f || mask[i] == keep) << i << ": " << mask[i];
    dropped += mask[i] == 0.0f;
    // Exactly the float32 product rounded once, on every element.
    ASSERT_EQ(y[i], float_to_bf16(bf16_to_float(x[i]) * mask[i])) << i;
    ref[i] = double{bf16_to_float(x[i])} * mask[i];
  }
  // About p of n = 1152 dropped (sd 15): a mask of the wrong probability fails.
  EXPECT_NEAR(static_cast<double>(dropped) / n, p, 0.05);
  expect_rounded("dropout_y", y, ref, 1.0);

  // The float32 call draws the same mask from the same seed.
  const std::vector<float> xf = to_float(x);
  std::vector<float> yf(n), mask_f(n, -1.0f);
  be->dropout_forward(xf.data(), yf.data(), mask_f.data(), n, p, seed);
  EXPECT_EQ(mask, mask_f);
  expect_close("dropout_y", yf, ref);
  expect_rounded_from("dropout_y", y, yf);
}

TEST(Bf16Ops, MulAndAddInPlaceToo) {
  Backend* const be = &cpu_backend();
  const size_t n = 24 * 48;
  const Bits a = random_bf16(n, 51), b = random_bf16(n, 52);
  std::vector<double> prod(n), sum(n);
  for (size_t i = 0; i < n; ++i) {
    prod[i] = double{bf16_to_float(a[i])} * bf16_to_float(b[i]);
    sum[i] = double{bf16_to_float(a[i])} + bf16_to_float(b[i]);
  }
  // A product or sum of two bf16 values is exact in float32: rounded once, it is nearest.
  Bits out(n, 0xffff);
  be->mul(bf16(a), bf16(b), bf16(out), n);
  expect_rounded("mul_out", out, prod, 1.0);
  be->add(bf16(a), bf16(b), bf16(out), n);
  expect_rounded("add_out", out, sum, 1.0);
  // out may be a or b.
  Bits in_a = a;
  be->add(bf16(in_a), bf16(b), bf16(in_a), n);
  EXPECT_EQ(in_a, out) << "add into a";
  Bits in_b = b;
  be->mul(bf16(a), bf16(in_b), bf16(in_b), n);
  expect_rounded("mul_into_b", in_b, prod, 1.0);

  const std::vector<float> af = to_float(a), bf = to_float(b);
  std::vector<float> prod_f(n), sum_f(n);
  be->mul(af.data(), bf.data(), prod_f.data(), n);
  be->add(af.data(), bf.data(), sum_f.data(), n);
  expect_close("mul_out", prod_f, prod);
  expect_close("add_out", sum_f, sum);
  expect_rounded_from("mul_out", in_b, prod_f);
  expect_rounded_from("add_out", out, sum_f);
}

// ---- LayerNorm, GELU -------------------------------------------------------------------------

struct LnData {
  static constexpr int64_t rows = 24, c = 48;
  Bits x = random_bf16(rows * c, 61), w = random_bf16(c, 62), b = random_bf16(c, 63);
  // The double forward pass on the same values: the reference for y, mean and rstd.
  std::vector<double> xd = to_double(x), wd = to_double(w), bd = to_double(b), y, mean, rstd;
  LnData() : y(rows * c), mean(rows), rstd(rows) {
    layer_norm_forward(xd.data(), wd.data(), bd.data(), y.data(), mean.data(), rstd.data(), rows, c,
                       kLnEps);
  }
};

TEST(Bf16Ops, LayerNormForward) {
  Backend* const be = &cpu_backend();
  const LnData d;
  Bits y(d.y.size(), 0xffff);
  std::vector<float> mean(d.rows), rstd(d.rows);
  be->layer_norm_forward(bf16(d.x), bf16(d.w), bf16(d.b), bf16(y), mean.data(), rstd.data(), d.rows,
                         d.c, kLnEps);
  expect_rounded("layer_norm_y", y, d.y);
  expect_close("layer_norm_mean", mean, d.mean);
  expect_close("layer_norm_rstd", rstd, d.rstd);

  const std::vector<float> xf = to_float(d.x), wf = to_float(d.w), bf = to_float(d.b);
  std::vector<float> yf(d.y.size()), mean_f(d.rows), rstd_f(d.rows);
  be->layer_norm_forward(xf.data(), wf.data(), bf.data(), yf.data(), mean_f.data(), rstd_f.data(),
                         d.rows, d.c, kLnEps);
  expect_close("layer_norm_y", yf, d.y);
  expect_close("layer_norm_mean_f32", mean_f, d.mean);
  expect_close("layer_norm_rstd_f32", rstd_f, d.rstd);
  expect_rounded_from("layer_norm_y", y, yf);
}

TEST(Bf16Ops, LayerNormBackward) {
  Backend* const be = &cpu_backend();
  const LnData d;
  const Bits dy = random_bf16(d.y.size(), 64);
  // The statistics the bf16 forward pass saved (float32), for both calls below; the reference
  // uses its own double ones.
  Bits y(d.y.size());
  std::vector<float> mean(d.rows), rstd(d.rows);
  be->layer_norm_forward(bf16(d.x), bf16(d.w), bf16(d.b), bf16(y), mean.data(), rstd.data(), d.rows,
                         d.c, kLnEps);
  const std::vector<float> dw0 = random_floats(d.c, 65), db0 = random_floats(d.c, 66);
  const std::vector<double> dyd = to_double(dy);
  std::vector<double> dx_ref(d.y.size()), dw_ref = to_double(dw0), db_ref = to_double(db0);
  layer_norm_backward(d.xd.data(), d.wd.data(), d.mean.data(), d.rstd.data(), dyd.data(),
                      dx_ref.data(), dw_ref.data(), db_ref.data(), d.rows, d.c);

  Bits dx(d.y.size(), 0xffff);
  std::vector<float> dw = dw0, db = db0;
  be->layer_norm_backward(bf16(d.x), bf16(d.w), mean.data(), rstd.data(), bf16(dy), bf16(dx),
                          dw.data(), db.data(), d.rows, d.c);
  expect_rounded("layer_norm_dx", dx, dx_ref);
  expect_close("layer_norm_dw", dw, dw_ref);
  expect_close("layer_norm_db", db, db_ref);

  const std::vector<float> xf = to_float(d.x), wf = to_float(d.w), dyf = to_float(dy);
  std::vector<float> dxf(d.y.size()), dw_f = dw0, db_f = db0;
  be->layer_norm_backward(xf.data(), wf.data(), mean.data(), rstd.data(), dyf.data(), dxf.data(),
                          dw_f.data(), db_f.data(), d.rows, d.c);
  expect_close("layer_norm_dx", dxf, dx_ref);
  expect_close("layer_norm_dw_f32", dw_f, dw_ref);
  expect_close("layer_norm_db_f32", db_f, db_ref);
  expect_rounded_from("layer_norm_dx", dx, dxf);
}

TEST(Bf16Ops, Gelu) {
  Backend* const be = &cpu_backend();
  const int64_t n = 24 * 48;
  const Bits x = random_bf16(n, 71), dy = random_bf16(n, 72);
  const std::vector<double> xd = to_double(x), dyd = to_double(dy);
  std::vector<double> y_ref(n), dx_ref(n);
  gelu_forward(xd.data(), y_ref.data(), n);
  gelu_backward(xd.data(), dyd.data(), dx_ref.data(), n);

  Bits y(n, 0xffff), dx(n, 0xffff);
  be->gelu_forward(bf16(x), bf16(y), n);
  be->gelu_backward(bf16(x), bf16(dy), bf16(dx), n);
  expect_rounded("gelu_y", y, y_ref);
  expect_rounded("gelu_dx", dx, dx_ref);

  const std::vector<float> xf = to_float(x), dyf = to_float(dy);
  std::vector<float> yf(n), dxf(n);
  be->gelu_forward(xf.data(), yf.data(), n);
  be->gelu_backward(xf.data(), dyf.data(), dxf.data(), n);
  expect_close("gelu_y", yf, y_ref);
  expect_close("gelu_dx", dxf, dx_ref);
  expect_rounded_from("gelu_y", y, yf);
  expect_rounded_from("gelu_dx", dx, dxf);
}

// ---- Attention, embeddings -------------------------------------------------------------------

struct AttnData {
  static constexpr int64_t b = 2, t = 16, c = 32, n_head = 4;
  static constexpr size_t qkv_n = b * t * 3 * c, out_n = b * t * c, att_n = b * n_head * t * t;
  // test_transformer_kernels.cpp's inputs: uniform in [-1, 1).
  Bits qkv = random_bf16(qkv_n, 81, -1, 1);
  std::vector<double> qkvd = to_double(qkv);
};

// The bf16 attention rounds the probabilities before they multiply v and the score gradients
// before they multiply k and q (kernels/cpu/attention.hpp). The reference rounds at the same
// points (the double kernel with round_bf16, which rounds through float: a double rounding that
// can move a value one bf16 step only where it lies within 2^-24 relative of a midpoint), so
// that the checks stay sharp: a missing or extra rounding elsewhere still shows.
TEST(Bf16Ops, AttentionForward) {
  Backend* const be = &cpu_backend();
  const AttnData d;
  std::vector<double> out_ref(d.out_n), att_ref(d.att_n);
  attention_forward(d.qkvd.data(), out_ref.data(), att_ref.data(), d.b, d.t, d.c, d.n_head, true);

  Bits out(d.out_n, 0xffff), att(d.att_n, 0xffff);
  be->attention_forward(bf16(d.qkv), bf16(out), bf16(att), d.b, d.t, d.c, d.n_head);
  expect_rounded("attention_att", att, att_ref);
  expect_rounded("attention_out", out, out_ref);
  // The future's probabilities are exactly zero.
  for (int64_t row = 0; row < d.b * d.n_head * d.t; ++row)
    for (int64_t j = row % d.t + 1; j < d.t; ++j) ASSERT_EQ(att[row * d.t + j], 0) << row;

  // In float32 nothing is rounded: against the reference without the rounding points.
  std::vector<double> out_exact(d.out_n), att_exact(d.att_n);
  attention_forward(d.qkvd.data(), out_exact.data(), att_exact.data(), d.b, d.t, d.c, d.n_head);
  const std::vector<float> qkvf = to_float(d.qkv);
  std::vector<float> outf(d.out_n), attf(d.att_n);
  be->attention_forward(qkvf.data(), outf.data(), attf.data(), d.b, d.t, d.c, d.n_head);
  expect_close("attention_att", attf, att_exact);
  expect_close("attention_out", outf, out_exact);
  expect_rounded_from("attention_att", att, attf);
  // Rounding the probabilities moves out by a fraction of a bf16 step: out is then often not the
  // nearest bf16 to the exact out of unrounded probabilities (a check that the rounding is there).
  const Rounding unrounded = measure(out, out_exact);
  record("attention_out_unrounded", "sharp", unrounded.sharp_fraction());
  EXPECT_LT(unrounded.sharp_fraction(), 0.9)
      << "out looks computed from unrounded probabilities: " << unrounded.describe();
}

TEST(Bf16Ops, AttentionBackward) {
  Backend* const be = &cpu_backend();
  const AttnData d;
  // The saved bf16 probabilities of the forward pass are an input like the others: the
  // reference reads the same rounded values.
  Bits out(d.out_n), att(d.att_n);
  be->attention_forward(bf16(d.qkv), bf16(out), bf16(att), d.b, d.t, d.c, d.n_head);
  const Bits dout = random_bf16(d.out_n, 82, -1, 1);
  const std::vector<double> attd = to_double(att), doutd = to_double(dout);
  std::vector<double> dqkv_ref(d.qkv_n), scratch(d.t * d.t);
  attention_backward(d.qkvd.data(), attd.data(), doutd.data(), dqkv_ref.data(), scratch.data(), d.b,
                     d.t, d.c, d.n_head, true);

  Bits dqkv(d.qkv_n, 0xffff);
  be->attention_backward(bf16(d.qkv), bf16(att), bf16(dout), bf16(dqkv), d.b, d.t, d.c, d.n_head);
  expect_rounded("attention_dqkv", dqkv, dqkv_ref);

  std::vector<double> dqkv_exact(d.qkv_n);
  attention_backward(d.qkvd.data(), attd.data(), doutd.data(), dqkv_exact.data(), scratch.data(),
                     d.b, d.t, d.c, d.n_head);
  const std::vector<float> qkvf = to_float(d.qkv), attf = to_float(att), doutf = to_float(dout);
  std::vector<float> dqkvf(d.qkv_n);
  be->attention_backward(qkvf.data(), attf.data(), doutf.data(), dqkvf.data(), d.b, d.t, d.c,
                         d.n_head);
  expect_close("attention_dqkv", dqkvf, dqkv_exact);
  // As in forward: the rounded score gradients move dq and dk (two thirds of dqkv; dv does not
  // use them) off the nearest bf16 of the unrounded result.
  const Rounding unrounded = measure(dqkv, dqkv_exact);
  record("attention_dqkv_unrounded", "sharp", unrounded.sharp_fraction());
  EXPECT_LT(unrounded.sharp_fraction(), 0.9)
      << "dqkv looks computed from unrounded score gradients: " << unrounded.describe();
}

TEST(Bf16Ops, Embedding) {
  Backend* const be = &cpu_backend();
  const int64_t b = 2, t = 16, c = 32, vocab = 37;
  std::vector<int32_t> idx(b * t);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(random_u64(91, i) % vocab);
  idx[5] = idx[20] = idx[3];  // a token used three times: its gradient row sums
  const Bits wte = random_bf16(vocab * c, 92), wpe = random_bf16(t * c, 93),
             dout = random_bf16(b * t * c, 94);
  const std::vector<double> wted = to_double(wte), wped = to_double(wpe), doutd = to_double(dout);
  std::vector<double> out_ref(b * t * c);
  embedding_forward(idx.data(), wted.data(), wped.data(), out_ref.data(), b, t, c, vocab);
  const std::vector<float> dwte0 = random_floats(vocab * c, 95), dwpe0 = random_floats(t * c, 96);
  std::vector<double> dwte_ref = to_double(dwte0), dwpe_ref = to_double(dwpe0);
  embedding_backward(idx.data(), doutd.data(), dwte_ref.data(), dwpe_ref.data(), b, t, c, vocab);

  Bits out(b * t * c, 0xffff);
  be->embedding_forward(idx.data(), bf16(wte), bf16(wpe), bf16(out), b, t, c, vocab);
  expect_rounded("embedding_out", out, out_ref, 1.0);  // the float sum of two bf16 is exact
  std::vector<float> dwte = dwte0, dwpe = dwpe0;
  be->embedding_backward(idx.data(), bf16(dout), dwte.data(), dwpe.data(), b, t, c, vocab);
  expect_close("embedding_dwte", dwte, dwte_ref);
  expect_close("embedding_dwpe", dwpe, dwpe_ref);

  const std::vector<float> wtef = to_float(wte), wpef = to_float(wpe), doutf = to_float(dout);
  std::vector<float> outf(b * t * c), dwte_f = dwte0, dwpe_f = dwpe0;
  be->embedding_forward(idx.data(), wtef.data(), wpef.data(), outf.data(), b, t, c, vocab);
  be->embedding_backward(idx.data(), doutf.data(), dwte_f.data(), dwpe_f.data(), b, t, c, vocab);
  expect_close("embedding_out", outf, out_ref);
  expect_close("embedding_dwte_f32", dwte_f, dwte_ref);
  expect_close("embedding_dwpe_f32", dwpe_f, dwpe_ref);
  expect_rounded_from("embedding_out", out, outf);
}

// ---- Softmax cross-entropy -------------------------------------------------------------------

TEST(Bf16Ops, SoftmaxCrossEntropy) {
  Backend* const be = &cpu_backend();
  const int rows = 40, classes = 57;
  const int32_t ignore = -100;
  const Bits logits = random_bf16(static_cast<size_t>(rows) * classes, 101);
  std::vector<int32_t> targets(rows);
  for (int i = 0; i < rows; ++i)
    targets[i] = i % 7 == 3 ? ignore : static_cast<int32_t>(random_u64(102, i) % classes);
  targets[10] = classes;  // no class: counted as invalid, its gradient zero too
  // A row whose target is its arg-max, so that `correct` counts something.
  int arg9 = 0;
  for (int c = 1; c < classes; ++c)
    if (bf16_to_float(logits[9 * classes + c]) > bf16_to_float(logits[9 * classes + arg9]))
      arg9 = c;
  targets[9] = arg9;
  const float grad_scale = 1.0f / 29;

  // Reference: log-sum-exp and softmax in double; the arg-max is the first maximum.
  const std::vector<double> ld = to_double(logits);
  std::vector<double> dref(ld.size(), 0.0);
  double loss_ref = 0;
  int64_t count = 0, correct = 0, invalid = 0;
  for (int i = 0; i < rows; ++i) {
    const int32_t label = targets[i];
    if (label == ignore || label < 0 || label >= classes) {
      invalid += label != ignore;
      continue;
    }
    const double* row = ld.data() + static_cast<size_t>(i) * classes;
    int arg = 0;
    for (int c = 1; c < classes; ++c)
      if (row[c] > row[arg]) arg = c;
    double sum = 0;
    for (int c = 0; c < classes; ++c) sum += std::exp(row[c] - row[arg]);
    loss_ref += std::log(sum) - (row[label] - row[arg]);
    ++count;
    correct += arg == label;
    for (int c = 0; c < classes; ++c)
      dref[static_cast<size_t>(i) * classes + c] =
          (std::exp(row[c] - row[arg]) / sum - (c == label)) * grad_scale;
  }
  ASSERT_EQ(invalid, 1);
  ASSERT_GE(correct, 1);

  Bits dlogits(ld.size(), 0xffff);
  const LossResult r = be->softmax_cross_entropy(bf16(logits), targets.data(), rows, classes,
                                                 classes, ignore, grad_scale, bf16(dlogits));
  EXPECT_EQ(r.count, count);
  EXPECT_EQ(r.correct, correct);
  EXPECT_EQ(r.invalid, invalid);
  const double loss_rel = std::fabs(r.loss_sum - loss_ref) / loss_ref;
  EXPECT_LE(loss_rel, 1e-6) << r.loss_sum << " against " << loss_ref;  // measured 9.4e-10
  record("softmax_ce_loss", "rel", loss_rel);
  expect_rounded("softmax_ce_dlogits", dlogits, dref);
  // The rows not counted: exactly (+)zero.
  for (int i = 0; i < rows; ++i) {
    if (targets[i] != ignore && targets[i] != classes) continue;
    for (int c = 0; c < classes; ++c)
      ASSERT_EQ(dlogits[static_cast<size_t>(i) * classes + c], 0) << "row " << i;
  }

  const std::vector<float> lf = to_float(logits);
  std::vector<float> dlf(ld.size(), -1.0f);
  const LossResult rf = be->softmax_cross_entropy(lf.data(), targets.data(), rows, classes, classes,
                                                  ignore, grad_scale, dlf.data());
  EXPECT_EQ(rf.count, count);
  EXPECT_EQ(rf.correct, correct);
  EXPECT_LE(std::fabs(rf.loss_sum - loss_ref) / loss_ref, 1e-6);
  expect_close("softmax_ce_dlogits", dlf, dref);
  expect_rounded_from("softmax_ce_dlogits", dlogits, dlf);
}

// ---- Types the twin does not take ------------------------------------------------------------

TEST(Bf16Ops, OtherTypesAreRefused) {
  // The twin takes float32 and bfloat16 operands; anything else is a SystemError (naming the
  // op and the type), thrown before an output is written.
  Backend* const be = &cpu_backend();
  const size_t n = 8;
  const Bits a = random_bf16(n, 111);
  std::vector<int32_t> ints(n, 7);
  std::vector<double> doubles(n, 1.0);
  Bits out(n, 0x1234);
  EXPECT_THROW(be->add(ConstTensorRef(ints.data(), DataType::I32), bf16(a), bf16(out), n),
               SystemError);
  EXPECT_THROW(be->add(bf16(a), bf16(a), TensorRef(ints.data(), DataType::I32), n), SystemError);
  EXPECT_THROW(be->mul(bf16(a), ConstTensorRef(doubles.data(), DataType::F64), bf16(out), n),
               SystemError);
  EXPECT_EQ(out, Bits(n, 0x1234));
  EXPECT_EQ(ints, std::vector<int32_t>(n, 7));
  try {
    be->add(ConstTensorRef(ints.data(), DataType::I32), bf16(a), bf16(out), n);
    FAIL() << "no error";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find("add of int32"), std::string::npos) << e.what();
  }
}

// ---- The backend's end -----------------------------------------------------------------------

TEST(Bf16OpsDeathTest, ABackendThatRanTheTwinIsDestroyedCleanly) {
  // The twin keeps its float32 scratch (DeviceBuffers in the CPU device's memory) in Backend, so
  // destroying the backend must free it through the device while the device still is one. In a
  // child process: exits 0 when the op gave the right sum and the destructor returned.
  // The child runs the test alone in a fresh process ("threadsafe"): this one has OpenBLAS's
  // threads.
  const std::string style = GTEST_FLAG_GET(death_test_style);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto be = make_cpu_backend(1);
        const Bits a = random_bf16(8, 121);
        Bits out(8);
        be->add(bf16(a), bf16(a), bf16(out), 8);
        be.reset();
        std::exit(out[3] == float_to_bf16(2 * bf16_to_float(a[3])) ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  GTEST_FLAG_SET(death_test_style, style);
}

}  // namespace
}  // namespace dpt
