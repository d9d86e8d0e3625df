// The memory report at start: what one rank holds for training, by kind, estimated from the
// model and the options before anything is allocated, and later checked against what the
// device says is in use (Device::memory_in_use).
#pragma once

#include <cstddef>
#include <string>

#include "src/model/sequential.hpp"
#include "src/train/model.hpp"
#include "src/train/optimizer.hpp"

namespace dpt {

struct MemoryEstimate {
  size_t params = 0;       // the flat parameter buffer (float32 master weights)
  size_t working = 0;      // the bf16 working copy of the weights (--precision bf16)
  size_t grads = 0;        // the flat gradient buffer
  size_t optimizer = 0;    // its state: whole, or this rank's shard under ZeRO-1
  size_t comm = 0;         // the bf16 wire buffer of --grad-comm bf16
  size_t activations = 0;  // one batch's (Sequential::activation_bytes), its loss gradient
  size_t total() const { return params + working + grads + optimizer + comm + activations; }
};

// For `net` (built for `world` ranks), trained with `optimizer` and `fit` options. The
// optimizer's state is the bytes of its state buffers (AdamW's two, SGD's momentum) over the
// whole buffer, or over this rank's blocks under ZeRO-1 (about 1/world of it); the backend's
// scratch (im2col, BLAS workspaces, the bf16 twin's float32 copies) is not counted.
MemoryEstimate estimate_memory(const Sequential& net, const OptimizerConfig& optimizer,
                               const FitOptions& fit, int world, int rank);

// "params 95.0 MiB, grads 95.0 MiB, optimizer 190.0 MiB, ... total 512.3 MiB"
std::string describe(const MemoryEstimate& m);

}  // namespace dpt
