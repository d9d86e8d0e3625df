#include "comm/communicator.hpp"

#include <cstdint>

#include "src/core/error.hpp"

namespace dpt {

bool is_block_in_place(const void* full, const void* block, size_t count, DataType type, int rank,
                       int size, const char* what) {
  const size_t bytes = count * dtype_size(type);
  // As integers: the buffers may be unrelated objects, which pointers may not be compared as.
  const auto f = reinterpret_cast<uintptr_t>(full), b = reinterpret_cast<uintptr_t>(block);
  if (bytes > 0 && b == f + static_cast<size_t>(rank) * bytes) return true;
  const bool overlap = bytes > 0 && b < f + static_cast<size_t>(size) * bytes && f < b + bytes;
  if (overlap)
    throw SystemError(std::string(what) + ": the buffers overlap, but the block of " +
                      std::to_string(count) + " elements is not rank " + std::to_string(rank) +
                      "'s block of the full buffer (the only overlap allowed: in place)");
  return false;
}

}  // namespace dpt
