#include "src/train/checkpoint_policy.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"

namespace fs = std::filesystem;

namespace dpt {
namespace {

nlohmann::json keys_json(const RunKeys& k) {
  nlohmann::json j = {{"model", k.model},
                      {"global_batch", k.global_batch},
                      {"seed", k.seed},
                      {"shuffle", k.shuffle},
                      {"world_size", k.world_size}};
  // Only when set, so that a run without them writes the same text as before they existed.
  if (k.lr_schedule != "constant") j["lr_schedule"] = k.lr_schedule;
  if (k.grad_clip > 0) j["grad_clip"] = k.grad_clip;
  return j;
}

}  // namespace

RunKeys RunKeys::of(const std::string& model, const FitOptions::Schedule& schedule,
                    int world_size) {
  RunKeys k;
  k.model = model;
  k.global_batch = static_cast<int64_t>(schedule.batch_size) * schedule.accumulate * world_size;
  k.seed = schedule.seed;
  k.shuffle = schedule.shuffle;
  k.world_size = world_size;
  return k;
}

std::string RunKeys::to_json() const { return keys_json(*this).dump(); }

void RunKeys::check_resume(const std::string& path, const std::string& saved_text) const {
  nlohmann::json saved;
  try {
    saved = nlohmann::json::parse(saved_text);
  } catch (const std::exception&) {
    throw InputError(path + ": no readable configuration in its metadata");
  }
  const nlohmann::json now = keys_json(*this);
  for (const char* key : {"global_batch", "seed", "shuffle"})
    if (saved.value(key, nlohmann::json()) != now[key])
      throw InputError(path + ": saved with " + key + " " +
                       saved.value(key, nlohmann::json()).dump() + ", this run has " +
                       now[key].dump() + " (they must match to resume)");
}

CheckpointPolicy::CheckpointPolicy(const std::string& run_dir, int64_t every, int keep,
                                   RunKeys keys)
    : folder_((fs::path(run_dir) / "checkpoints").string()),
      every_(every),
      keep_(keep),
      keys_(std::move(keys)),
      config_(keys_.to_json()) {}

std::string CheckpointPolicy::path(int64_t step) const {
  char name[40];
  std::snprintf(name, sizeof(name), "step-%09lld.safetensors", static_cast<long long>(step));
  return (fs::path(folder_) / name).string();
}

std::vector<std::string> CheckpointPolicy::list() const {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0 && name.size() > 17 &&
        name.substr(name.size() - 12) == ".safetensors")
      found.push_back(entry.path().string());
  }
  std::sort(found.rbegin(), found.rend());  // zero-padded step numbers sort as text
  return found;
}

void CheckpointPolicy::create_folder() const { fs::create_directories(folder_); }

bool CheckpointPolicy::due_after_step(int64_t steps_done, bool last_of_epoch, bool run_ends) const {
  return every_ > 0 && !last_of_epoch && !run_ends && steps_done % every_ == 0;
}

bool CheckpointPolicy::due_at_epoch_end(int64_t steps_done, int64_t epoch_steps, bool run_ends,
                                        bool stop_requested) const {
  if (epoch_steps == 0) return false;  // nothing new since the last one
  return stop_requested || (every_ > 0 && (steps_done % every_ == 0 || run_ends));
}

void CheckpointPolicy::write(const Model& model, const TrainPosition& position) const {
  save_checkpoint(path(position.step), model, position, config_);
  if (model.environment().comm.rank() == 0) prune();
}

void CheckpointPolicy::prune() const {
  if (keep_ <= 0) return;
  const std::vector<std::string> all = list();
  for (size_t i = static_cast<size_t>(keep_); i < all.size(); ++i) fs::remove(all[i]);
}

TrainPosition CheckpointPolicy::resume_from(const std::string& path, Model& model) const {
  return load_checkpoint(path, model,
                         [&](const std::string& saved) { keys_.check_resume(path, saved); });
}

std::optional<TrainPosition> CheckpointPolicy::resume_newest(
    Model& model, const std::function<void(const std::string&)>& refused) const {
  for (const std::string& path : list()) {
    try {
      return resume_from(path, model);
    } catch (const InputError& e) {
      if (refused) refused(e.what());
    }
  }
  return std::nullopt;
}

}  // namespace dpt
