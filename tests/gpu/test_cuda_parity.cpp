// Every op of the CUDA backend against the CPU backend on fresh random inputs (a seed per test),
// over several shapes including odd ones. Outputs the op must write in full are poisoned with NaN
// on the GPU first, so an element it skips shows up as a difference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/gate_coefficient.hpp"
#include "src/core/bf16.hpp"
#include "src/core/clock.hpp"
#include "src/model/loss.hpp"
#include "tests/common/compare_params.hpp"
#include "tests/gpu/cuda_parity.hpp"

namespace dpt::gputest {
namespace {

class CudaOps : public CudaParity {};

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

std::string conv_name(const ConvShape& s) {
  return "conv n=" + std::to_string(s.n) + " c=" + std::to_string(s.in_c) + " " +
         std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + " oc=" + std::to_string(s.out_c) +
         " k=" + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
         " s=" + std::to_string(s.stride) + " p=" + std::to_string(s.pad);
}

std::string pool_name(const PoolShape& s) {
  return "maxpool n=" + std::to_string(s.n) + " c=" + std::to_string(s.c) + " " +
         std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + " k=" + std::to_string(s.k) +
         " s=" + std::to_string(s.stride);
}

// ---------------------------------------------------------------- memory and copies

TEST_F(CudaOps, AllocReturnsZeroedMemory) {
  const size_t n = 100003;
  {
    // Dirty some memory and give it back, so that the next allocation may well reuse it.
    DeviceBuffer dirty(gpu(), DataType::F32, n);
    gpu().fill(dirty.data(), n, 7.0f);
    gpu().synchronize();
  }
  DeviceBuffer b(gpu(), DataType::F32, n);
  const std::vector<float> host = download(gpu(), b.data(), n);
  EXPECT_EQ(std::count(host.begin(), host.end(), 0.0f), static_cast<std::ptrdiff_t>(n));
  DeviceBuffer empty(gpu(), DataType::F32, 0);
  EXPECT_NE(empty.data(), nullptr);
}

TEST_F(CudaOps, CopiesRoundTrip) {
  const size_t n = 65537;
  const std::vector<float> x = random_floats(n, 101);
  DeviceBuffer a = upload(gpu(), x);
  DeviceBuffer b(gpu(), DataType::F32, n);
  gpu().copy(b.data(), a.data(), sizeof(float) * n);
  expect_identical(download(gpu(), b.data(), n), x, "host -> device -> device -> host");

  // Overlapping ranges behave like memmove, as on the CPU, in both directions.
  for (const long shift : {17L, -17L}) {
    Mirror m = mirror(x);
    const size_t len = n - 17;
    float* cdst = shift > 0 ? m.c() + 17 : m.c();
    float* gdst = shift > 0 ? m.g() + 17 : m.g();
    const float* csrc = shift > 0 ? m.c() : m.c() + 17;
    const float* gsrc = shift > 0 ? m.g() : m.g() + 17;
    cpu().copy(cdst, csrc, sizeof(float) * len);
    gpu().copy(gdst, gsrc, sizeof(float) * len);
    expect_identical(from_gpu(m), from_cpu(m), "overlapping copy, shift " + std::to_string(shift));
  }

  // Page-locked staging with the asynchronous copy, complete after synchronize().
  auto* pinned = static_cast<float*>(gpu().alloc_host(sizeof(float) * n));
  ASSERT_NE(pinned, nullptr);
  EXPECT_EQ(pinned[0], 0.0f);
  std::copy(x.begin(), x.end(), pinned);
  DeviceBuffer c(gpu(), DataType::F32, n);
  gpu().copy_from_host_async(c.data(), pinned, sizeof(float) * n);
  gpu().synchronize();
  gpu().free_host(pinned);
  expect_identical(download(gpu(), c.data(), n), x, "pinned async copy");

  // Zero-byte copies are no-ops (the pointers are not even looked at).
  gpu().copy_from_host(c.data(), nullptr, 0);
  gpu().copy_to_host(nullptr, c.data(), 0);
  gpu().copy(c.data(), a.data(), 0);
  expect_identical(download(gpu(), c.data(), n), x, "after zero-byte copies");
}

TEST_F(CudaOps, DeviceMemoryIsRecognised) {
  DeviceBuffer b(gpu(), DataType::F32, 64);
  std::vector<float> host(4);
  EXPECT_TRUE(gpu().is_device_memory(b.data()));
  EXPECT_FALSE(gpu().is_device_memory(host.data()));
  EXPECT_TRUE(gpu().asynchronous());
}

TEST_F(CudaOps, MarkersAreOrderedInSteadyTime) {
  const double before = steady_seconds();
  gpu().clear_markers();
  const size_t n = 1 << 22;
  DeviceBuffer b(gpu(), DataType::F32, n);
  const int m0 = gpu().record_marker();
  for (int i = 0; i < 20; ++i) gpu().fill(b.data(), n, 1.5f);
  const int m1 = gpu().record_marker();
  gpu().synchronize();
  const double after = steady_seconds();
  const double t0 = gpu().marker_time(m0), t1 = gpu().marker_time(m1);
  EXPECT_LE(t0, t1);
  // The anchor pairs device and host time to within the launch latency.
  EXPECT_GT(t0, before - 1e-3);
  EXPECT_LT(t1, after + 1e-3);
  gpu().clear_markers();
}

// Named ranges on the GPU (the trace's ops lane): nested paths, device-timed by markers, each
// inside its parent and the second after the first (an order, not a duration).
TEST_F(CudaOps, RecordedRangesAreNestedInDeviceTime) {
  gpu().clear_markers();
  const size_t n = 1 << 22;
  DeviceBuffer b(gpu(), DataType::F32, n);
  gpu().record_ranges(true);
  {
    ScopedRange outer(gpu(), "step");
    {
      ScopedRange few(gpu(), "few");
      gpu().fill(b.data(), n, 1.0f);
    }
    {
      ScopedRange many(gpu(), "many");
      for (int i = 0; i < 5; ++i) gpu().fill(b.data(), n, 2.0f);
    }
  }
  gpu().synchronize();
  const std::vector<Device::TimedRange> r = gpu().take_ranges();
  gpu().record_ranges(false);
  gpu().clear_markers();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].path, "step");
  EXPECT_EQ(r[1].path, "step/few");
  EXPECT_EQ(r[2].path, "step/many");
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_LE(r[0].start, r[i].start) << r[i].path;
    EXPECT_LE(r[i].end, r[0].end) << r[i].path;
  }
  EXPECT_LE(r[1].end, r[2].start);
}

// ---------------------------------------------------------------- element-wise

TEST_F(CudaOps, Fill) {
  for (const size_t n : {size_t{0}, size_t{1}, size_t{1000}, (size_t{1} << 20) + 7}) {
    Mirror m = poisoned(n);
    cpu().fill(m.c(), n, 3.5f);
    gpu().fill(m.g(), n, 3.5f);
    expect_identical(from_gpu(m), from_cpu(m), "fill n=" + std::to_string(n));
  }
}

TEST_F(CudaOps, Mul) {
  for (const size_t n : {size_t{1}, size_t{777}, size_t{300001}}) {
    Mirror a = mirror(random_floats(n, 300 + n)), b = mirror(random_floats(n, 301 + n, 0, 2));
    Mirror out = poisoned(n);
    cpu().mul(a.c(), b.c(), out.c(), n);
    gpu().mul(a.g(), b.g(), out.g(), n);
    expect_identical(from_gpu(out), from_cpu(out), "mul n=" + std::to_string(n));
  }
}

TEST_F(CudaOps, AddAlsoInPlace) {
  for (const size_t n : {size_t{1}, size_t{777}, size_t{300001}}) {
    Mirror a = mirror(random_floats(n, 310 + n)), b = mirror(random_floats(n, 311 + n, -3, 3));
    Mirror out = poisoned(n);
    cpu().add(a.c(), b.c(), out.c(), n);
    gpu().add(a.g(), b.g(), out.g(), n);
    expect_identical(from_gpu(out), from_cpu(out), "add n=" + std::to_string(n));
    // In place, as a residual block's backward adds into its input gradient.
    cpu().add(a.c(), out.c(), a.c(), n);
    gpu().add(a.g(), out.g(), a.g(), n);
    expect_identical(from_gpu(a), from_cpu(a), "add in place n=" + std::to_string(n));
  }
}

TEST_F(CudaOps, CountNonfinite) {
  const size_t n = 1000003;
  std::vector<float> x = random_floats(n, 400, -1e30f, 1e30f);
  EXPECT_EQ(gpu().count_nonfinite(upload(gpu(), x).data(), n), 0u);
  for (const size_t i : {size_t{0}, size_t{5}, size_t{4096}, size_t{777777}, n - 1}) x[i] = kNaN;
  for (const size_t i : {size_t{1}, size_t{300000}, size_t{999999}}) x[i] = kInf;
  for (const size_t i : {size_t{2}, size_t{12345}}) x[i] = -kInf;
  x[3] = std::numeric_limits<float>::max();  // finite, however large
  x[4] = std::numeric_limits<float>::denorm_min();
  Mirror m = mirror(x);
  EXPECT_EQ(cpu().count_nonfinite(m.c(), n), 10u);
  EXPECT_EQ(gpu().count_nonfinite(m.g(), n), 10u);
  EXPECT_EQ(gpu().count_nonfinite(m.g() + 1, n - 2), 8u);  // an unaligned sub-range
  EXPECT_EQ(gpu().count_nonfinite(m.g(), 0), 0u);
}

// float32 to bfloat16 and back: the GPU's bits equal the CPU twin's (both round to nearest
// even with src/core/bf16.hpp), special values and ties included.
TEST_F(CudaOps, ConvertToBf16AndBackEqualsCpuExactly) {
  const size_t n = 100003;
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(random_u64(44, i));
    std::memcpy(&x[i], &bits, 4);  // every pattern: NaNs, infinities, denormals
  }
  x[0] = 1.0f + std::ldexp(1.0f, -8);        // a tie, to the even 1
  x[1] = std::numeric_limits<float>::max();  // rounds past the largest bf16: infinity
  const DeviceBuffer xc = upload(cpu(), x), xg = upload(gpu(), x);
  DeviceBuffer bc(cpu(), DataType::BF16, n), bg(gpu(), DataType::BF16, n);
  cpu().convert(xc.data(), DataType::F32, bc.ref().data(), DataType::BF16, n);
  gpu().convert(xg.data(), DataType::F32, bg.ref().data(), DataType::BF16, n);
  const auto b_cpu = download(cpu(), static_cast<const uint16_t*>(bc.ref().data()), n);
  const auto b_gpu = download(gpu(), static_cast<const uint16_t*>(bg.ref().data()), n);
  EXPECT_EQ(b_gpu, b_cpu);
  DeviceBuffer back(gpu(), DataType::F32, n);
  gpu().convert(bg.ref().data(), DataType::BF16, back.data(), DataType::F32, n);
  const std::vector<float> f = download(gpu(), back.data(), n);
  size_t wrong = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t got;
    std::memcpy(&got, &f[i], 4);
    wrong += got != static_cast<uint32_t>(b_cpu[i]) << 16;
  }
  EXPECT_EQ(wrong, 0u);
}

TEST_F(CudaOps, StochasticBf16RoundingEqualsCpuExactly) {
  const size_t n = 300007;
  const std::vector<float> x = random_floats(n, 45, -3.0f, 3.0f);
  const DeviceBuffer xc = upload(cpu(), x), xg = upload(gpu(), x);
  DeviceBuffer bc(cpu(), DataType::BF16, n), bg(gpu(), DataType::BF16, n);
  cpu().convert_stochastic(xc.data(), bc.ref().data(), n, 12345);
  gpu().convert_stochastic(xg.data(), bg.ref().data(), n, 12345);
  EXPECT_EQ(download(gpu(), static_cast<const uint16_t*>(bg.ref().data()), n),
            download(cpu(), static_cast<const uint16_t*>(bc.ref().data()), n));
}

TEST_F(CudaOps, ReluForwardBackwardPropagateNan) {
  const size_t n = 10007;
  std::vector<float> x = random_floats(n, 500);
  x[5] = kNaN;
  x[17] = -0.0f;
  x[18] = 0.0f;
  x[20] = kInf;
  x[21] = -kInf;
  Mirror xm = mirror(x), y = poisoned(n);
  cpu().relu_forward(xm.c(), y.c(), n);
  gpu().relu_forward(xm.g(), y.g(), n);
  const std::vector<float> y_cpu = from_cpu(y);
  expect_identical(from_gpu(y), y_cpu, "relu forward");
  EXPECT_TRUE(std::isnan(y_cpu[5]));

  std::vector<float> dy = random_floats(n, 501);
  dy[20] = kNaN;  // y > 0 there: passes through
  dy[21] = kNaN;  // y == 0 there: blocked
  Mirror ym = mirror(y_cpu), dym = mirror(dy), dx = poisoned(n);
  cpu().relu_backward(ym.c(), dym.c(), dx.c(), n);
  gpu().relu_backward(ym.g(), dym.g(), dx.g(), n);
  expect_identical(from_gpu(dx), from_cpu(dx), "relu backward");
}

TEST_F(CudaOps, DropoutMaskEqualsCpuExactly) {
  const size_t n = 100003;
  for (const float p : {0.0f, 0.1f, 0.5f, 0.9f}) {
    const uint64_t seed = 600 + static_cast<uint64_t>(p * 10);
    Mirror x = mirror(random_floats(n, seed)), y = poisoned(n), mask = poisoned(n);
    cpu().dropout_forward(x.c(), y.c(), mask.c(), n, p, seed * 7919);
    gpu().dropout_forward(x.g(), y.g(), mask.g(), n, p, seed * 7919);
    const std::vector<float> mask_cpu = from_cpu(mask);
    const std::string what = "dropout p=" + std::to_string(p);
    expect_identical(from_gpu(mask), mask_cpu, what + " mask");
    expect_identical(from_gpu(y), from_cpu(y), what + " output");
    const double dropped =
        static_cast<double>(std::count(mask_cpu.begin(), mask_cpu.end(), 0.0f)) / n;
    EXPECT_NEAR(dropped, p, 0.01) << what;
  }
}

TEST_F(CudaOps, FillUniformEqualsCpuExactly) {
  // Parameter initialisation: the same bits on both backends, odd sizes included.
  for (const size_t n : {size_t{1}, size_t{1000}, size_t{100003}}) {
    const uint64_t seed = 650 + n;
    Mirror p = poisoned(n);
    cpu().fill_uniform(p.c(), n, 0.125f, seed);
    gpu().fill_uniform(p.g(), n, 0.125f, seed);
    const std::vector<float> want = from_cpu(p);
    expect_identical(from_gpu(p), want, "fill_uniform n=" + std::to_string(n));
    for (const float v : want) ASSERT_TRUE(v >= -0.125f && v <= 0.125f) << v;
  }
}

// ---------------------------------------------------------------- GEMM and bias

TEST_F(CudaOps, GemmAllTransposesWithPaddedLeadingDims) {
  struct Dims {
    int m, n, k;
  };
  const Dims dims[] = {{1, 1, 1},     {7, 5, 3},   {33, 17, 65},
                       {64, 128, 96}, {5, 300, 2}, {130, 3, 257}};
  uint64_t seed = 700;
  for (const Dims& d : dims)
    for (const bool ta : {false, true})
      for (const bool tb : {false, true})
        for (const float beta : {0.0f, 0.5f}) {
          // Row-major storage: op(A) [m,k] is A [m,k] or A [k,m]; likewise B. Each leading
          // dimension exceeds the row width by 3, and the padding must stay untouched.
          const int a_rows = ta ? d.k : d.m, a_cols = ta ? d.m : d.k;
          const int b_rows = tb ? d.n : d.k, b_cols = tb ? d.k : d.n;
          const int lda = a_cols + 3, ldb = b_cols + 3, ldc = d.n + 3;
          Mirror a = mirror(random_floats(static_cast<size_t>(a_rows) * lda, ++seed));
          Mirror b = mirror(random_floats(static_cast<size_t>(b_rows) * ldb, ++seed));
          // With beta 0, C is not read: NaN in it must not leak into the result.
          std::vector<float> c0 = random_floats(static_cast<size_t>(d.m) * ldc, ++seed);
          if (beta == 0.0f) std::fill(c0.begin(), c0.end(), kNaN);
          Mirror c = mirror(c0);
          cpu().gemm(ta, tb, d.m, d.n, d.k, 0.75f, a.c(), lda, b.c(), ldb, beta, c.c(), ldc);
          gpu().gemm(ta, tb, d.m, d.n, d.k, 0.75f, a.g(), lda, b.g(), ldb, beta, c.g(), ldc);
          expect_close(from_gpu(c), from_cpu(c), kTol,
                       "gemm m=" + std::to_string(d.m) + " n=" + std::to_string(d.n) +
                           " k=" + std::to_string(d.k) + " ta=" + std::to_string(ta) +
                           " tb=" + std::to_string(tb) + " beta=" + std::to_string(beta));
        }
}

// The mixed-precision GEMM: bf16 operands on tensor cores against the CPU twin (float sums of
// the same bf16 values). Into float32 the two differ by the order of the sums; into bf16 by at
// most one rounding step where the float results fall on either side of a rounding boundary.
TEST_F(CudaOps, GemmExBf16AgainstTheCpuTwin) {
  const int m = 67, n = 45, k = 513;
  uint64_t seed = 900;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const DataType out : {DataType::F32, DataType::BF16}) {
        const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 3, ldc = n + 3;
        const auto bf16_of = [](const std::vector<float>& f) {
          std::vector<uint16_t> h(f.size());
          for (size_t i = 0; i < f.size(); ++i) h[i] = float_to_bf16(f[i]);
          return h;
        };
        const auto upload_bf16 = [](Backend& be, const std::vector<uint16_t>& h) {
          DeviceBuffer d(be, DataType::BF16, h.size());
          be.copy_from_host(d.ref().data(), h.data(), h.size() * sizeof(uint16_t));
          return d;
        };
        const auto a = bf16_of(random_floats(static_cast<size_t>(ta ? k : m) * lda, ++seed));
        const auto b = bf16_of(random_floats(static_cast<size_t>(tb ? n : k) * ldb, ++seed));
        const std::vector<float> c0 = random_floats(static_cast<size_t>(m) * ldc, ++seed);
        const DeviceBuffer ac = upload_bf16(cpu(), a), ag = upload_bf16(gpu(), a);
        const DeviceBuffer bc = upload_bf16(cpu(), b), bg = upload_bf16(gpu(), b);
        std::vector<float> got, want;
        for (Backend* be : {&cpu(), &gpu()}) {
          const bool on_gpu = be == &gpu();
          const ConstTensorRef at((on_gpu ? ag : ac).ref().data(), DataType::BF16);
          const ConstTensorRef bt((on_gpu ? bg : bc).ref().data(), DataType::BF16);
          std::vector<float> result(c0.size());
          if (out == DataType::F32) {
            DeviceBuffer c = upload(*be, c0);
            be->gemm_ex(ta, tb, m, n, k, 0.75f, at, lda, bt, ldb, 0.5f, c.ref(), ldc);
            result = download(*be, c.data(), c0.size());
          } else {
            DeviceBuffer c = upload_bf16(*be, bf16_of(c0));
            be->gemm_ex(ta, tb, m, n, k, 0.75f, at, lda, bt, ldb, 0.5f, c.ref(), ldc);
            const auto h = download(*be, static_cast<const uint16_t*>(c.ref().data()), c0.size());
            for (size_t i = 0; i < h.size(); ++i) result[i] = bf16_to_float(h[i]);
          }
          (on_gpu ? got : want) = result;
        }
        expect_close(got, want, out == DataType::F32 ? kTol : 4e-3,
                     std::string("gemm_ex ta=") + std::to_string(ta) + " tb=" + std::to_string(tb) +
                         (out == DataType::F32 ? " into f32" : " into bf16"));
      }
}

// Float32 operands into a bf16 C, which cuBLAS has no GEMM for: float sums rounded once, as the
// twin; C's rows strided, and the elements between them left as they were.
TEST_F(CudaOps, GemmExFloatIntoBf16) {
  const int m = 33, n = 20, k = 70, ldc = n + 3;
  const std::vector<float> a = random_floats(static_cast<size_t>(m) * k, 950);
  const std::vector<float> b = random_floats(static_cast<size_t>(k) * n, 951);
  const std::vector<float> c_init = random_floats(static_cast<size_t>(m) * ldc, 952);
  std::vector<uint16_t> c0(c_init.size());
  for (size_t i = 0; i < c0.size(); ++i) c0[i] = float_to_bf16(c_init[i]);
  std::vector<std::vector<uint16_t>> results;
  for (Backend* be : {&cpu(), &gpu()}) {
    DeviceBuffer ad = upload(*be, a), bd = upload(*be, b);
    DeviceBuffer c(*be, DataType::BF16, c0.size());
    be->copy_from_host(c.ref().data(), c0.data(), c0.size() * sizeof(uint16_t));
    be->gemm_ex(false, false, m, n, k, 0.75f, ConstTensorRef(ad.data()), k,
                ConstTensorRef(bd.data()), n, 0.5f, c.ref(), ldc);
    results.push_back(download(*be, static_cast<const uint16_t*>(c.ref().data()), c0.size()));
  }
  size_t same = 0, near = 0;
  for (int r = 0; r < m; ++r)
    for (int j = 0; j < ldc; ++j) {
      const size_t i = static_cast<size_t>(r) * ldc + j;
      if (j >= n) {
        ASSERT_EQ(results[1][i], c0[i]) << "the gap at row " << r << ", column " << j;
        continue;
      }
      const float g = bf16_to_float(results[1][i]), w = bf16_to_float(results[0][i]);
      same += results[1][i] == results[0][i];
      near += std::fabs(g - w) <= std::ldexp(std::max(std::fabs(g), std::fabs(w)), -7);
    }
  const size_t total = static_cast<size_t>(m) * n;
  EXPECT_EQ(near, total) << "elements within one bf16 step of the twin";
  EXPECT_GE(same, total * 95 / 100) << "elements with the twin's bits (one rounding each)";
}

TEST_F(CudaOps, AddBias) {
  struct Dims {
    int outer, channels, inner;
  };
  uint64_t seed = 800;
  for (const Dims d :
       {Dims{4, 3, 5}, Dims{7, 10, 1}, Dims{2, 16, 49}, Dims{1, 1, 1}, Dims{3, 33, 257}}) {
    const size_t n = static_cast<size_t>(d.outer) * d.channels * d.inner;
    Mirror y = mirror(random_floats(n, ++seed)), bias = mirror(random_floats(d.channels, ++seed));
    cpu().add_bias(y.c(), bias.c(), d.outer, d.channels, d.inner);
    gpu().add_bias(y.g(), bias.g(), d.outer, d.channels, d.inner);
    expect_identical(from_gpu(y), from_cpu(y),
                     "add_bias " + std::to_string(d.outer) + "x" + std::to_string(d.channels) +
                         "x" + std::to_string(d.inner));
  }
}

TEST_F(CudaOps, BiasGradAccumulates) {
  struct Dims {
    int outer, channels, inner;
  };
  uint64_t seed = 900;
  // Linears' (inner 1) at transformer sizes too (B*T = 8192 rows of 768 and of 3072), and row and
  // column counts off the two-pass sum's blocks (128 rows, 32 columns).
  for (const Dims d : {Dims{4, 3, 5}, Dims{64, 10, 1}, Dims{2, 16, 49}, Dims{1, 1, 1},
                       Dims{8, 32, 196}, Dims{3, 1000, 1}, Dims{129, 33, 1}, Dims{300, 130, 1},
                       Dims{8192, 768, 1}, Dims{8192, 3072, 1}}) {
    const size_t n = static_cast<size_t>(d.outer) * d.channels * d.inner;
    Mirror dy = mirror(random_floats(n, ++seed));
    Mirror db = mirror(random_floats(d.channels, ++seed));  // accumulated into, not overwritten
    cpu().bias_grad(dy.c(), db.c(), d.outer, d.channels, d.inner);
    gpu().bias_grad(dy.g(), db.g(), d.outer, d.channels, d.inner);
    expect_close(from_gpu(db), from_cpu(db), kTol,
                 "bias_grad " + std::to_string(d.outer) + "x" + std::to_string(d.channels) + "x" +
                     std::to_string(d.inner));
  }
}

// ---------------------------------------------------------------- convolution

std::vector<ConvShape> conv_shapes() {
  auto make = [](int n, int c, int h, int w, int oc, int kh, int kw, int stride, int pad) {
    ConvShape s;
    s.n = n;
    s.in_c = c;
    s.in_h = h;
    s.in_w = w;
    s.out_c = oc;
    s.kh = kh;
    s.kw = kw;
    s.stride = stride;
    s.pad = pad;
    return s;
  };
  return {
      make(2, 3, 8, 8, 4, 3, 3, 1, 1),      // "same" padding
      make(3, 2, 7, 9, 5, 3, 3, 2, 0),      // stride 2, odd sizes, no padding
      make(1, 1, 5, 5, 2, 5, 5, 1, 2),      // kernel as large as the input
      make(2, 3, 10, 7, 6, 3, 2, 2, 1),     // rectangular kernel, stride and padding
      make(5, 32, 14, 14, 64, 3, 3, 1, 1),  // the second conv of the "cnn" preset
      make(4, 1, 28, 28, 32, 3, 3, 1, 1),   // the first one
      make(2, 4, 9, 11, 3, 1, 1, 1, 0),     // 1x1
  };
}

TEST_F(CudaOps, Conv2dForward) {
  uint64_t seed = 1000;
  for (const ConvShape& s : conv_shapes()) {
    const size_t nx = static_cast<size_t>(s.n) * s.in_c * s.in_h * s.in_w;
    const size_t nw = static_cast<size_t>(s.out_c) * s.in_c * s.kh * s.kw;
    const size_t ny = static_cast<size_t>(s.n) * s.out_c * s.out_h() * s.out_w();
    Mirror x = mirror(random_floats(nx, ++seed)), w = mirror(random_floats(nw, ++seed));
    Mirror b = mirror(random_floats(s.out_c, ++seed));
    for (const bool with_bias : {true, false}) {
      Mirror y = poisoned(ny);
      cpu().conv2d_forward(s, x.c(), w.c(), with_bias ? b.c() : nullptr, y.c());
      gpu().conv2d_forward(s, x.g(), w.g(), with_bias ? b.g() : nullptr, y.g());
      expect_close(from_gpu(y), from_cpu(y), kTol,
                   conv_name(s) + (with_bias ? " forward" : " forward, no bias"));
    }
  }
}

TEST_F(CudaOps, Conv2dBackwardAccumulatesWeightsAndWritesInput) {
  uint64_t seed = 1100;
  for (const ConvShape& s : conv_shapes()) {
    const size_t nx = static_cast<size_t>(s.n) * s.in_c * s.in_h * s.in_w;
    const size_t nw = static_cast<size_t>(s.out_c) * s.in_c * s.kh * s.kw;
    const size_t ny = static_cast<size_t>(s.n) * s.out_c * s.out_h() * s.out_w();
    Mirror x = mirror(random_floats(nx, ++seed)), w = mirror(random_floats(nw, ++seed));
    Mirror dy = mirror(random_floats(ny, ++seed));
    // dw and db start non-zero: backward must add to them.
    Mirror dw = mirror(random_floats(nw, ++seed)), db = mirror(random_floats(s.out_c, ++seed));
    Mirror dx = poisoned(nx);
    cpu().conv2d_backward(s, x.c(), w.c(), dy.c(), dx.c(), dw.c(), db.c());
    gpu().conv2d_backward(s, x.g(), w.g(), dy.g(), dx.g(), dw.g(), db.g());
    const std::string name = conv_name(s);
    expect_close(from_gpu(dx), from_cpu(dx), kTol, name + " dx");
    expect_close(from_gpu(dw), from_cpu(dw), kTol, name + " dw");
    expect_close(from_gpu(db), from_cpu(db), kTol, name + " db");

    // Again without dx (a first layer): dw and db accumulate a second time.
    cpu().conv2d_backward(s, x.c(), w.c(), dy.c(), nullptr, dw.c(), db.c());
    gpu().conv2d_backward(s, x.g(), w.g(), dy.g(), nullptr, dw.g(), db.g());
    expect_close(from_gpu(dw), from_cpu(dw), kTol, name + " dw, second pass, dx null");
    expect_close(from_gpu(db), from_cpu(db), kTol, name + " db, second pass, dx null");
  }
}

// ---------------------------------------------------------------- max pooling

std::vector<PoolShape> pool_shapes() {
  auto make = [](int n, int c, int h, int w, int k, int stride) {
    PoolShape s;
    s.n = n;
    s.c = c;
    s.in_h = h;
    s.in_w = w;
    s.k = k;
    s.stride = stride;
    return s;
  };
  return {make(2, 3, 8, 8, 2, 2),   make(3, 4, 7, 9, 3, 2),    make(1, 2, 5, 5, 2, 2),
          make(2, 5, 11, 11, 3, 2), make(4, 32, 28, 28, 2, 2), make(2, 3, 6, 9, 3, 3),
          make(1, 1, 3, 3, 3, 1)};
}

TEST_F(CudaOps, MaxPoolForwardBackward) {
  uint64_t seed = 1200;
  for (const PoolShape& s : pool_shapes()) {
    const size_t nx = static_cast<size_t>(s.n) * s.c * s.in_h * s.in_w;
    const size_t ny = static_cast<size_t>(s.n) * s.c * s.out_h() * s.out_w();
    // Random floats: ties inside a window, where backends may pick different winners, are
    // vanishingly unlikely.
    Mirror x = mirror(random_floats(nx, ++seed)), y = poisoned(ny);
    DeviceBuffer argmax_cpu(cpu(), DataType::I32, ny), argmax_gpu(gpu(), DataType::I32, ny);
    cpu().maxpool2d_forward(s, x.c(), y.c(), argmax_cpu.as<int32_t>());
    gpu().maxpool2d_forward(s, x.g(), y.g(), argmax_gpu.as<int32_t>());
    const std::string name = pool_name(s);
    expect_identical(from_gpu(y), from_cpu(y), name + " forward");

    // Overlapping windows (k > stride) add several dy into one input, in any order: close, not
    // identical.
    Mirror dy = mirror(random_floats(ny, ++seed)), dx = poisoned(nx);
    cpu().maxpool2d_backward(s, x.c(), y.c(), dy.c(), argmax_cpu.as<int32_t>(), dx.c());
    gpu().maxpool2d_backward(s, x.g(), y.g(), dy.g(), argmax_gpu.as<int32_t>(), dx.g());
    expect_close(from_gpu(dx), from_cpu(dx), kTol, name + " backward");
  }
}

TEST_F(CudaOps, MaxPoolPropagatesNan) {
  PoolShape s;
  s.n = 2;
  s.c = 3;
  s.in_h = 9;
  s.in_w = 8;
  s.k = 3;
  s.stride = 2;
  const size_t nx = static_cast<size_t>(s.n) * s.c * s.in_h * s.in_w;
  const size_t ny = static_cast<size_t>(s.n) * s.c * s.out_h() * s.out_w();
  std::vector<float> x = random_floats(nx, 1300);
  for (const size_t i : {size_t{0}, size_t{20}, size_t{75}, nx - 1}) x[i] = kNaN;
  Mirror xm = mirror(x), y = poisoned(ny);
  DeviceBuffer argmax_cpu(cpu(), DataType::I32, ny), argmax_gpu(gpu(), DataType::I32, ny);
  cpu().maxpool2d_forward(s, xm.c(), y.c(), argmax_cpu.as<int32_t>());
  gpu().maxpool2d_forward(s, xm.g(), y.g(), argmax_gpu.as<int32_t>());
  const std::vector<float> y_cpu = from_cpu(y);
  EXPECT_GT(std::count_if(y_cpu.begin(), y_cpu.end(), [](float v) { return std::isnan(v); }), 0);
  expect_identical(from_gpu(y), y_cpu, pool_name(s) + " forward with NaN");
}

// ---------------------------------------------------------------- loss

struct LossRun {
  LossResult cpu, gpu;
  std::vector<float> dlogits_cpu, dlogits_gpu;
};

// The backend op on both, with dlogits poisoned on the GPU: every element must be written.
LossRun run_loss(const std::vector<float>& logits, const std::vector<int32_t>& labels, int batch,
                 int classes, bool with_grad, int32_t ignore_index = kIgnoreIndex) {
  const size_t n = static_cast<size_t>(batch) * classes;
  Mirror lg = CudaParity::mirror(logits);
  DeviceBuffer lab_cpu = CudaParity::upload(CudaParity::cpu(), labels);
  DeviceBuffer lab_gpu = CudaParity::upload(CudaParity::gpu(), labels);
  Mirror d = CudaParity::poisoned(n);
  const float scale = 1.0f / static_cast<float>(batch);
  LossRun r;
  r.cpu = CudaParity::cpu().softmax_cross_entropy(lg.c(), lab_cpu.as<int32_t>(), batch, classes,
                                                  classes, ignore_index, scale,
                                                  with_grad ? d.c() : nullptr);
  r.gpu = CudaParity::gpu().softmax_cross_entropy(lg.g(), lab_gpu.as<int32_t>(), batch, classes,
                                                  classes, ignore_index, scale,
                                                  with_grad ? d.g() : nullptr);
  if (with_grad) {
    r.dlogits_cpu = CudaParity::from_cpu(d);
    r.dlogits_gpu = CudaParity::from_gpu(d);
  }
  return r;
}

// How far two loss totals over `rows` counted rows may differ. Both sides sum each row's float
// exponentials in double, the CPU's vectorized exp within about 1 float ulp and CUDA's expf within
// 2, so a row's sum differs by up to about 3 ulp relative (1.8e-7), and its log-sum-exp by as
// much in absolute terms: 2.5e-7 per row, plus the double sums' own rounding. (Measured on the
// host with glibc's expf standing in: at most 2.3e-8 per row over CudaOps.SoftmaxCrossEntropy's
// shapes.) A wrong or missing term moves a row's loss by 1e-5 or more even at 50,257 classes.
double loss_bound(int64_t rows, double loss) {
  return 2.5e-7 * static_cast<double>(rows) + 1e-12 * std::fabs(loss);
}

// The counts are exact.
void expect_same_totals(const LossRun& r, const std::string& name) {
  EXPECT_NEAR(r.gpu.loss_sum, r.cpu.loss_sum, loss_bound(r.cpu.count, r.cpu.loss_sum)) << name;
  EXPECT_EQ(r.gpu.count, r.cpu.count) << name;
  EXPECT_EQ(r.gpu.correct, r.cpu.correct) << name;
  EXPECT_EQ(r.gpu.invalid, r.cpu.invalid) << name;
}

TEST_F(CudaOps, SoftmaxCrossEntropy) {
  struct Dims {
    int batch, classes;
  };
  uint64_t seed = 1400;
  for (const Dims d : {Dims{1, 1}, Dims{1, 10}, Dims{7, 10}, Dims{64, 10}, Dims{33, 100},
                       Dims{5, 1000}, Dims{300, 3}, Dims{2000, 37}, Dims{3, 4097}}) {
    const std::string name =
        "softmax_cross_entropy " + std::to_string(d.batch) + "x" + std::to_string(d.classes);
    const std::vector<float> logits =
        random_floats(static_cast<size_t>(d.batch) * d.classes, ++seed, -6.0f, 6.0f);
    const std::vector<int32_t> labels = random_labels(d.batch, d.classes, ++seed);
    for (const bool with_grad : {true, false}) {
      const LossRun r = run_loss(logits, labels, d.batch, d.classes, with_grad);
      expect_same_totals(r, name);
      EXPECT_EQ(r.cpu.count, d.batch) << name;
      if (with_grad) expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, name + " dlogits");
    }
  }
}

// Rows `ld` elements apart, as a gpt's tied head lays its logits out (GPT-2's 50,257 classes in
// rows of 50,304): in float32 against the CPU twin on the same layout; in bf16 (the native
// kernel) the same bits as the rows packed; and the elements between the rows, a marker value
// before the call, left alone on the GPU in both types.
TEST_F(CudaOps, SoftmaxCrossEntropyRowsApart) {
  struct Dims {
    int rows, classes, ld;
  };
  uint64_t seed = 1470;
  for (const Dims d : {Dims{9, 50, 64}, Dims{33, 1000, 1024}, Dims{4, 50257, 50304}}) {
    const std::string name = "softmax_cross_entropy " + std::to_string(d.rows) + "x" +
                             std::to_string(d.classes) + " ld " + std::to_string(d.ld);
    const size_t n = static_cast<size_t>(d.rows) * d.ld;
    const float between = -3.25f;
    std::vector<float> logits = random_floats(n, ++seed, -6.0f, 6.0f);
    std::vector<float> start(n, std::nanf(""));  // dlogits before the call
    for (size_t i = 0; i < n; ++i)
      if (static_cast<int>(i % d.ld) >= d.classes) start[i] = between;
    std::vector<int32_t> labels = random_labels(d.rows, d.classes, ++seed);
    labels[1] = kIgnoreIndex;
    Mirror lg = mirror(logits), dl = mirror(start);
    DeviceBuffer lab_cpu = upload(cpu(), labels), lab_gpu = upload(gpu(), labels);
    LossRun r;
    r.cpu = cpu().softmax_cross_entropy(lg.c(), lab_cpu.as<int32_t>(), d.rows, d.classes, d.ld,
                                        kIgnoreIndex, 0.5f, dl.c());
    r.gpu = gpu().softmax_cross_entropy(lg.g(), lab_gpu.as<int32_t>(), d.rows, d.classes, d.ld,
                                        kIgnoreIndex, 0.5f, dl.g());
    expect_same_totals(r, name);
    EXPECT_EQ(r.gpu.count, d.rows - 1) << name;
    const std::vector<float> got = from_gpu(dl), want = from_cpu(dl);
    expect_close(testing::packed_rows(got, d.rows, d.classes, d.ld),
                 testing::packed_rows(want, d.rows, d.classes, d.ld), kTol, name + " dlogits");
    size_t moved = 0;
    for (size_t i = 0; i < n; ++i)
      moved += static_cast<int>(i % d.ld) >= d.classes && got[i] != between;
    EXPECT_EQ(moved, 0u) << name << ": float32 elements between the rows written";

    // bf16: the strided call against the packed one, on the GPU.
    const std::vector<float> packed = testing::packed_rows(logits, d.rows, d.classes, d.ld);
    DeviceBuffer packed_f = upload(gpu(), packed);
    DeviceBuffer lb(gpu(), DataType::BF16, n), pb(gpu(), DataType::BF16, packed.size());
    DeviceBuffer db(gpu(), DataType::BF16, n), dpb(gpu(), DataType::BF16, packed.size());
    gpu().convert(lg.g(), DataType::F32, lb.ref().data(), DataType::BF16, n);
    gpu().convert(packed_f.data(), DataType::F32, pb.ref().data(), DataType::BF16, packed.size());
    DeviceBuffer start_g = upload(gpu(), start);
    gpu().convert(start_g.data(), DataType::F32, db.ref().data(), DataType::BF16, n);
    const LossResult apart = gpu().softmax_cross_entropy(
        lb.ref(), lab_gpu.as<int32_t>(), d.rows, d.classes, d.ld, kIgnoreIndex, 0.5f, db.ref());
    const LossResult close =
        gpu().softmax_cross_entropy(pb.ref(), lab_gpu.as<int32_t>(), d.rows, d.classes, d.classes,
                                    kIgnoreIndex, 0.5f, dpb.ref());
    EXPECT_EQ(std::memcmp(&apart.loss_sum, &close.loss_sum, sizeof(double)), 0) << name;
    EXPECT_EQ(apart.count, close.count) << name;
    EXPECT_EQ(apart.correct, close.correct) << name;
    const std::vector<uint16_t> da =
        download(gpu(), static_cast<const uint16_t*>(db.ref().data()), n);
    const std::vector<uint16_t> dp =
        download(gpu(), static_cast<const uint16_t*>(dpb.ref().data()), packed.size());
    size_t differ = 0, written = 0;
    for (size_t i = 0; i < n; ++i) {
      const size_t row = i / d.ld, c = i % d.ld;
      if (static_cast<int>(c) < d.classes)
        differ += da[i] != dp[row * d.classes + c];
      else
        written += da[i] != float_to_bf16(between);
    }
    EXPECT_EQ(differ, 0u) << name << ": bf16 gradients differ from the packed rows'";
    EXPECT_EQ(written, 0u) << name << ": bf16 elements between the rows written";
  }
}

// The deferred loss, as a training step uses it: the totals add up on the device, call after
// call, and are read (and zeroed) when taken. The same double additions as the immediate calls'
// results added on the host, so the same bits; within loss_bound of the CPU's totals; the same
// gradient as the immediate call; and nothing left once taken.
TEST_F(CudaOps, SoftmaxCrossEntropyDeferredAddsUpOnTheDevice) {
  const int rows = 37, classes = 1000;
  gpu().take_loss_totals();  // nothing from another test
  cpu().take_loss_totals();
  LossResult want;
  for (const uint64_t seed : {1450, 1451, 1452}) {
    const std::vector<float> logits =
        random_floats(static_cast<size_t>(rows) * classes, seed, -6.0f, 6.0f);
    std::vector<int32_t> labels = random_labels(rows, classes, seed + 10);
    labels[3] = kIgnoreIndex;
    Mirror lg = mirror(logits), now = poisoned(logits.size()), later = poisoned(logits.size());
    DeviceBuffer lab_cpu = upload(cpu(), labels), lab_gpu = upload(gpu(), labels);
    want += gpu().softmax_cross_entropy(lg.g(), lab_gpu.as<int32_t>(), rows, classes, classes,
                                        kIgnoreIndex, 0.25f, now.g());
    gpu().softmax_cross_entropy_deferred(lg.g(), lab_gpu.as<int32_t>(), rows, classes, classes,
                                         kIgnoreIndex, 0.25f, later.g());
    cpu().softmax_cross_entropy_deferred(lg.c(), lab_cpu.as<int32_t>(), rows, classes, classes,
                                         kIgnoreIndex, 0.25f, later.c());
    expect_identical(from_gpu(later), from_gpu(now),
                     "deferred dlogits, seed " + std::to_string(seed));
  }
  const LossResult got = gpu().take_loss_totals(), on_cpu = cpu().take_loss_totals();
  EXPECT_EQ(std::memcmp(&got.loss_sum, &want.loss_sum, sizeof(double)), 0)
      << got.loss_sum << " against " << want.loss_sum;
  EXPECT_EQ(got.count, 3 * (rows - 1));
  EXPECT_EQ(got.count, want.count);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_EQ(got.invalid, 0);
  EXPECT_NEAR(got.loss_sum, on_cpu.loss_sum, loss_bound(on_cpu.count, on_cpu.loss_sum));
  EXPECT_EQ(got.count, on_cpu.count);
  EXPECT_EQ(got.correct, on_cpu.correct);
  const LossResult none = gpu().take_loss_totals();
  EXPECT_EQ(none.loss_sum, 0.0);
  EXPECT_EQ(none.count, 0);
}

// Ignored rows (the ignore index) and invalid ones (no class): no loss, not counted, a zero
// gradient, written in full on the GPU; the others as without them. At 10 classes (one warp per
// row) and at GPT-2's 50,257 (a block of 512 threads per row, each over about 98 classes).
TEST_F(CudaOps, SoftmaxCrossEntropyIgnoredRows) {
  struct Case {
    int rows, classes;
    std::vector<int> ignored, invalid, hits;
  };
  uint64_t seed = 1450;
  for (const Case& k :
       {Case{64, 10, {0, 5, 6, 63}, {9, 12}, {1, 2}}, Case{8, 50257, {2, 5}, {4, 7}, {1, 3}}}) {
    const std::string name = "softmax_cross_entropy " + std::to_string(k.rows) + "x" +
                             std::to_string(k.classes) + " with ignored rows";
    const size_t n = static_cast<size_t>(k.rows) * k.classes;
    const std::vector<float> logits = random_floats(n, ++seed, -8.0f, 8.0f);
    std::vector<int32_t> labels = random_labels(k.rows, k.classes, ++seed);
    for (const int r : k.hits)
      labels[r] = static_cast<int32_t>(
          std::max_element(logits.begin() + static_cast<std::ptrdiff_t>(r) * k.classes,
                           logits.begin() + static_cast<std::ptrdiff_t>(r + 1) * k.classes) -
          (logits.begin() + static_cast<std::ptrdiff_t>(r) * k.classes));
    for (const int r : k.ignored) labels[r] = kIgnoreIndex;
    for (size_t j = 0; j < k.invalid.size(); ++j) labels[k.invalid[j]] = j == 0 ? k.classes : -1;
    const int64_t counted =
        k.rows - static_cast<int64_t>(k.ignored.size()) - static_cast<int64_t>(k.invalid.size());

    const LossRun r = run_loss(logits, labels, k.rows, k.classes, true);
    expect_same_totals(r, name);
    EXPECT_EQ(r.cpu.count, counted) << name;
    EXPECT_EQ(r.cpu.invalid, static_cast<int64_t>(k.invalid.size())) << name;
    EXPECT_GE(r.cpu.correct, static_cast<int64_t>(k.hits.size())) << name;
    // Float roundings of the same double probabilities: close, mostly identical.
    expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, name + " dlogits");
    std::vector<int> skipped = k.ignored;
    skipped.insert(skipped.end(), k.invalid.begin(), k.invalid.end());
    for (const int row : skipped) {
      const auto at = [&](const std::vector<float>& v) {
        return std::vector<float>(v.begin() + static_cast<std::ptrdiff_t>(row) * k.classes,
                                  v.begin() + static_cast<std::ptrdiff_t>(row + 1) * k.classes);
      };
      expect_identical(at(r.dlogits_gpu), std::vector<float>(k.classes, 0.0f),
                       name + " dlogits of skipped row " + std::to_string(row));
    }

    // Deterministic: the same call again gives the same bits.
    const LossRun again = run_loss(logits, labels, k.rows, k.classes, true);
    EXPECT_EQ(std::memcmp(&again.gpu.loss_sum, &r.gpu.loss_sum, sizeof(double)), 0) << name;
    expect_identical(again.dlogits_gpu, r.dlogits_gpu, name + " dlogits, second run");
  }
}

// More than 2^31 logits in all: rows past that mark are read and written at 64-bit offsets.
// All rows but a few are ignored, so that the CPU needs to compute only those few.
TEST_F(CudaOps, SoftmaxCrossEntropyPast2To31Elements) {
  const int classes = 50257, rows = 42800;  // 2,150,999,600 logits; row 42731 starts past 2^31
  const size_t n = static_cast<size_t>(rows) * classes;
  if (cuda_device_info(gpu_->ordinal()).total_memory < (size_t{24} << 30))
    GTEST_SKIP() << "needs 24 GiB of GPU memory for two buffers of " << n << " floats";
  // Row 42730 straddles 2^31; the last row stays ignored, so its last element must be zero.
  const std::vector<int> counted = {0, 42729, 42730, 42798};
  DeviceBuffer logits(gpu(), DataType::F32, n), dlogits(gpu(), DataType::F32, n);
  gpu().fill_uniform(logits.data(), n, 8.0f, 1480);
  gpu().fill(dlogits.data(), n, std::nanf(""));
  std::vector<int32_t> labels(rows, kIgnoreIndex);
  std::vector<int32_t> packed_labels;
  std::vector<float> packed_logits;
  for (const int r : counted) {
    labels[r] = static_cast<int32_t>(random_u64(1481, static_cast<uint64_t>(r)) % classes);
    packed_labels.push_back(labels[r]);
    const std::vector<float> row =
        download(gpu(), logits.data() + static_cast<size_t>(r) * classes, classes);
    packed_logits.insert(packed_logits.end(), row.begin(), row.end());
  }
  DeviceBuffer labels_gpu = upload(gpu(), labels);
  const float scale = 1.0f / 1024.0f;
  const LossResult g =
      gpu().softmax_cross_entropy(logits.data(), labels_gpu.as<int32_t>(), rows, classes, classes,
                                  kIgnoreIndex, scale, dlogits.data());

  const int packed_rows = static_cast<int>(counted.size());
  Mirror packed = mirror(packed_logits), d = zeros(packed_logits.size());
  DeviceBuffer packed_labels_cpu = upload(cpu(), packed_labels);
  const LossResult c =
      cpu().softmax_cross_entropy(packed.c(), packed_labels_cpu.as<int32_t>(), packed_rows, classes,
                                  classes, kIgnoreIndex, scale, d.c());
  EXPECT_EQ(g.count, packed_rows);
  EXPECT_EQ(g.correct, c.correct);
  EXPECT_EQ(g.invalid, 0);
  EXPECT_NEAR(g.loss_sum, c.loss_sum, loss_bound(c.count, c.loss_sum));
  const std::vector<float> d_cpu = from_cpu(d);
  for (size_t i = 0; i < counted.size(); ++i) {
    const size_t row = static_cast<size_t>(counted[i]);
    const std::string name = "row " + std::to_string(row) + " of " + std::to_string(rows);
    expect_close(download(gpu(), dlogits.data() + row * classes, classes),
                 std::vector<float>(d_cpu.begin() + static_cast<std::ptrdiff_t>(i) * classes,
                                    d_cpu.begin() + static_cast<std::ptrdiff_t>(i + 1) * classes),
                 kTol, name + " dlogits");
  }
  // Ignored rows past 2^31 and the very last element (of ignored row 42799): zeros, written
  // over the NaN.
  expect_identical(download(gpu(), dlogits.data() + size_t{42731} * classes, classes),
                   std::vector<float>(classes, 0.0f), "dlogits of ignored row 42731");
  expect_identical(download(gpu(), dlogits.data() + n - 1, 1), {0.0f}, "the last dlogit");
}

TEST_F(CudaOps, SoftmaxCrossEntropyArgMaxTiesAndNan) {
  // 40 classes: a warp's 32 lanes each hold one or two of a row's logits.
  const int batch = 6, classes = 40;
  std::vector<float> logits = random_floats(static_cast<size_t>(batch) * classes, 1500, -3, 3);
  const std::vector<int32_t> labels = {0, 3, 7, 35, 35, 2};
  auto row = [&](int r) { return logits.begin() + static_cast<std::ptrdiff_t>(r) * classes; };
  std::fill(row(0), row(1), 0.5f);              // all equal: class 0 wins; label 0, a hit
  row(1)[3] = row(1)[7] = 10.0f;                // a tie: 3 wins; label 3, a hit
  row(2)[3] = row(2)[7] = 10.0f;                // the same tie; label 7, a miss
  row(3)[35] = row(3)[38] = 10.0f;              // a tie across lanes 3 and 6: 35 wins; a hit
  row(4)[3] = row(4)[35] = row(4)[38] = 10.0f;  // 3 and 35 share lane 3: 3 wins; a miss
  std::fill(row(5), row(6), -kInf);             // all -inf: arg-max 0, and the loss is NaN
  {
    const LossRun r = run_loss(logits, labels, 5, classes, true);
    EXPECT_EQ(r.cpu.correct, 3);
    EXPECT_EQ(r.gpu.correct, r.cpu.correct);
    EXPECT_NEAR(r.gpu.loss_sum, r.cpu.loss_sum, loss_bound(r.cpu.count, r.cpu.loss_sum));
    expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, "dlogits with ties");
  }
  {
    const LossRun r = run_loss(logits, labels, 6, classes, true);
    EXPECT_EQ(r.gpu.correct, r.cpu.correct);
    EXPECT_TRUE(std::isnan(r.cpu.loss_sum));
    EXPECT_TRUE(std::isnan(r.gpu.loss_sum));
    expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, "dlogits with a row of -inf");
  }
  // A NaN logit is never the arg-max unless it comes first; the loss is NaN on both.
  std::vector<float> with_nan(row(1), row(3));        // rows 1 and 2
  with_nan[0] = kNaN;                                 // row 0: the first logit
  with_nan[static_cast<size_t>(classes) + 5] = kNaN;  // row 1: another one
  const LossRun r = run_loss(with_nan, {3, 7}, 2, classes, true);
  EXPECT_EQ(r.gpu.correct, r.cpu.correct);
  EXPECT_TRUE(std::isnan(r.cpu.loss_sum));
  EXPECT_TRUE(std::isnan(r.gpu.loss_sum));
  expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, "dlogits with NaN");
}

TEST_F(CudaOps, SoftmaxCrossEntropyArgMaxTiesAcrossWarps) {
  // 4097 classes: 512 threads per row, so that class c is thread c % 512 of warp (c % 512) / 32.
  const int classes = 4097;
  std::vector<float> logits = random_floats(static_cast<size_t>(4) * classes, 1550, -3, 3);
  auto row = [&](int r) { return logits.begin() + static_cast<std::ptrdiff_t>(r) * classes; };
  row(0)[40] = row(0)[600] = row(0)[3000] = 10.0f;  // warps 1, 2, 13: 40 wins
  row(1)[40] = row(1)[552] = 10.0f;                 // one thread holds both: 40 wins
  row(2)[1000] = row(2)[530] = 10.0f;               // warp 15 against warp 0: 530 wins
  row(3)[4096] = 10.0f;                             // the last class, alone in its loop round
  const std::vector<int32_t> labels = {40, 552, 530, 4096};
  const LossRun r = run_loss(logits, labels, 4, classes, true);
  EXPECT_EQ(r.cpu.correct, 3);
  expect_same_totals(r, "ties across warps");
  expect_close(r.dlogits_gpu, r.dlogits_cpu, kTol, "dlogits with ties across warps");
}

// ---------------------------------------------------------------- optimizers

TEST_F(CudaOps, SgdVariants) {
  struct Variant {
    const char* name;
    SgdParams p;
  };
  const Variant variants[] = {
      {"plain", {0.1f, 0.0f, 0.0f, false}},
      {"momentum", {0.05f, 0.9f, 0.0f, false}},
      {"nesterov", {0.05f, 0.9f, 0.0f, true}},
      {"weight decay", {0.1f, 0.0f, 0.01f, false}},
      {"momentum and weight decay", {0.05f, 0.9f, 5e-4f, false}},
      {"nesterov and weight decay", {0.05f, 0.8f, 1e-2f, true}},
  };
  const size_t n = 100003;
  uint64_t seed = 1600;
  for (const Variant& v : variants) {
    Mirror param = mirror(random_floats(n, ++seed)), buf = zeros(n);
    for (int step = 0; step < 3; ++step) {
      Mirror grad = mirror(random_floats(n, ++seed));
      cpu().sgd_update(param.c(), grad.c(), buf.c(), n, v.p);
      gpu().sgd_update(param.g(), grad.g(), buf.g(), n, v.p);
    }
    // The kernel repeats the CPU's operations in order without FMA contraction: the results
    // are expected to be identical on x86-64; the bound allows for a host compiler that fuses.
    expect_close(from_gpu(param), from_cpu(param), kTol, std::string("sgd ") + v.name + " param");
    expect_close(from_gpu(buf), from_cpu(buf), kTol, std::string("sgd ") + v.name + " momentum");
  }
}

TEST_F(CudaOps, AdamWSeveralSteps) {
  const size_t n = 100003;
  uint64_t seed = 1700;
  for (const float wd : {0.0f, 0.01f, 0.1f}) {
    Mirror param = mirror(random_floats(n, ++seed)), m = zeros(n), v = zeros(n);
    AdamWParams p;
    p.lr = 1e-2f;
    p.weight_decay = wd;
    for (int step = 1; step <= 5; ++step) {
      p.step = step;
      Mirror grad = mirror(random_floats(n, ++seed, -0.5f, 0.5f));
      cpu().adamw_update(param.c(), grad.c(), m.c(), v.c(), n, p);
      gpu().adamw_update(param.g(), grad.g(), m.g(), v.g(), n, p);
    }
    const std::string name = "adamw wd=" + std::to_string(wd);
    expect_close(from_gpu(param), from_cpu(param), kTol, name + " param");
    expect_close(from_gpu(m), from_cpu(m), kTol, name + " m");
    expect_close(from_gpu(v), from_cpu(v), kTol, name + " v");
  }
}

// The step's gate on the device (Backend::sum_squares_into, update_gate, scale_by and the
// updates' skip flag; src/train/step_gate.hpp): the sum the same bits as sum_squares, the flag
// and the coefficient those of gate_coefficient on the host, scaling as scale() does only below
// 1, and an update that leaves everything alone while the flag is set.
TEST_F(CudaOps, TheStepGateDecidesOnTheDevice) {
  const size_t n = 1000003;
  Mirror x = mirror(random_floats(n, 1800, -2.0f, 2.0f));
  DeviceBuffer state(gpu(), DataType::F32, 4);  // a double, a float, an int32
  auto* sum = reinterpret_cast<double*>(state.data());
  float* coef = state.data() + 2;
  auto* skip = reinterpret_cast<int32_t*>(state.data() + 3);
  gpu().sum_squares_into(x.g(), n, sum);
  const double want_sum = gpu().sum_squares(x.g(), n);
  const double got_sum = download(gpu(), sum, 1)[0];
  EXPECT_EQ(std::memcmp(&got_sum, &want_sum, sizeof(double)), 0) << got_sum << " " << want_sum;

  const double big = 1e300, inf = std::numeric_limits<double>::infinity();
  for (const double s : {want_sum, 0.0, 0.24, big, inf, std::nan("")}) {
    for (const double max_norm : {0.0, 0.5, 1e10}) {
      const std::string name = "sum " + std::to_string(s) + " max_norm " + std::to_string(max_norm);
      gpu().copy_from_host(sum, &s, sizeof(double));
      gpu().update_gate(sum, max_norm, coef, skip);
      int32_t want_skip = 0;
      const float want_coef = gate_coefficient(s, max_norm, &want_skip);
      EXPECT_EQ(download(gpu(), skip, 1)[0], want_skip) << name;
      const float got_coef = download(gpu(), coef, 1)[0];
      EXPECT_EQ(std::memcmp(&got_coef, &want_coef, sizeof(float)), 0)
          << name << ": " << got_coef << " against " << want_coef;
    }
  }

  // scale_by: below 1 as scale(), otherwise nothing.
  for (const float c : {0.3f, 1.0f, 2.0f}) {
    Mirror y = mirror(random_floats(n, 1801, -2.0f, 2.0f));
    gpu().copy_from_host(coef, &c, sizeof(float));
    gpu().scale_by(y.g(), n, coef);
    if (c < 1.0f) cpu().scale(y.c(), n, c);
    expect_identical(from_gpu(y), from_cpu(y), "scale_by " + std::to_string(c));
  }

  // The updates: with the flag set nothing moves; with it clear, the same bits as without it.
  for (const int32_t flag : {1, 0}) {
    gpu().copy_from_host(skip, &flag, sizeof(int32_t));
    const std::vector<float> p0 = random_floats(n, 1802), m0 = random_floats(n, 1803, 0.0f, 0.1f);
    const std::vector<float> v0 = random_floats(n, 1804, 0.0f, 0.1f);
    const std::vector<float> g = random_floats(n, 1805, -0.5f, 0.5f);
    DeviceBuffer gd = upload(gpu(), g);
    DeviceBuffer pa = upload(gpu(), p0), ma = upload(gpu(), m0), va = upload(gpu(), v0);
    DeviceBuffer pb = upload(gpu(), p0), mb = upload(gpu(), m0), vb = upload(gpu(), v0);
    AdamWParams a;
    a.lr = 1e-2f;
    a.step = 3;
    gpu().adamw_update(pb.data(), gd.data(), mb.data(), vb.data(), n, a);  // no flag
    a.skip = skip;
    gpu().adamw_update(pa.data(), gd.data(), ma.data(), va.data(), n, a);
    const std::string name = std::string("adamw, skip flag ") + std::to_string(flag);
    expect_identical(download(gpu(), pa.data(), n), flag ? p0 : download(gpu(), pb.data(), n),
                     name + " param");
    expect_identical(download(gpu(), ma.data(), n), flag ? m0 : download(gpu(), mb.data(), n),
                     name + " m");
    expect_identical(download(gpu(), va.data(), n), flag ? v0 : download(gpu(), vb.data(), n),
                     name + " v");
    DeviceBuffer ps = upload(gpu(), p0), bs = upload(gpu(), m0);
    DeviceBuffer pt = upload(gpu(), p0), bt = upload(gpu(), m0);
    SgdParams sp{0.05f, 0.9f, 1e-4f, true};
    gpu().sgd_update(pt.data(), gd.data(), bt.data(), n, sp);  // no flag
    sp.skip = skip;
    gpu().sgd_update(ps.data(), gd.data(), bs.data(), n, sp);
    expect_identical(download(gpu(), ps.data(), n), flag ? p0 : download(gpu(), pt.data(), n),
                     std::string("sgd, skip flag ") + std::to_string(flag) + " param");
    expect_identical(download(gpu(), bs.data(), n), flag ? m0 : download(gpu(), bt.data(), n),
                     std::string("sgd, skip flag ") + std::to_string(flag) + " momentum");
  }
}

}  // namespace
}  // namespace dpt::gputest
