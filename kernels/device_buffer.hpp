// DeviceBuffer: an owning, resizable allocation in a backend's memory; PinnedBuffer: host memory
// for fast copies to it.
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/backend.hpp"

namespace dpt {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes) { resize(backend, bytes); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      std::swap(backend_, o.backend_);
      std::swap(ptr_, o.ptr_);
      std::swap(bytes_, o.bytes_);
    }
    return *this;
  }

  // Reallocates (zeroed) only when more bytes are needed; contents are not preserved then.
  void resize(Backend& backend, size_t bytes) {
    if (ptr_ && backend_ == &backend && bytes <= bytes_) return;
    release();
    backend_ = &backend;
    ptr_ = backend.alloc(bytes);
    bytes_ = bytes;
  }
  void release() {
    if (ptr_) backend_->free(ptr_);
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
  Backend* backend_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Host memory the backend copies from fastest (page-locked on CUDA), grown on demand; contents
// are not preserved when it grows.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(Backend& backend) : backend_(backend) {}
  ~PinnedBuffer() {
    if (ptr_) backend_.free_host(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* get(size_t bytes) {
    if (bytes > bytes_) {
      if (ptr_) backend_.free_host(ptr_);
      ptr_ = nullptr;
      ptr_ = backend_.alloc_host(bytes);
      bytes_ = bytes;
    }
    return ptr_;
  }
  template <class T>
  T* as(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }

 private:
  Backend& backend_;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace dpt
