#include "kernels/cpu/layer_norm.hpp"

#include <cmath>
#include <type_traits>

#include "kernels/cpu/lane_sum.hpp"
#include "kernels/cpu/vector_math.hpp"

namespace dpt {
namespace {

template <typename T>
[[gnu::always_inline]] inline void forward_loop(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t c, float eps) {
  const T inv_c = T(1) / static_cast<T>(c);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    T* yr = y + r * c;
    const T m = lane_sum<T>(c, [&](int64_t i) { return xr[i]; }) * inv_c;
    // The deviations go to y first: the variance and the output both read them.
    for (int64_t i = 0; i < c; ++i) yr[i] = xr[i] - m;
    const T var = lane_sum<T>(c, [&](int64_t i) { return yr[i] * yr[i]; }) * inv_c;
    const T s = T(1) / std::sqrt(var + static_cast<T>(eps));
    for (int64_t i = 0; i < c; ++i) yr[i] = yr[i] * s * w[i] + b[i];
    mean[r] = m;
    rstd[r] = s;
  }
}

// A row's g = dy * w into dx, and its terms of dw and db: restrict pointers, so that the loop
// vectorizes (the compiler cannot otherwise rule out that dx, dw and db overlap).
template <typename T>
[[gnu::always_inline]] inline void gradient_terms(const T* __restrict x, const T* __restrict w,
                                                  const T* __restrict dy, T* __restrict dx,
                                                  T* __restrict dw, T* __restrict db, int64_t c,
                                                  T m, T s) {
  for (int64_t i = 0; i < c; ++i) {
    const T xhat = (x[i] - m) * s;
    dx[i] = dy[i] * w[i];
    dw[i] += dy[i] * xhat;
    db[i] += dy[i];
  }
}

template <typename T>
[[gnu::always_inline]] inline void backward_loop(const T* x, const T* w, const T* mean,
                                                 const T* rstd, const T* dy, T* dx, T* dw, T* db,
                                                 int64_t rows, int64_t c) {
  // With xhat = (x - mean) * rstd and g = dy * w:
  //   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
  // g is kept in dx until the two row means are known; xhat is recomputed rather than stored.
  const T inv_c = T(1) / static_cast<T>(c);
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * c;
    const T* dyr = dy + r * c;
    T* dxr = dx + r * c;
    const T m = mean[r], s = rstd[r];
    gradient_terms(xr, w, dyr, dxr, dw, db, c, m, s);
    const T mean_g = lane_sum<T>(c, [&](int64_t i) { return dxr[i]; }) * inv_c;
    const T mean_gx = lane_sum<T>(c, [&](int64_t i) { return dxr[i] * ((xr[i] - m) * s); }) * inv_c;
    for (int64_t i = 0; i < c; ++i) {
      const T xhat = (xr[i] - m) * s;
      dxr[i] = s * (dxr[i] - mean_g - xhat * mean_gx);
    }
  }
}

// float: the baseline build and an AVX2/FMA one (see vector_math.hpp), picked at run time.
void forward_f32(const float* x, const float* w, const float* b, float* y, float* mean,
                 float* rstd, int64_t rows, int64_t c, float eps) {
  forward_loop(x, w, b, y, mean, rstd, rows, c, eps);
}
DPT_AVX2_FMA void forward_avx2(const float* x, const float* w, const float* b, float* y,
                               float* mean, float* rstd, int64_t rows, int64_t c, float eps) {
  forward_loop(x, w, b, y, mean, rstd, rows, c, eps);
}
void backward_f32(const float* x, const float* w, const float* mean, const float* rstd,
                  const float* dy, float* dx, float* dw, float* db, int64_t rows, int64_t c) {
  backward_loop(x, w, mean, rstd, dy, dx, dw, db, rows, c);
}
DPT_AVX2_FMA void backward_avx2(const float* x, const float* w, const float* mean,
                                const float* rstd, const float* dy, float* dx, float* dw,
                                float* db, int64_t rows, int64_t c) {
  backward_loop(x, w, mean, rstd, dy, dx, dw, db, rows, c);
}

}  // namespace

template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t c, float eps) {
  if constexpr (std::is_same_v<T, float>)
    (cpu_has_avx2_fma() ? forward_avx2 : forward_f32)(x, w, b, y, mean, rstd, rows, c, eps);
  else
    forward_loop(x, w, b, y, mean, rstd, rows, c, eps);
}

template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dw, T* db, int64_t rows, int64_t c) {
  if constexpr (std::is_same_v<T, float>)
    (cpu_has_avx2_fma() ? backward_avx2 : backward_f32)(x, w, mean, rstd, dy, dx, dw, db, rows, c);
  else
    backward_loop(x, w, mean, rstd, dy, dx, dw, db, rows, c);
}

template void layer_norm_forward<float>(const float*, const float*, const float*, float*, float*,
                                        float*, int64_t, int64_t, float);
template void layer_norm_forward<double>(const double*, const double*, const double*, double*,
                                         double*, double*, int64_t, int64_t, float);
template void layer_norm_backward<float>(const float*, const float*, const float*, const float*,
                                         const float*, float*, float*, float*, int64_t, int64_t);
template void layer_norm_backward<double>(const double*, const double*, const double*,
                                          const double*, const double*, double*, double*, double*,
                                          int64_t, int64_t);

}  // namespace dpt
