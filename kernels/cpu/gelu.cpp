#include "kernels/cpu/gelu.hpp"

#include <cmath>
#include <type_traits>

#include "kernels/cpu/vector_math.hpp"

namespace dpt {
namespace {

// sqrt(2 / pi) and the cubic coefficient, as PyTorch spells them.
template <typename T>
constexpr T kBeta = static_cast<T>(0.79788456080286535587989211986876);
template <typename T>
constexpr T kKappa = static_cast<T>(0.044715);

// tanh for GELU in float, from exp_nonpositive:  tanh(u) = sign(u) (1 - e) / (1 + e),
// e = exp(-2|u|). Its absolute error is within about 2e-7, which is what GELU needs: the result
// is 0.5 x (1 + tanh u), so tanh's error counts against 1, not against tanh u (near 0 the
// relative error of tanh itself grows, the absolute one does not).
[[gnu::always_inline]] inline float gelu_tanh(float u) {
  const float e = exp_nonpositive(-2.0f * std::fabs(u));
  return std::copysign((1.0f - e) / (1.0f + e), u);
}

template <typename T>
[[gnu::always_inline]] inline T tanh_for_gelu(T u) {
  if constexpr (std::is_same_v<T, float>)
    return gelu_tanh(u);
  else
    return std::tanh(u);
}

template <typename T>
[[gnu::always_inline]] inline void gelu_forward_loop(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T inner = kBeta<T> * (v + kKappa<T> * v * v * v);
    y[i] = T(0.5) * v * (T(1) + tanh_for_gelu(inner));
  }
}

template <typename T>
[[gnu::always_inline]] inline void gelu_backward_loop(const T* x, const T* dy, T* dx, int64_t n) {
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

void gelu_forward_f32(const float* x, float* y, int64_t n) { gelu_forward_loop(x, y, n); }
DPT_AVX2_FMA void gelu_forward_avx2(const float* x, float* y, int64_t n) {
  gelu_forward_loop(x, y, n);
}

void gelu_backward_f32(const float* x, const float* dy, float* dx, int64_t n) {
  gelu_backward_loop(x, dy, dx, n);
}
DPT_AVX2_FMA void gelu_backward_avx2(const float* x, const float* dy, float* dx, int64_t n) {
  gelu_backward_loop(x, dy, dx, n);
}

}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    cpu_has_avx2_fma() ? gelu_forward_avx2(x, y, n) : gelu_forward_f32(x, y, n);
  else
    gelu_forward_loop(x, y, n);
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  if constexpr (std::is_same_v<T, float>)
    cpu_has_avx2_fma() ? gelu_backward_avx2(x, dy, dx, n) : gelu_backward_f32(x, dy, dx, n);
  else
    gelu_backward_loop(x, dy, dx, n);
}

template void gelu_forward<float>(const float*, float*, int64_t);
template void gelu_forward<double>(const double*, double*, int64_t);
template void gelu_backward<float>(const float*, const float*, float*, int64_t);
template void gelu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace dpt
