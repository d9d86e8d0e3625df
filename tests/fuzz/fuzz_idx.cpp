// libFuzzer target: the IDX reader must turn any input into an array or an InputError.
#include <cstddef>
#include <cstdint>

#include "src/core/error.hpp"
#include "src/data/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    dpt::parse_idx("fuzz.idx", {data, size});
  } catch (const dpt::InputError&) {
  }
  return 0;
}
