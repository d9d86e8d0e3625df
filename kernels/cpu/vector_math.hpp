// The CPU kernels' vector helpers: an AVX2/FMA build of a loop beside the baseline one, and an
// exp that vectorizes.
//
// exp_nonpositive: exp of a float at or below zero, as straight-line arithmetic that the compiler
// vectorizes (libm's expf and tanhf are one call per element). For the softmax rows of attention
// (scores less their row's maximum) and for GELU's tanh.
//
// exp(z) = 2^k p(r), with k = round(z / ln 2), r = z - k ln 2 (|r| <= ln(2)/2, ln 2 in two parts
// so that k times the first is exact), and p the degree-7 Taylor polynomial of exp (truncation
// below 3e-9 relative). Measured against double exp at 4M points of [-87, 0]: within 1.1e-7
// relative, about one float ulp. Below -87 (near where exp leaves the normal floats, 1.6e-38) it
// returns 0; a NaN stays NaN.
// Needs -fno-trapping-math to vectorize (the selects), which CMakeLists.txt gives kernels/cpu.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <string_view>

// A float loop that matters is compiled twice: for x86-64's baseline (SSE2, four floats a step)
// and, with DPT_AVX2_FMA, for AVX2 with FMA (eight, and fused multiply-adds); the caller picks
// with cpu_has_avx2_fma(). The two may round differently (FMA), as OpenBLAS's kernels do from
// one CPU to another. (GCC's target_clones("arch=haswell") would pick by CPU model, not by
// feature, and so never on AMD's CPUs.)
#if defined(__x86_64__) && defined(__GNUC__)
#define DPT_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define DPT_AVX2_FMA
#endif

namespace dpt {

// True where the CPU has AVX2 and FMA, unless the environment sets DPT_CPU_VECTOR=baseline
// (as tests/cross_cpu.sh does beside OPENBLAS_CORETYPE=Sandybridge, a CPU without AVX2).
inline bool cpu_has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool has = [] {
    const char* force = std::getenv("DPT_CPU_VECTOR");
    if (force && std::string_view(force) == "baseline") return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

[[gnu::always_inline]] inline float exp_nonpositive(float z) {
  const float zc = std::max(z, -87.0f);  // 2^k stays a normal float's bit pattern
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to even
  const float kf = (zc * kLog2e + kRound) - kRound;
  const float r = (zc - kf * 0.693145751953125f) - kf * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const auto bits = static_cast<uint32_t>(static_cast<int32_t>(kf) + 127) << 23;
  const float e = p * std::bit_cast<float>(bits);
  return z < -87.0f ? 0.0f : e;
}

}  // namespace dpt
