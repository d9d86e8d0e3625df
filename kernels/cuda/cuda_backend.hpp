// The CUDA backend: cuBLAS for GEMM, cuDNN for convolution and max pooling, own kernels for the
// rest, all queued on one compute stream per backend. Its parameters, gradients and activations
// live in device memory; the CPU backend is the reference it is tested against.
//
// This header needs no CUDA header: streams are passed around as void* (a cudaStream_t).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "kernels/backend.hpp"

namespace dpt {

struct CudaDeviceInfo {
  int ordinal = -1;
  std::string name;        // "NVIDIA H100 80GB HBM3"
  std::string pci_bus_id;  // "0000:1B:00.0"
  int cc_major = 0, cc_minor = 0;
  size_t total_memory = 0;  // bytes
  int multiprocessors = 0;
};

// Visible CUDA devices (after CUDA_VISIBLE_DEVICES); 0 when there is no driver or no device.
// Never throws: it is how the program decides whether a GPU is there.
int cuda_device_count();
// Throws SystemError for an ordinal that is not visible.
CudaDeviceInfo cuda_device_info(int ordinal);
// The versions in use, e.g. "CUDA runtime 13.0, driver 13.0, cuBLAS 13.1.0, cuDNN 9.19.0": the
// runtime and library versions actually loaded, not the ones compiled against.
std::string cuda_library_versions();

class CudaBackend : public Backend {
 public:
  virtual int device() const = 0;
  // The stream every op of this backend is queued on (a cudaStream_t).
  virtual void* compute_stream() const = 0;
};

// Makes `device` current for the calling thread and creates the stream and the cuBLAS and cuDNN
// handles on it. Throws SystemError naming the device when that fails.
std::unique_ptr<CudaBackend> make_cuda_backend(int device);

}  // namespace dpt
