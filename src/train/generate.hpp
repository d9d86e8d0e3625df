// Text generation with a language model: one token at a time, each drawn from the model's
// logits at the last position (sampling.hpp), as nanoGPT's generate() does.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/train/model.hpp"
#include "src/train/sampling.hpp"

namespace dpt {

// Appends max_new_tokens tokens to `prompt` and returns them (the prompt excluded). The model
// takes windows of T int32 tokens (input shape [T]) and gives T rows of logits; the context is
// the last T tokens. A shorter context is padded after its end with token 0: attention is causal,
// so no position sees the padding that follows it, and the logits at the context's last position
// are those of the context alone. `on_token` (optional) hears each token as it is drawn.
// Throws InputError for an empty prompt, a prompt token the model does not know, or a model
// whose input is not a window of tokens.
std::vector<int32_t> generate(Model& model, const std::vector<int32_t>& prompt,
                              int64_t max_new_tokens, const SamplingOptions& sampling,
                              const std::function<void(int32_t)>& on_token = nullptr);

}  // namespace dpt
