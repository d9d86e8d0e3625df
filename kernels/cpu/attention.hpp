// Causal multi-head self-attention on the output of a fused q, k, v projection (nanoGPT's
// CausalSelfAttention between c_attn and c_proj).
//
// qkv is [b, t, 3c]: each position's q, then k, then v, each [c] = n_head heads of hs = c / n_head
// (head h is columns h*hs .. h*hs + hs - 1 of its part). Per batch row and head:
//   att = softmax(mask(q k^T / sqrt(hs)))   [t, t], row i attending to positions 0..i
//   out = att v                             [t, hs], written to columns h*hs.. of out [b, t, c]
// so out is the heads concatenated, ready for c_proj. The softmax of a row subtracts that row's
// maximum over its unmasked entries before exp, and its sum is added in lane_sum's order.
//
// Memory: the forward pass keeps the probabilities att [b, n_head, t, t] for backward (zero
// above the diagonal), b * n_head * t^2 elements: 384 MiB of float per layer for GPT-2 small
// (12 heads) at b = 8, t = 1024. Keeping them costs memory but saves recomputing q k^T and the
// softmax in backward. The GEMMs (q k^T, att v and their gradients, one of each per batch row and
// head) are the CPU backend's (cpu_gemm.hpp). Its own AVX2 kernel skips what the mask makes
// zero or unused, about half of each product; a library GEMM computes the masked triangle too,
// and the softmax discards it.
//
// round_bf16: the rounding points of a bf16 attention (the bf16 twin's, kernels/backend.cpp): the
// probabilities are rounded to bf16 values before they multiply v, and the score gradients dS
// before they multiply k and q, because a GPU's bf16 GEMMs take them in bf16. Everything else
// stays in the element type.
//
// Instantiated for float and double.
#pragma once

#include <cstdint>

namespace dpt {

// Writes out [b, t, c] and att [b, n_head, t, t] (every element of both). Throws InputError when
// c is not a multiple of n_head.
template <typename T>
void attention_forward(const T* qkv, T* out, T* att, int64_t b, int64_t t, int64_t c,
                       int64_t n_head, bool round_bf16 = false);

// The gradient of sum(dout * out) with respect to qkv, from the forward pass's qkv and att:
// writes dqkv [b, t, 3c] (every element). scratch holds t * t elements (the gradient of one
// head's scores); its contents are not used before they are written.
template <typename T>
void attention_backward(const T* qkv, const T* att, const T* dout, T* dqkv, T* scratch, int64_t b,
                        int64_t t, int64_t c, int64_t n_head, bool round_bf16 = false);

}  // namespace dpt
