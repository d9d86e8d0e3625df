// libFuzzer target: the model spec parser, and set-up of what it accepts on a 28x28 image.
#include <cstddef>
#include <cstdint>
#include <string>

#include "src/core/error.hpp"
#include "src/model/model_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  try {
    auto layers = dpt::parse_model_spec(std::string(reinterpret_cast<const char*>(data), size));
    dpt::Shape shape = {1, 28, 28};
    for (auto& layer : layers) {
      shape = layer->setup(shape);
      layer->param_specs();
      layer->describe();
      if (dpt::shape_numel(shape) <= 0 || dpt::shape_numel(shape) > (int64_t{1} << 40)) break;
    }
  } catch (const dpt::InputError&) {
  }
  return 0;
}
