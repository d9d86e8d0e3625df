#include "kernels/cuda/conv2d_cudnn.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"

namespace dpt::gpu {
namespace {

// Algorithms that want more workspace than this are passed over (there is always one that
// needs little or none).
constexpr size_t kMaxWorkspaceBytes = size_t{1} << 30;

std::string shape_text(const ConvShape& s) {
  return "n=" + std::to_string(s.n) + " in=" + std::to_string(s.in_c) + "x" +
         std::to_string(s.in_h) + "x" + std::to_string(s.in_w) +
         " out_c=" + std::to_string(s.out_c) + " kernel=" + std::to_string(s.kh) + "x" +
         std::to_string(s.kw) + " stride=" + std::to_string(s.stride) +
         " pad=" + std::to_string(s.pad);
}

// FFT and Winograd algorithms transform the data and round differently from a direct FP32
// sum (relative errors near 1e-5 and above), which the parity with the CPU backend cannot
// afford; the GEMM-like and direct ones are kept.
bool exact_enough(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_GEMM || a == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}
bool exact_enough(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
}
bool exact_enough(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1 ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3;
}

// What differs between the three directions of a convolution: cuDNN's calls for each, with
// the descriptors of a plan `p` in the order that direction takes them, its perf struct and an
// algorithm that handles every shape. `find` measures the algorithms on the inputs `a` and `b`
// (x and w forward, w and dy for data, x and dy for the filter), writing into `out`.
template <class Algo>
struct Direction;

template <>
struct Direction<cudnnConvolutionFwdAlgo_t> {
  using Algo = cudnnConvolutionFwdAlgo_t;
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &n));
    return n;
  }
  template <class P>
  static void heuristics(cudnnHandle_t h, const P& p, int n, int* returned, Perf* perf) {
    DPT_CUDNN_CHECK(
        cudnnGetConvolutionForwardAlgorithm_v7(h, p.x, p.w, p.conv, p.y, n, returned, perf));
  }
  template <class P>
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const P& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(h, p.x, p.w, p.conv, p.y, algo, bytes);
  }
  template <class P>
  static cudnnStatus_t find(cudnnHandle_t h, const P& p, const float* a, const float* b, float* out,
                            int n, int* returned, Perf* perf, void* ws, size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(h, p.x, a, p.w, b, p.conv, p.y, out, n, returned,
                                                  perf, ws, bytes);
  }
};

template <>
struct Direction<cudnnConvolutionBwdDataAlgo_t> {
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &n));
    return n;
  }
  template <class P>
  static void heuristics(cudnnHandle_t h, const P& p, int n, int* returned, Perf* perf) {
    DPT_CUDNN_CHECK(
        cudnnGetConvolutionBackwardDataAlgorithm_v7(h, p.w, p.y, p.conv, p.x, n, returned, perf));
  }
  template <class P>
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const P& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p.w, p.y, p.conv, p.x, algo, bytes);
  }
  template <class P>
  static cudnnStatus_t find(cudnnHandle_t h, const P& p, const float* a, const float* b, float* out,
                            int n, int* returned, Perf* perf, void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(h, p.w, a, p.y, b, p.conv, p.x, out, n,
                                                       returned, perf, ws, bytes);
  }
};

template <>
struct Direction<cudnnConvolutionBwdFilterAlgo_t> {
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  static constexpr Algo kFallback = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  static int max_count(cudnnHandle_t h) {
    int n = 0;
    DPT_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &n));
    return n;
  }
  template <class P>
  static void heuristics(cudnnHandle_t h, const P& p, int n, int* returned, Perf* perf) {
    DPT_CUDNN_CHECK(
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x, p.y, p.conv, p.w, n, returned, perf));
  }
  template <class P>
  static cudnnStatus_t workspace_size(cudnnHandle_t h, const P& p, Algo algo, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p.x, p.y, p.conv, p.w, algo, bytes);
  }
  template <class P>
  static cudnnStatus_t find(cudnnHandle_t h, const P& p, const float* a, const float* b, float* out,
                            int n, int* returned, Perf* perf, void* ws, size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, p.x, a, p.y, b, p.conv, p.w, out, n,
                                                         returned, perf, ws, bytes);
  }
};

// Orders cuDNN's heuristic results by preference: deterministic before not (run-to-run
// reproducible gradients), then FMA before DEFAULT math. Drops the ones that failed, that use
// tensor-core math (TF32 would break parity with the CPU), that are not exact_enough, and those
// whose workspace size is unknown or too big. `fallback`, an algorithm that handles every shape,
// goes last in case the heuristics offer nothing else. The descriptor's math type stays
// CUDNN_FMA_MATH whatever an entry says.
template <class Algo, class Perf, class SizeFn>
CudnnConv2d::Candidates<Algo> rank_algorithms(const std::vector<Perf>& perf, int returned,
                                              Algo fallback, SizeFn workspace_size) {
  CudnnConv2d::Candidates<Algo> out;
  const auto add = [&](Algo algo) {
    for (Algo a : out.algos)
      if (a == algo) return;
    size_t bytes = 0;
    if (workspace_size(algo, &bytes) != CUDNN_STATUS_SUCCESS || bytes > kMaxWorkspaceBytes) return;
    out.algos.push_back(algo);
    out.workspace.push_back(bytes);
  };
  for (int pass = 0; pass < 4; ++pass) {
    const bool want_deterministic = pass < 2;
    const cudnnMathType_t want_math = pass % 2 == 0 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    for (int i = 0; i < returned; ++i) {
      const Perf& p = perf[static_cast<size_t>(i)];
      if (p.status != CUDNN_STATUS_SUCCESS || p.mathType != want_math) continue;
      if ((p.determinism == CUDNN_DETERMINISTIC) != want_deterministic) continue;
      if (exact_enough(p.algo)) add(p.algo);
    }
  }
  add(fallback);
  return out;
}

// The heuristic candidates of one direction for plan `p` (the _v7 queries run nothing).
template <class Algo, class P>
CudnnConv2d::Candidates<Algo> heuristic_candidates(cudnnHandle_t h, const P& p) {
  using D = Direction<Algo>;
  std::vector<typename D::Perf> perf(static_cast<size_t>(std::max(D::max_count(h), 1)));
  int returned = 0;
  D::heuristics(h, p, static_cast<int>(perf.size()), &returned, perf.data());
  return rank_algorithms(perf, returned, D::kFallback, [&](Algo algo, size_t* bytes) {
    return D::workspace_size(h, p, algo, bytes);
  });
}

// Runs the current candidate; when cuDNN answers "not supported" for it (its heuristics can
// offer an algorithm that then declines the shape), moves on to the next one for good. Any other
// failure throws like DPT_CUDNN_CHECK.
template <class Algo, class Run>
void run_algorithm(CudnnConv2d::Candidates<Algo>& c, const char* call, const ConvShape& s,
                   Run run) {
  for (;;) {
    if (c.current >= c.algos.size())
      throw SystemError(std::string(call) + ": cuDNN offers no usable FP32 (non-TF32) algorithm " +
                        "for the convolution " + shape_text(s));
    const cudnnStatus_t rc = run(c.algos[c.current], c.workspace[c.current]);
    if (rc == CUDNN_STATUS_SUCCESS) return;
    if (CUDNN_STATUS_CATEGORY(rc) == CUDNN_STATUS_NOT_SUPPORTED && c.current + 1 < c.algos.size()) {
      ++c.current;
      continue;
    }
    throw_call_error(call, __FILE__, __LINE__,
                     cuda_detail::cudnn_error_text(rc) + " for the convolution " + shape_text(s));
  }
}

// Measures the exact_enough algorithms on the caller's data (cuDNN's Find*AlgorithmEx, which
// runs each one and sorts them by time, as cudnn.benchmark does in PyTorch) and makes the
// fastest that succeeded the candidates, in that order, with the heuristic list's fallback last.
// The search reads the inputs `a` and `b` and writes `out` (see Direction). When the search
// itself fails, the heuristic order stays.
template <class Algo, class P>
void tune(CudnnConv2d::Candidates<Algo>& c, cudnnHandle_t h, const P& plan, const float* a,
          const float* b, float* out, void* (*workspace_for)(void*, size_t), void* owner) {
  using D = Direction<Algo>;
  using Perf = typename D::Perf;
  const int count = D::max_count(h);
  c.tuned = true;
  size_t most = 0;
  for (int i = 0; i < count; ++i) {
    size_t bytes = 0;
    if (exact_enough(static_cast<Algo>(i)) &&
        D::workspace_size(h, plan, static_cast<Algo>(i), &bytes) == CUDNN_STATUS_SUCCESS &&
        bytes <= kMaxWorkspaceBytes)
      most = std::max(most, bytes);
  }
  void* ws = workspace_for(owner, most);
  std::vector<Perf> perf(static_cast<size_t>(std::max(count, 1)));
  int returned = 0;
  if (D::find(h, plan, a, b, out, static_cast<int>(perf.size()), &returned, perf.data(), ws,
              most) != CUDNN_STATUS_SUCCESS)
    return;
  CudnnConv2d::Candidates<Algo> measured;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[static_cast<size_t>(i)];
    if (p.status != CUDNN_STATUS_SUCCESS || !exact_enough(p.algo) || p.memory > most) continue;
    if (p.mathType != CUDNN_FMA_MATH && p.mathType != CUDNN_DEFAULT_MATH) continue;
    measured.algos.push_back(p.algo);
    measured.workspace.push_back(p.memory);
  }
  if (measured.algos.empty()) return;
  // Keep the heuristic candidates after the measured ones, in case a measured one later
  // declines to run.
  for (size_t i = c.current; i < c.algos.size(); ++i)
    if (std::find(measured.algos.begin(), measured.algos.end(), c.algos[i]) ==
        measured.algos.end()) {
      measured.algos.push_back(c.algos[i]);
      measured.workspace.push_back(c.workspace[i]);
    }
  measured.tuned = true;
  c = std::move(measured);
}

}  // namespace

void* CudnnConv2d::workspace_of(void* self, size_t bytes) {
  return static_cast<CudnnConv2d*>(self)->workspace(bytes);
}

CudnnConv2d::Plan::~Plan() {
  // Destroying a descriptor cannot usefully fail; this runs from destructors.
  if (conv) cudnnDestroyConvolutionDescriptor(conv);
  if (w) cudnnDestroyFilterDescriptor(w);
  if (y) cudnnDestroyTensorDescriptor(y);
  if (x) cudnnDestroyTensorDescriptor(x);
}

CudnnConv2d::~CudnnConv2d() {
  plans_.clear();
  // The owner has synchronized the stream; a failure here cannot be reported from a destructor.
  if (workspace_) cudaFree(workspace_);
}

void* CudnnConv2d::workspace(size_t bytes) {
  if (bytes <= workspace_bytes_) return workspace_;
  // Work queued earlier may still use the old buffer.
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (workspace_) DPT_CUDA_CHECK(cudaFree(workspace_));
  workspace_ = nullptr;
  workspace_bytes_ = 0;
  DPT_CUDA_CHECK(cudaMalloc(&workspace_, bytes));
  workspace_bytes_ = bytes;
  return workspace_;
}

CudnnConv2d::Plan& CudnnConv2d::plan(const ConvShape& s) {
  const Key key{s.n, s.in_c, s.in_h, s.in_w, s.out_c, s.kh, s.kw, s.stride, s.pad};
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;

  auto p = std::make_unique<Plan>();
  DPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  DPT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, s.n, s.in_c,
                                             s.in_h, s.in_w));
  DPT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  DPT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, s.out_c,
                                             s.in_c, s.kh, s.kw));
  DPT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  // Cross-correlation, as PyTorch's conv2d and the CPU backend's im2col compute it.
  DPT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, s.pad, s.pad, s.stride, s.stride, 1, 1,
                                                  CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  // FMA kernels only: with the default math type cuDNN may run FP32 convolutions on TF32 tensor
  // cores (10-bit mantissa) on Ampere and later, far outside the 1e-5 parity with the CPU.
  DPT_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH));

  int on = 0, oc = 0, oh = 0, ow = 0;
  DPT_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow));
  if (on != s.n || oc != s.out_c || oh != s.out_h() || ow != s.out_w())
    throw SystemError("cuDNN computes a " + std::to_string(oh) + "x" + std::to_string(ow) +
                      " output for the convolution " + shape_text(s) + ", expected " +
                      std::to_string(s.out_h()) + "x" + std::to_string(s.out_w()));
  DPT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  DPT_CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, on, oc, oh, ow));

  // Heuristic candidates. The first forward and backward of the shape then measure the
  // candidates on real data and reorder them (tune, above).
  p->fwd = heuristic_candidates<cudnnConvolutionFwdAlgo_t>(handle_, *p);
  p->bwd_data = heuristic_candidates<cudnnConvolutionBwdDataAlgo_t>(handle_, *p);
  p->bwd_filter = heuristic_candidates<cudnnConvolutionBwdFilterAlgo_t>(handle_, *p);
  return *plans_.emplace(key, std::move(p)).first->second;
}

void CudnnConv2d::forward(const ConvShape& s, const float* x, const float* w, const float* b,
                          float* y) {
  const int oh = s.out_h(), ow = s.out_w();
  if (s.n <= 0 || s.out_c <= 0 || oh <= 0 || ow <= 0) return;
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  // The search writes y, which the run below overwrites.
  if (!p.fwd.tuned) tune(p.fwd, handle_, p, x, w, y, &CudnnConv2d::workspace_of, this);
  run_algorithm(p.fwd, "cudnnConvolutionForward", s,
                [&](cudnnConvolutionFwdAlgo_t algo, size_t bytes) {
                  return cudnnConvolutionForward(handle_, &one, p.x, x, p.w, w, p.conv, algo,
                                                 workspace(bytes), bytes, &zero, p.y, y);
                });
  if (b) launch_add_bias(y, b, s.n, s.out_c, oh * ow, stream_);
}

void CudnnConv2d::backward(const ConvShape& s, const float* x, const float* w, const float* dy,
                           float* dx, float* dw, float* db) {
  const int oh = s.out_h(), ow = s.out_w();
  if (s.n <= 0) return;
  if (s.out_c <= 0 || oh <= 0 || ow <= 0) {
    // No outputs: nothing reaches dw or db, and dx is all zero.
    if (dx)
      DPT_CUDA_CHECK(cudaMemsetAsync(
          dx, 0, sizeof(float) * static_cast<size_t>(s.n) * s.in_c * s.in_h * s.in_w, stream_));
    return;
  }
  Plan& p = plan(s);
  const float one = 1.0f, zero = 0.0f;
  // The search writes dx, which the run below overwrites.
  if (dx && !p.bwd_data.tuned)
    tune(p.bwd_data, handle_, p, w, dy, dx, &CudnnConv2d::workspace_of, this);
  if (dw && !p.bwd_filter.tuned) {
    // dw accumulates, so the search writes into a scratch filter instead.
    float* scratch = nullptr;
    const size_t filter = static_cast<size_t>(s.out_c) * s.in_c * s.kh * s.kw;
    DPT_CUDA_CHECK(cudaMalloc(&scratch, sizeof(float) * filter));
    tune(p.bwd_filter, handle_, p, x, dy, scratch, &CudnnConv2d::workspace_of, this);
    // The search ran on the handle's stream; free once it is done with the scratch.
    DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
    DPT_CUDA_CHECK(cudaFree(scratch));
  }
  // dx is overwritten (beta 0); dw accumulates (beta 1), as the Backend contract says.
  if (dx)
    run_algorithm(p.bwd_data, "cudnnConvolutionBackwardData", s,
                  [&](cudnnConvolutionBwdDataAlgo_t algo, size_t bytes) {
                    return cudnnConvolutionBackwardData(handle_, &one, p.w, w, p.y, dy, p.conv,
                                                        algo, workspace(bytes), bytes, &zero, p.x,
                                                        dx);
                  });
  if (dw)
    run_algorithm(p.bwd_filter, "cudnnConvolutionBackwardFilter", s,
                  [&](cudnnConvolutionBwdFilterAlgo_t algo, size_t bytes) {
                    return cudnnConvolutionBackwardFilter(handle_, &one, p.x, x, p.y, dy, p.conv,
                                                          algo, workspace(bytes), bytes, &one, p.w,
                                                          dw);
                  });
  // A convolution's planes: no scratch needed but for a 1 x 1 output, rare and small.
  if (db) launch_bias_grad(dy, db, s.n, s.out_c, oh * ow, nullptr, stream_);
}

}  // namespace dpt::gpu
