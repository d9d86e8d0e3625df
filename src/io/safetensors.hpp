// safetensors files: an 8-byte little-endian header length, a JSON header, then raw tensor data.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace dpt {

// One float32 tensor to write; data points at shape.product() floats.
struct TensorOut {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

struct TensorIn {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // the "__metadata__" object
  std::vector<TensorIn> tensors;                // in file order of data offsets
  const TensorIn* find(const std::string& name) const;
};

// Writes atomically: to a temporary name in the same folder, fsync, then rename over `path`.
void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Parses a file image; `path` is used only in error messages. Accepts only F32 tensors.
// Throws InputError naming the path on anything malformed (sizes, offsets, JSON, dtype).
SafetensorsFile parse_safetensors(const std::string& path, std::span<const uint8_t> bytes);
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace dpt
