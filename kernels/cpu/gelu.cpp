#include "kernels/cpu/gelu.hpp"

#include <cmath>

namespace dpt {
namespace {

// sqrt(2 / pi) and the cubic coefficient, as PyTorch spells them.
template <typename T>
constexpr T kBeta = static_cast<T>(0.79788456080286535587989211986876);
template <typename T>
constexpr T kKappa = static_cast<T>(0.044715);

}  // namespace

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T inner = kBeta<T> * (v + kKappa<T> * v * v * v);
    y[i] = T(0.5) * v * (T(1) + std::tanh(inner));
  }
}

template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n) {
  // d/dx [0.5 x (1 + tanh u)] = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u',
  // with u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2).
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const T v2 = v * v;
    const T th = std::tanh(kBeta<T> * (v + kKappa<T> * v2 * v));
    const T du = kBeta<T> * (T(1) + T(3) * kKappa<T> * v2);
    dx[i] = dy[i] * (T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * du);
  }
}

template void gelu_forward<float>(const float*, float*, int64_t);
template void gelu_forward<double>(const double*, double*, int64_t);
template void gelu_backward<float>(const float*, const float*, float*, int64_t);
template void gelu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace dpt
