// A portable single-precision GEMM for builds without OpenBLAS (and a reference the tests check
// against a double-precision one). Same contract as cblas_sgemm with CblasRowMajor:
//   C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C
// op(A) is A [m,k] (lda >= k) or, with trans_a, A^T of A [k,m] (lda >= m); likewise op(B);
// ldc >= n. beta == 0 overwrites C (a NaN there does not survive), and alpha == 0 or k == 0
// leaves A and B unread.
#pragma once

namespace dpt {

void builtin_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                   int lda, const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace dpt
