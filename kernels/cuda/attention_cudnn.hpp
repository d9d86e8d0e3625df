// Fused causal attention in bf16 through cuDNN's flash attention (its graph API's scaled dot
// product attention, by way of the cudnn_frontend headers): Backend::attention_fused_forward and
// attention_fused_backward of the CUDA backend.
//
// It reads q, k and v where they lie in the fused qkv [b, t, 3c] (head h of each at column h*hs
// of its part), writes out [b, t, c] with the heads side by side, and keeps each row's log-sum-exp
// of the scaled scores (float32 [b, n_head, t]) for backward, which recomputes the probabilities
// from it. No t x t matrix is ever stored: for GPT-2 at t = 1024 that saves 24 MiB of bf16 per
// head and batch row, and the time to write and read it.
//
// Backward runs cuDNN's deterministic algorithm, so that GPU runs of gpt repeat bit for bit; where
// cuDNN has none for a size, that size is not supported, and the backend takes the unfused way.
//
// The graphs of each size (b, t, c, n_head) are built on first use and kept. Built without the
// cudnn_frontend headers (DPT_HAVE_CUDNN_FRONTEND unset), supported() is always false.
#pragma once

#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

namespace dpt::gpu {

class CudnnAttention {
 public:
  explicit CudnnAttention(cudnnHandle_t handle);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // Whether cuDNN runs both passes at this size (building their graphs the first time it is
  // asked). False, too, when DPT_CUDNN_ATTENTION=0 turned it off.
  bool supported(int64_t b, int64_t t, int64_t c, int64_t n_head);
  // Why supported() said no at this size: cuDNN's message, or what turned it off; empty when it
  // said yes or was not asked.
  std::string why_not(int64_t b, int64_t t, int64_t c, int64_t n_head) const;
  // Bytes of device workspace forward and backward need at this size (after supported()).
  size_t workspace_bytes(int64_t b, int64_t t, int64_t c, int64_t n_head);
  // Pointers are device memory: bf16 (as uint16_t) but lse. Queued on the handle's stream.
  void forward(const uint16_t* qkv, uint16_t* out, float* lse, void* workspace, int64_t b,
               int64_t t, int64_t c, int64_t n_head);
  void backward(const uint16_t* qkv, const uint16_t* out, const float* lse, const uint16_t* dout,
                uint16_t* dqkv, void* workspace, int64_t b, int64_t t, int64_t c, int64_t n_head);

  // Whether this build has the cuDNN frontend, and whether DPT_CUDNN_ATTENTION allows it ("0"
  // turns it off, "1" or unset leaves it on; anything else throws InputError naming the
  // variable). For reports.
  static bool built_in();
  static bool enabled();

 private:
  struct Graphs;  // the size's forward and backward graphs and their workspace
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t>;
  Graphs* graphs(int64_t b, int64_t t, int64_t c, int64_t n_head);
  // Builds both graphs; null (with the reason in why_not_) where cuDNN has no plan. May throw.
  std::unique_ptr<Graphs> make_graphs(int64_t b, int64_t t, int64_t c, int64_t n_head,
                                      const Key& key);

  cudnnHandle_t handle_;
  bool enabled_;
  std::map<Key, std::unique_ptr<Graphs>> cache_;  // null: not supported at that size
  std::map<Key, std::string> why_not_;
};

}  // namespace dpt::gpu
