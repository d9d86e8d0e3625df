// Counter-based random numbers: value i of stream `seed` is a pure function of (seed, i), so every
// backend (and every thread) draws the same numbers without sharing generator state.
#pragma once

#include <cstdint>

// Callable from CUDA kernels too, so that the CUDA backend draws the very same numbers.
#if defined(__CUDACC__)
#define DPT_HOST_DEVICE __host__ __device__
#else
#define DPT_HOST_DEVICE
#endif

namespace dpt {

// splitmix64's finaliser: a bijective mix with good avalanche.
DPT_HOST_DEVICE inline constexpr uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

DPT_HOST_DEVICE inline constexpr uint64_t random_u64(uint64_t seed, uint64_t i) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (i * 0xd1b54a32d192ed03ULL));
}

// Uniform in [0, 1) with 24 bits of precision.
DPT_HOST_DEVICE inline constexpr float uniform_float(uint64_t seed, uint64_t i) {
  return static_cast<float>(random_u64(seed, i) >> 40) * (1.0f / 16777216.0f);
}

}  // namespace dpt
