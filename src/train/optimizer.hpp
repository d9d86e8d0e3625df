// Optimizers over the flat parameter buffer: SGD (momentum, Nesterov, weight decay) and AdamW,
// with PyTorch's update rules, each one fused pass of the backend.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/backend.hpp"
#include "kernels/runtime/device_buffer.hpp"

namespace dpt {

struct OptimizerConfig {
  std::string name = "sgd";  // "sgd" or "adamw"
  float lr = 0.01f;
  float momentum = 0.0f;       // sgd
  bool nesterov = false;       // sgd
  float weight_decay = -1.0f;  // < 0: the optimizer's default (sgd 0, adamw 0.01, as PyTorch)
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;  // adamw
};

class Optimizer {
 public:
  // Throws InputError for an unknown name or out-of-range settings.
  Optimizer(Backend& backend, const OptimizerConfig& config, size_t n);
  void step(float* params, const float* grads);
  const OptimizerConfig& config() const { return config_; }
  float weight_decay() const;
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // The state buffers (flat, like the parameters) by name: "momentum" for SGD with momentum,
  // "exp_avg" and "exp_avg_sq" for AdamW (PyTorch's names).
  std::vector<std::pair<std::string, float*>> state() const;
  std::string describe() const;

 private:
  Backend& backend_;
  OptimizerConfig config_;
  size_t n_;
  int64_t steps_ = 0;
  DeviceBuffer state1_, state2_;  // sgd: momentum; adamw: first and second moments
};

}  // namespace dpt
