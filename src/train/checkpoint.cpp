#include "src/train/checkpoint.hpp"

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"
#include "src/core/hash.hpp"
#include "src/io/safetensors.hpp"

namespace dpt {
namespace {

constexpr const char* kFormat = "dptrain-checkpoint-1";

// FNV-1a over the tensors' bytes in file order.
uint64_t checksum(const std::vector<std::pair<const float*, size_t>>& tensors) {
  uint64_t h = kFnv1aOffset;
  for (const auto& [data, count] : tensors) h = fnv1a(data, count * sizeof(float), h);
  return h;
}

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

// Doubles as C99 hex floats, so that they come back bit for bit.
std::string exact(double v) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%a", v);
  return buf;
}

// The optimizer's settings, for the record (a resume may change them).
std::string optimizer_settings(const Optimizer* opt) {
  if (!opt) return "{}";
  const OptimizerConfig& c = opt->config();
  nlohmann::json j = {{"name", c.name},
                      {"lr", c.lr},
                      {"weight_decay", opt->weight_decay()},
                      {"decay_only_matrices", c.decay_only_matrices}};
  if (c.name == "sgd") {
    j["momentum"] = c.momentum;
    j["nesterov"] = c.nesterov;
  } else {
    j["betas"] = {c.beta1, c.beta2};
    j["eps"] = c.eps;
  }
  return j.dump();
}

struct Named {
  std::string name;
  Shape shape;
  float* data;
};

// The tensors a checkpoint holds for this model, in file order.
std::vector<Named> checkpoint_tensors(const Model& model) {
  const Sequential& net = const_cast<Model&>(model).net();
  std::vector<Named> out;
  for (const ParamInfo& p : net.param_info())
    out.push_back({p.name, p.shape, net.params() + p.elem_offset});
  if (const Optimizer* opt = model.optimizer())
    for (const auto& [state, base] : opt->state())
      for (const ParamInfo& p : net.param_info())
        out.push_back({"optimizer." + state + "." + p.name, p.shape, base + p.elem_offset});
  return out;
}

}  // namespace

void save_checkpoint(const std::string& path, const Model& model, const TrainPosition& position,
                     const std::string& config) {
  // Every rank's partial loss sum of the epoch, so that a resumed run reduces the same numbers.
  Communicator& comm = const_cast<Model&>(model).environment().comm;
  std::vector<double> sums(comm.size());
  comm.allgather(&position.loss_sum, sums.data(), 1, DataType::F64);
  // A sharded optimizer state (ZeRO-1) is gathered whole for the file, so that a checkpoint has
  // one format whatever the world size or sharding, and sharded again afterwards.
  Optimizer* sharded = const_cast<Model&>(model).optimizer();
  if (sharded && !sharded->sharded()) sharded = nullptr;
  const std::vector<ShardBlock> blocks =
      sharded ? sharded->shard_blocks() : std::vector<ShardBlock>{};
  if (sharded) sharded->unshard(comm);
  struct Reshard {
    Optimizer* opt;
    const std::vector<ShardBlock>& blocks;
    ~Reshard() {
      if (opt) opt->shard(blocks);
    }
  } reshard{sharded, blocks};
  if (comm.rank() != 0) return;

  const Sequential& net = const_cast<Model&>(model).net();
  std::vector<float> host(net.flat_size());
  std::vector<std::vector<float>> copies;
  std::vector<TensorOut> out;
  std::vector<std::pair<const float*, size_t>> spans;
  const std::vector<Named> tensors = checkpoint_tensors(model);
  copies.reserve(tensors.size());
  for (const Named& t : tensors) {
    const size_t n = static_cast<size_t>(shape_numel(t.shape));
    copies.emplace_back(n);
    net.backend().copy_to_host(copies.back().data(), t.data, n * sizeof(float));
    out.push_back({t.name, t.shape, copies.back().data()});
    spans.emplace_back(copies.back().data(), n);
  }
  std::string loss_sums;
  for (size_t r = 0; r < sums.size(); ++r) {
    if (r) loss_sums += ',';
    loss_sums += exact(sums[r]);
  }
  const Optimizer* opt = model.optimizer();
  write_safetensors(path, out,
                    {{"format", kFormat},
                     {"step", std::to_string(position.step)},
                     {"epoch", std::to_string(position.epoch)},
                     {"step_in_epoch", std::to_string(position.step_in_epoch)},
                     {"loss_sums", loss_sums},
                     {"optimizer", opt ? opt->config().name : ""},
                     {"optimizer_steps", std::to_string(opt ? opt->steps() : 0)},
                     {"optimizer_settings", optimizer_settings(opt)},
                     {"world_size", std::to_string(comm.size())},
                     {"config", config},
                     {"checksum", hex64(checksum(spans))}});
}

TrainPosition load_checkpoint(const std::string& path, Model& model,
                              const std::function<void(const std::string&)>& check_config) {
  const SafetensorsFile file = read_safetensors(path);
  const auto meta = [&](const std::string& key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end())
      throw InputError(path + ": not a dptrain checkpoint (no '" + key + "' in its metadata)");
    return it->second;
  };
  if (meta("format") != kFormat)
    throw InputError(path + ": checkpoint format '" + meta("format") + "', expected " + kFormat);
  std::vector<std::pair<const float*, size_t>> spans;
  for (const TensorIn& t : file.tensors) spans.emplace_back(t.data.data(), t.data.size());
  if (hex64(checksum(spans)) != meta("checksum"))
    throw InputError(path + ": checksum mismatch: the tensor data is corrupt");
  Optimizer* opt = model.optimizer();
  if (!opt) throw InputError("resume: compile the model before loading a checkpoint");
  if (meta("optimizer") != opt->config().name)
    throw InputError(path + ": saved with optimizer " + meta("optimizer") + ", this run uses " +
                     opt->config().name);

  const std::vector<Named> tensors = checkpoint_tensors(model);
  if (file.tensors.size() != tensors.size())
    throw InputError(path + ": holds " + std::to_string(file.tensors.size()) +
                     " tensors, the model and optimizer need " + std::to_string(tensors.size()));
  std::vector<const TensorIn*> sources;
  for (const Named& t : tensors) {
    const TensorIn* in = file.find(t.name);
    if (!in) throw InputError(path + ": no tensor '" + t.name + "', which the model needs");
    if (Shape(in->shape.begin(), in->shape.end()) != t.shape)
      throw InputError(path + ": tensor '" + t.name + "' has shape " + shape_str(in->shape) +
                       ", the model needs " + shape_str(t.shape));
    sources.push_back(in);
  }
  if (check_config) check_config(meta("config"));
  TrainPosition pos;
  int64_t optimizer_steps = 0;
  try {
    pos.step = std::stoll(meta("step"));
    pos.epoch = std::stoi(meta("epoch"));
    pos.step_in_epoch = std::stoll(meta("step_in_epoch"));
    optimizer_steps = std::stoll(meta("optimizer_steps"));
    std::vector<double> sums;
    const std::string& text = meta("loss_sums");
    for (size_t a = 0; a < text.size();) {
      size_t b = text.find(',', a);
      if (b == std::string::npos) b = text.size();
      sums.push_back(std::strtod(text.substr(a, b - a).c_str(), nullptr));
      a = b + 1;
    }
    // Each rank takes its own partial sum when the world size is the same; otherwise rank 0
    // takes the total (the train loss of that epoch is then exact only up to rounding).
    Communicator& comm = model.environment().comm;
    if (static_cast<int>(sums.size()) == comm.size())
      pos.loss_sum = sums[comm.rank()];
    else if (comm.rank() == 0)
      for (double v : sums) pos.loss_sum += v;
  } catch (const std::logic_error&) {
    throw InputError(path + ": malformed position in its metadata");
  }
  if (pos.step < 0 || pos.epoch < 0 || pos.step_in_epoch < 0)
    throw InputError(path + ": malformed position in its metadata");
  // Everything checked: now, and only now, the model and optimizer change. A sharded optimizer
  // takes the whole state from the file; the next fit shards it again.
  if (opt->sharded()) opt->drop_shard();
  const std::vector<Named> targets = checkpoint_tensors(model);
  Backend& be = model.net().backend();
  for (size_t i = 0; i < targets.size(); ++i)
    be.copy_from_host(targets[i].data, sources[i]->data.data(),
                      sources[i]->data.size() * sizeof(float));
  opt->set_steps(optimizer_steps);
  return pos;
}

}  // namespace dpt
