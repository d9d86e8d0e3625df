// Check macros for cuBLAS and cuDNN calls (and, from the runtime, CUDA's): a failure throws
// SystemError naming the call, the file and line, and the library's own description of the error.
#pragma once

#include <cublas_v2.h>
#include <cudnn.h>

#include <string>

#include "kernels/runtime/cuda_check.hpp"
#include "src/core/error.hpp"

namespace dpt::cuda_detail {

inline std::string cudnn_error_text(cudnnStatus_t rc) {
  // cuDNN 9 keeps a more specific message for the last failure of this thread.
  char detail[512] = {};
  cudnnGetLastErrorString(detail, sizeof(detail));
  std::string text = cudnnGetErrorString(rc);
  if (detail[0] != '\0') text += std::string(" (") + detail + ")";
  return text;
}

}  // namespace dpt::cuda_detail

#define DPT_CUBLAS_CHECK(call)                                                          \
  do {                                                                                  \
    const cublasStatus_t dpt_cublas_rc_ = (call);                                       \
    if (dpt_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__,                                \
                              std::string(cublasGetStatusName(dpt_cublas_rc_)) + ": " + \
                                  cublasGetStatusString(dpt_cublas_rc_));               \
  } while (0)

#define DPT_CUDNN_CHECK(call)                                                       \
  do {                                                                              \
    const cudnnStatus_t dpt_cudnn_rc_ = (call);                                     \
    if (dpt_cudnn_rc_ != CUDNN_STATUS_SUCCESS)                                      \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__,                            \
                              ::dpt::cuda_detail::cudnn_error_text(dpt_cudnn_rc_)); \
  } while (0)
