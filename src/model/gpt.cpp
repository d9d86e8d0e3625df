#include "src/model/gpt.hpp"

#include "src/core/error.hpp"
#include "src/model/activations.hpp"
#include "src/model/embedding.hpp"
#include "src/model/layer_norm.hpp"
#include "src/model/tied_head.hpp"
#include "src/model/transformer_block.hpp"

namespace dpt {

std::vector<std::unique_ptr<Layer>> make_gpt(const GptConfig& c, const std::string& what) {
  for (const auto& [name, value] :
       {std::pair{"n_layer", c.n_layer}, std::pair{"n_head", c.n_head},
        std::pair{"n_embd", c.n_embd}, std::pair{"block_size", c.block_size},
        std::pair{"vocab_size", c.vocab_size}})
    if (value < 1)
      throw InputError(what + ": gpt " + name + " must be at least 1, got " +
                       std::to_string(value));
  if (c.n_embd % c.n_head != 0)
    throw InputError(what + ": gpt n_embd " + std::to_string(c.n_embd) +
                     " is not a multiple of n_head " + std::to_string(c.n_head));
  if (!(c.dropout >= 0 && c.dropout < 1))
    throw InputError(what + ": gpt dropout must be in [0, 1), got " + std::to_string(c.dropout));
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(std::make_unique<Embedding>(c.vocab_size, c.block_size, c.n_embd));
  layers.back()->set_module_name("transformer");
  if (c.dropout > 0) {
    layers.push_back(std::make_unique<Dropout>(c.dropout));
    layers.back()->set_module_name("transformer.drop");
  }
  for (int64_t i = 0; i < c.n_layer; ++i) {
    layers.push_back(std::make_unique<TransformerBlock>(c.n_embd, c.n_head, c.n_layer, c.dropout));
    layers.back()->set_module_name("transformer.h." + std::to_string(i));
  }
  layers.push_back(std::make_unique<LayerNorm>());
  layers.back()->set_module_name("transformer.ln_f");
  layers.push_back(std::make_unique<TiedHead>("transformer.wte.weight", c.vocab_size, c.n_embd));
  layers.back()->set_module_name("lm_head");
  return layers;
}

}  // namespace dpt
