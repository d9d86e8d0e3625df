// Device: where a rank's data lives and its work is queued: memory, copies, the queue (stream)
// and markers in it. The device runtime beneath both the ops (kernels/) and the communicators
// (comm/): a communicator needs to tell device memory from host memory, copy and wait, never an
// op. A Backend (kernels/backend.hpp) is a Device with ops.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "src/core/clock.hpp"

namespace dpt {

class Device {
 public:
  virtual ~Device() = default;
  virtual std::string name() const = 0;

  // Memory of this device, in bytes; alloc returns zeroed memory.
  virtual void* alloc(size_t bytes) = 0;
  virtual void free(void* p) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // Waits for all queued work (a no-op on the CPU).
  virtual void synchronize() {}
  // Host memory that this device copies from fastest (page-locked on CUDA), and a copy from it
  // that may return before it is done (ordered before every later op of this device). The
  // source must stay untouched until the next synchronize().
  virtual void* alloc_host(size_t bytes) { return alloc(bytes); }
  virtual void free_host(void* p) { free(p); }
  virtual void copy_from_host_async(void* dst, const void* src, size_t bytes) {
    copy_from_host(dst, src, bytes);
  }
  // Whether p points into memory of this device that the host cannot read directly (so a
  // communicator that works on host memory must stage it). Always false on the CPU.
  virtual bool is_device_memory(const void* p) const { return false; }
  // Whether ops return before their work is done (a GPU's queue). Then host clocks measure
  // launching, and times come from markers instead.
  virtual bool asynchronous() const { return false; }
  // A point in this device's queue: record_marker() marks "all work queued so far", and
  // marker_time() gives when that work completed, in steady_seconds(), once synchronize() has
  // returned. Markers are valid until the next synchronize() after they were read. On the CPU
  // the work is done when queued, so a marker is the time of recording.
  virtual int record_marker() {
    markers_.push_back(steady_seconds());
    return static_cast<int>(markers_.size() - 1);
  }
  virtual double marker_time(int marker) { return markers_.at(marker); }
  virtual void clear_markers() { markers_.clear(); }
  // Bytes of memory in use where this device keeps its buffers, as the system counts them: the
  // process's resident set on the CPU, the GPU's used memory (cudaMemGetInfo) on CUDA; 0 when
  // unknown. For checking the memory report against what is actually held.
  virtual size_t memory_in_use() const { return 0; }
  // Named ranges for profilers (NVTX on CUDA, so that Nsight Systems shows them); no-op here.
  virtual void push_range(const char* name) {}
  virtual void pop_range() {}

 private:
  std::vector<double> markers_;
};

// Marks a profiler range for the life of the object.
class ScopedRange {
 public:
  ScopedRange(Device& device, const char* name) : device_(device) { device_.push_range(name); }
  ~ScopedRange() { device_.pop_range(); }
  ScopedRange(const ScopedRange&) = delete;
  ScopedRange& operator=(const ScopedRange&) = delete;

 private:
  Device& device_;
};

}  // namespace dpt
