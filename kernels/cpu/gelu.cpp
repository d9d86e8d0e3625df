#include "kernels/cpu/gelu.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace dpt {
namespace {

// sqrt(2 / pi) and the cubic coefficient, as PyTorch spells them.
template <typename T>
constexpr T kBeta = static_cast<T>(0.79788456080286535587989211986876);
template <typename T>
constexpr T kKappa = static_cast<T>(0.044715);

// tanh for GELU in float, as straight-line arithmetic that the compiler vectorizes (libm's tanhf
// is a call per element, and was most of a gpt step's elementwise time):
//   tanh(u) = sign(u) (1 - e) / (1 + e),  e = exp(-2|u|),
// with exp from 2^k times a degree-7 Taylor polynomial of the remainder r = z - k ln 2, |r| <=
// ln(2)/2 (truncation 2e-9 relative). The absolute error is within about 2e-7 of tanh, which is
// what GELU needs: its result is 0.5 x (1 + tanh u), so tanh's error counts against 1, not
// against tanh u. Near 0 the relative error of tanh itself grows, but not the absolute one.
inline float gelu_tanh(float u) {
  // exp(-87) is still a normal float, so 2^k below is a normal float's bit pattern.
  const float z = std::max(-2.0f * std::fabs(u), -87.0f);
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to even
  const float kf = (z * kLog2e + kRound) - kRound;
  // ln 2 in two parts, the first with few enough bits that kf * part is exact.
  const float r = (z - kf * 0.693145751953125f) - kf * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const auto bits = static_cast<uint32_t>(static_cast<int32_t>(kf) + 127) << 23;
  const float e = p * std::bit_cast<float>(bits);
  const float t = (1.0f - e) / (1.0f + e);
  return std::copysign(t, u);
}

template <typename T>
T tanh_for_gelu(T u) {
  if constexpr (std::is_same_v<T, float>)
    return gelu_tanh(u);
  else
    return std::tanh(u);
}

}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T inner = kBeta<T> * (v + kKappa<T> * v * v * v);
    y[i] = T(0.5) * v * (T(1) + tanh_for_gelu(inner));
  }
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  // d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u',
  // with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T v2 = v * v;
    const T th = tanh_for_gelu(kBeta<T> * (v + kKappa<T> * v2 * v));
    const T du = kBeta<T> * (T(1) + T(3) * kKappa<T> * v2);
    dx[i] = dy[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * du);
  }
}

template void gelu_forward<float>(const float*, float*, int64_t);
template void gelu_forward<double>(const double*, double*, int64_t);
template void gelu_backward<float>(const float*, const float*, float*, int64_t);
template void gelu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace dpt
