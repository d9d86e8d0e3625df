// A CUDA GPU: device discovery (usable without a device, or even a driver, for the count), and
// the device's memory, copies and markers on its compute stream.
#include "kernels/runtime/cuda_device.hpp"

#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "kernels/runtime/cuda_check.hpp"
#include "src/core/clock.hpp"

namespace dpt {

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

CudaDevice::CudaDevice(int ordinal) : ordinal_(ordinal) {
  try {
    DPT_CUDA_CHECK(cudaSetDevice(ordinal_));
    DPT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    anchor();  // the stream is idle: cheap, and markers work before any clear_markers()
  } catch (...) {
    release();
    throw;
  }
}

CudaDevice::~CudaDevice() { release(); }

void CudaDevice::synchronize() {
  make_current();
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

size_t CudaDevice::memory_in_use() const {
  const_cast<CudaDevice*>(this)->make_current();  // selects the device; changes nothing of it
  size_t free_bytes = 0, total_bytes = 0;
  DPT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

void* CudaDevice::alloc(size_t bytes) {
  make_current();
  // Never a null pointer, even for 0 bytes: callers take null for "absent".
  const size_t n = bytes ? bytes : 1;
  void* p = nullptr;
  const cudaError_t rc = cudaMalloc(&p, n);
  if (rc != cudaSuccess)
    throw_call_error("cudaMalloc", __FILE__, __LINE__,
                     cuda_detail::cuda_error_text(rc) + " allocating " + std::to_string(bytes) +
                         " bytes on CUDA device " + std::to_string(ordinal_));
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
// program; they report nothing. An error here is a broken context, which the next checked call
// reports anyway.
void CudaDevice::free(void* p) {
  if (!p) return;
  cudaSetDevice(ordinal_);
  cudaStreamSynchronize(stream_);  // queued work may still read p
  cudaFree(p);
}

void* CudaDevice::alloc_host(size_t bytes) {
  make_current();
  void* p = nullptr;
  DPT_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1));
  std::memset(p, 0, bytes);  // zeroed, like alloc
  return p;
}

void CudaDevice::free_host(void* p) {
  if (!p) return;
  cudaSetDevice(ordinal_);
  cudaStreamSynchronize(stream_);  // an async copy may still read p
  cudaFreeHost(p);
}

// Synchronous for the caller: the host buffer may be pageable and reused at once.
void CudaDevice::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  make_current();
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaDevice::copy_from_host_async(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  make_current();
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
}

void CudaDevice::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (!bytes) return;
  make_current();
  DPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

// Synchronous too, like the CPU's, so that code handing the result to another stream or thread
// needs no event. Overlapping ranges are allowed (memmove semantics, as on the CPU): cudaMemcpy
// does not allow them, so those go through the scratch buffer.
void CudaDevice::copy(void* dst, const void* src, size_t bytes) {
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

bool CudaDevice::is_device_memory(const void* p) const {
  if (!p) return false;
  // Not make_current(), which is not const; same reason: no stray context on device 0.
  DPT_CUDA_CHECK(cudaSetDevice(ordinal_));
  cudaPointerAttributes attr{};
  // Plain host memory is not an error: it reports cudaMemoryTypeUnregistered.
  DPT_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  return attr.type == cudaMemoryTypeDevice;
}

// Markers are events on the compute stream. Their device times become steady_seconds() through
// an anchor event recorded while the stream was idle: such an event completes at once, so it
// pairs a device time with a host time. The anchor is renewed at every clear_markers() (callers
// clear after a synchronize, so the stream is idle then and nothing waits).
int CudaDevice::record_marker() {
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

double CudaDevice::marker_time(int marker) {
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

void CudaDevice::clear_markers() {
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
void CudaDevice::push_range(const char* name) { nvtxRangePushA(name); }
void CudaDevice::pop_range() { nvtxRangePop(); }

void CudaDevice::make_current() { DPT_CUDA_CHECK(cudaSetDevice(ordinal_)); }

// Records the anchor of the markers (see record_marker), waiting for the stream to drain first
// unless it is idle already.
void CudaDevice::anchor() {
  if (!anchor_event_) DPT_CUDA_CHECK(cudaEventCreate(&anchor_event_));
  DPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  anchor_host_seconds_ = steady_seconds();
  DPT_CUDA_CHECK(cudaEventRecord(anchor_event_, stream_));
  anchored_ = true;
}

void* CudaDevice::scratch(size_t bytes) {
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

// Destroys whatever was created, in reverse order; used by the destructor and by a constructor
// that failed half-way. Errors are ignored: nothing useful can be done with them.
void CudaDevice::release() noexcept {
  cudaSetDevice(ordinal_);
  if (stream_) cudaStreamSynchronize(stream_);
  for (cudaEvent_t e : marker_events_) cudaEventDestroy(e);
  marker_events_.clear();
  if (anchor_event_) cudaEventDestroy(anchor_event_);
  anchor_event_ = nullptr;
  if (scratch_) cudaFree(scratch_);
  scratch_ = nullptr;
  if (stream_) cudaStreamDestroy(stream_);
  stream_ = nullptr;
}

}  // namespace dpt
