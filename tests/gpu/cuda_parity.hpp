// Shared pieces of the GPU parity tests: a fixture that skips without a GPU and holds one CUDA
// and one CPU backend, buffers mirrored on both, and the comparisons.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/core/random.hpp"

namespace dpt::gputest {

// The float32 parity bound on ||gpu - cpu|| / ||cpu||: both compute the same sums in different
// orders, which moves results by a few units in the last place (about 1e-7 relative).
constexpr double kTol = 1e-5;

// The same data in both backends' memory.
struct Mirror {
  DeviceBuffer cpu, gpu;
  size_t count = 0;  // elements
  float* c() const { return cpu.data(); }
  float* g() const { return gpu.data(); }
};

// Public throughout, so that helper functions of the tests can use it too.
class CudaParity : public ::testing::Test {
 public:
  static void TearDownTestSuite() {
    gpu_.reset();
    cpu_.reset();
  }
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
    if (!gpu_) gpu_ = make_cuda_backend(0);
    if (!cpu_) cpu_ = make_cpu_backend(1);
  }

  static Backend& gpu() { return *gpu_; }
  static Backend& cpu() { return *cpu_; }

  // Uniform in [lo, hi) from stream `seed` (src/core/random.hpp).
  static std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f,
                                          float hi = 1.0f) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * uniform_float(seed, i);
    return v;
  }
  static std::vector<int32_t> random_labels(size_t n, int classes, uint64_t seed) {
    std::vector<int32_t> v(n);
    for (size_t i = 0; i < n; ++i)
      v[i] = static_cast<int32_t>(random_u64(seed, i) % static_cast<uint64_t>(classes));
    return v;
  }

  template <class T>
  static DeviceBuffer upload(Backend& be, const std::vector<T>& host) {
    DeviceBuffer b(be, dtype_of<T>(), host.size());
    be.copy_from_host(b.as<T>(), host.data(), sizeof(T) * host.size());
    return b;
  }
  template <class T = float>
  static std::vector<T> download(Backend& be, const T* p, size_t n) {
    std::vector<T> host(n);
    be.copy_to_host(host.data(), p, sizeof(T) * n);
    return host;
  }

  static Mirror mirror(const std::vector<float>& host) {
    return {upload(cpu(), host), upload(gpu(), host), host.size()};
  }
  // Zeros on both; or, poisoned, NaN on the GPU, so that an element the op fails to write shows.
  static Mirror zeros(size_t n) {
    return {DeviceBuffer(cpu(), DataType::F32, n), DeviceBuffer(gpu(), DataType::F32, n), n};
  }
  static Mirror poisoned(size_t n) {
    Mirror m = zeros(n);
    gpu().fill(m.g(), n, std::nanf(""));
    return m;
  }
  static std::vector<float> from_cpu(const Mirror& m) { return download(cpu(), m.c(), m.count); }
  static std::vector<float> from_gpu(const Mirror& m) { return download(gpu(), m.g(), m.count); }

  inline static std::unique_ptr<CudaBackend> gpu_;
  inline static std::unique_ptr<Backend> cpu_;
};

// ||got - want|| / ||want|| over the values finite in both; a NaN or an infinity must appear in
// the same places (and with the same sign) in both.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want,
                             size_t* nonfinite_mismatches = nullptr, size_t* first_bad = nullptr) {
  double diff = 0, norm = 0;
  size_t bad = 0, first = got.size();
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const float g = got[i], w = want[i];
    if (!std::isfinite(g) || !std::isfinite(w)) {
      if (!((std::isnan(g) && std::isnan(w)) || g == w)) {
        if (bad++ == 0) first = i;
      }
      continue;
    }
    diff += (static_cast<double>(g) - w) * (static_cast<double>(g) - w);
    norm += static_cast<double>(w) * w;
  }
  if (nonfinite_mismatches) *nonfinite_mismatches = bad;
  if (first_bad) *first_bad = first;
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double tol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  size_t bad = 0, first = 0;
  const double rel = relative_error(got, want, &bad, &first);
  if (bad != 0)
    ADD_FAILURE() << what << ": " << bad << " non-finite values differ, the first at [" << first
                  << "]: gpu " << got[first] << ", cpu " << want[first];
  EXPECT_LT(rel, tol) << what << ": relative error " << rel << " over " << got.size() << " values";
}

// Bit-for-bit equality, for ops with no rounding freedom (masks, copies, single multiplies).
// Any NaN equals any NaN: the payload and sign of a propagated NaN are not specified (cuDNN's
// pooling returns another NaN pattern than the input's).
inline void expect_identical(const std::vector<float>& got, const std::vector<float>& want,
                             const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    if (!(std::isnan(got[i]) && std::isnan(want[i])) &&
        std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": first difference at [" << i << "]: gpu " << got[i] << ", cpu "
                    << want[i];
      return;
    }
}

}  // namespace dpt::gputest
