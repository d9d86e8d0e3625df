// Model spec strings: a preset name ("mlp", "cnn", "gpt2") or layers separated by spaces or
// commas, e.g.
//   "conv2d(32,3,pad=1) relu maxpool2d(2) flatten linear(128) relu linear(10)"
// Layers: linear(out) | conv2d(out, kernel[, stride][, pad]) | maxpool2d(kernel[, stride]) |
//         relu | flatten | dropout([p]) | residual(layers...).
// Keyword forms: stride=S, pad=P (or padding=P), p=X; a keyword given twice is an error.
// residual(...) holds a spec of its own, which may hold residual blocks in turn; its output is its
// input plus that of its layers.
// A language model is a spec of its own:
//   gpt(n_layer=L, n_head=H, n_embd=C, block_size=T, vocab_size=V[, dropout=p])
// every argument by name and required but dropout (default 0, in [0, 1)), each at least 1, C a
// multiple of H (src/model/gpt.hpp);
// the preset gpt2 is gpt(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/model/layer.hpp"

namespace dpt {

// The spec string a preset stands for; the input itself when it is not a preset name.
std::string expand_preset(const std::string& model);
// Parses a preset or spec string. Throws InputError naming the spec and the problem.
std::vector<std::unique_ptr<Layer>> parse_model_spec(const std::string& model);

}  // namespace dpt
