#include "src/train/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "src/core/error.hpp"

namespace dpt {

std::vector<DecayRange> decay_ranges(const std::vector<ParamInfo>& params, size_t flat_size,
                                     bool only_matrices) {
  if (!only_matrices || params.empty()) return {{0, flat_size, true}};
  std::vector<DecayRange> out;
  for (const ParamInfo& p : params) {
    const bool decay = p.shape.size() >= 2;
    if (out.empty()) {
      out.push_back({0, 0, decay});  // the first range starts at 0, before any padding
    } else if (out.back().decay != decay) {
      out.back().numel = p.elem_offset - out.back().elem_offset;
      out.push_back({p.elem_offset, 0, decay});
    }
  }
  out.back().numel = flat_size - out.back().elem_offset;
  return out;
}

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& config, size_t n,
                     std::vector<DecayRange> ranges)
    : backend_(backend),
      config_(config),
      n_(n),
      ranges_(ranges.empty() ? std::vector<DecayRange>{{0, n, true}} : std::move(ranges)),
      lr_(config.lr) {
  const auto bad = [](const std::string& what) { throw InputError("option " + what); };
  if (config.name != "sgd" && config.name != "adamw")
    bad("--optimizer: unknown optimizer '" + config.name + "' (known: sgd, adamw)");
  if (!(config.lr > 0) || !std::isfinite(config.lr)) bad("--lr: must be a positive number");
  if (!(config.momentum >= 0 && config.momentum < 1)) bad("--momentum: must be in [0, 1)");
  if (config.nesterov && config.momentum == 0) bad("--nesterov: needs --momentum > 0");
  if (!(weight_decay() >= 0) || !std::isfinite(weight_decay()))
    bad("--weight-decay: must be a non-negative number");
  if (!(config.beta1 >= 0 && config.beta1 < 1)) bad("--beta1: must be in [0, 1)");
  if (!(config.beta2 >= 0 && config.beta2 < 1)) bad("--beta2: must be in [0, 1)");
  size_t covered = 0;
  for (const DecayRange& r : ranges_) {
    if (r.elem_offset != covered)
      throw SystemError("optimizer: decay ranges must cover the parameters in order");
    covered += r.numel;
  }
  if (covered != n)
    throw SystemError("optimizer: decay ranges cover " + std::to_string(covered) + " of " +
                      std::to_string(n) + " elements");
  // The parameters, their gradients and the optimizer state are float32 (the master weights).
  backend.require(config.name == "sgd" ? Op::SgdUpdate : Op::AdamWUpdate, DataType::F32,
                  "optimizer " + config.name);
  drop_shard();
}

int Optimizer::state_count() const {
  if (config_.name == "adamw") return 2;
  return config_.momentum > 0 ? 1 : 0;
}

void Optimizer::allocate_state(size_t numel) {
  state_numel_ = numel;
  DeviceBuffer* bufs[2] = {&state1_, &state2_};
  for (int i = 0; i < 2; ++i) {
    *bufs[i] = DeviceBuffer();  // frees the old one first: never both at once
    if (i < state_count()) {
      bufs[i]->resize(backend_, DataType::F32, std::max<size_t>(numel, 1));
      backend_.fill(bufs[i]->data(), numel, 0.0f);
    }
  }
}

void Optimizer::drop_shard() {
  sharded_ = false;
  blocks_.clear();
  segments_.clear();
  for (const DecayRange& r : ranges_)
    segments_.push_back({r.elem_offset, r.numel, r.decay, r.elem_offset});
  allocate_state(n_);
}

void Optimizer::shard(const std::vector<ShardBlock>& blocks) {
  if (sharded_) throw SystemError("optimizer: already sharded");
  // Each block cut where the decay setting changes; its state follows the blocks before it.
  std::vector<Segment> segments;
  size_t state_offset = 0;
  for (const ShardBlock& b : blocks) {
    if (b.elem_offset + b.numel > n_)
      throw SystemError("optimizer: shard block past the end of the parameters");
    for (const DecayRange& r : ranges_) {
      const size_t lo = std::max(b.elem_offset, r.elem_offset);
      const size_t hi = std::min(b.elem_offset + b.numel, r.elem_offset + r.numel);
      if (lo >= hi) continue;
      segments.push_back({lo, hi - lo, r.decay, state_offset});
      state_offset += hi - lo;
    }
  }
  // Copies out of the whole state, then frees it.
  std::vector<DeviceBuffer> kept;
  DeviceBuffer* whole[2] = {&state1_, &state2_};
  for (int i = 0; i < state_count(); ++i) {
    kept.emplace_back(backend_, DataType::F32, std::max<size_t>(state_offset, 1));
    for (const Segment& s : segments)
      backend_.copy(kept.back().data() + s.state_offset, whole[i]->data() + s.elem_offset,
                    s.numel * sizeof(float));
  }
  for (int i = 0; i < state_count(); ++i) *whole[i] = std::move(kept[i]);
  state_numel_ = state_offset;
  segments_ = std::move(segments);
  blocks_ = blocks;
  sharded_ = true;
}

void Optimizer::unshard(Communicator& comm) {
  if (!sharded_) return;
  DeviceBuffer* parts[2] = {&state1_, &state2_};
  std::vector<DeviceBuffer> whole;
  for (int i = 0; i < state_count(); ++i) {
    whole.emplace_back(backend_, DataType::F32, std::max<size_t>(n_, 1));
    float* w = whole.back().data();
    backend_.fill(w, n_, 0.0f);
    for (const Segment& s : segments_)
      backend_.copy(w + s.elem_offset, parts[i]->data() + s.state_offset, s.numel * sizeof(float));
    backend_.synchronize();
    for (const ShardBlock& b : blocks_)
      comm.allgather(w + b.elem_offset, w + b.bucket_offset, b.numel, DataType::F32);
  }
  for (int i = 0; i < state_count(); ++i) *parts[i] = std::move(whole[i]);
  sharded_ = false;
  blocks_.clear();
  segments_.clear();
  for (const DecayRange& r : ranges_)
    segments_.push_back({r.elem_offset, r.numel, r.decay, r.elem_offset});
  state_numel_ = n_;
}

float Optimizer::weight_decay() const {
  if (config_.weight_decay >= 0) return config_.weight_decay;
  return config_.name == "adamw" ? 0.01f : 0.0f;
}

void Optimizer::set_lr(float lr) {
  if (!(lr >= 0) || !std::isfinite(lr))
    throw SystemError("optimizer: learning rate " + std::to_string(lr) + " is not a number >= 0");
  lr_ = lr;
}

void Optimizer::step(float* params, const float* grads, const int32_t* skip) {
  ++steps_;
  // A state buffer the optimizer does not use stays null, and so does its offset.
  const auto at = [](float* base, size_t offset) { return base ? base + offset : nullptr; };
  for (const Segment& r : segments_) {
    const float wd = r.decay ? weight_decay() : 0.0f;
    float* p = params + r.elem_offset;
    const float* g = grads + r.elem_offset;
    if (config_.name == "sgd") {
      SgdParams sp{lr_, config_.momentum, wd, config_.nesterov, skip};
      backend_.sgd_update(p, g, at(state1_.data(), r.state_offset), r.numel, sp);
    } else {
      AdamWParams ap{lr_, config_.beta1, config_.beta2, config_.eps, wd, steps_, skip};
      backend_.adamw_update(p, g, at(state1_.data(), r.state_offset),
                            at(state2_.data(), r.state_offset), r.numel, ap);
    }
  }
}

std::vector<std::pair<std::string, float*>> Optimizer::state() const {
  if (config_.name == "adamw") return {{"exp_avg", state1_.data()}, {"exp_avg_sq", state2_.data()}};
  if (config_.momentum > 0) return {{"momentum", state1_.data()}};
  return {};
}

std::string Optimizer::describe() const {
  std::ostringstream os;
  os << config_.name << "(lr=" << config_.lr;
  if (config_.name == "sgd") {
    os << ", momentum=" << config_.momentum;
    if (config_.nesterov) os << ", nesterov";
  } else {
    os << ", betas=(" << config_.beta1 << ", " << config_.beta2 << "), eps=" << config_.eps;
  }
  os << ", weight_decay=" << weight_decay();
  if (config_.decay_only_matrices) os << " on matrices only";
  os << ")";
  return os.str();
}

}  // namespace dpt
