// TensorRef and ConstTensorRef: a pointer into some device's memory together with the element
// type of what it points at. Layers pass activations and their gradients as these, so that an op
// can see the type it is handed and refuse one it does not take (as<T>() checks it) instead of
// reading bf16 bits as floats. They own nothing and carry no shape: the layer knows its shapes.
//
// Built implicitly from a typed pointer (a float* is a float32 tensor) or from nullptr (no
// tensor: the first layer's input gradient).
#pragma once

#include <cstddef>
#include <string>

#include "src/core/dtype.hpp"
#include "src/core/error.hpp"

namespace dpt {

namespace detail {
[[noreturn]] inline void tensor_type_error(DataType held, DataType asked) {
  throw SystemError(std::string("a tensor of ") + dtype_name(held) + " used as " +
                    dtype_name(asked));
}
}  // namespace detail

class TensorRef {
 public:
  TensorRef() = default;
  TensorRef(std::nullptr_t) {}  // NOLINT: implicit, as a pointer would be
  TensorRef(void* data, DataType dtype) : data_(data), dtype_(dtype) {}
  template <class T>
  TensorRef(T* p) : data_(p), dtype_(dtype_of<T>()) {}  // NOLINT: implicit on purpose

  DataType dtype() const { return dtype_; }
  void* data() const { return data_; }
  explicit operator bool() const { return data_ != nullptr; }
  // The memory as T; throws SystemError when T is not the tensor's element type. Null stays null.
  template <class T>
  T* as() const {
    if (data_ && dtype_of<T>() != dtype_) detail::tensor_type_error(dtype_, dtype_of<T>());
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  DataType dtype_ = DataType::F32;
};

class ConstTensorRef {
 public:
  ConstTensorRef() = default;
  ConstTensorRef(std::nullptr_t) {}  // NOLINT
  ConstTensorRef(const void* data, DataType dtype) : data_(data), dtype_(dtype) {}
  ConstTensorRef(const TensorRef& t) : data_(t.data()), dtype_(t.dtype()) {}  // NOLINT
  template <class T>
  ConstTensorRef(const T* p) : data_(p), dtype_(dtype_of<T>()) {}  // NOLINT

  DataType dtype() const { return dtype_; }
  const void* data() const { return data_; }
  explicit operator bool() const { return data_ != nullptr; }
  template <class T>
  const T* as() const {
    if (data_ && dtype_of<T>() != dtype_) detail::tensor_type_error(dtype_, dtype_of<T>());
    return static_cast<const T*>(data_);
  }

 private:
  const void* data_ = nullptr;
  DataType dtype_ = DataType::F32;
};

}  // namespace dpt
