#include "src/train/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "src/core/error.hpp"
#include "src/core/random.hpp"

namespace dpt {

void check_sampling(const SamplingOptions& o) {
  if (!(o.temperature > 0) || !std::isfinite(o.temperature))
    throw InputError(
        "option --temperature: must be a positive number (--top-k 1 takes the likeliest token)");
  if (o.top_k < 0) throw InputError("option --top-k: must be at least 0 (0: no limit)");
}

int32_t sample_token(const float* logits, int64_t classes, const SamplingOptions& o,
                     uint64_t draw) {
  // The candidates: every class, or the top_k by logit (stable: equal logits keep index order).
  std::vector<int32_t> order(static_cast<size_t>(classes));
  std::iota(order.begin(), order.end(), 0);
  const int64_t k = o.top_k > 0 ? std::min(o.top_k, classes) : classes;
  if (k < classes) {
    std::stable_sort(order.begin(), order.end(),
                     [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    order.resize(static_cast<size_t>(k));
    std::sort(order.begin(), order.end());  // back to index order: the draw walks classes in order
  }
  double top = -INFINITY;
  for (int32_t c : order) top = std::max(top, static_cast<double>(logits[c]));
  std::vector<double> weight(order.size());
  double total = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    weight[i] = std::exp((static_cast<double>(logits[order[i]]) - top) / o.temperature);
    total += weight[i];
  }
  // u in [0, 1) with 53 bits, scaled to the total; the first class whose running sum passes it.
  const double u =
      static_cast<double>(random_u64(o.seed, draw) >> 11) * (1.0 / 9007199254740992.0) * total;
  double running = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    running += weight[i];
    if (u < running) return order[i];
  }
  return order.back();  // u rounded up to the total
}

}  // namespace dpt
