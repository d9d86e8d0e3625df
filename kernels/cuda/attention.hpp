// Causal self-attention on a fused qkv [b, t, 3c] (Backend::attention_forward and
// attention_backward; semantics in kernels/cpu/attention.hpp) through cuBLAS strided-batched
// GEMMs and two softmax kernels, queued on the stream of `cublas`.
//
// The GEMMs address q, k, v and out where they lie: head h of batch row bi is a [t, hs] matrix at
// column h * hs of its part with a leading dimension of 3c (c for out and dout), so one GEMM call
// covers the n_head heads of a batch row (batch stride hs), and the batch rows take a call each.
// This saves permuting qkv into [b, n_head, t, hs] buffers and back (two extra passes over the
// activations and their gradients, and the memory for them).
#pragma once

#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

namespace dpt::gpu {

// Writes out [b, t, c] and att [b, n_head, t, t] (every element). Throws InputError when c is not
// a multiple of n_head.
void attention_forward(cublasHandle_t cublas, const float* qkv, float* out, float* att, int64_t b,
                       int64_t t, int64_t c, int64_t n_head);

// Floats of scratch attention_backward needs: the score gradients of one batch row's heads.
size_t attention_backward_scratch(int64_t t, int64_t n_head);

// Writes dqkv [b, t, 3c] (every element) from dout [b, t, c], qkv and att.
void attention_backward(cublasHandle_t cublas, const float* qkv, const float* att,
                        const float* dout, float* dqkv, float* scratch, int64_t b, int64_t t,
                        int64_t c, int64_t n_head);

}  // namespace dpt::gpu
