// Device discovery and library versions, usable without creating a backend (and, for the count
// and the versions, without a GPU or even a driver).
#include <string>

#include "kernels/cuda/cuda_backend.hpp"
#include "kernels/cuda/cuda_check.hpp"

namespace dpt {
namespace {

// "13.0" from 13000, the encoding of cudaRuntimeGetVersion and cudaDriverGetVersion.
std::string cuda_version_text(int v) {
  return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10);
}

}  // namespace

int cuda_device_count() {
  // Deliberately unchecked: no driver, or no device, is an answer here (0), not an error.
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear it, so that a later checked call does not report it
    return 0;
  }
  return count;
}

CudaDeviceInfo cuda_device_info(int ordinal) {
  const int count = cuda_device_count();
  if (ordinal < 0 || ordinal >= count)
    throw SystemError("CUDA device " + std::to_string(ordinal) + " is not visible (" +
                      std::to_string(count) + " visible)");
  cudaDeviceProp prop{};
  DPT_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
  char bus[32] = {};
  DPT_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, static_cast<int>(sizeof(bus)), ordinal));
  CudaDeviceInfo info;
  info.ordinal = ordinal;
  info.name = prop.name;
  info.pci_bus_id = bus;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  info.total_memory = prop.totalGlobalMem;
  info.multiprocessors = prop.multiProcessorCount;
  return info;
}

std::string cuda_library_versions() {
  int runtime = 0, driver = 0;
  DPT_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  // 0, and no error, when no driver is installed.
  DPT_CUDA_CHECK(cudaDriverGetVersion(&driver));
  // The loaded libraries' own versions (not the headers'); neither query needs a device.
  int cublas_major = 0, cublas_minor = 0, cublas_patch = 0;
  DPT_CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &cublas_major));
  DPT_CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &cublas_minor));
  DPT_CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &cublas_patch));
  int cudnn_major = 0, cudnn_minor = 0, cudnn_patch = 0;
  DPT_CUDNN_CHECK(cudnnGetProperty(MAJOR_VERSION, &cudnn_major));
  DPT_CUDNN_CHECK(cudnnGetProperty(MINOR_VERSION, &cudnn_minor));
  DPT_CUDNN_CHECK(cudnnGetProperty(PATCH_LEVEL, &cudnn_patch));
  return "CUDA runtime " + cuda_version_text(runtime) + ", driver " +
         (driver ? cuda_version_text(driver) : std::string("none")) + ", cuBLAS " +
         std::to_string(cublas_major) + "." + std::to_string(cublas_minor) + "." +
         std::to_string(cublas_patch) + ", cuDNN " + std::to_string(cudnn_major) + "." +
         std::to_string(cudnn_minor) + "." + std::to_string(cudnn_patch);
}

}  // namespace dpt
