// Element types of the CUDA backend's typed kernels: float, or bfloat16 held as its 16 bits in a
// uint16_t (src/core/bf16.hpp). A kernel templated on T loads each element as float (a bf16
// widens exactly), computes in float, and stores with one rounding to nearest even: the rounding
// points of the bf16 twin (kernels/backend.cpp), so that a native bf16 kernel gives the twin's
// bits wherever it adds in the twin's order.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "src/core/bf16.hpp"

namespace dpt::gpu {

using bf16_bits = uint16_t;

__device__ inline float to_float(float v) { return v; }
__device__ inline float to_float(bf16_bits v) { return bf16_to_float(v); }

template <class T>
__device__ inline T from_float(float v);
template <>
__device__ inline float from_float<float>(float v) {
  return v;
}
template <>
__device__ inline bf16_bits from_float<bf16_bits>(float v) {
  return float_to_bf16(v);
}

// The bytes of four elements: a group is loaded and stored in one access when every pointer of
// a kernel is aligned to this (and the row length is a multiple of four).
template <class T>
constexpr size_t group_bytes() {
  return 4 * sizeof(T);
}
inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Group g of four elements of p (elements 4g .. 4g + 3) as floats. kVec: one 16-byte (float) or
// 8-byte (bf16) access, which needs p aligned to group_bytes<T>(); else four loads. The values
// are the same either way.
template <bool kVec>
__device__ inline float4 load4(const float* p, int64_t g) {
  if constexpr (kVec) {
    return reinterpret_cast<const float4*>(p)[g];
  } else {
    return make_float4(p[4 * g], p[4 * g + 1], p[4 * g + 2], p[4 * g + 3]);
  }
}
template <bool kVec>
__device__ inline float4 load4(const bf16_bits* p, int64_t g) {
  if constexpr (kVec) {
    // Little-endian: element 4g is the low half of the first word.
    const uint2 u = reinterpret_cast<const uint2*>(p)[g];
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u),
                       __uint_as_float(u.y << 16), __uint_as_float(u.y & 0xffff0000u));
  } else {
    return make_float4(bf16_to_float(p[4 * g]), bf16_to_float(p[4 * g + 1]),
                       bf16_to_float(p[4 * g + 2]), bf16_to_float(p[4 * g + 3]));
  }
}

template <bool kVec>
__device__ inline void store4(float* p, int64_t g, float4 v) {
  if constexpr (kVec) {
    reinterpret_cast<float4*>(p)[g] = v;
  } else {
    p[4 * g] = v.x;
    p[4 * g + 1] = v.y;
    p[4 * g + 2] = v.z;
    p[4 * g + 3] = v.w;
  }
}
template <bool kVec>
__device__ inline void store4(bf16_bits* p, int64_t g, float4 v) {
  const uint32_t x = float_to_bf16(v.x), y = float_to_bf16(v.y), z = float_to_bf16(v.z),
                 w = float_to_bf16(v.w);
  if constexpr (kVec) {
    reinterpret_cast<uint2*>(p)[g] = make_uint2(x | (y << 16), z | (w << 16));
  } else {
    p[4 * g] = static_cast<bf16_bits>(x);
    p[4 * g + 1] = static_cast<bf16_bits>(y);
    p[4 * g + 2] = static_cast<bf16_bits>(z);
    p[4 * g + 3] = static_cast<bf16_bits>(w);
  }
}

}  // namespace dpt::gpu
