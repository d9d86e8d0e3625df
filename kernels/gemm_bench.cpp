#include "kernels/gemm_bench.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"

namespace dpt {

GemmBenchResult run_gemm_bench(Backend& be, int n, int repeats) {
  if (n < 16 || n > 16384)
    throw InputError("option --size " + std::to_string(n) + ": must be in [16, 16384]");
  if (repeats < 1 || repeats > 1000)
    throw InputError("option --repeats " + std::to_string(repeats) + ": must be in [1, 1000]");
  const size_t count = static_cast<size_t>(n) * n;
  auto* a = static_cast<float*>(be.alloc(count * sizeof(float)));
  auto* b = static_cast<float*>(be.alloc(count * sizeof(float)));
  auto* c = static_cast<float*>(be.alloc(count * sizeof(float)));
  be.fill_uniform(a, count, 1.0f, 101);
  be.fill_uniform(b, count, 1.0f, 202);
  GemmBenchResult r;
  r.n = n;
  r.repeats = repeats;
  be.gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);  // warm-up: caches, threads
  be.synchronize();
  for (int i = 0; i < repeats; ++i) {
    const double start = steady_seconds();
    be.gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    be.synchronize();
    const double t = steady_seconds() - start;
    r.best_seconds = i == 0 ? t : std::min(r.best_seconds, t);
  }
  r.flops_per_second = 2.0 * n * static_cast<double>(n) * n / r.best_seconds;

  std::vector<float> ha(count), hb(count), hc(count);
  be.copy_to_host(ha.data(), a, count * sizeof(float));
  be.copy_to_host(hb.data(), b, count * sizeof(float));
  be.copy_to_host(hc.data(), c, count * sizeof(float));
  be.free(a);
  be.free(b);
  be.free(c);
  // 97 elements spread over C (a stride coprime with n's usual powers of two).
  for (size_t e = 0; e < 97; ++e) {
    const size_t idx = (e * 7919 * 104729) % count;
    const size_t i = idx / n, j = idx % n;
    double want = 0, scale = 0;
    for (int k = 0; k < n; ++k) {
      const double p = static_cast<double>(ha[i * n + k]) * hb[static_cast<size_t>(k) * n + j];
      want += p;
      scale += std::fabs(p);
    }
    const double err = std::fabs(hc[idx] - want) / std::max(scale, 1e-30);
    r.worst_error = std::max(r.worst_error, err);
    if (!(err <= 1e-4)) ++r.wrong;
  }
  return r;
}

}  // namespace dpt
