// libFuzzer target: the safetensors reader must turn any input into tensors or an InputError.
#include <cstddef>
#include <cstdint>

#include "src/core/error.hpp"
#include "src/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dpt::parse_safetensors("fuzz.safetensors", {data, size});
  } catch (const dpt::InputError&) {
  }
  return 0;
}
