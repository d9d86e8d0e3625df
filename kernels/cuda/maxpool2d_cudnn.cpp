#include "kernels/cuda/maxpool2d_cudnn.hpp"

#include <string>

#include "kernels/cuda/cuda_check.hpp"

namespace dpt::gpu {

CudnnMaxPool2d::Plan::~Plan() {
  // Destroying a descriptor cannot usefully fail; this runs from destructors.
  if (pool) cudnnDestroyPoolingDescriptor(pool);
  if (y) cudnnDestroyTensorDescriptor(y);
  if (x) cudnnDestroyTensorDescriptor(x);
}

CudnnMaxPool2d::Plan& CudnnMaxPool2d::plan(const PoolShape& s) {
  const Key key{s.n, s.c, s.in_h, s.in_w, s.k, s.stride};
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto p = std::make_unique<Plan>();
  DPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.c,
                                             s.in_h, s.in_w));
  DPT_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&p->pool));
  // The deterministic variant, so that backward gives the same dx on every run; NaNs propagate
  // like PyTorch and the CPU backend.
  DPT_CUDNN_CHECK(cudnnSetPooling2dDescriptor(p->pool, CUDNN_POOLING_MAX_DETERMINISTIC,
                                              CUDNN_PROPAGATE_NAN, s.k, s.k, 0, 0, s.stride,
                                              s.stride));
  int on = 0, oc = 0, oh = 0, ow = 0;
  DPT_CUDNN_CHECK(cudnnGetPooling2dForwardOutputDim(p->pool, p->x, &on, &oc, &oh, &ow));
  if (on != s.n || oc != s.c || oh != s.out_h() || ow != s.out_w())
    throw SystemError("cuDNN computes a " + std::to_string(oh) + "x" + std::to_string(ow) +
                      " output for max-pooling " + std::to_string(s.in_h) + "x" +
                      std::to_string(s.in_w) + " with kernel " + std::to_string(s.k) +
                      " and stride " + std::to_string(s.stride) + ", expected " +
                      std::to_string(s.out_h()) + "x" + std::to_string(s.out_w()));
  DPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  DPT_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));
  return *plans_.emplace(key, std::move(p)).first->second;
}

void CudnnMaxPool2d::forward(const PoolShape& s, const float* x, float* y) {
  if (s.n <= 0 || s.c <= 0 || s.out_h() <= 0 || s.out_w() <= 0) return;
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  DPT_CUDNN_CHECK(cudnnPoolingForward(handle_, p.pool, &one, p.x, x, &zero, p.y, y));
}

void CudnnMaxPool2d::backward(const PoolShape& s, const float* x, const float* y, const float* dy,
                              float* dx) {
  if (s.n <= 0 || s.c <= 0) return;
  if (s.out_h() <= 0 || s.out_w() <= 0) {
    DPT_CUDA_CHECK(cudaMemsetAsync(
        dx, 0, sizeof(float) * static_cast<size_t>(s.n) * s.c * s.in_h * s.in_w, stream_));
    return;
  }
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  // beta 0: dx is written in full, inputs that are no window's maximum get zero.
  DPT_CUDNN_CHECK(
      cudnnPoolingBackward(handle_, p.pool, &one, p.y, y, p.y, dy, p.x, x, &zero, p.x, dx));
}

}  // namespace dpt::gpu
