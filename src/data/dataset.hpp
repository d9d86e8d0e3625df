// A labelled data set held in host memory, and the readers that load one from IDX or .npy files.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/core/dtype.hpp"
#include "src/core/shape.hpp"

namespace dpt {

// An n-dimensional array as read from a file, before it becomes images or labels.
struct NdArray {
  DataType dtype = DataType::U8;  // uint8, int32, int64 or float32
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // host byte order, C order, shape.product() * element size bytes
  int64_t numel() const;
};

// Reads a whole file; gzip-compressed files are inflated (zlib), or refused in a build without
// zlib (DPT_WITH_ZLIB=0). Throws InputError naming the path.
std::vector<uint8_t> read_file_bytes(const std::string& path);

// Parse an IDX (big-endian, magic 0 0 type ndim) or .npy (magic \x93NUMPY) image of a file.
// `path` is used only in error messages. Throws InputError on anything malformed.
NdArray parse_idx(const std::string& path, std::span<const uint8_t> bytes);
NdArray parse_npy(const std::string& path, std::span<const uint8_t> bytes);
// Reads a file and tells IDX from .npy by its content (not its name).
NdArray load_array(const std::string& path);

struct Dataset {
  int64_t count = 0;
  std::vector<int64_t> sample_shape;  // per sample: {C,H,W} for images, {F} for flat features
  std::vector<uint8_t> pixels_u8;     // set when the source was uint8: value / 255 on gather
  std::vector<float> pixels_f32;      // set when the source was float32: used as is
  std::vector<int32_t> labels;        // count labels, each >= 0

  int64_t sample_numel() const;
  int32_t max_label() const;
  // Writes n samples (float, C order) and their labels for the given indices.
  void gather(const int64_t* indices, int64_t n, float* x, int32_t* y) const;
};

// Builds a data set from an images array (N,H,W), (N,C,H,W) or (N,F) of uint8 or float32 and a
// labels array (N) of an integer type. Throws InputError naming the file on a mismatch.
Dataset make_dataset(const NdArray& images, const std::string& images_path, const NdArray& labels,
                     const std::string& labels_path);
Dataset load_dataset(const std::string& images_path, const std::string& labels_path);

}  // namespace dpt
