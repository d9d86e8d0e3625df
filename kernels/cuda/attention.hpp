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

// T is float or bf16 (uint16_t, kernels/cuda/typed.cuh). `round`, for float32 operands: the
// rounding points of the bf16 twin (kernels/cpu/attention.hpp); bf16 operands always round there.

// Writes out [b, t, c] and att [b, n_head, t, t] (every element). scores: float32 scratch of
// attention_forward_scratch bytes (null for float32, whose scores go to att). Throws InputError
// when c is not a multiple of n_head.
template <class T>
void attention_forward(cublasHandle_t cublas, const T* qkv, T* out, T* att, float* scores,
                       int64_t b, int64_t t, int64_t c, int64_t n_head, bool round);
size_t attention_forward_scratch(int64_t t, int64_t n_head, bool bf16);

// Bytes of scratch attention_backward needs: the score gradients of one batch row's heads.
size_t attention_backward_scratch(int64_t t, int64_t n_head, bool bf16);

// Writes dqkv [b, t, 3c] (every element) from dout [b, t, c], qkv and att.
template <class T>
void attention_backward(cublasHandle_t cublas, const T* qkv, const T* att, const T* dout, T* dqkv,
                        void* scratch, int64_t b, int64_t t, int64_t c, int64_t n_head, bool round);

}  // namespace dpt::gpu
