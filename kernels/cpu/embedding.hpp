// Token and position embeddings (GPT-2's wte and wpe): for token ids idx [b, t],
//   out[bi, ti, :] = wte[idx[bi, ti], :] + wpe[ti, :]
// with wte [vocab, c] and wpe [at least t, c].
//
// Instantiated for float and double.
#pragma once

#include <cstdint>

namespace dpt {

// Writes out [b, t, c]. Throws InputError, before writing anything, when a token id is outside
// 0 .. vocab - 1.
template <typename T>
void embedding_forward(const int32_t* idx, const T* wte, const T* wpe, T* out, int64_t b, int64_t t,
                       int64_t c, int64_t vocab);

// The gradients of sum(dout * out): adds dout[bi, ti, :] to dwte[idx[bi, ti], :] and to
// dwpe[ti, :], visiting (bi, ti) in increasing order, bi outer, so a token that occurs more than
// once sums in the same order on every run. Throws InputError as forward does.
template <typename T>
void embedding_backward(const int32_t* idx, const T* dout, T* dwte, T* dwpe, int64_t b, int64_t t,
                        int64_t c, int64_t vocab);

}  // namespace dpt
