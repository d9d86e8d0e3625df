// im2col / col2im for one NCHW sample: col is [in_c*kh*kw, out_h*out_w], zero where padded.
#pragma once

#include "kernels/backend.hpp"

namespace dpt {

void im2col(const ConvShape& s, const float* x, float* col);
// Adds col's entries back into x (x must be zeroed or hold what it should be added to).
void col2im(const ConvShape& s, const float* col, float* x);

}  // namespace dpt
