// 2-D convolution through cuDNN's legacy API, with descriptors and algorithms chosen once per
// ConvShape and one workspace shared by all shapes.
#pragma once

#include <cuda_runtime.h>
#include <cudnn.h>

#include <array>
#include <cstddef>
#include <map>
#include <memory>
#include <vector>

#include "kernels/backend.hpp"

namespace dpt::gpu {

class CudnnConv2d {
 public:
  CudnnConv2d(cudnnHandle_t handle, cudaStream_t stream) : handle_(handle), stream_(stream) {}
  ~CudnnConv2d();
  CudnnConv2d(const CudnnConv2d&) = delete;
  CudnnConv2d& operator=(const CudnnConv2d&) = delete;

  // The Backend's conv2d_forward and conv2d_backward (same arguments, device pointers).
  void forward(const ConvShape& s, const float* x, const float* w, const float* b, float* y);
  void backward(const ConvShape& s, const float* x, const float* w, const float* dy, float* dx,
                float* dw, float* db);

  // Candidate algorithms in order of preference, each with the workspace it needs.
  template <class Algo>
  struct Candidates {
    std::vector<Algo> algos;
    std::vector<size_t> workspace;
    size_t current = 0;  // advances when cuDNN refuses to run one
    bool tuned = false;  // reordered by a measured search on the shape's first call
  };

 private:
  struct Plan {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    Candidates<cudnnConvolutionFwdAlgo_t> fwd;
    Candidates<cudnnConvolutionBwdDataAlgo_t> bwd_data;
    Candidates<cudnnConvolutionBwdFilterAlgo_t> bwd_filter;
    ~Plan();
  };
  using Key = std::array<int, 9>;

  Plan& plan(const ConvShape& s);
  void* workspace(size_t bytes);
  static void* workspace_of(void* self, size_t bytes);  // workspace(), for tune()

  cudnnHandle_t handle_;
  cudaStream_t stream_;
  std::map<Key, std::unique_ptr<Plan>> plans_;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
};

}  // namespace dpt::gpu
