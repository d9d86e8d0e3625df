#include "kernels/cuda/linear_lt.hpp"

#include <algorithm>
#include <initializer_list>

#include "kernels/cuda/cuda_check.hpp"

namespace dpt::gpu {

namespace {

int alignment_of(const void* p) {
  const auto u = reinterpret_cast<uintptr_t>(p);
  int a = 16;
  while (a > 1 && u % static_cast<uintptr_t>(a) != 0) a /= 2;
  return a;
}

}  // namespace

LinearLt::LinearLt() {
  try {
    DPT_CUBLAS_CHECK(cublasLtCreate(&handle_));
    DPT_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
  } catch (...) {
    release();
    throw;
  }
}

LinearLt::~LinearLt() { release(); }

void LinearLt::release() noexcept {
  for (auto& [key, p] : plans_) {
    if (p.d) cublasLtMatrixLayoutDestroy(p.d);
    if (p.b) cublasLtMatrixLayoutDestroy(p.b);
    if (p.a) cublasLtMatrixLayoutDestroy(p.a);
    if (p.op) cublasLtMatmulDescDestroy(p.op);
  }
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
  workspace_ = nullptr;
  handle_ = nullptr;
}

// cuBLASLt is column-major: the row-major y [m, out] is the column-major y^T [out, m] = W X^T,
// where w's row-major [out, in] is the column-major [in, out] (so transposed: op T) and x's
// row-major [m, in] the column-major [in, m] (op N). The bias runs along y^T's rows, as the
// epilogue adds it.
LinearLt::Plan& LinearLt::plan(const Key& key, const void* bias) {
  const auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  Plan& p = plans_[key];
  const auto [m, in, out, align, bias_align] = key;
  DPT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  DPT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  DPT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
  DPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                  sizeof(epilogue)));
  // The heuristic reads the bias pointer's alignment from its value (bias_align in the key).
  (void)bias_align;
  DPT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  DPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, in, out, in));
  DPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, in, m, in));
  DPT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, out, m, out));

  cublasLtMatmulPreference_t pref = nullptr;
  DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace = kWorkspaceBytes;
  const uint32_t a32 = static_cast<uint32_t>(align);
  // Split-K partial sums kept in float (or no split at all): the output-type schemes would add
  // them in bf16, rounding the result more than once, where the twin rounds once.
  const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t rc = [&] {
    cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace));
    for (const auto attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, attr, &a32, sizeof(a32));
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                               &reduction, sizeof(reduction));
    if (s == CUBLAS_STATUS_SUCCESS)
      s = cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.d, p.d, pref, 1, &result,
                                         &returned);
    return s;
  }();
  cublasLtMatmulPreferenceDestroy(pref);
  // No algorithm for this shape is an answer, not an error: the caller takes another way.
  if (rc != CUBLAS_STATUS_SUCCESS && rc != CUBLAS_STATUS_NOT_SUPPORTED) DPT_CUBLAS_CHECK(rc);
  p.found = rc == CUBLAS_STATUS_SUCCESS && returned > 0;
  if (p.found) p.algo = result.algo;
  return p;
}

bool LinearLt::run(const uint16_t* x, const uint16_t* w, const uint16_t* bias, uint16_t* y, int m,
                   int in, int out, cudaStream_t stream) {
  if (m <= 0 || out <= 0 || in <= 0) return false;
  int align = 16;
  for (const void* ptr :
       {static_cast<const void*>(x), static_cast<const void*>(w), static_cast<const void*>(y)})
    align = std::min(align, alignment_of(ptr));
  // Only 16-byte aligned operands and bias: the heuristic takes no alignment for the bias, and
  // kernels that assume an aligned one have faulted on others (a sticky error that ends the
  // process's use of the GPU). A model's tensors start on 64-element boundaries; anything else
  // takes the caller's other way.
  if (align < 16 || alignment_of(bias) < 16) return false;
  Plan& p = plan({m, in, out, align, alignment_of(bias)}, bias);
  if (!p.found) return false;
  // The bias pointer is the call's; the rest of the plan is the shape's.
  DPT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const float alpha = 1.0f, beta = 0.0f;
  DPT_CUBLAS_CHECK(cublasLtMatmul(handle_, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d,
                                  &p.algo, workspace_, kWorkspaceBytes, stream));
  return true;
}

}  // namespace dpt::gpu
