// Token and position embeddings (GPT-2's wte and wpe), forward and backward, with the CPU twin's
// results bit for bit (kernels/cpu/embedding.hpp): forward is one addition per element, and
// backward adds every gradient row in the CPU's order, without atomics.
//
// A token id outside [0, vocab) is never read through: its output row is NaN (so the trainer's
// non-finite check reports it) and its position adds nothing to either gradient.
//
// Backward, dwpe: one thread per element (ti, i) adds dout[bi, ti, i] for bi = 0, 1, ... in turn.
// dwte: the positions are sorted by token id with CUB's radix sort, which is stable, so each
// token's positions stay in increasing order (batch row outer, position inner, as on the CPU);
// then one block per token adds that token's rows in that order, a thread per column (or group
// of four). The block reads its token's positions a block-wide chunk at a time into shared
// memory, so that each thread's loads of dout are independent of one another and overlap:
// only the additions run one after another, as the CPU's order requires. A frequent token (a
// space in byte-level text, a sixth of all positions) makes its block long, but not slow per row.
//
// wte, wpe, out and dout are float or bf16 (typed.cuh), all of one type; dwte and dwpe are float.
#include <cmath>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <string>

#include "kernels/cuda/cuda_check.hpp"
#include "kernels/cuda/cuda_kernels.hpp"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/typed.cuh"

namespace dpt::gpu {

namespace {

constexpr int kThreads = 128;  // per row of c columns (forward)

// Threads of a token's block in backward: one per column (group of four with kVec), in whole
// warps, at most 1024 (wider rows take several passes).
int token_grad_threads(int64_t width) {
  const int64_t warps = (width + 31) / 32;
  return static_cast<int>(warps < 1 ? 32 : warps > 32 ? 1024 : warps * 32);
}

// Bits of a sort key: ids 0 .. vocab - 1, and vocab itself for an id outside the vocabulary.
int key_bits(int64_t vocab) {
  int bits = 1;
  while (bits < 32 && (int64_t{1} << bits) <= vocab) ++bits;
  return bits;
}

size_t align256(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The positions of a batch as CUB's item count (an int) and as the uint32 sort values.
int checked_positions(int64_t positions) {
  if (positions > INT32_MAX)
    throw InputError("embedding: " + std::to_string(positions) +
                     " token positions in one batch; the GPU sorts at most 2^31 - 1");
  return static_cast<int>(positions);
}

}  // namespace

// One block per output row (grid-stride over rows): out[row] = wte[idx[row]] + wpe[row % t].
template <bool kVec, class T>
__global__ void embedding_forward_kernel(const int32_t* idx, const T* wte, const T* wpe, T* out,
                                         int64_t rows, int64_t t, int64_t c, int64_t vocab) {
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int32_t id = idx[row];
    T* o = out + row * c;
    if (id < 0 || id >= vocab) {
      for (int64_t i = threadIdx.x; i < c; i += blockDim.x) o[i] = from_float<T>(NAN);
      continue;
    }
    const T* te = wte + static_cast<int64_t>(id) * c;
    const T* pe = wpe + (row % t) * c;
    if constexpr (kVec) {
      for (int64_t g = threadIdx.x; g < c / 4; g += blockDim.x) {
        const float4 a = load4<true>(te, g), p = load4<true>(pe, g);
        store4<true>(o, g, make_float4(a.x + p.x, a.y + p.y, a.z + p.z, a.w + p.w));
      }
    } else {
      for (int64_t i = threadIdx.x; i < c; i += blockDim.x)
        o[i] = from_float<T>(to_float(te[i]) + to_float(pe[i]));
    }
  }
}

// Sort keys (the token id, or vocab for an id outside the vocabulary: sorted last, then skipped)
// and values (the positions, in order).
__global__ void embedding_sort_keys_kernel(const int32_t* idx, uint32_t* keys, uint32_t* positions,
                                           size_t n, int64_t vocab) {
  for (size_t p = grid_start(); p < n; p += grid_stride()) {
    const int32_t id = idx[p];
    keys[p] = id >= 0 && id < vocab ? static_cast<uint32_t>(id) : static_cast<uint32_t>(vocab);
    positions[p] = static_cast<uint32_t>(p);
  }
}

// Block j of the sorted positions: when j starts a token's run, its threads add the run's rows
// of dout to that token's row of dwte, column by column, in the run's order. The run is read a
// chunk of blockDim.x positions at a time into shared memory (sorted keys: the chunk's positions
// of this token come first, and __syncthreads_count tells how many, the same count in every
// thread); a chunk that is not full ends the run. Control flow is the same in every thread of
// the block, so that all reach each barrier.
template <bool kVec, class T>
__global__ void embedding_token_grad_kernel(const uint32_t* keys, const uint32_t* positions,
                                            const T* dout, float* dwte, int64_t n, int64_t c,
                                            int64_t vocab) {
  extern __shared__ uint32_t run_positions[];  // blockDim.x of them
  const int64_t j = blockIdx.x;
  const uint32_t token = keys[j];
  if (token == static_cast<uint32_t>(vocab) || (j > 0 && keys[j - 1] == token)) return;
  float* te = dwte + static_cast<int64_t>(token) * c;
  const int64_t width = kVec ? c / 4 : c;
  const int chunk = static_cast<int>(blockDim.x);
  for (int64_t g0 = 0; g0 < width; g0 += chunk) {
    const int64_t g = g0 + threadIdx.x;
    const bool column = g < width;
    float4 acc4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float acc = 0.0f;
    if (column) {
      if constexpr (kVec)
        acc4 = reinterpret_cast<const float4*>(te)[g];
      else
        acc = te[g];
    }
    for (int64_t base = j;; base += chunk) {
      const int64_t r = base + threadIdx.x;
      const bool in_run = r < n && keys[r] == token;
      if (in_run) run_positions[threadIdx.x] = positions[r];
      const int count = __syncthreads_count(in_run);
      if (column) {
#pragma unroll 4
        for (int k = 0; k < count; ++k) {
          const T* row = dout + static_cast<int64_t>(run_positions[k]) * c;
          if constexpr (kVec) {
            const float4 d = load4<true>(row, g);
            acc4.x += d.x;
            acc4.y += d.y;
            acc4.z += d.z;
            acc4.w += d.w;
          } else {
            acc += to_float(row[g]);
          }
        }
      }
      __syncthreads();  // every thread is done with this chunk before the next overwrites it
      if (count < chunk) break;
    }
    if (column) {
      if constexpr (kVec)
        reinterpret_cast<float4*>(te)[g] = acc4;
      else
        te[g] = acc;
    }
  }
}

// One thread per element e of dwpe [t, c] (a group of four with kVec): the batch rows in turn,
// skipping positions whose id is outside the vocabulary.
template <bool kVec, class T>
__global__ void embedding_position_grad_kernel(const int32_t* idx, const T* dout, float* dwpe,
                                               int64_t b, int64_t t, int64_t c, int64_t vocab) {
  const size_t plane = static_cast<size_t>(t * c);  // elements of one batch row of dout
  const size_t width = kVec ? static_cast<size_t>(c / 4) : static_cast<size_t>(c);
  const size_t count = kVec ? plane / 4 : plane;
  for (size_t e = grid_start(); e < count; e += grid_stride()) {
    const size_t ti = e / width;
    if constexpr (kVec) {
      float4* pe4 = reinterpret_cast<float4*>(dwpe);
      float4 acc = pe4[e];
      for (int64_t bi = 0; bi < b; ++bi) {
        const int32_t id = idx[bi * t + ti];
        if (id < 0 || id >= vocab) continue;
        const float4 d = load4<true>(dout, static_cast<int64_t>(bi * count + e));
        acc.x += d.x;
        acc.y += d.y;
        acc.z += d.z;
        acc.w += d.w;
      }
      pe4[e] = acc;
    } else {
      float acc = dwpe[e];
      for (int64_t bi = 0; bi < b; ++bi) {
        const int32_t id = idx[bi * t + ti];
        if (id < 0 || id >= vocab) continue;
        acc += to_float(dout[bi * count + e]);
      }
      dwpe[e] = acc;
    }
  }
}

template <class T>
void launch_embedding_forward(const int32_t* idx, const T* wte, const T* wpe, T* out, int64_t b,
                              int64_t t, int64_t c, int64_t vocab, cudaStream_t stream) {
  const int64_t rows = b * t;
  if (rows <= 0 || c <= 0) return;
  const auto blocks = static_cast<unsigned>(rows < (int64_t{1} << 20) ? rows : int64_t{1} << 20);
  constexpr size_t g = group_bytes<T>();
  if (c % 4 == 0 && aligned_to(wte, g) && aligned_to(wpe, g) && aligned_to(out, g))
    embedding_forward_kernel<true>
        <<<blocks, kThreads, 0, stream>>>(idx, wte, wpe, out, rows, t, c, vocab);
  else
    embedding_forward_kernel<false>
        <<<blocks, kThreads, 0, stream>>>(idx, wte, wpe, out, rows, t, c, vocab);
  DPT_CUDA_CHECK_LAUNCH();
}

size_t embedding_backward_scratch(int64_t positions, int64_t vocab) {
  if (positions <= 0) return 0;
  const int n = checked_positions(positions);
  size_t sort_bytes = 0;
  DPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr), n, 0,
      key_bits(vocab)));
  return 4 * align256(sizeof(uint32_t) * static_cast<size_t>(n)) + sort_bytes;
}

template <class T>
void launch_embedding_backward(const int32_t* idx, const T* dout, float* dwte, float* dwpe,
                               int64_t b, int64_t t, int64_t c, int64_t vocab, void* scratch,
                               cudaStream_t stream) {
  const int64_t positions = b * t;
  if (positions <= 0 || c <= 0) return;
  const bool vec = c % 4 == 0 && aligned_to(dout, group_bytes<T>());

  const size_t plane = static_cast<size_t>(t * c);
  if (vec && aligned_to(dwpe, 16))
    embedding_position_grad_kernel<true>
        <<<grid_for(plane / 4), kBlock, 0, stream>>>(idx, dout, dwpe, b, t, c, vocab);
  else
    embedding_position_grad_kernel<false>
        <<<grid_for(plane), kBlock, 0, stream>>>(idx, dout, dwpe, b, t, c, vocab);
  DPT_CUDA_CHECK_LAUNCH();

  const int n = checked_positions(positions);
  const size_t slot = align256(sizeof(uint32_t) * static_cast<size_t>(n));
  char* base = static_cast<char*>(scratch);
  auto* keys_in = reinterpret_cast<uint32_t*>(base);
  auto* values_in = reinterpret_cast<uint32_t*>(base + slot);
  auto* keys = reinterpret_cast<uint32_t*>(base + 2 * slot);
  auto* values = reinterpret_cast<uint32_t*>(base + 3 * slot);
  void* sort_scratch = base + 4 * slot;
  size_t sort_bytes = embedding_backward_scratch(positions, vocab) - 4 * slot;

  embedding_sort_keys_kernel<<<grid_for(static_cast<size_t>(n)), kBlock, 0, stream>>>(
      idx, keys_in, values_in, static_cast<size_t>(n), vocab);
  DPT_CUDA_CHECK_LAUNCH();
  DPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_scratch, sort_bytes, keys_in, keys, values_in,
                                                 values, n, 0, key_bits(vocab), stream));
  if (vec && aligned_to(dwte, 16)) {
    const int threads = token_grad_threads(c / 4);
    embedding_token_grad_kernel<true>
        <<<static_cast<unsigned>(n), threads, sizeof(uint32_t) * threads, stream>>>(
            keys, values, dout, dwte, n, c, vocab);
  } else {
    const int threads = token_grad_threads(c);
    embedding_token_grad_kernel<false>
        <<<static_cast<unsigned>(n), threads, sizeof(uint32_t) * threads, stream>>>(
            keys, values, dout, dwte, n, c, vocab);
  }
  DPT_CUDA_CHECK_LAUNCH();
}

template void launch_embedding_forward(const int32_t*, const float*, const float*, float*, int64_t,
                                       int64_t, int64_t, int64_t, cudaStream_t);
template void launch_embedding_forward(const int32_t*, const bf16_bits*, const bf16_bits*,
                                       bf16_bits*, int64_t, int64_t, int64_t, int64_t,
                                       cudaStream_t);
template void launch_embedding_backward(const int32_t*, const float*, float*, float*, int64_t,
                                        int64_t, int64_t, int64_t, void*, cudaStream_t);
template void launch_embedding_backward(const int32_t*, const bf16_bits*, float*, float*, int64_t,
                                        int64_t, int64_t, int64_t, void*, cudaStream_t);

}  // namespace dpt::gpu
