// dptrain's own single-precision GEMM for x86-64 CPUs with AVX2 and FMA, single-threaded, with
// cblas_sgemm's row-major contract (as builtin_sgemm):
//   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C
// beta == 0 overwrites C without reading it (a NaN there does not survive); alpha == 0 or k == 0
// leaves A and B unread. Call it only where cpu_has_avx2_fma() (vector_math.hpp) holds; it exists
// only on x86-64 (DPT_HAVE_AVX2_SGEMM).
//
// Why not OpenBLAS here: a library GEMM packs both operands into its own layout on every call
// and, for beta == 0, zeroes C in a pass of its own before adding to it. At this trainer's shapes
// (one dimension the batch's B*T rows, the others the model's width, 128 to 1,024) those passes
// cost as much as a fifth of the multiply itself. This one copies only op(B), the small operand
// (a layer's weights), reads A where it lies, and writes each element of C once. Its inner loop
// is a 6 x 16 tile of fused multiply-adds, the shape of the usual AVX2 kernels; each element is
// one sum over k in order, blocks of 256 terms at a time.
//
// For causal attention's square products it can also skip what the mask makes zero or unused
// (Triangle); the skipped terms would only add exact zeros, so what is wanted comes out bit for
// bit as from the full product. A library GEMM, which has no such option, computes all of it.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define DPT_HAVE_AVX2_SGEMM 1
#else
#define DPT_HAVE_AVX2_SGEMM 0
#endif

namespace dpt {

enum class Triangle {
  kNone,
  kLowerC,  // only C's lower triangle (column <= row) is wanted: C above it is unspecified
            // (tiles that lie wholly above the diagonal are not written)
  kLowerA,  // op(A) is zero above its diagonal: op(A)[i, p] == 0 for p > i
  kUpperA,  // op(A) is zero below its diagonal: op(A)[i, p] == 0 for p < i
};

#if DPT_HAVE_AVX2_SGEMM
// With bias (n floats), C = alpha * op(A) op(B) + bias + beta * C, bias added to every row: a
// Linear's forward pass in one pass over its output.
void avx2_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                int lda, const float* b, int ldb, float beta, float* c, int ldc,
                Triangle tri = Triangle::kNone, const float* bias = nullptr);
#endif

}  // namespace dpt
