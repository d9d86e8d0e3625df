// 2-D max pooling through cuDNN, with descriptors made once per PoolShape.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <map>
#include <memory>

#include "kernels/backend.hpp"

namespace dpt::gpu {

class CudnnMaxPool2d {
 public:
  CudnnMaxPool2d(cudnnHandle_t handle, cudaStream_t stream) : handle_(handle), stream_(stream) {}
  CudnnMaxPool2d(const CudnnMaxPool2d&) = delete;
  CudnnMaxPool2d& operator=(const CudnnMaxPool2d&) = delete;

  // y = max over each window; a NaN in a window gives NaN, as on the CPU.
  void forward(const PoolShape& s, const float* x, float* y);
  // Writes every element of dx: zero, plus each dy at its window's maximum (found from x and y).
  void backward(const PoolShape& s, const float* x, const float* y, const float* dy, float* dx);

 private:
  struct Plan {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnPoolingDescriptor_t pool = nullptr;
    ~Plan();
  };
  using Key = std::array<int, 6>;

  Plan& plan(const PoolShape& s);

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace dpt::gpu
