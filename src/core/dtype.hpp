// The element types of buffers and arrays: one enum for every layer (collectives, arrays read
// from data files, and the tensors to come), so that a buffer's type means the same thing
// wherever it is passed. fp32 is the only type trained in; bf16 joins with mixed precision.
#pragma once

#include <cstddef>

namespace dpt {

enum class DataType { F32, F64, I32, I64, U64, U8 };

// Bytes per element.
size_t dtype_size(DataType t);
// NumPy's name for it ("float32", "uint8", ...), for messages.
const char* dtype_name(DataType t);

}  // namespace dpt
