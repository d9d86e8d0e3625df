#include "comm/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "kernels/runtime/cuda_check.hpp"
#include "src/core/error.hpp"

#define DPT_NCCL_CHECK(call)                                                                \
  do {                                                                                      \
    ncclResult_t dpt_nccl_rc_ = (call);                                                     \
    if (dpt_nccl_rc_ != ncclSuccess)                                                        \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__, ncclGetErrorString(dpt_nccl_rc_)); \
  } while (0)

namespace dpt {
namespace {

ncclDataType_t to_nccl(DataType t) {
  switch (t) {
    case DataType::F32:
      return ncclFloat32;
    case DataType::F64:
      return ncclFloat64;
    case DataType::I32:
      return ncclInt32;
    case DataType::I64:
      return ncclInt64;
    case DataType::U64:
      return ncclUint64;
    case DataType::U8:
      return ncclUint8;
    case DataType::BF16:
      return ncclBfloat16;
  }
  return ncclUint8;
}

ncclRedOp_t to_nccl(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Avg:
      return ncclAvg;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
  }
  return ncclSum;
}

// The state every Work of one communicator shares: the NCCL communicator to poll for
// asynchronous errors, and a reference event whose host time maps event times to the
// steady clock.
struct NcclShared {
  ncclComm_t comm = nullptr;
  cudaEvent_t origin = nullptr;
  double origin_seconds = 0;
  bool aborted = false;
};

class NcclWork final : public Work {
 public:
  NcclWork(NcclShared& shared, cudaEvent_t start, cudaEvent_t end, double timeout, std::string what)
      : shared_(shared), start_(start), end_(end), timeout_(timeout), what_(std::move(what)) {}
  ~NcclWork() override {
    cudaEventDestroy(start_);
    cudaEventDestroy(end_);
  }

  void wait() override {
    if (done_) return;
    const double begin = steady_seconds();
    for (int polls = 0;; ++polls) {
      const cudaError_t q = cudaEventQuery(end_);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady)
        throw_call_error("cudaEventQuery", __FILE__, __LINE__,
                         what_ + ": " + cuda_detail::cuda_error_text(q));
      ncclResult_t async = ncclSuccess;
      DPT_NCCL_CHECK(ncclCommGetAsyncError(shared_.comm, &async));
      if (async != ncclSuccess && async != ncclInProgress) {
        abort_comm();
        throw SystemError(what_ + " failed: " + ncclGetErrorString(async) +
                          " (a peer failed or the network broke)");
      }
      if (timeout_ > 0 && steady_seconds() - begin > timeout_) {
        abort_comm();
        throw CommTimeout(what_ + " did not complete in " + std::to_string(timeout_) +
                          " s (--comm-timeout)");
      }
      // Spin briefly (a bucket's allreduce often ends within microseconds of the wait), then
      // yield the core.
      if (polls > 1000) std::this_thread::yield();
    }
    float ms_start = 0, ms_end = 0;
    DPT_CUDA_CHECK(cudaEventElapsedTime(&ms_start, shared_.origin, start_));
    DPT_CUDA_CHECK(cudaEventElapsedTime(&ms_end, shared_.origin, end_));
    start_time_ = shared_.origin_seconds + 1e-3 * ms_start;
    end_time_ = shared_.origin_seconds + 1e-3 * ms_end;
    done_ = true;
  }
  double start_time() const override { return start_time_; }
  double end_time() const override { return end_time_; }

 private:
  void abort_comm() {
    if (!shared_.aborted) ncclCommAbort(shared_.comm);
    shared_.aborted = true;
  }

  NcclShared& shared_;
  cudaEvent_t start_, end_;
  double timeout_;
  std::string what_;
  bool done_ = false;
  double start_time_ = 0, end_time_ = 0;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, CudaDevice& gpu)
      : boot_(bootstrap), gpu_(gpu), compute_(static_cast<cudaStream_t>(gpu.compute_stream())) {
    ncclUniqueId id{};
    if (boot_.rank() == 0) DPT_NCCL_CHECK(ncclGetUniqueId(&id));
    boot_.broadcast(&id, sizeof(id), DataType::U8, 0);
    DPT_CUDA_CHECK(cudaGetDevice(&device_));
    // The comm stream gets the highest priority, so that communication kernels are not
    // queued behind backward's kernels when both are ready.
    int least = 0, greatest = 0;
    DPT_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    DPT_CUDA_CHECK(cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest));
    DPT_NCCL_CHECK(ncclCommInitRank(&shared_.comm, boot_.size(), id, boot_.rank()));
    DPT_CUDA_CHECK(cudaEventCreate(&ready_, cudaEventDisableTiming));
    DPT_CUDA_CHECK(cudaEventCreate(&shared_.origin));
    DPT_CUDA_CHECK(cudaEventRecord(shared_.origin, stream_));
    DPT_CUDA_CHECK(cudaEventSynchronize(shared_.origin));
    shared_.origin_seconds = steady_seconds();
  }
  ~NcclCommunicator() override {
    if (shared_.comm && !shared_.aborted) {
      cudaStreamSynchronize(stream_);
      ncclCommDestroy(shared_.comm);
    }
    cudaEventDestroy(ready_);
    cudaEventDestroy(shared_.origin);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "nccl"; }
  int rank() const override { return boot_.rank(); }
  int size() const override { return boot_.size(); }
  int local_rank() const override { return boot_.local_rank(); }
  int local_size() const override { return boot_.local_size(); }

  std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                        ReduceOp op) override {
    if (!gpu_.is_device_memory(data)) {
      boot_.set_timeout(timeout());
      return boot_.allreduce_async(data, count, type, op);
    }
    return launch("ncclAllReduce", [&] {
      DPT_NCCL_CHECK(
          ncclAllReduce(data, data, count, to_nccl(type), to_nccl(op), shared_.comm, stream_));
    });
  }

  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                             DataType type, ReduceOp op) override {
    if (op == ReduceOp::Avg && type != DataType::F32 && type != DataType::F64 &&
        type != DataType::BF16)
      throw SystemError("reduce_scatter: average needs a floating-point type");
    if (!on_device(send, recv, "reduce_scatter")) {
      boot_.set_timeout(timeout());
      return boot_.reduce_scatter_async(send, recv, count, type, op);
    }
    // NCCL takes the in-place case as it is (recv == send + rank * count).
    is_block_in_place(send, recv, count, type, rank(), size(), "reduce_scatter");
    return launch("ncclReduceScatter", [&] {
      DPT_NCCL_CHECK(
          ncclReduceScatter(send, recv, count, to_nccl(type), to_nccl(op), shared_.comm, stream_));
    });
  }

  void broadcast(void* data, size_t count, DataType type, int root) override {
    if (!gpu_.is_device_memory(data)) {
      boot_.set_timeout(timeout());
      return boot_.broadcast(data, count, type, root);
    }
    launch("ncclBroadcast", [&] {
      DPT_NCCL_CHECK(ncclBroadcast(data, data, count, to_nccl(type), root, shared_.comm, stream_));
    })->wait();
  }

  // NCCL takes the in-place case as it is (send == recv + rank * count).
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    if (!on_device(send, recv, "allgather")) {
      boot_.set_timeout(timeout());
      return boot_.allgather_async(send, recv, count, type);
    }
    is_block_in_place(recv, send, count, type, rank(), size(), "allgather");
    return launch("ncclAllGather", [&] {
      DPT_NCCL_CHECK(ncclAllGather(send, recv, count, to_nccl(type), shared_.comm, stream_));
    });
  }

  void barrier() override { boot_.barrier(); }

  [[noreturn]] void abort(int exit_code) override {
    if (!shared_.aborted) ncclCommAbort(shared_.comm);
    shared_.aborted = true;
    boot_.abort(exit_code);
    std::abort();  // not reached: the bootstrap's abort does not return
  }
  std::vector<int> unresponsive_ranks(double seconds) override {
    return boot_.unresponsive_ranks(seconds);
  }

 private:
  // Whether a collective's two buffers are device memory (NCCL's) rather than host memory (the
  // bootstrap's); one of each is refused, as neither communicator can take it.
  bool on_device(const void* send, const void* recv, const char* what) const {
    const bool send_dev = gpu_.is_device_memory(send), recv_dev = gpu_.is_device_memory(recv);
    if (send_dev != recv_dev)
      throw SystemError(std::string(what) + ": send is " + (send_dev ? "device" : "host") +
                        " memory but recv is " + (recv_dev ? "device" : "host") +
                        " memory; the NCCL communicator needs both on the device or both on "
                        "the host");
    return send_dev;
  }

  // Queues `call` on the comm stream after all work queued so far on the compute stream,
  // between two timing events.
  template <class F>
  std::unique_ptr<Work> launch(const char* what, F&& call) {
    if (shared_.aborted)
      throw SystemError(std::string(what) + ": the NCCL communicator was aborted");
    DPT_CUDA_CHECK(cudaEventRecord(ready_, compute_));
    DPT_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready_, 0));
    cudaEvent_t start = nullptr, end = nullptr;
    DPT_CUDA_CHECK(cudaEventCreate(&start));
    DPT_CUDA_CHECK(cudaEventCreate(&end));
    DPT_CUDA_CHECK(cudaEventRecord(start, stream_));
    nvtxRangePushA(what);
    call();
    nvtxRangePop();
    DPT_CUDA_CHECK(cudaEventRecord(end, stream_));
    return std::make_unique<NcclWork>(shared_, start, end, timeout(), what);
  }

  Communicator& boot_;
  CudaDevice& gpu_;  // tells device buffers (NCCL) from host ones (the bootstrap)
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  int device_ = 0;
  NcclShared shared_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, CudaDevice& device) {
  return std::make_unique<NcclCommunicator>(bootstrap, device);
}

std::string nccl_version() {
  int v = 0;
  if (ncclGetVersion(&v) != ncclSuccess) return "NCCL (version unknown)";
  // NCCL_VERSION(X,Y,Z) is X*10000 + Y*100 + Z since 2.9.
  return "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

}  // namespace dpt
