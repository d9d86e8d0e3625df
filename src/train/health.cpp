#include "src/train/health.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/core/hash.hpp"

namespace dpt {

HealthChecks::HealthChecks(Environment env, const Sequential& net,
                           const FitOptions::Health& options)
    : env_(env), net_(net), options_(options) {}

size_t HealthChecks::nonfinite_here(int64_t t) const {
  size_t lo = 0, hi = net_.flat_size();
  if (t >= 0) {
    const ParamInfo& p = net_.param_info()[static_cast<size_t>(t)];
    lo = p.elem_offset;
    hi = p.elem_offset + p.numel;
  }
  if (shard_.empty()) return env_.backend.count_nonfinite(net_.grads() + lo, hi - lo);
  size_t n = 0;
  for (const ShardBlock& b : shard_) {
    const size_t a = std::max(lo, b.elem_offset), z = std::min(hi, b.elem_offset + b.numel);
    if (a < z) n += env_.backend.count_nonfinite(net_.grads() + a, z - a);
  }
  return n;
}

bool HealthChecks::gradients_usable(int64_t step, const double* sum_of_squares) const {
  bool finite = false;
  if (sum_of_squares) {
    finite = std::isfinite(*sum_of_squares);
  } else {
    int64_t bad = static_cast<int64_t>(nonfinite_here(-1));
    if (!shard_.empty()) bad = env_.comm.allreduce_sum(bad);
    finite = bad == 0;
  }
  if (!finite && !options_.skip_nonfinite) throw_nonfinite(step);
  return finite;
}

void HealthChecks::after_step(int64_t steps_done) const {
  if (options_.check_replicas_every > 0 && steps_done % options_.check_replicas_every == 0)
    check_replicas(steps_done);
}

void HealthChecks::throw_nonfinite(int64_t step) const {
  // Backward runs from the last layer down: the highest-numbered layer with a non-finite
  // gradient is the first that went bad.
  const auto& params = net_.param_info();
  for (size_t t = params.size(); t-- > 0;) {
    int64_t bad = static_cast<int64_t>(nonfinite_here(static_cast<int64_t>(t)));
    if (!shard_.empty()) bad = env_.comm.allreduce_sum(bad);
    if (bad == 0) continue;
    const int layer = params[t].layer;
    if (env_.comm.rank() == 0)
      print_error(0, env_.comm.size(),
                  "non-finite loss or gradients at step " + std::to_string(step) +
                      ": first in backward at layer " + std::to_string(layer) + " " +
                      net_.layer(layer).describe() + " (" + params[t].name +
                      "); --on-nonfinite skip skips such steps");
    throw JobError(1);
  }
  throw SystemError("non-finite gradients at step " + std::to_string(step));
}

void HealthChecks::check_replicas(int64_t steps_done) const {
  // A checksum of each rank's parameter bytes; any difference from rank 0 is drift.
  const std::vector<float> host = net_.params_to_host();
  const uint64_t h = fnv1a(host.data(), host.size() * sizeof(float));
  std::vector<uint64_t> all(env_.comm.size());
  env_.comm.allgather(&h, all.data(), 1, DataType::U64);
  std::string differ;
  for (int r = 1; r < env_.comm.size(); ++r)
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (differ.empty()) return;
  if (env_.comm.rank() == 0)
    print_error(0, env_.comm.size(),
                "replicas differ after step " + std::to_string(steps_done) + ": rank" +
                    (differ.find(',') == std::string::npos ? " " + differ + " holds"
                                                           : "s " + differ + " hold") +
                    " other parameters than rank 0 (--check-replicas)");
  throw JobError(1);
}

}  // namespace dpt
