#include "kernels/cpu/embedding.hpp"

#include <string>

#include "src/core/error.hpp"

namespace dpt {
namespace {

// Token ids come from data files: one out of range must not index past the table.
void check_tokens(const int32_t* idx, int64_t b, int64_t t, int64_t vocab) {
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti) {
      const int32_t id = idx[bi * t + ti];
      if (id < 0 || id >= vocab)
        throw InputError("embedding: token id " + std::to_string(id) + " at batch row " +
                         std::to_string(bi) + ", position " + std::to_string(ti) +
                         " is outside the vocabulary of " + std::to_string(vocab) + " tokens");
    }
}

}  // namespace

template <typename T>
void embedding_forward(const int32_t* idx, const T* wte, const T* wpe, T* out, int64_t b, int64_t t,
                       int64_t c, int64_t vocab) {
  check_tokens(idx, b, t, vocab);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti) {
      const T* te = wte + idx[bi * t + ti] * c;
      const T* pe = wpe + ti * c;
      T* o = out + (bi * t + ti) * c;
      for (int64_t i = 0; i < c; ++i) o[i] = te[i] + pe[i];
    }
}

template <typename T>
void embedding_backward(const int32_t* idx, const T* dout, T* dwte, T* dwpe, int64_t b, int64_t t,
                        int64_t c, int64_t vocab) {
  check_tokens(idx, b, t, vocab);
  for (int64_t bi = 0; bi < b; ++bi)
    for (int64_t ti = 0; ti < t; ++ti) {
      const T* d = dout + (bi * t + ti) * c;
      T* te = dwte + idx[bi * t + ti] * c;
      T* pe = dwpe + ti * c;
      for (int64_t i = 0; i < c; ++i) {
        te[i] += d[i];
        pe[i] += d[i];
      }
    }
}

template void embedding_forward<float>(const int32_t*, const float*, const float*, float*, int64_t,
                                       int64_t, int64_t, int64_t);
template void embedding_forward<double>(const int32_t*, const double*, const double*, double*,
                                        int64_t, int64_t, int64_t, int64_t);
template void embedding_backward<float>(const int32_t*, const float*, float*, float*, int64_t,
                                        int64_t, int64_t, int64_t);
template void embedding_backward<double>(const int32_t*, const double*, double*, double*, int64_t,
                                         int64_t, int64_t, int64_t);

}  // namespace dpt
