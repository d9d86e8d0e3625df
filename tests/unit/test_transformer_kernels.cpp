// The CPU kernels of a GPT-2 block (LayerNorm, GELU, causal self-attention, embeddings) against
// their definitions written out plainly in double, and every backward pass against central
// finite differences.
//
// Forward: the float kernels against the double definitions with a bound set by float rounding
// (stated with each test), and the double kernels against the same definitions to within double
// rounding, which checks the formulas sharply.
//
// Backward: the gradient checks run in double, on L = sum(r * y) for a fixed random r, with step
// h = 1e-5. Central differences are off by h^2/6 * L''' (about 1e-10 here, inputs and r being
// O(1)) plus the rounding of L over 2h (a few 1e-16 of the sum of |r * y|, below 1e3 here,
// over 2e-5: about 1e-8 at most), so an error |analytic - fd| / max(1, |fd|) above 1e-7 is a
// wrong gradient, not noise; a missing term is off by 1e-2 or more (measured: at most 1.6e-9,
// attention at t = 64). The float backward passes are then compared with the double ones,
// norm-wise (a float sum over k terms is off by about sqrt(k) * 6e-8 relative, whatever OpenBLAS
// kernel adds them), within 1e-5; measured 7e-8 to 2.3e-7 under OpenBLAS's SkylakeX, Haswell and
// Sandybridge kernels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/attention.hpp"
#include "kernels/cpu/embedding.hpp"
#include "kernels/cpu/gelu.hpp"
#include "kernels/cpu/layer_norm.hpp"
#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

constexpr float kLnEps = 1e-5f;
constexpr double kStep = 1e-5;         // finite-difference step, see above
constexpr double kFdTolerance = 1e-7;  // finite differences in double, see above

// Uniform in [lo, hi), as floats so that the float kernels and the double ones see equal inputs.
std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1, float hi = 1) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * uniform_float(seed, i);
  return v;
}

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// max over i of |got - want| / max(1, |want|): absolute for small values, relative for large.
template <typename T>
double worst_error(const std::vector<T>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double worst = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    if (!std::isfinite(g)) return std::numeric_limits<double>::infinity();
    worst = std::max(worst, std::fabs(g - want[i]) / std::max(1.0, std::fabs(want[i])));
  }
  return worst;
}

// ||got - want|| / ||want||.
double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  return std::sqrt(diff / norm);
}

// The worst error (as worst_error) of `analytic` against central differences of loss() in the
// elements of `param`: all of them, or `samples` of them drawn from `seed`.
double finite_difference_error(std::vector<double>& param, const std::function<double()>& loss,
                               const std::vector<double>& analytic, size_t samples = 0,
                               uint64_t seed = 0) {
  EXPECT_EQ(param.size(), analytic.size());
  std::vector<size_t> at;
  if (samples == 0 || samples >= param.size()) {
    for (size_t i = 0; i < param.size(); ++i) at.push_back(i);
  } else {
    for (size_t s = 0; s < samples; ++s) at.push_back(random_u64(seed, s) % param.size());
  }
  std::vector<double> fd, want;
  for (size_t i : at) {
    const double saved = param[i];
    param[i] = saved + kStep;
    const double plus = loss();
    param[i] = saved - kStep;
    const double minus = loss();
    param[i] = saved;
    fd.push_back((plus - minus) / (2 * kStep));
    want.push_back(analytic[i]);
  }
  return worst_error(want, fd);
}

// ---- LayerNorm -------------------------------------------------------------------------------

std::vector<double> layer_norm_definition(const std::vector<double>& x,
                                          const std::vector<double>& w,
                                          const std::vector<double>& b, int64_t rows, int64_t c) {
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < c; ++i) mean += x[r * c + i];
    mean /= c;
    for (int64_t i = 0; i < c; ++i) var += (x[r * c + i] - mean) * (x[r * c + i] - mean);
    var /= c;
    for (int64_t i = 0; i < c; ++i)
      y[r * c + i] = (x[r * c + i] - mean) / std::sqrt(var + double{kLnEps}) * w[i] + b[i];
  }
  return y;
}

struct LnCase {
  int64_t rows, c;
  float offset;  // added to every input: rows far from zero mean test the two-pass variance
};

// x in [-1, 1) + offset, w in [0.5, 1.5), b in [-0.5, 0.5).
struct LnInputs {
  std::vector<float> x, w, b;
  LnInputs(const LnCase& s, uint64_t seed)
      : x(random_floats(s.rows * s.c, seed)),
        w(random_floats(s.c, seed + 1, 0.5f, 1.5f)),
        b(random_floats(s.c, seed + 2, -0.5f, 0.5f)) {
    for (float& v : x) v += s.offset;
  }
};

TEST(LayerNormKernel, ForwardMatchesTheDefinition) {
  // Float: the deviations x - mean carry the mean's rounding error, a few ulp of |x| (6e-8 at
  // |x| ~ 1, 1e-6 at |x| ~ 8), against deviations of O(1); rstd (about 1.7: the rows' standard
  // deviation is about 0.58) and w (< 1.5) scale it by up to 2.6. Bounds 1e-6, and 4e-6 with the
  // offset of 8; measured 1.3e-7, 2.8e-7 and 1.5e-6. E[x^2] - mean^2 fails the offset case
  // (64 * 6e-8 of 0.33 is lost to cancellation).
  for (const LnCase& s : {LnCase{10, 8, 0}, LnCase{128, 64, 0}, LnCase{16, 64, 8}}) {
    SCOPED_TRACE("rows " + std::to_string(s.rows) + ", c " + std::to_string(s.c) + ", offset " +
                 std::to_string(s.offset));
    const LnInputs in(s, 11);
    const std::vector<double> want =
        layer_norm_definition(to_double(in.x), to_double(in.w), to_double(in.b), s.rows, s.c);

    std::vector<float> y(in.x.size()), mean(s.rows), rstd(s.rows);
    layer_norm_forward(in.x.data(), in.w.data(), in.b.data(), y.data(), mean.data(), rstd.data(),
                       s.rows, s.c, kLnEps);
    EXPECT_LE(worst_error(y, want), s.offset == 0 ? 1e-6 : 4e-6);

    const std::vector<double> x = to_double(in.x), w = to_double(in.w), b = to_double(in.b);
    std::vector<double> yd(x.size()), meand(s.rows), rstdd(s.rows);
    layer_norm_forward(x.data(), w.data(), b.data(), yd.data(), meand.data(), rstdd.data(), s.rows,
                       s.c, kLnEps);
    EXPECT_LE(worst_error(yd, want), 1e-13);
    // The saved statistics are those of the rows.
    for (int64_t r = 0; r < s.rows; ++r) {
      double m = 0, var = 0;
      for (int64_t i = 0; i < s.c; ++i) m += x[r * s.c + i];
      m /= s.c;
      for (int64_t i = 0; i < s.c; ++i) var += (x[r * s.c + i] - m) * (x[r * s.c + i] - m);
      const double rs = 1 / std::sqrt(var / s.c + double{kLnEps});
      EXPECT_NEAR(meand[r], m, 1e-13);
      EXPECT_NEAR(rstdd[r], rs, 1e-13);
      EXPECT_NEAR(mean[r], m, 1e-6 * (1 + s.offset));
      EXPECT_NEAR(rstd[r], rs, 4e-6 * rs);
    }
  }
}

TEST(LayerNormKernel, BackwardMatchesFiniteDifferences) {
  const LnCase s{10, 8, 0};
  const LnInputs in(s, 21);
  std::vector<double> x = to_double(in.x), w = to_double(in.w), b = to_double(in.b);
  const std::vector<double> r = to_double(random_floats(x.size(), 22));
  std::vector<double> y(x.size()), mean(s.rows), rstd(s.rows);
  auto loss = [&] {
    layer_norm_forward(x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), s.rows,
                       s.c, kLnEps);
    return dot(r, y);
  };
  loss();
  // dw and db start from values already there: backward adds to them.
  const std::vector<double> dw0 = to_double(random_floats(s.c, 23)),
                            db0 = to_double(random_floats(s.c, 24));
  std::vector<double> dx(x.size()), dw = dw0, db = db0;
  layer_norm_backward(x.data(), w.data(), mean.data(), rstd.data(), r.data(), dx.data(), dw.data(),
                      db.data(), s.rows, s.c);
  for (int64_t i = 0; i < s.c; ++i) {
    dw[i] -= dw0[i];
    db[i] -= db0[i];
  }
  EXPECT_LE(finite_difference_error(x, loss, dx), kFdTolerance) << "dx";
  EXPECT_LE(finite_difference_error(w, loss, dw), kFdTolerance) << "dw";
  EXPECT_LE(finite_difference_error(b, loss, db), kFdTolerance) << "db";
}

TEST(LayerNormKernel, FloatBackwardMatchesDouble) {
  const LnCase s{128, 64, 0};
  const LnInputs in(s, 31);
  const std::vector<float> r = random_floats(in.x.size(), 32);
  std::vector<float> y(in.x.size()), mean(s.rows), rstd(s.rows), dx(in.x.size()), dw(s.c, 0.0f),
      db(s.c, 0.0f);
  layer_norm_forward(in.x.data(), in.w.data(), in.b.data(), y.data(), mean.data(), rstd.data(),
                     s.rows, s.c, kLnEps);
  layer_norm_backward(in.x.data(), in.w.data(), mean.data(), rstd.data(), r.data(), dx.data(),
                      dw.data(), db.data(), s.rows, s.c);

  const std::vector<double> x = to_double(in.x), w = to_double(in.w), b = to_double(in.b),
                            rd = to_double(r);
  std::vector<double> yd(x.size()), meand(s.rows), rstdd(s.rows), dxd(x.size()), dwd(s.c, 0.0),
      dbd(s.c, 0.0);
  layer_norm_forward(x.data(), w.data(), b.data(), yd.data(), meand.data(), rstdd.data(), s.rows,
                     s.c, kLnEps);
  layer_norm_backward(x.data(), w.data(), meand.data(), rstdd.data(), rd.data(), dxd.data(),
                      dwd.data(), dbd.data(), s.rows, s.c);
  EXPECT_LE(relative_error(dx, dxd), 1e-5) << "dx";
  EXPECT_LE(relative_error(dw, dwd), 1e-5) << "dw";
  EXPECT_LE(relative_error(db, dbd), 1e-5) << "db";
}

// ---- GELU ------------------------------------------------------------------------------------

double gelu_definition(double x) {
  const double pi = std::acos(-1.0);
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715 * x * x * x)));
}

// Mostly [-5, 5), and values where tanh saturates, and zero.
std::vector<float> gelu_inputs(size_t n, uint64_t seed) {
  std::vector<float> x = random_floats(n, seed, -5, 5);
  const float special[] = {0.0f, -0.0f, 12.0f, -12.0f, 1e-4f, -1e-4f};
  std::copy(std::begin(special), std::end(special), x.begin());
  return x;
}

TEST(GeluKernel, ForwardMatchesTheDefinition) {
  // Float: a few roundings of O(1) values and the kernel's own tanh (from vector_math.hpp's exp,
  // within about 2e-7 absolute): measured 1.6e-7 over a dense sweep of [-12, 12].
  const std::vector<float> xf = gelu_inputs(1000, 41);
  std::vector<double> want(xf.size());
  for (size_t i = 0; i < xf.size(); ++i) want[i] = gelu_definition(xf[i]);
  std::vector<float> y(xf.size());
  gelu_forward(xf.data(), y.data(), static_cast<int64_t>(xf.size()));
  EXPECT_LE(worst_error(y, want), 1e-6);

  const std::vector<double> x = to_double(xf);
  std::vector<double> yd(x.size());
  gelu_forward(x.data(), yd.data(), static_cast<int64_t>(x.size()));
  EXPECT_LE(worst_error(yd, want), 1e-14);
  // Known values, independent of the definition above: GELU(0) = 0, and at 1 the value of
  // 0.5 * (1 + tanh(sqrt(2 / pi) * 1.044715)) as Python's math module computes it.
  EXPECT_EQ(yd[0], 0.0);
  const double one = 1.0;
  double gelu_one = 0;
  gelu_forward(&one, &gelu_one, 1);
  EXPECT_NEAR(gelu_one, 0.8411919906082768, 1e-15);
}

TEST(GeluKernel, BackwardMatchesFiniteDifferences) {
  std::vector<double> x = to_double(gelu_inputs(200, 51));
  const std::vector<double> r = to_double(random_floats(x.size(), 52));
  std::vector<double> y(x.size()), dx(x.size());
  const auto n = static_cast<int64_t>(x.size());
  auto loss = [&] {
    gelu_forward(x.data(), y.data(), n);
    return dot(r, y);
  };
  gelu_backward(x.data(), r.data(), dx.data(), n);
  EXPECT_LE(finite_difference_error(x, loss, dx), kFdTolerance);
}

TEST(GeluKernel, FloatBackwardMatchesDouble) {
  const std::vector<float> x = gelu_inputs(1000, 61), r = random_floats(x.size(), 62);
  const auto n = static_cast<int64_t>(x.size());
  std::vector<float> dx(x.size());
  gelu_backward(x.data(), r.data(), dx.data(), n);
  const std::vector<double> xd = to_double(x), rd = to_double(r);
  std::vector<double> dxd(x.size());
  gelu_backward(xd.data(), rd.data(), dxd.data(), n);
  EXPECT_LE(relative_error(dx, dxd), 1e-6);
}

// ---- Causal self-attention -------------------------------------------------------------------

struct AttnShape {
  int64_t b, t, c, n_head;
  std::string name() const {
    return "b " + std::to_string(b) + ", t " + std::to_string(t) + ", c " + std::to_string(c) +
           ", heads " + std::to_string(n_head);
  }
};

const AttnShape kSmall{2, 5, 8, 2};
const AttnShape kLarge{2, 64, 64, 4};

struct AttnDefinition {
  std::vector<double> out, att;
};

// Per batch row, head and query position i: scores against every position j, with the future
// (j > i) masked to -inf, softmax, then the probability-weighted sum of the values.
AttnDefinition attention_definition(const std::vector<double>& qkv, const AttnShape& s) {
  const int64_t hs = s.c / s.n_head;
  AttnDefinition d;
  d.out.assign(s.b * s.t * s.c, 0.0);
  d.att.assign(s.b * s.n_head * s.t * s.t, 0.0);
  auto q = [&](int64_t bi, int64_t ti, int64_t h, int64_t e) {
    return qkv[(bi * s.t + ti) * 3 * s.c + h * hs + e];
  };
  auto k = [&](int64_t bi, int64_t ti, int64_t h, int64_t e) { return q(bi, ti, h, e + s.c); };
  auto v = [&](int64_t bi, int64_t ti, int64_t h, int64_t e) { return q(bi, ti, h, e + 2 * s.c); };
  for (int64_t bi = 0; bi < s.b; ++bi)
    for (int64_t h = 0; h < s.n_head; ++h)
      for (int64_t i = 0; i < s.t; ++i) {
        std::vector<double> score(s.t);
        for (int64_t j = 0; j < s.t; ++j) {
          if (j > i) {
            score[j] = -std::numeric_limits<double>::infinity();
            continue;
          }
          double sum = 0;
          for (int64_t e = 0; e < hs; ++e) sum += q(bi, i, h, e) * k(bi, j, h, e);
          score[j] = sum / std::sqrt(static_cast<double>(hs));
        }
        const double mx = *std::max_element(score.begin(), score.end());
        double total = 0;
        for (double& sc : score) total += (sc = std::exp(sc - mx));
        for (int64_t j = 0; j < s.t; ++j) {
          const double p = score[j] / total;
          d.att[((bi * s.n_head + h) * s.t + i) * s.t + j] = p;
          for (int64_t e = 0; e < hs; ++e)
            d.out[(bi * s.t + i) * s.c + h * hs + e] += p * v(bi, j, h, e);
        }
      }
  return d;
}

std::vector<float> attention_inputs(const AttnShape& s, uint64_t seed) {
  return random_floats(s.b * s.t * 3 * s.c, seed);
}

TEST(AttentionKernel, ForwardMatchesTheDefinition) {
  // Float: a score is a float dot product of hs O(1) terms, off by about sqrt(hs) * 6e-8, exp
  // and the normalising sum over at most t terms add a few 6e-8 relative each, and the output
  // sums t products: a few 1e-7 at most. Measured below 1.1e-7 for out and att under the
  // SkylakeX, Haswell and Sandybridge kernels.
  for (const AttnShape& s : {kSmall, kLarge}) {
    SCOPED_TRACE(s.name());
    const std::vector<float> qkv = attention_inputs(s, 71);
    const AttnDefinition want = attention_definition(to_double(qkv), s);

    std::vector<float> out(want.out.size()), att(want.att.size(), -1.0f);
    attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
    EXPECT_LE(worst_error(out, want.out), 2e-6) << "out";
    EXPECT_LE(worst_error(att, want.att), 2e-6) << "att";

    const std::vector<double> qkvd = to_double(qkv);
    std::vector<double> outd(want.out.size()), attd(want.att.size(), -1.0);
    attention_forward(qkvd.data(), outd.data(), attd.data(), s.b, s.t, s.c, s.n_head);
    EXPECT_LE(worst_error(outd, want.out), 1e-13) << "out";
    EXPECT_LE(worst_error(attd, want.att), 1e-13) << "att";
    // The future's probabilities are exactly zero, not merely small.
    for (int64_t row = 0; row < s.b * s.n_head * s.t; ++row)
      for (int64_t j = row % s.t + 1; j < s.t; ++j) ASSERT_EQ(att[row * s.t + j], 0.0f);
  }
}

TEST(AttentionKernel, SoftmaxIsSafeFromLargeScores) {
  // Scores above 88 overflow a float exp unless the row maximum is subtracted first, and a masked
  // score far above the visible ones must not be taken for that maximum (every visible exp would
  // underflow to 0, and 0 / 0 is NaN). Queries are in [5, 20), keys in [-10, 10) (visible scores
  // up to 400 in size), and the last position's key is 100 everywhere: every earlier row has a
  // masked score between 1000 and 4000.
  const AttnShape s{2, 6, 8, 2};
  std::vector<float> qkv = attention_inputs(s, 81);
  for (int64_t p = 0; p < s.b * s.t; ++p)
    for (int64_t e = 0; e < s.c; ++e) {
      float* row = qkv.data() + p * 3 * s.c;
      row[e] = 10.0f * (1.5f + 0.5f * row[e]);  // q in [5, 20)
      row[s.c + e] = (p % s.t == s.t - 1) ? 100.0f : 10.0f * row[s.c + e];
    }
  const AttnDefinition want = attention_definition(to_double(qkv), s);
  std::vector<float> out(want.out.size()), att(want.att.size());
  attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
  // Visible float scores reach 400, off by up to about 5e-5 (relative 6e-8 twice); that moves a
  // probability p by at most p (1 - p) times twice as much, 5e-5, and out (|v| < 1) by as much.
  // Measured 8e-8 (rows this peaked have p near 0 or 1).
  EXPECT_LE(worst_error(att, want.att), 1e-4);
  EXPECT_LE(worst_error(out, want.out), 1e-4);
}

TEST(AttentionKernel, BackwardMatchesFiniteDifferences) {
  // Every element at the small size; 300 drawn ones at the large size (each costs two forward
  // passes).
  for (const AttnShape& s : {kSmall, kLarge}) {
    SCOPED_TRACE(s.name());
    std::vector<double> qkv = to_double(attention_inputs(s, 91));
    const std::vector<double> r = to_double(random_floats(s.b * s.t * s.c, 92));
    std::vector<double> out(r.size()), att(s.b * s.n_head * s.t * s.t), scratch(s.t * s.t);
    auto loss = [&] {
      attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
      return dot(r, out);
    };
    loss();
    std::vector<double> dqkv(qkv.size());
    attention_backward(qkv.data(), att.data(), r.data(), dqkv.data(), scratch.data(), s.b, s.t, s.c,
                       s.n_head);
    EXPECT_LE(finite_difference_error(qkv, loss, dqkv, s.t > 8 ? 300 : 0, 93), kFdTolerance);
  }
}

TEST(AttentionKernel, FloatBackwardMatchesDouble) {
  const AttnShape s = kLarge;
  const std::vector<float> qkv = attention_inputs(s, 101), r = random_floats(s.b * s.t * s.c, 102);
  std::vector<float> out(r.size()), att(s.b * s.n_head * s.t * s.t), scratch(s.t * s.t),
      dqkv(qkv.size());
  attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
  attention_backward(qkv.data(), att.data(), r.data(), dqkv.data(), scratch.data(), s.b, s.t, s.c,
                     s.n_head);
  const std::vector<double> qkvd = to_double(qkv), rd = to_double(r);
  std::vector<double> outd(r.size()), attd(att.size()), scratchd(scratch.size()), dqkvd(qkv.size());
  attention_forward(qkvd.data(), outd.data(), attd.data(), s.b, s.t, s.c, s.n_head);
  attention_backward(qkvd.data(), attd.data(), rd.data(), dqkvd.data(), scratchd.data(), s.b, s.t,
                     s.c, s.n_head);
  EXPECT_LE(relative_error(dqkv, dqkvd), 1e-5);
}

TEST(AttentionKernel, TheFutureDoesNotReachThePast) {
  // Changing position `cut`'s key and value (and query) leaves every earlier output exactly as it
  // was, bit for bit: the masked probabilities are exactly zero. Later outputs do change, so the
  // change was seen. Backward: a gradient on outputs before `cut` only gives no gradient at all
  // to any q, k or v at `cut` or later.
  const AttnShape s = kLarge;
  for (int64_t cut : {int64_t{1}, int64_t{17}, s.t - 1}) {
    SCOPED_TRACE("cut " + std::to_string(cut));
    std::vector<float> qkv = attention_inputs(s, 111);
    std::vector<float> out(s.b * s.t * s.c), att(s.b * s.n_head * s.t * s.t);
    attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
    const std::vector<float> before = out;
    for (int64_t bi = 0; bi < s.b; ++bi)
      for (int64_t e = 0; e < 3 * s.c; ++e) qkv[(bi * s.t + cut) * 3 * s.c + e] += 0.5f;
    attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
    for (int64_t bi = 0; bi < s.b; ++bi) {
      const int64_t row = bi * s.t * s.c;
      for (int64_t i = 0; i < cut * s.c; ++i) ASSERT_EQ(out[row + i], before[row + i]) << i;
      EXPECT_FALSE(std::equal(out.begin() + row + cut * s.c, out.begin() + row + s.t * s.c,
                              before.begin() + row + cut * s.c));
    }

    std::vector<float> dout = random_floats(out.size(), 112), dqkv(qkv.size()), scratch(s.t * s.t);
    for (int64_t bi = 0; bi < s.b; ++bi)
      std::fill(dout.begin() + (bi * s.t + cut) * s.c, dout.begin() + (bi + 1) * s.t * s.c, 0.0f);
    attention_backward(qkv.data(), att.data(), dout.data(), dqkv.data(), scratch.data(), s.b, s.t,
                       s.c, s.n_head);
    for (int64_t bi = 0; bi < s.b; ++bi) {
      const int64_t row = bi * s.t * 3 * s.c;
      for (int64_t i = cut * 3 * s.c; i < s.t * 3 * s.c; ++i) ASSERT_EQ(dqkv[row + i], 0.0f) << i;
      EXPECT_TRUE(std::any_of(dqkv.begin() + row, dqkv.begin() + row + cut * 3 * s.c,
                              [](float g) { return g != 0.0f; }));
    }
  }
}

TEST(AttentionKernel, RefusesAWidthThatTheHeadsDoNotDivide) {
  std::vector<float> qkv(3 * 10), out(10), att(3), scratch(1);
  try {
    attention_forward(qkv.data(), out.data(), att.data(), 1, 1, 10, 3);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(),
                 "attention: the embedding width 10 is not a multiple of the number of heads 3");
  }
  EXPECT_THROW(attention_backward(qkv.data(), att.data(), out.data(), qkv.data(), scratch.data(), 1,
                                  1, 10, 0),
               InputError);
}

// ---- Embeddings ------------------------------------------------------------------------------

struct EmbShape {
  int64_t b = 2, t = 5, c = 8, vocab = 7;
};

// Token ids with repeats (a vocabulary of 7 for 10 positions; token 3 three times, token 6
// never, so its gradient row must stay as it was).
std::vector<int32_t> embedding_tokens() { return {3, 0, 3, 5, 1, 2, 3, 4, 0, 5}; }

TEST(EmbeddingKernel, ForwardAddsTheTokenAndPositionRows) {
  // The float sum of two floats is the correctly rounded double sum: exact equality.
  const EmbShape s;
  const std::vector<int32_t> idx = embedding_tokens();
  const std::vector<float> wte = random_floats(s.vocab * s.c, 121),
                           wpe = random_floats(s.t * s.c, 122);
  std::vector<float> out(s.b * s.t * s.c);
  embedding_forward(idx.data(), wte.data(), wpe.data(), out.data(), s.b, s.t, s.c, s.vocab);
  for (int64_t bi = 0; bi < s.b; ++bi)
    for (int64_t ti = 0; ti < s.t; ++ti)
      for (int64_t i = 0; i < s.c; ++i) {
        const double want = double{wte[idx[bi * s.t + ti] * s.c + i]} + wpe[ti * s.c + i];
        ASSERT_EQ(out[(bi * s.t + ti) * s.c + i], static_cast<float>(want));
      }
}

TEST(EmbeddingKernel, BackwardMatchesFiniteDifferences) {
  const EmbShape s;
  const std::vector<int32_t> idx = embedding_tokens();
  std::vector<double> wte = to_double(random_floats(s.vocab * s.c, 131)),
                      wpe = to_double(random_floats(s.t * s.c, 132));
  const std::vector<double> r = to_double(random_floats(s.b * s.t * s.c, 133));
  std::vector<double> out(r.size());
  auto loss = [&] {
    embedding_forward(idx.data(), wte.data(), wpe.data(), out.data(), s.b, s.t, s.c, s.vocab);
    return dot(r, out);
  };
  // Backward adds to what the gradients held.
  const std::vector<double> dwte0 = to_double(random_floats(wte.size(), 134)),
                            dwpe0 = to_double(random_floats(wpe.size(), 135));
  std::vector<double> dwte = dwte0, dwpe = dwpe0;
  embedding_backward(idx.data(), r.data(), dwte.data(), dwpe.data(), s.b, s.t, s.c, s.vocab);
  for (int64_t i = 0; i < s.c; ++i) EXPECT_EQ(dwte[6 * s.c + i], dwte0[6 * s.c + i]) << "unused";
  for (size_t i = 0; i < dwte.size(); ++i) dwte[i] -= dwte0[i];
  for (size_t i = 0; i < dwpe.size(); ++i) dwpe[i] -= dwpe0[i];
  EXPECT_LE(finite_difference_error(wte, loss, dwte), kFdTolerance) << "dwte";
  EXPECT_LE(finite_difference_error(wpe, loss, dwpe), kFdTolerance) << "dwpe";
}

TEST(EmbeddingKernel, RefusesTokenIdsOutsideTheVocabulary) {
  const EmbShape s;
  const std::vector<float> wte(s.vocab * s.c, 1.0f), wpe(s.t * s.c, 1.0f);
  for (int32_t bad : {-1, 7, 50000}) {
    std::vector<int32_t> idx = embedding_tokens();
    idx[8] = bad;  // batch row 1, position 3
    std::vector<float> out(s.b * s.t * s.c, 5.0f), dwte(wte.size(), 0.0f), dwpe(wpe.size(), 0.0f);
    try {
      embedding_forward(idx.data(), wte.data(), wpe.data(), out.data(), s.b, s.t, s.c, s.vocab);
      FAIL() << "no error for " << bad;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()), "embedding: token id " + std::to_string(bad) +
                                           " at batch row 1, position 3 is outside the "
                                           "vocabulary of 7 tokens");
    }
    EXPECT_TRUE(std::all_of(out.begin(), out.end(), [](float v) { return v == 5.0f; }))
        << "out written before the check";
    EXPECT_THROW(embedding_backward(idx.data(), out.data(), dwte.data(), dwpe.data(), s.b, s.t, s.c,
                                    s.vocab),
                 InputError);
    EXPECT_TRUE(std::all_of(dwte.begin(), dwte.end(), [](float v) { return v == 0.0f; }) &&
                std::all_of(dwpe.begin(), dwpe.end(), [](float v) { return v == 0.0f; }))
        << "gradients written before the check";
  }
}

// ---- Every backward pass, twice --------------------------------------------------------------

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

TEST(TransformerKernels, BackwardIsDeterministic) {
  // Float, at the larger sizes, from equal starting gradients: identical bits, run to run.
  {
    const LnCase s{128, 64, 0};
    const LnInputs in(s, 141);
    const std::vector<float> r = random_floats(in.x.size(), 142);
    std::vector<float> y(in.x.size()), mean(s.rows), rstd(s.rows);
    layer_norm_forward(in.x.data(), in.w.data(), in.b.data(), y.data(), mean.data(), rstd.data(),
                       s.rows, s.c, kLnEps);
    std::vector<float> dx[2], dw[2], db[2];
    for (int run = 0; run < 2; ++run) {
      dx[run].assign(in.x.size(), 0.0f);
      dw[run] = random_floats(s.c, 143);
      db[run] = random_floats(s.c, 144);
      layer_norm_backward(in.x.data(), in.w.data(), mean.data(), rstd.data(), r.data(),
                          dx[run].data(), dw[run].data(), db[run].data(), s.rows, s.c);
    }
    EXPECT_TRUE(same_bits(dx[0], dx[1]) && same_bits(dw[0], dw[1]) && same_bits(db[0], db[1]))
        << "layer norm";
  }
  {
    const std::vector<float> x = gelu_inputs(4096, 151), r = random_floats(x.size(), 152);
    std::vector<float> dx[2];
    for (auto& d : dx) {
      d.assign(x.size(), 0.0f);
      gelu_backward(x.data(), r.data(), d.data(), static_cast<int64_t>(x.size()));
    }
    EXPECT_TRUE(same_bits(dx[0], dx[1])) << "gelu";
  }
  {
    const AttnShape s = kLarge;
    const std::vector<float> qkv = attention_inputs(s, 161),
                             r = random_floats(s.b * s.t * s.c, 162);
    std::vector<float> out(r.size()), att(s.b * s.n_head * s.t * s.t), scratch(s.t * s.t);
    attention_forward(qkv.data(), out.data(), att.data(), s.b, s.t, s.c, s.n_head);
    std::vector<float> dqkv[2];
    for (auto& d : dqkv) {
      d.assign(qkv.size(), 0.0f);
      attention_backward(qkv.data(), att.data(), r.data(), d.data(), scratch.data(), s.b, s.t, s.c,
                         s.n_head);
    }
    EXPECT_TRUE(same_bits(dqkv[0], dqkv[1])) << "attention";
  }
  {
    // Many positions share few tokens: each dwte row is a long sum.
    const int64_t b = 4, t = 64, c = 32, vocab = 5;
    std::vector<int32_t> idx(b * t);
    for (size_t i = 0; i < idx.size(); ++i)
      idx[i] = static_cast<int32_t>(random_u64(171, i) % vocab);
    const std::vector<float> r = random_floats(b * t * c, 172);
    std::vector<float> dwte[2], dwpe[2];
    for (int run = 0; run < 2; ++run) {
      dwte[run] = random_floats(vocab * c, 173);
      dwpe[run] = random_floats(t * c, 174);
      embedding_backward(idx.data(), r.data(), dwte[run].data(), dwpe[run].data(), b, t, c, vocab);
    }
    EXPECT_TRUE(same_bits(dwte[0], dwte[1]) && same_bits(dwpe[0], dwpe[1])) << "embedding";
  }
}

}  // namespace
}  // namespace dpt
