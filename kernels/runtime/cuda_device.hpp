// A CUDA GPU as a Device: device discovery, and memory, copies and markers on one compute stream.
// All that a communicator needs of a GPU (NCCL queues its collectives after the compute stream's
// work); the ops on top are the CUDA backend's (kernels/cuda/cuda_backend.hpp).
//
// This header needs no CUDA header: a stream is a CUstream_st* (what cudaStream_t names), or a
// void* in the public API.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "kernels/runtime/device.hpp"

struct CUstream_st;
struct CUevent_st;

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

// Virtual base: the CUDA backend is a CudaDevice and a Backend, one Device (kernels/backend.hpp).
class CudaDevice : public virtual Device {
 public:
  // Makes `ordinal` current for the calling thread and creates the compute stream on it. Throws
  // SystemError when that fails.
  explicit CudaDevice(int ordinal);
  ~CudaDevice() override;
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  std::string name() const override { return "cuda"; }
  int ordinal() const { return ordinal_; }
  // The stream every op and copy of this device is queued on (a cudaStream_t).
  void* compute_stream() const { return stream_; }

  void synchronize() override;
  // Total minus free memory of the GPU (cudaMemGetInfo): every process's, the context's too.
  size_t memory_in_use() const override;
  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void* alloc_host(size_t bytes) override;
  void free_host(void* p) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_from_host_async(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  bool is_device_memory(const void* p) const override;
  bool asynchronous() const override { return true; }
  int record_marker() override;
  double marker_time(int marker) override;
  void clear_markers() override;
  void push_range(const char* name) override;
  void pop_range() override;

 protected:
  CUstream_st* stream() const { return stream_; }
  // The current device is per thread, and the stream belongs to this one: a thread other than
  // the creator's may call. Cheap when the device is current already.
  void make_current();
  // Device scratch for reductions and overlapping copies, grown on demand; contents are not
  // kept.
  void* scratch(size_t bytes);

 private:
  void anchor();
  void release() noexcept;

  int ordinal_;
  CUstream_st* stream_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<CUevent_st*> marker_events_;  // reused across steps; the first markers_used_ count
  size_t markers_used_ = 0;
  CUevent_st* anchor_event_ = nullptr;
  double anchor_host_seconds_ = 0;
  bool anchored_ = false;
};

}  // namespace dpt
