// libFuzzer target: the .npy reader, and a data set built from what it accepts.
#include <cstddef>
#include <cstdint>

#include "src/core/error.hpp"
#include "src/data/dataset.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const dpt::NdArray a = dpt::parse_npy("fuzz.npy", {data, size});
    // A data set needs a label per image; the harness makes them, so it bounds their count
    // (an array of shape (2**60, 0) parses, with no data, and must not make 2**60 labels).
    if (a.shape.size() >= 2 && a.shape[0] > 0 && a.shape[0] <= 4096) {
      dpt::NdArray labels;
      labels.dtype = dpt::DataType::U8;
      labels.shape = {a.shape[0]};
      labels.bytes.assign(static_cast<size_t>(a.shape[0]), 1);
      const dpt::Dataset d = dpt::make_dataset(a, "fuzz.npy", labels, "labels");
      float x[4096];
      int32_t y[1];
      const int64_t index = 0;
      if (d.sample_numel() <= 4096) d.gather(&index, 1, x, y);
    }
  } catch (const dpt::InputError&) {
  }
  return 0;
}
