// The CPU as a Device: host memory (64-byte aligned, zeroed), copies as memcpy, nothing queued.
#pragma once

#include <cstddef>
#include <string>

#include "kernels/runtime/device.hpp"

namespace dpt {

// Virtual base: the CPU backend is a CpuDevice and a Backend, one Device (kernels/backend.hpp).
class CpuDevice : public virtual Device {
 public:
  std::string name() const override { return "cpu"; }
  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  // The resident set size, from /proc/self/statm (0 where there is none).
  size_t memory_in_use() const override;
};

}  // namespace dpt
