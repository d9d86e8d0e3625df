// The CUDA backend: cuBLAS for GEMM, cuDNN for convolution and max pooling, own kernels for the
// rest, all queued on the compute stream of its CudaDevice (kernels/runtime/cuda_device.hpp),
// which it is. Its parameters, gradients and activations live in device memory; the CPU backend
// is the reference it is tested against.
//
// This header needs no CUDA header: streams are passed around as void* (a cudaStream_t).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kernels/backend.hpp"
#include "kernels/runtime/cuda_device.hpp"

namespace dpt {

// The versions in use, e.g. "CUDA runtime 13.0, driver 13.0, cuBLAS 13.1.0, cuDNN 9.19.0": the
// runtime and library versions actually loaded, not the ones compiled against.
std::string cuda_library_versions();

// Its memory, copies, stream and markers are the CudaDevice's.
class CudaBackend : public Backend, public CudaDevice {
 public:
  // Why fused_attention() said no for bf16 at this size (cuDNN's message, or the switch that
  // turned it off); empty when it said yes or was not asked. For tests and reports.
  virtual std::string why_attention_unfused(int64_t b, int64_t t, int64_t c,
                                            int64_t n_head) const = 0;

 protected:
  explicit CudaBackend(int device) : CudaDevice(device) {}
};

// Makes `device` current for the calling thread and creates the stream and the cuBLAS and cuDNN
// handles on it. Throws SystemError naming the device when that fails.
std::unique_ptr<CudaBackend> make_cuda_backend(int device);

}  // namespace dpt
