// CheckpointPolicy: everything about checkpoints that is a decision rather than a file format
// (checkpoint.hpp): when fit() writes one, what the files are called, how many are kept, which
// one a resume takes, and what must match for a run to resume from one.
//
// Files: RUN_DIR/checkpoints/step-NNNNNNNNN.safetensors (the optimizer steps done, zero-padded
// so that the names sort by step).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/train/checkpoint.hpp"
#include "src/train/model.hpp"

namespace dpt {

// What a checkpoint records of the run's configuration. A resume must agree on the global batch
// (ranks x batch x accumulate), the seed and the shuffling, so that every step sees the samples
// it would have seen; the model is checked by the tensors, and the number of ranks may change.
struct RunKeys {
  std::string model;  // the spec or preset the model was built from
  int64_t global_batch = 0;
  uint64_t seed = 0;
  bool shuffle = true;
  int world_size = 1;
  // For the record only: a resume may change them.
  std::string lr_schedule = "constant";  // LrSchedule::describe()
  double grad_clip = 0;                  // 0: none

  static RunKeys of(const std::string& model, const FitOptions::Schedule& schedule, int world_size);
  // As stored in a checkpoint's metadata (JSON).
  std::string to_json() const;
  // Throws InputError naming `path` when `saved` (the to_json() of the run that wrote it) is
  // unreadable or differs in a key that must match.
  void check_resume(const std::string& path, const std::string& saved) const;
};

class CheckpointPolicy {
 public:
  // Writes every `every` optimizer steps and at the end of training (0: only when stopped on
  // request), keeping the newest `keep` (<= 0: all). Only rank 0's `run_dir` matters for
  // writing; a resume reads it on every rank.
  CheckpointPolicy(const std::string& run_dir, int64_t every, int keep, RunKeys keys);

  const std::string& folder() const { return folder_; }
  std::string path(int64_t step) const;
  // Checkpoints in the folder, newest (highest step) first.
  std::vector<std::string> list() const;
  // Makes the folder (on the rank that writes).
  void create_folder() const;

  // When: after optimizer step `steps_done` inside an epoch, where the step was the epoch's last
  // or the run ends with it (a checkpoint there is taken at the epoch's end instead).
  bool due_after_step(int64_t steps_done, bool last_of_epoch, bool run_ends) const;
  // At the end of an epoch with `epoch_steps` steps, where `run_ends` (the last epoch, the step
  // limit or a stop request) and `stop_requested` (the stop request alone).
  bool due_at_epoch_end(int64_t steps_done, int64_t epoch_steps, bool run_ends,
                        bool stop_requested) const;
  // Collective: writes the checkpoint of `position` (rank 0) and prunes the old ones.
  void write(const Model& model, const TrainPosition& position) const;

  // Loads checkpoint `path` into the model and its optimizer, refusing one whose keys differ
  // (InputError naming the file).
  TrainPosition resume_from(const std::string& path, Model& model) const;
  // The newest checkpoint of the folder that loads (what --resume auto takes); `refused` hears
  // why each newer one was refused. None: the model is unchanged.
  std::optional<TrainPosition> resume_newest(
      Model& model, const std::function<void(const std::string& why)>& refused) const;

 private:
  void prune() const;

  std::string folder_;
  int64_t every_;
  int keep_;
  RunKeys keys_;
  std::string config_;  // keys_.to_json(), written into every checkpoint
};

}  // namespace dpt
