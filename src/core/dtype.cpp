#include "src/core/dtype.hpp"

namespace dpt {

size_t dtype_size(DataType t) {
  switch (t) {
    case DataType::F32:
    case DataType::I32:
      return 4;
    case DataType::F64:
    case DataType::I64:
    case DataType::U64:
      return 8;
    case DataType::U8:
      return 1;
    case DataType::BF16:
      return 2;
  }
  return 1;
}

const char* dtype_name(DataType t) {
  switch (t) {
    case DataType::F32:
      return "float32";
    case DataType::F64:
      return "float64";
    case DataType::I32:
      return "int32";
    case DataType::I64:
      return "int64";
    case DataType::U64:
      return "uint64";
    case DataType::U8:
      return "uint8";
    case DataType::BF16:
      return "bfloat16";
  }
  return "unknown";
}

}  // namespace dpt
