// The element types of buffers and arrays: one enum for every layer (collectives, arrays read
// from data files, tensors), so that a buffer's type means the same thing wherever it is passed.
// BF16 is bfloat16, held as its 16 bits (src/core/bf16.hpp): mixed precision's activations and
// working weights.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dpt {

enum class DataType { F32, F64, I32, I64, U64, U8, BF16 };

// Bytes per element.
size_t dtype_size(DataType t);
// NumPy's name for it ("float32", "uint8", ...), for messages.
const char* dtype_name(DataType t);

// The DataType of a C++ element type: dtype_of<float>() is F32.
template <class T>
constexpr DataType dtype_of();
template <>
constexpr DataType dtype_of<float>() { return DataType::F32; }
template <>
constexpr DataType dtype_of<double>() { return DataType::F64; }
template <>
constexpr DataType dtype_of<int32_t>() { return DataType::I32; }
template <>
constexpr DataType dtype_of<int64_t>() { return DataType::I64; }
template <>
constexpr DataType dtype_of<uint64_t>() { return DataType::U64; }
template <>
constexpr DataType dtype_of<uint8_t>() { return DataType::U8; }

}  // namespace dpt
