// DeviceBuffer: an owning, resizable allocation in a device's memory, of elements of one type;
// PinnedBuffer: host memory for fast copies to it.
#pragma once

#include <cstddef>
#include <utility>

#include "kernels/runtime/device.hpp"
#include "src/core/dtype.hpp"
#include "src/core/tensor_ref.hpp"

namespace dpt {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Device& device, DataType dtype, size_t count) { resize(device, dtype, count); }
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
      std::swap(dtype_, o.dtype_);
      std::swap(count_, o.count_);
    }
    return *this;
  }

  // Holds `count` elements of `dtype` afterwards. Reallocates (zeroed) only when more bytes are
  // needed; the contents are not preserved then.
  void resize(Device& device, DataType dtype, size_t count) {
    const size_t bytes = count * dtype_size(dtype);
    if (!ptr_ || device_ != &device || bytes > bytes_) {
      release();
      device_ = &device;
      ptr_ = device.alloc(bytes);
      bytes_ = bytes;
    }
    dtype_ = dtype;
    count_ = count;
  }
  void release() {
    if (ptr_) device_->free(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
    count_ = 0;
  }

  DataType dtype() const { return dtype_; }
  size_t count() const { return count_; }  // elements of dtype() it holds
  size_t bytes() const { return bytes_; }   // allocated, at least count() * dtype_size
  // The memory as T; throws SystemError when T is not the buffer's element type.
  template <class T>
  T* as() const {
    return TensorRef(ptr_, dtype_).as<T>();
  }
  float* data() const { return as<float>(); }
  TensorRef ref() const { return {ptr_, dtype_}; }

 private:
  Device* device_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  DataType dtype_ = DataType::F32;
  size_t count_ = 0;
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
