// Check macro for CUDA runtime calls: a failure throws SystemError naming the call, the file and
// line, and CUDA's own description of the error. (cuBLAS and cuDNN: kernels/cuda/cuda_check.hpp.)
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "src/core/error.hpp"

namespace dpt::cuda_detail {

inline std::string cuda_error_text(cudaError_t rc) {
  return std::string(cudaGetErrorName(rc)) + ": " + cudaGetErrorString(rc);
}

}  // namespace dpt::cuda_detail

#define DPT_CUDA_CHECK(call)                                                      \
  do {                                                                            \
    const cudaError_t dpt_cuda_rc_ = (call);                                      \
    if (dpt_cuda_rc_ != cudaSuccess)                                              \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__,                          \
                              ::dpt::cuda_detail::cuda_error_text(dpt_cuda_rc_)); \
  } while (0)

// After a kernel launch: reports a bad launch configuration at once (faults inside the kernel
// surface at the next synchronizing call, which is checked too).
#define DPT_CUDA_CHECK_LAUNCH() DPT_CUDA_CHECK(cudaGetLastError())
