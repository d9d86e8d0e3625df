// LayerNorm over the last dimension of rows [rows, c] (PyTorch's nn.LayerNorm(c) with weight and
// bias): y = (x - mean) * rstd * w + b, with mean and the biased variance of each row and
// rstd = 1 / sqrt(var + eps).
//
// Statistics are computed in the element type (float for training, double for the gradient
// checks), in two passes: the mean, then the mean of the squared deviations from it, which does
// not lose the variance to cancellation as E[x^2] - mean^2 does. Each row sum is added in
// lane_sum's order (kernels/cpu/lane_sum.hpp). A bf16 twin keeps this contract: bf16 x, y, w, b,
// statistics accumulated and stored in fp32.
//
// Instantiated for float and double.
#pragma once

#include <cstdint>

namespace dpt {

// Writes y, and mean and rstd per row ([rows] each) for the backward pass.
template <typename T>
void layer_norm_forward(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows,
                        int64_t c, float eps);

// The gradients of sum(dy * y) with mean and rstd from the forward pass: writes dx (every
// element), adds to dw and db (so that a weight used more than once, or a gradient accumulated
// over micro-batches, sums). dw and db are summed over the rows in increasing order.
template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* dy, T* dx,
                         T* dw, T* db, int64_t rows, int64_t c);

}  // namespace dpt
