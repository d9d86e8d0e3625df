// The CPU backend's convolution (im2col + GEMM, with its stride-1 copies) against the definition
// written out as plain loops in double: forward, the input gradient, and the weight and bias
// gradients added to what they held. Odd sizes, padding wider than the kernel's reach, stride 1
// and 2, and a kernel wider than the padded input's last column.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/random.hpp"

namespace dpt {
namespace {

std::vector<float> random_values(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 2.0f * uniform_float(seed, i) - 1.0f;
  return v;
}

size_t at(int n, int c, int y, int x, int channels, int h, int w) {
  return ((static_cast<size_t>(n) * channels + c) * h + y) * w + x;
}

// y[n, o, i, j] = b[o] + sum over c, ki, kj of w[o, c, ki, kj] * x[n, c, i*stride - pad + ki,
// j*stride - pad + kj], with x zero outside the image; and the gradients of sum(y * dy).
struct Reference {
  std::vector<double> y, dx, dw, db;
};

Reference reference(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& b, const std::vector<float>& dy) {
  const int oh = s.out_h(), ow = s.out_w();
  Reference r;
  r.y.assign(static_cast<size_t>(s.n) * s.out_c * oh * ow, 0.0);
  r.dx.assign(x.size(), 0.0);
  r.dw.assign(w.size(), 0.0);
  r.db.assign(b.size(), 0.0);
  for (int n = 0; n < s.n; ++n)
    for (int o = 0; o < s.out_c; ++o)
      for (int i = 0; i < oh; ++i)
        for (int j = 0; j < ow; ++j) {
          const size_t yi = at(n, o, i, j, s.out_c, oh, ow);
          double sum = b[static_cast<size_t>(o)];
          r.db[static_cast<size_t>(o)] += dy[yi];
          for (int c = 0; c < s.in_c; ++c)
            for (int ki = 0; ki < s.kh; ++ki)
              for (int kj = 0; kj < s.kw; ++kj) {
                const int yy = i * s.stride - s.pad + ki, xx = j * s.stride - s.pad + kj;
                if (yy < 0 || yy >= s.in_h || xx < 0 || xx >= s.in_w) continue;
                const size_t xi = at(n, c, yy, xx, s.in_c, s.in_h, s.in_w);
                const size_t wi = ((static_cast<size_t>(o) * s.in_c + c) * s.kh + ki) * s.kw + kj;
                sum += static_cast<double>(w[wi]) * x[xi];
                r.dx[xi] += static_cast<double>(w[wi]) * dy[yi];
                r.dw[wi] += static_cast<double>(x[xi]) * dy[yi];
              }
          r.y[yi] = sum;
        }
  return r;
}

void expect_near_all(const std::vector<float>& got, const std::vector<double>& want,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << what << ": element " << i << " is " << got[i];
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    norm += want[i] * want[i];
  }
  EXPECT_LT(std::sqrt(diff / norm), 1e-5) << what;
}

TEST(CpuConv, MatchesTheDefinitionForwardAndBackward) {
  std::unique_ptr<Backend> cpu = make_cpu_backend(1);
  struct Case {
    int n, in_c, h, w, out_c, k, stride, pad;
  };
  const Case cases[] = {
      {2, 1, 28, 28, 4, 3, 1, 1},  // the cnn preset's first layer, fewer channels
      {3, 3, 7, 9, 5, 3, 1, 1},   {2, 2, 6, 5, 3, 3, 1, 0}, {2, 2, 5, 7, 3, 3, 1, 2},
      {1, 2, 4, 3, 2, 5, 1, 2},  // kernel wider than the input: every output touches padding
      {2, 3, 9, 8, 4, 3, 2, 1},   {2, 2, 7, 7, 3, 2, 2, 0}, {1, 1, 1, 1, 2, 1, 1, 0},
  };
  uint64_t seed = 500;
  for (const Case& c : cases) {
    ConvShape s;
    s.n = c.n;
    s.in_c = c.in_c;
    s.in_h = c.h;
    s.in_w = c.w;
    s.out_c = c.out_c;
    s.kh = s.kw = c.k;
    s.stride = c.stride;
    s.pad = c.pad;
    std::ostringstream label;
    label << "n" << c.n << " c" << c.in_c << " " << c.h << "x" << c.w << " oc" << c.out_c << " k"
          << c.k << " s" << c.stride << " p" << c.pad;
    const std::string name = label.str();
    ASSERT_GT(s.out_h(), 0) << name;
    ASSERT_GT(s.out_w(), 0) << name;
    const size_t ny = static_cast<size_t>(s.n) * s.out_c * s.out_h() * s.out_w();
    const std::vector<float> x =
        random_values(static_cast<size_t>(s.n) * s.in_c * c.h * c.w, ++seed);
    const std::vector<float> w =
        random_values(static_cast<size_t>(s.out_c) * s.in_c * c.k * c.k, ++seed);
    const std::vector<float> b = random_values(static_cast<size_t>(s.out_c), ++seed);
    const std::vector<float> dy = random_values(ny, ++seed);
    const Reference want = reference(s, x, w, b, dy);

    std::vector<float> y(ny, std::nanf(""));
    cpu->conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    expect_near_all(y, want.y, name + " forward");

    // dx is overwritten (poisoned first); dw and db add to what they hold.
    std::vector<float> dx(x.size(), std::nanf(""));
    std::vector<float> dw = random_values(w.size(), ++seed), db = random_values(b.size(), ++seed);
    std::vector<double> want_dw(want.dw), want_db(want.db);
    for (size_t i = 0; i < dw.size(); ++i) want_dw[i] += dw[i];
    for (size_t i = 0; i < db.size(); ++i) want_db[i] += db[i];
    cpu->conv2d_backward(s, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    expect_near_all(dx, want.dx, name + " dx");
    expect_near_all(dw, want_dw, name + " dw");
    expect_near_all(db, want_db, name + " db");
  }
}

}  // namespace
}  // namespace dpt
