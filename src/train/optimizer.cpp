#include "src/train/optimizer.hpp"

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
  if (config.name == "sgd" && config.momentum > 0) state1_.resize(backend, DataType::F32, n);
  if (config.name == "adamw") {
    state1_.resize(backend, DataType::F32, n);
    state2_.resize(backend, DataType::F32, n);
  }
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

void Optimizer::step(float* params, const float* grads) {
  ++steps_;
  // A state buffer the optimizer does not use stays null, and so does its offset.
  const auto at = [](float* base, size_t offset) { return base ? base + offset : nullptr; };
  for (const DecayRange& r : ranges_) {
    const float wd = r.decay ? weight_decay() : 0.0f;
    float* p = params + r.elem_offset;
    const float* g = grads + r.elem_offset;
    if (config_.name == "sgd") {
      SgdParams sp{lr_, config_.momentum, wd, config_.nesterov};
      backend_.sgd_update(p, g, at(state1_.data(), r.elem_offset), r.numel, sp);
    } else {
      AdamWParams ap{lr_, config_.beta1, config_.beta2, config_.eps, wd, steps_};
      backend_.adamw_update(p, g, at(state1_.data(), r.elem_offset),
                            at(state2_.data(), r.elem_offset), r.numel, ap);
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
