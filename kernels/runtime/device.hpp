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

  // Named ranges, nested (ScopedRange opens and closes them): passed on to push_range and
  // pop_range, and while recording, kept with markers at both ends, for timelines.
  void begin_range(const char* name) {
    push_range(name);
    if (recording_ranges_) {
      const std::string parent = open_.empty() ? "" : ranges_[open_.back()].path + "/";
      open_.push_back(ranges_.size());
      ranges_.push_back({parent + name, depth_, record_marker(), -1});
    }
    ++depth_;
  }
  void end_range() {
    --depth_;
    // Only a range that opened while recording closes one (recording may start inside another).
    if (!open_.empty() && ranges_[open_.back()].depth == depth_) {
      ranges_[open_.back()].end_marker = record_marker();
      open_.pop_back();
    }
    pop_range();
  }
  // Starts or stops keeping ranges (stopping drops those not taken).
  void record_ranges(bool on) {
    recording_ranges_ = on;
    if (!on) {
      ranges_.clear();
      open_.clear();
    }
  }
  struct TimedRange {
    std::string path;   // the names of the ranges it is in and its own, joined by "/"
    int depth;          // how many ranges were open when it opened
    double start, end;  // steady_seconds()
  };
  // The ranges recorded and closed since the last take, in the order they opened, with their
  // times: after synchronize() and before clear_markers(), as marker_time(). Ranges still open
  // are dropped (their markers end with the next clear_markers()).
  std::vector<TimedRange> take_ranges() {
    std::vector<TimedRange> done;
    for (const Range& r : ranges_)
      if (r.end_marker >= 0)
        done.push_back({r.path, r.depth, marker_time(r.start_marker), marker_time(r.end_marker)});
    ranges_.clear();
    open_.clear();
    return done;
  }

 private:
  std::vector<double> markers_;
  struct Range {
    std::string path;
    int depth;
    int start_marker, end_marker;  // end -1: still open
  };
  bool recording_ranges_ = false;
  int depth_ = 0;              // ranges open now, recorded or not
  std::vector<Range> ranges_;  // recorded, not taken yet
  std::vector<size_t> open_;   // indices into ranges_ of the recorded ranges still open
};

// Marks a named range (Device::begin_range) for the life of the object.
class ScopedRange {
 public:
  ScopedRange(Device& device, const char* name) : device_(device) { device_.begin_range(name); }
  ~ScopedRange() { device_.end_range(); }
  ScopedRange(const ScopedRange&) = delete;
  ScopedRange& operator=(const ScopedRange&) = delete;

 private:
  Device& device_;
};

}  // namespace dpt
