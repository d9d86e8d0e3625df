// IDX files (the MNIST format): bytes 0 0, a type code, ndim, ndim big-endian uint32 dims, data.
#include <cstdio>
#include <cstring>

#include "src/core/error.hpp"
#include "src/data/dataset.hpp"

namespace dpt {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

uint32_t load_be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

}  // namespace

NdArray parse_idx(const std::string& path, std::span<const uint8_t> bytes) {
  if (bytes.size() < 4) {
    fail(path, "truncated: an IDX header needs 4 bytes, file has " + std::to_string(bytes.size()));
  }
  char magic[64];
  std::snprintf(magic, sizeof magic, "wrong IDX magic 0x%08x", load_be32(bytes.data()));
  if (bytes[0] != 0 || bytes[1] != 0) {
    fail(path, std::string(magic) + " (expected 0x00000TNN: two zero bytes, type T, ndim NN)");
  }
  NdArray a;
  size_t elem = 4;
  switch (bytes[2]) {
    case 0x08:
      a.dtype = DataType::U8;
      elem = 1;
      break;
    case 0x0C:
      a.dtype = DataType::I32;
      break;
    case 0x0D:
      a.dtype = DataType::F32;
      break;
    default: {
      char code[8];
      std::snprintf(code, sizeof code, "0x%02x", bytes[2]);
      fail(path, std::string("unsupported IDX data type code ") + code +
                     " (supported: 0x08 uint8, 0x0c int32, 0x0d float32)");
    }
  }
  const size_t ndim = bytes[3];
  if (ndim < 1 || ndim > 4) {
    fail(path,
         "the IDX header declares " + std::to_string(ndim) + " dimensions (supported: 1 to 4)");
  }
  const size_t header = 4 + 4 * ndim;
  if (bytes.size() < header) {
    fail(path, "truncated: the IDX header needs " + std::to_string(header) + " bytes, file has " +
                   std::to_string(bytes.size()));
  }
  for (size_t i = 0; i < ndim; ++i) a.shape.push_back(load_be32(bytes.data() + 4 + 4 * i));

  // Compare the declared size with what is there before allocating anything.
  const int64_t n = checked_numel(a.shape);
  if (n < 0 || static_cast<uint64_t>(n) > UINT64_MAX / elem) {
    fail(path, "shape " + shape_to_string(a.shape) + " is too large (size overflows 64 bits)");
  }
  const uint64_t want = static_cast<uint64_t>(n) * elem;
  const uint64_t have = bytes.size() - header;
  if (want != have) {
    fail(path, std::string(want > have ? "truncated" : "trailing bytes") + ": header declares " +
                   std::to_string(want) + " bytes of data, file has " + std::to_string(have));
  }
  const uint8_t* src = bytes.data() + header;
  if (elem == 1) {
    a.bytes.assign(src, src + want);
  } else {
    a.bytes.resize(want);
    for (uint64_t i = 0; i < want; i += 4) {
      const uint32_t v = load_be32(src + i);  // to host order, whatever that is
      std::memcpy(a.bytes.data() + i, &v, 4);
    }
  }
  return a;
}

}  // namespace dpt
