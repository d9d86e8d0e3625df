// Choosing the next token from a row of logits, as text generation does: temperature scales the
// logits (lower is greedier), top_k keeps only the k largest, and the draw comes from the
// counter-based RNG at (seed, draw), so a fixed seed generates the same text on every machine.
#pragma once

#include <cstdint>

namespace dpt {

struct SamplingOptions {
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // 0: all classes
  uint64_t seed = 0;
};

// Throws InputError naming the option for a temperature <= 0 (or not finite) or a negative top_k.
void check_sampling(const SamplingOptions& o);

// A token drawn from softmax(logits / temperature) restricted to the top_k largest logits (ties
// at the k-th value broken toward the lower index); `draw` numbers the draw within the seed's
// stream (the position being generated).
int32_t sample_token(const float* logits, int64_t classes, const SamplingOptions& o, uint64_t draw);

}  // namespace dpt
