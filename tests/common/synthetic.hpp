// Small synthetic data sets for tests: each class has its own pattern plus noise, so a model
// can learn it, and everything is a pure function of the seed.
#pragma once

#include <cstdint>
#include <vector>

#include "src/core/random.hpp"
#include "src/data/dataset.hpp"

namespace dpt::testing {

inline Dataset make_synthetic_dataset(int64_t count, std::vector<int64_t> sample_shape,
                                      int classes, uint64_t seed) {
  Dataset d;
  d.count = count;
  d.sample_shape = sample_shape;
  const int64_t numel = d.sample_numel();
  d.pixels_f32.resize(static_cast<size_t>(count * numel));
  d.labels.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    const int label = static_cast<int>(random_u64(seed, static_cast<uint64_t>(i)) % classes);
    d.labels[i] = label;
    for (int64_t j = 0; j < numel; ++j) {
      const float pattern = ((j * 7 + label * 3) % (classes + 2)) == 0 ? 1.0f : 0.0f;
      const float noise = uniform_float(seed + 1, static_cast<uint64_t>(i * numel + j));
      d.pixels_f32[i * numel + j] = 0.7f * pattern + 0.3f * noise;
    }
  }
  return d;
}

}  // namespace dpt::testing
