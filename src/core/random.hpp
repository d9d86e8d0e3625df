// Counter-based random numbers: value i of stream `seed` is a pure function of (seed, i), so every
// backend (and every thread) draws the same numbers without sharing generator state.
#pragma once

#include <cmath>
#include <cstdint>

#include "src/core/host_device.hpp"  // the draws are callable from CUDA kernels too

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

// Standard normal (mean 0, variance 1) by Box-Muller from draws 2i and 2i + 1 of the stream, so
// value i is again a pure function of (seed, i). 1 - u lies in (0, 1], which keeps the logarithm
// finite; with 24-bit uniforms the largest magnitude is sqrt(2 ln 2^24), about 5.8. Computed in
// double on the host (parameter initialisation draws there and copies to the device), so that
// every backend starts from the same bits.
inline float normal_float(uint64_t seed, uint64_t i) {
  const double u1 = 1.0 - static_cast<double>(uniform_float(seed, 2 * i));
  const double u2 = static_cast<double>(uniform_float(seed, 2 * i + 1));
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace dpt
