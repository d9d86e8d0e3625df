// Checkpoints: everything a resumed run needs, in one safetensors file that other tools can read.
//
// Tensors: the parameters under their nn.Sequential names ("0.weight"), and the optimizer state
// under "optimizer.<state>.<name>" (momentum; exp_avg and exp_avg_sq for AdamW). Metadata: the
// position (optimizer steps, epoch, steps into the epoch), the epoch's partial loss sum, the
// optimizer's step count and settings, the configuration, and a checksum of the tensor data. Random
// numbers need no state of their own: data order and dropout masks are pure functions of the seed,
// the epoch and the step, so the position is the whole RNG state.
//
// When checkpoints are written, their names and which one a resume takes: checkpoint_policy.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "src/train/model.hpp"

namespace dpt {

// Written atomically by rank 0 (temporary name, fsync, rename). Collective over ranks only in
// that every rank calls it; ranks other than 0 do nothing.
void save_checkpoint(const std::string& path, const Model& model, const TrainPosition& position,
                     const std::string& config);

// Reads and verifies a checkpoint (checksum, names and shapes against the model, and
// `check_config` on the configuration it was saved with, which throws InputError to refuse it),
// and only then loads it into the model and its optimizer: a refused checkpoint changes nothing.
// Throws InputError naming the file and the problem.
TrainPosition load_checkpoint(
    const std::string& path, Model& model,
    const std::function<void(const std::string& saved_config)>& check_config = nullptr);

}  // namespace dpt
