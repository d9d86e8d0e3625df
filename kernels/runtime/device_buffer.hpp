// DeviceBuffer: an owning, resizable allocation in a device's memory; PinnedBuffer: host memory
// for fast copies to it.
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/runtime/device.hpp"

namespace dpt {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Device& device, size_t bytes) { resize(device, bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      std::swap(device_, o.device_);
      std::swap(ptr_, o.ptr_);
      std::swap(bytes_, o.bytes_);
    }
    return *this;
  }

  // Reallocates (zeroed) only when more bytes are needed; contents are not preserved then.
  void resize(Device& device, size_t bytes) {
    if (ptr_ && device_ == &device && bytes <= bytes_) return;
    release();
    device_ = &device;
    ptr_ = device.alloc(bytes);
    bytes_ = bytes;
  }
  void release() {
    if (ptr_) device_->free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }

  template <class T = float>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  float* data() const { return static_cast<float*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  Device* device_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host memory the device copies from fastest (page-locked on CUDA), grown on demand; contents
// are not preserved when it grows.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(Device& device) : device_(device) {}
  ~PinnedBuffer() {
    if (ptr_) device_.free_host(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* get(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_) device_.free_host(ptr_);
      ptr_ = nullptr;
      ptr_ = device_.alloc_host(bytes);
      bytes_ = bytes;
    }
    return ptr_;
  }
  template <class T>
  T* as(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }

 private:
  Device& device_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace dpt
