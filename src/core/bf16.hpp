// bfloat16: the top 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits). Rounding a
// float to it is to nearest, ties to even, as CUDA's __float2bfloat16_rn and PyTorch's
// .to(torch.bfloat16) do; a NaN stays a NaN (quiet), an infinity stays one, and a finite value
// that rounds past the largest bf16 becomes an infinity. Host and device code share it, so that
// every backend rounds alike.
#pragma once

#include <cstdint>
#include <cstring>

#include "src/core/host_device.hpp"

namespace dpt {

DPT_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

DPT_HOST_DEVICE inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

DPT_HOST_DEVICE inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN
  // Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even; a carry into the
  // exponent is the correct next binade (or infinity).
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

DPT_HOST_DEVICE inline float bf16_to_float(uint16_t b) {
  return bits_float(static_cast<uint32_t>(b) << 16);
}

// Rounds up or down at random with the probabilities that make the result's expectation equal
// `f` (stochastic rounding, as llm.c rounds its bf16 weights): `random` is 16 uniform bits.
DPT_HOST_DEVICE inline uint16_t float_to_bf16_stochastic(float f, uint32_t random) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7f800000u) == 0x7f800000u) return float_to_bf16(f);  // NaN and infinities
  return static_cast<uint16_t>((u + (random & 0xffffu)) >> 16);
}

}  // namespace dpt
