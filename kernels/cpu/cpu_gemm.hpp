// The CPU backend's float GEMM (cblas_sgemm's row-major contract), for the Linears, the tied head,
// convolution's im2col products and attention: dptrain's own AVX2/FMA kernel (gemm_avx2.hpp)
// where the CPU has AVX2 and FMA and the backend runs one thread, as every data-parallel rank
// does; else OpenBLAS, multi-threaded when asked (or the built-in sgemm in a build without it).
// DPT_CPU_GEMM=blas in the environment forces the library (to compare the two, and for
// tests/cross_cpu.sh, which runs OpenBLAS's kernel of each CPU); DPT_CPU_VECTOR=baseline does too.
// Triangle (gemm_avx2.hpp) says what causal attention's products may skip; only the own kernel
// skips it. bias, as avx2_sgemm's, adds a row vector to every row of C.
#pragma once

#include "kernels/cpu/gemm_avx2.hpp"

namespace dpt {

void cpu_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc,
               Triangle tri = Triangle::kNone, const float* bias = nullptr);

// The thread count of the GEMM: OpenBLAS's, and above 1 the own kernel (one thread) steps aside.
void set_cpu_gemm_threads(int threads);

// Which GEMM cpu_sgemm runs now: "avx2" (dptrain's own), "openblas" or "builtin".
const char* cpu_gemm_name();

}  // namespace dpt
