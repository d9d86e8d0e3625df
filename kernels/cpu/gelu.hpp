// GELU with the tanh approximation, elementwise (PyTorch's nn.GELU(approximate='tanh'), GPT-2's):
//   y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))).
//
// Instantiated for float and double.
#pragma once

#include <cstdint>

namespace dpt {

template <typename T>
void gelu_forward(const T* x, T* y, int64_t n);

// dx = dy * gelu'(x), from the input x of the forward pass; writes every element of dx.
template <typename T>
void gelu_backward(const T* x, const T* dy, T* dx, int64_t n);

}  // namespace dpt
