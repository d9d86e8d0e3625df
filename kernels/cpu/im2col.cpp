#include "kernels/cpu/im2col.hpp"

#include <cstring>

namespace dpt {

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
          for (int j = 0; j < ow; ++j) {
            const int xx = j * s.stride - s.pad + kj;
            if (xx >= 0 && xx < s.in_w) out[xx] += in[j];
          }
        }
      }
}

}  // namespace dpt
