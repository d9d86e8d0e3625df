#include "kernels/cpu/cpu_gemm.hpp"

#if DPT_WITH_OPENBLAS
#include <cblas.h>
extern "C" void openblas_set_num_threads(int num_threads);
#endif

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kernels/cpu/builtin_gemm.hpp"
#include "kernels/cpu/vector_math.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {

std::atomic<int> g_threads{1};

// DPT_CPU_GEMM: unset, empty or "auto" lets the CPU decide; "blas" forces the library.
bool library_forced() {
  static const bool forced = [] {
    const char* v = std::getenv("DPT_CPU_GEMM");
    const std::string_view s = v ? v : "";
    if (s.empty() || s == "auto") return false;
    if (s == "blas") return true;
    throw InputError("DPT_CPU_GEMM: '" + std::string(s) + "' is not one of auto, blas");
  }();
  return forced;
}

bool use_own() {
  return g_threads.load(std::memory_order_relaxed) == 1 && cpu_has_avx2_fma() &&
         !library_forced();
}

}  // namespace

void set_cpu_gemm_threads(int threads) {
  library_forced();  // a bad DPT_CPU_GEMM is an error here, as the backend is made, not mid-step
  threads = std::max(1, threads);
  g_threads.store(threads, std::memory_order_relaxed);
#if DPT_WITH_OPENBLAS
  openblas_set_num_threads(threads);
#endif
}

const char* cpu_gemm_name() {
#if DPT_WITH_OPENBLAS
  return use_own() ? "avx2" : "openblas";
#else
  return use_own() ? "avx2" : "builtin";
#endif
}

void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc, Triangle tri,
               const float* bias) {
#if DPT_HAVE_AVX2_SGEMM
  if (use_own()) {
    avx2_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, tri, bias);
    return;
  }
#else
  (void)tri;
#endif
  if (bias && m > 0 && n > 0) {  // C = beta C + bias first, and the library adds the product
    for (int i = 0; i < m; ++i) {
      float* row = c + static_cast<size_t>(i) * ldc;
      for (int j = 0; j < n; ++j) row[j] = (beta == 0.0f ? 0.0f : beta * row[j]) + bias[j];
    }
    beta = 1.0f;
  }
#if DPT_WITH_OPENBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
  builtin_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
}

}  // namespace dpt
