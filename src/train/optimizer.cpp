#include "src/train/optimizer.hpp"

#include <cmath>
#include <sstream>

#include "src/core/error.hpp"

namespace dpt {

Optimizer::Optimizer(Backend& backend, const OptimizerConfig& config, size_t n)
    : backend_(backend), config_(config), n_(n) {
  const auto bad = [](const std::string& what) { throw InputError("option " + what); };
  if (config.name != "sgd" && config.name != "adamw")
    bad("--optimizer: unknown optimizer '" + config.name + "' (known: sgd, adamw)");
  if (!(config.lr > 0) || !std::isfinite(config.lr)) bad("--lr: must be a positive number");
  if (!(config.momentum >= 0 && config.momentum < 1)) bad("--momentum: must be in [0, 1)");
  if (config.nesterov && config.momentum == 0) bad("--nesterov: needs --momentum > 0");
  if (!(weight_decay() >= 0) || !std::isfinite(weight_decay()))
    bad("--weight-decay: must be a non-negative number");
  if (!(config.beta1 >= 0 && config.beta1 < 1) || !(config.beta2 >= 0 && config.beta2 < 1))
    bad("--beta1/--beta2: must be in [0, 1)");
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

void Optimizer::step(float* params, const float* grads) {
  ++steps_;
  if (config_.name == "sgd") {
    SgdParams p{config_.lr, config_.momentum, weight_decay(), config_.nesterov};
    backend_.sgd_update(params, grads, state1_.data(), n_, p);
  } else {
    AdamWParams p{config_.lr, config_.beta1, config_.beta2, config_.eps, weight_decay(), steps_};
    backend_.adamw_update(params, grads, state1_.data(), state2_.data(), n_, p);
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
  os << ", weight_decay=" << weight_decay() << ")";
  return os.str();
}

}  // namespace dpt
