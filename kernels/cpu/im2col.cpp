#include "kernels/cpu/im2col.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace dpt {
namespace {

// With stride 1, output column j of kernel column kj reads input column j - pad + kj: the
// outputs [lo, hi) read inside the row, the others padding.
std::pair<int, int> inside(const ConvShape& s, int kj, int ow) {
  const int lo = std::clamp(s.pad - kj, 0, ow);
  const int hi = std::clamp(s.in_w + s.pad - kj, lo, ow);
  return {lo, hi};
}

}  // namespace

void im2col(const ConvShape& s, const float* x, float* col) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int c = 0; c < s.in_c; ++c)
    for (int ki = 0; ki < s.kh; ++ki)
      for (int kj = 0; kj < s.kw; ++kj) {
        float* row = col + ((static_cast<size_t>(c) * s.kh + ki) * s.kw + kj) * oh * ow;
        const float* plane = x + static_cast<size_t>(c) * s.in_h * s.in_w;
        for (int i = 0; i < oh; ++i) {
          const int y = i * s.stride - s.pad + ki;
          float* out = row + static_cast<size_t>(i) * ow;
          if (y < 0 || y >= s.in_h) {
            std::memset(out, 0, sizeof(float) * ow);
            continue;
          }
          const float* in = plane + static_cast<size_t>(y) * s.in_w;
          if (s.stride == 1) {
            // Outputs j read in[j - pad + kj]: zeros left and right of the part inside the row,
            // one copy for the rest.
            const auto [lo, hi] = inside(s, kj, ow);
            std::memset(out, 0, sizeof(float) * static_cast<size_t>(lo));
            if (hi > lo)
              std::memcpy(out + lo, in + lo - s.pad + kj,
                          sizeof(float) * static_cast<size_t>(hi - lo));
            std::memset(out + hi, 0, sizeof(float) * static_cast<size_t>(ow - hi));
            continue;
          }
          for (int j = 0; j < ow; ++j) {
            const int xx = j * s.stride - s.pad + kj;
            out[j] = (xx >= 0 && xx < s.in_w) ? in[xx] : 0.0f;
          }
        }
      }
}

void col2im(const ConvShape& s, const float* col, float* x) {
  const int oh = s.out_h(), ow = s.out_w();
  for (int c = 0; c < s.in_c; ++c)
    for (int ki = 0; ki < s.kh; ++ki)
      for (int kj = 0; kj < s.kw; ++kj) {
        const float* row = col + ((static_cast<size_t>(c) * s.kh + ki) * s.kw + kj) * oh * ow;
        float* plane = x + static_cast<size_t>(c) * s.in_h * s.in_w;
        for (int i = 0; i < oh; ++i) {
          const int y = i * s.stride - s.pad + ki;
          if (y < 0 || y >= s.in_h) continue;
          const float* in = row + static_cast<size_t>(i) * ow;
          float* out = plane + static_cast<size_t>(y) * s.in_w;
          if (s.stride == 1) {
            const auto [lo, hi] = inside(s, kj, ow);
            const int shift = kj - s.pad;
            for (int j = lo; j < hi; ++j) out[j + shift] += in[j];
            continue;
          }
          for (int j = 0; j < ow; ++j) {
            const int xx = j * s.stride - s.pad + kj;
            if (xx >= 0 && xx < s.in_w) out[xx] += in[j];
          }
        }
      }
}

}  // namespace dpt
