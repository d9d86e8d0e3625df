// A GPT-2-style language model as nanoGPT's GPT builds it, as the top-level layers of a model:
//
//   transformer         Embedding: token (wte [vocab, C]) + position (wpe [block_size, C])
//   transformer.h.0     TransformerBlock: x + attn(ln_1(x)), then + mlp(ln_2(.))
//   ...
//   transformer.h.{n-1}
//   transformer.ln_f    LayerNorm
//   lm_head             TiedHead: logits = x wte^T, no bias, tied to transformer.wte.weight
//
// Each block is one top-level layer, so the gradient Reducer can start a block's allreduce while
// the blocks below it run backward. The model takes int32 token ids [T] per sample (T up to
// block_size) and gives logits [T, vocab]. Tensor names and shapes are nanoGPT's state_dict's,
// less the duplicate lm_head.weight of the tied head.
//
// dropout (nanoGPT's, default 0): with p > 0, a Dropout(p) after the embeddings
// (transformer.drop) and at the end of each block's two branches (attn.resid_dropout,
// mlp.dropout), active in training only. The attention probabilities are not dropped: nanoGPT's
// attn_dropout is the one of its four dropouts that is not here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/model/layer.hpp"

namespace dpt {

struct GptConfig {
  int64_t n_layer = 12, n_head = 12, n_embd = 768, block_size = 1024, vocab_size = 50257;
  float dropout = 0;
};

// The layers, with their module names set. Throws InputError (naming `what`, e.g. the spec) for
// a value below 1, an n_embd that is not a multiple of n_head, or a dropout outside [0, 1).
std::vector<std::unique_ptr<Layer>> make_gpt(const GptConfig& config, const std::string& what);

}  // namespace dpt
