// The CUDA backend: memory and copies on one compute stream, cuBLAS for GEMM, cuDNN (through
// CudnnConv2d and CudnnMaxPool2d) for convolution and pooling, own kernels for the rest.
#include "kernels/cuda/cuda_backend.hpp"

#include <nvtx3/nvToolsExt.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/conv2d_cudnn.hpp"
#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/maxpool2d_cudnn.hpp"
#include "src/core/clock.hpp"

namespace dpt {
namespace {

class CudaBackendImpl final : public CudaBackend {
 public:
  explicit CudaBackendImpl(int device) : device_(device) {
    try {
      DPT_CUDA_CHECK(cudaSetDevice(device_));
      DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      DPT_CUBLAS_CHECK(cublasCreate(&cublas_));
      DPT_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
      // FP32 GEMM in FP32. The default math mode keeps at least FP32 precision internally
      // (cublas_api.h: "default types ... guarantee internal storage precision with at least the
      // same precision and range"); TF32 and BF16x9 emulation need CUBLAS_TF32_TENSOR_OP_MATH,
      // CUBLAS_FP32_EMULATED_BF16X9_MATH or a FAST/EMULATED compute type, none used here, and
      // NVIDIA_TF32_OVERRIDE can only switch TF32 off, never on. So CUBLAS_PEDANTIC_MATH, which
      // may be slower, is not needed for the 1e-5 parity with the CPU. Set explicitly in case
      // cuBLAS's default ever changes.
      DPT_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
      DPT_CUDNN_CHECK(cudnnCreate(&cudnn_));
      DPT_CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
      DPT_CUDA_CHECK(cudaMallocHost(&pinned_, kPinnedBytes));
      conv_ = std::make_unique<gpu::CudnnConv2d>(cudnn_, stream_);
      pool_ = std::make_unique<gpu::CudnnMaxPool2d>(cudnn_, stream_);
      anchor();  // the stream is idle: cheap, and markers work before any clear_markers()
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaBackendImpl() override { release(); }
  CudaBackendImpl(const CudaBackendImpl&) = delete;
  CudaBackendImpl& operator=(const CudaBackendImpl&) = delete;

  std::string name() const override { return "cuda"; }
  int device() const override { return device_; }
  void* compute_stream() const override { return stream_; }
  void synchronize() override {
    make_current();
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void* alloc(size_t bytes) override {
    make_current();
    // Never a null pointer, even for 0 bytes: callers take null for "absent".
    const size_t n = bytes ? bytes : 1;
    void* p = nullptr;
    const cudaError_t rc = cudaMalloc(&p, n);
    if (rc != cudaSuccess)
      throw_call_error("cudaMalloc", __FILE__, __LINE__,
                       cuda_detail::cuda_error_text(rc) + " allocating " + std::to_string(bytes) +
                           " bytes on CUDA device " + std::to_string(device_));
    try {
      DPT_CUDA_CHECK(cudaMemsetAsync(p, 0, n, stream_));
      DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    } catch (...) {
      cudaFree(p);
      throw;
    }
    return p;
  }
  // free and free_host run from destructors (DeviceBuffer's), where a throw would terminate the
  // program; they report nothing. An error here is a broken context, which the next checked
  // call reports anyway.
  void free(void* p) override {
    if (!p) return;
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);  // queued work may still read p
    cudaFree(p);
  }
  void* alloc_host(size_t bytes) override {
    make_current();
    void* p = nullptr;
    DPT_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
    std::memset(p, 0, bytes);  // zeroed, like alloc
    return p;
  }
  void free_host(void* p) override {
    if (!p) return;
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);  // an async copy may still read p
    cudaFreeHost(p);
  }

  // Synchronous for the caller: the host buffer may be pageable and reused at once.
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    make_current();
    DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy_from_host_async(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    make_current();
    DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    make_current();
    DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  // Synchronous too, like the CPU backend's, so that code handing the result to another stream
  // or thread needs no event. Overlapping ranges are allowed (memmove semantics, as on the CPU):
  // cudaMemcpy does not allow them, so those go through the scratch buffer.
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes || dst == src) return;
    make_current();
    const auto d = reinterpret_cast<uintptr_t>(dst), s = reinterpret_cast<uintptr_t>(src);
    if (d < s + bytes && s < d + bytes) {
      void* tmp = scratch(bytes);
      DPT_CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, stream_));
      DPT_CUDA_CHECK(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, stream_));
    } else {
      DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
    }
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  bool is_device_memory(const void* p) const override {
    if (!p) return false;
    // Not make_current(), which is not const; same reason: no stray context on device 0.
    DPT_CUDA_CHECK(cudaSetDevice(device_));
    cudaPointerAttributes attr{};
    // Plain host memory is not an error: it reports cudaMemoryTypeUnregistered.
    DPT_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
    return attr.type == cudaMemoryTypeDevice;
  }
  bool asynchronous() const override { return true; }

  // Markers are events on the compute stream. Their device times become steady_seconds()
  // through an anchor event recorded while the stream was idle: such an event completes at once,
  // so it pairs a device time with a host time. The anchor is renewed at every clear_markers()
  // (callers clear after a synchronize, so the stream is idle then and nothing waits).
  int record_marker() override {
    make_current();
    if (!anchored_) anchor();
    if (markers_used_ == marker_events_.size()) {
      cudaEvent_t e = nullptr;
      DPT_CUDA_CHECK(cudaEventCreate(&e));
      marker_events_.push_back(e);
    }
    DPT_CUDA_CHECK(cudaEventRecord(marker_events_[markers_used_], stream_));
    return static_cast<int>(markers_used_++);
  }
  double marker_time(int marker) override {
    if (marker < 0 || static_cast<size_t>(marker) >= markers_used_)
      throw SystemError("marker_time: no marker " + std::to_string(marker) + " (" +
                        std::to_string(markers_used_) + " recorded since clear_markers)");
    make_current();
    const cudaEvent_t e = marker_events_[static_cast<size_t>(marker)];
    DPT_CUDA_CHECK(cudaEventSynchronize(e));
    float ms = 0;
    DPT_CUDA_CHECK(cudaEventElapsedTime(&ms, anchor_event_, e));
    return anchor_host_seconds_ + ms / 1000.0;
  }
  void clear_markers() override {
    markers_used_ = 0;
    anchored_ = false;
    make_current();
    // cudaErrorNotReady is an answer (work is queued), not an error: then record_marker anchors.
    const cudaError_t rc = cudaStreamQuery(stream_);
    if (rc == cudaSuccess)
      anchor();
    else if (rc != cudaErrorNotReady)
      throw_call_error("cudaStreamQuery(stream_)", __FILE__, __LINE__,
                       cuda_detail::cuda_error_text(rc));
  }

  // NVTX ranges for Nsight Systems; free when no profiler is attached.
  void push_range(const char* name) override { nvtxRangePushA(name); }
  void pop_range() override { nvtxRangePop(); }

  void fill(float* p, size_t n, float value) override {
    make_current();
    gpu::launch_fill(p, n, value, stream_);
  }

  void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
            const float* b, int ldb, float beta, float* c, int ldc) override {
    if (m <= 0 || n <= 0) return;
    make_current();
    // cuBLAS is column-major: a row-major matrix is its transpose there. So compute
    // C^T [N,M] = op(B)^T [N,K] * op(A)^T [K,M], passing B first; the transpose flags and the
    // leading dimensions carry over unchanged.
    DPT_CUBLAS_CHECK(cublasSgemm(cublas_, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                 trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a,
                                 lda, &beta, c, ldc));
  }
  void add_bias(float* y, const float* bias, int outer, int channels, int inner) override {
    make_current();
    gpu::launch_add_bias(y, bias, outer, channels, inner, stream_);
  }
  void bias_grad(const float* dy, float* dbias, int outer, int channels, int inner) override {
    make_current();
    gpu::launch_bias_grad(dy, dbias, outer, channels, inner, stream_);
  }

  void relu_forward(const float* x, float* y, size_t n) override {
    make_current();
    gpu::launch_relu_forward(x, y, n, stream_);
  }
  void relu_backward(const float* y, const float* dy, float* dx, size_t n) override {
    make_current();
    gpu::launch_relu_backward(y, dy, dx, n, stream_);
  }
  void fill_uniform(float* p, size_t n, float bound, uint64_t seed) override {
    make_current();
    gpu::launch_fill_uniform(p, n, bound, seed, stream_);
  }
  void dropout_forward(const float* x, float* y, float* mask, size_t n, float p,
                       uint64_t seed) override {
    make_current();
    gpu::launch_dropout_forward(x, y, mask, n, p, seed, stream_);
  }
  void mul(const float* a, const float* b, float* out, size_t n) override {
    make_current();
    gpu::launch_mul(a, b, out, n, stream_);
  }

  void conv2d_forward(const ConvShape& s, const float* x, const float* w, const float* b,
                      float* y) override {
    make_current();
    conv_->forward(s, x, w, b, y);
  }
  void conv2d_backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw, float* db) override {
    make_current();
    conv_->backward(s, x, w, dy, dx, dw, db);
  }

  // cuDNN finds the maxima again from x and y in backward, so argmax stays unwritten.
  void maxpool2d_forward(const PoolShape& s, const float* x, float* y, int32_t*) override {
    make_current();
    pool_->forward(s, x, y);
  }
  void maxpool2d_backward(const PoolShape& s, const float* x, const float* y, const float* dy,
                          const int32_t*, float* dx) override {
    make_current();
    pool_->backward(s, x, y, dy, dx);
  }

  LossResult softmax_cross_entropy(const float* logits, const int32_t* labels, int batch,
                                   int classes, float grad_scale, float* dlogits) override {
    make_current();
    const size_t rows = static_cast<size_t>(batch > 0 ? batch : 0);
    // Scratch: the totals, then one double loss and one int32 hit per row.
    char* base = static_cast<char*>(scratch(sizeof(gpu::LossSums) + rows * 12));
    auto* sums = reinterpret_cast<gpu::LossSums*>(base);
    auto* row_loss = reinterpret_cast<double*>(base + sizeof(gpu::LossSums));
    auto* row_correct = reinterpret_cast<int32_t*>(base + sizeof(gpu::LossSums) + rows * 8);
    gpu::launch_softmax_cross_entropy(logits, labels, batch, classes, grad_scale, dlogits, row_loss,
                                      row_correct, sums, stream_);
    auto* host = static_cast<gpu::LossSums*>(pinned_);
    DPT_CUDA_CHECK(
        cudaMemcpyAsync(host, sums, sizeof(gpu::LossSums), cudaMemcpyDeviceToHost, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    LossResult r;
    r.loss_sum = host->loss_sum;
    r.correct = host->correct;
    return r;
  }

  void sgd_update(float* param, const float* grad, float* momentum_buf, size_t n,
                  const SgdParams& p) override {
    make_current();
    gpu::launch_sgd_update(param, grad, momentum_buf, n, p.lr, p.momentum, p.weight_decay,
                           p.nesterov, stream_);
  }
  void adamw_update(float* param, const float* grad, float* m, float* v, size_t n,
                    const AdamWParams& p) override {
    make_current();
    const AdamWScalars k = adamw_scalars(p);
    gpu::launch_adamw_update(param, grad, m, v, n, k.decay, k.step_size, k.bias2_sqrt, p.beta1,
                             p.beta2, p.eps, stream_);
  }
  void scale(float* p, size_t n, float factor) override {
    make_current();
    gpu::launch_scale(p, n, factor, stream_);
  }
  size_t count_nonfinite(const float* p, size_t n) override {
    make_current();
    auto* count = static_cast<unsigned long long*>(scratch(sizeof(unsigned long long)));
    gpu::launch_count_nonfinite(p, n, count, stream_);
    auto* host = static_cast<unsigned long long*>(pinned_);
    DPT_CUDA_CHECK(cudaMemcpyAsync(host, count, sizeof(*count), cudaMemcpyDeviceToHost, stream_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return static_cast<size_t>(*host);
  }

 private:
  static constexpr size_t kPinnedBytes = 64;  // holds one LossSums or one count

  // The current device is per thread, and the stream and handles belong to this one: a thread
  // other than the creator's may call. Cheap when the device is current already.
  void make_current() { DPT_CUDA_CHECK(cudaSetDevice(device_)); }

  // Records the anchor of the markers (see record_marker), waiting for the stream to drain
  // first unless it is idle already.
  void anchor() {
    if (!anchor_event_) DPT_CUDA_CHECK(cudaEventCreate(&anchor_event_));
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    anchor_host_seconds_ = steady_seconds();
    DPT_CUDA_CHECK(cudaEventRecord(anchor_event_, stream_));
    anchored_ = true;
  }

  // Device scratch for reductions, grown on demand; contents are not kept.
  void* scratch(size_t bytes) {
    if (bytes <= scratch_bytes_) return scratch_;
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // queued work may still use the old one
    if (scratch_) DPT_CUDA_CHECK(cudaFree(scratch_));
    scratch_ = nullptr;
    scratch_bytes_ = 0;
    // Some room to spare, so that a growing batch does not reallocate every time.
    const size_t want = bytes < 4096 ? 4096 : bytes + bytes / 2;
    DPT_CUDA_CHECK(cudaMalloc(&scratch_, want));
    scratch_bytes_ = want;
    return scratch_;
  }

  // Destroys whatever was created, in reverse order; used by the destructor and by a
  // constructor that failed half-way. Errors are ignored: nothing useful can be done with them.
  void release() noexcept {
    cudaSetDevice(device_);
    if (stream_) cudaStreamSynchronize(stream_);
    pool_.reset();
    conv_.reset();
    for (cudaEvent_t e : marker_events_) cudaEventDestroy(e);
    marker_events_.clear();
    if (anchor_event_) cudaEventDestroy(anchor_event_);
    anchor_event_ = nullptr;
    if (scratch_) cudaFree(scratch_);
    if (pinned_) cudaFreeHost(pinned_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
    scratch_ = pinned_ = nullptr;
    cudnn_ = nullptr;
    cublas_ = nullptr;
    stream_ = nullptr;
  }

  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  void* pinned_ = nullptr;  // page-locked landing place for results read back by the host
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<cudaEvent_t> marker_events_;  // reused across steps; the first markers_used_ count
  size_t markers_used_ = 0;
  cudaEvent_t anchor_event_ = nullptr;
  double anchor_host_seconds_ = 0;
  bool anchored_ = false;
  std::unique_ptr<gpu::CudnnConv2d> conv_;
  std::unique_ptr<gpu::CudnnMaxPool2d> pool_;
};

}  // namespace

std::unique_ptr<CudaBackend> make_cuda_backend(int device) {
  const int count = cuda_device_count();
  if (device < 0 || device >= count)
    throw SystemError("CUDA device " + std::to_string(device) + " is not visible (" +
                      std::to_string(count) + " visible)");
  try {
    return std::make_unique<CudaBackendImpl>(device);
  } catch (const SystemError& e) {
    throw SystemError("CUDA device " + std::to_string(device) + ": " + e.what());
  }
}

}  // namespace dpt
