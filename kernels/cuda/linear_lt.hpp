// A Linear's forward in bf16 through cuBLASLt: y[m, out] = x[m, in] w[out, in]^T + bias[out], with
// bf16 x, w, bias and y, products summed in float32 on tensor cores, the bias added to the
// float32 sums by the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS) and y rounded to bf16 once, as it
// is stored: the bf16 twin's rounding points (Backend::linear_forward), in one pass over y where
// the twin writes float32 sums, adds the bias and rounds in three.
//
// The plan of each shape (descriptors and the algorithm cuBLASLt's heuristic ranks first) is made
// on its first call and kept. A shape cuBLASLt has no algorithm for is reported by run()
// returning false, and the caller computes it another way.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

namespace dpt::gpu {

class LinearLt {
 public:
  // Creates the cuBLASLt handle and a workspace of kWorkspaceBytes on the current device.
  LinearLt();
  ~LinearLt();
  LinearLt(const LinearLt&) = delete;
  LinearLt& operator=(const LinearLt&) = delete;

  // Queues the product on `stream`. Pointers are device memory; bias is not null. False, with
  // nothing queued, when cuBLASLt has no algorithm for this shape and these pointers' alignment.
  bool run(const uint16_t* x, const uint16_t* w, const uint16_t* bias, uint16_t* y, int m, int in,
           int out, cudaStream_t stream);

  // 32 MiB, what cuBLASLt's documentation advises for Hopper.
  static constexpr size_t kWorkspaceBytes = size_t{32} << 20;

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool found = false;
  };
  // Shape (m, in, out), the smallest power-of-two alignment (up to 16 bytes) of x, w and y, and
  // the bias pointer's: cuBLASLt's choice of kernels depends on them all.
  using Key = std::tuple<int, int, int, int, int>;
  Plan& plan(const Key& key, const void* bias);
  void release() noexcept;

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::map<Key, Plan> plans_;
};

}  // namespace dpt::gpu
