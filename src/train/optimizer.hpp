// Optimizers over the flat parameter buffer: SGD (momentum, Nesterov, weight decay) and AdamW,
// with PyTorch's update rules, each one fused pass of the backend per range of the buffer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.hpp"
#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"
#include "src/model/sequential.hpp"
#include "src/train/zero.hpp"

namespace dpt {

struct OptimizerConfig {
  std::string name = "sgd";  // "sgd" or "adamw"
  float lr = 0.01f;
  float momentum = 0.0f;       // sgd
  bool nesterov = false;       // sgd
  float weight_decay = -1.0f;  // < 0: the optimizer's default (sgd 0, adamw 0.01, as PyTorch)
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adamw
  // Weight decay on tensors of two or more dimensions only (weights of linear layers and
  // embeddings), none on biases and LayerNorm's gains, as nanoGPT's configure_optimizers does
  // for GPT models. false: every parameter decays, as torch.optim does with one group.
  bool decay_only_matrices = false;
};

// A contiguous range of the flat buffers (in elements) and whether weight decay applies there.
struct DecayRange {
  size_t elem_offset = 0;
  size_t numel = 0;
  bool decay = true;
};

// The ranges that cover a model's flat buffers of `flat_size` elements: one decaying range for
// all of it, or with `only_matrices` one range per run of neighbouring tensors that agree on
// decay (a tensor decays when it has two or more dimensions). Each range runs to the next one's
// start, so the alignment padding between tensors (always zero) goes with the tensor before it.
std::vector<DecayRange> decay_ranges(const std::vector<ParamInfo>& params, size_t flat_size,
                                     bool only_matrices);

class Optimizer {
 public:
  // Throws InputError for an unknown name or out-of-range settings. `ranges` (from
  // decay_ranges) cover [0, n) in order; empty: all of it decays. The state starts whole: every
  // element of the flat buffers has its own.
  Optimizer(Backend& backend, const OptimizerConfig& config, size_t n,
            std::vector<DecayRange> ranges = {});
  // Updates, from the gradients, the parameters it holds state for: all of them, or this rank's
  // blocks once sharded. `skip` (backend memory, or null) is read by the update as it runs:
  // non-zero leaves everything alone (StepGate), and the caller then takes the step back with
  // undo_step() once it has read the flag.
  void step(float* params, const float* grads, const int32_t* skip = nullptr);
  void undo_step() { --steps_; }
  const OptimizerConfig& config() const { return config_; }
  float weight_decay() const;
  // The learning rate of the next step: config().lr until set_lr (a schedule) changes it.
  float lr() const { return lr_; }
  void set_lr(float lr);
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  const std::vector<DecayRange>& ranges() const { return ranges_; }

  // ZeRO-1 (zero.hpp). shard: keeps the state of `blocks` only (this rank's), taken from the whole
  // state it holds, and frees the rest; step() then updates those blocks only. unshard: the whole
  // state again on every rank, each rank's blocks allgathered bucket by bucket (a collective:
  // every rank calls it). drop_shard: the whole state, all zero, without communication (for a
  // checkpoint about to be loaded over it).
  void shard(const std::vector<ShardBlock>& blocks);
  void unshard(Communicator& comm);
  void drop_shard();
  bool sharded() const { return sharded_; }
  const std::vector<ShardBlock>& shard_blocks() const { return blocks_; }
  // Elements of state per state buffer on this rank: n, or its shard's.
  size_t state_numel() const { return state_numel_; }

  // The state buffers by name: "momentum" for SGD with momentum, "exp_avg" and "exp_avg_sq" for
  // AdamW (PyTorch's names). Laid out as the flat buffers while whole; a sharded optimizer's
  // are its blocks end to end.
  std::vector<std::pair<std::string, float*>> state() const;
  std::string describe() const;

 private:
  // A stretch of the parameters the optimizer updates, with one decay setting, and where its
  // state lies in the state buffers.
  struct Segment {
    size_t elem_offset = 0;
    size_t numel = 0;
    bool decay = true;
    size_t state_offset = 0;
  };
  void allocate_state(size_t numel);
  int state_count() const;

  Backend& backend_;
  OptimizerConfig config_;
  size_t n_;
  std::vector<DecayRange> ranges_;
  float lr_;
  int64_t steps_ = 0;
  std::vector<Segment> segments_;
  bool sharded_ = false;
  std::vector<ShardBlock> blocks_;
  size_t state_numel_ = 0;
  DeviceBuffer state1_, state2_;  // sgd: momentum; adamw: first and second moments
};

}  // namespace dpt
