// FNV-1a, 64 bit: cheap, stable across runs and machines, and any flipped byte changes it.
// Used for checksums that ranks compare or that a file stores, never for security.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace dpt {

inline constexpr uint64_t kFnv1aOffset = 0xcbf29ce484222325ULL;

// Continues the hash `h` over `size` bytes at `data`; start from kFnv1aOffset.
inline uint64_t fnv1a(const void* data, size_t size, uint64_t h = kFnv1aOffset) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
  return h;
}

inline uint64_t fnv1a(std::string_view s, uint64_t h = kFnv1aOffset) {
  return fnv1a(s.data(), s.size(), h);
}

}  // namespace dpt
