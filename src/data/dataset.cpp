#include "src/data/dataset.hpp"

#if DPT_WITH_ZLIB
#include <zlib.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "src/core/error.hpp"

namespace dpt {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

}  // namespace

int64_t NdArray::numel() const { return checked_numel(shape); }

#if DPT_WITH_ZLIB
std::vector<uint8_t> read_file_bytes(const std::string& path) {
  errno = 0;
  gzFile f = gzopen(path.c_str(), "rb");
  // gzopen leaves errno at 0 only when it ran out of memory.
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno ? errno : ENOMEM));
  auto zlib_error = [&] {
    int err = Z_OK;
    std::string msg = gzerror(f, &err);
    const int sys = errno;
    gzclose(f);
    if (err == Z_ERRNO) fail(path, std::string("cannot read: ") + std::strerror(sys));
    // zlib prefixes its message with the path; keep only the problem.
    if (msg.starts_with(path + ": ")) msg.erase(0, path.size() + 2);
    fail(path,
         (err == Z_DATA_ERROR || err == Z_BUF_ERROR ? "corrupt gzip data: " : "cannot read: ") +
             msg);
  };
  constexpr unsigned kChunk = 1u << 20;
  std::vector<uint8_t> out;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const int n = gzread(f, out.data() + old, kChunk);
    if (n < 0) zlib_error();
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  // A gzip stream cut short reads without error up to the cut; zlib reports it only here.
  int err = Z_OK;
  gzerror(f, &err);
  if (err != Z_OK) zlib_error();
  if (gzclose(f) != Z_OK) fail(path, "corrupt gzip data");
  return out;
}
#else
// A build without zlib reads files as they are and refuses gzip streams (by their magic bytes)
// rather than parsing compressed bytes as data.
std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, std::string("cannot open: ") + std::strerror(errno));
  constexpr size_t kChunk = size_t{1} << 20;
  std::vector<uint8_t> out;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const size_t n = std::fread(out.data() + old, 1, kChunk, f);
    out.resize(old + n);
    if (n < kChunk) break;
  }
  if (std::ferror(f)) {
    const int sys = errno;
    std::fclose(f);
    fail(path, std::string("cannot read: ") + std::strerror(sys));
  }
  std::fclose(f);
  if (out.size() >= 2 && out[0] == 0x1f && out[1] == 0x8b)
    fail(path, "gzip-compressed, but this build has no zlib (gunzip it first)");
  return out;
}
#endif

NdArray load_array(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  if (bytes.size() >= 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0) {
    return parse_npy(path, bytes);
  }
  if (bytes.size() >= 2 && bytes[0] == 0 && bytes[1] == 0) return parse_idx(path, bytes);
  if (bytes.size() < 4) {
    fail(path, "not an IDX or .npy file (only " + std::to_string(bytes.size()) + " bytes)");
  }
  char magic[16];
  std::snprintf(magic, sizeof magic, "%02x %02x %02x %02x", bytes[0], bytes[1], bytes[2], bytes[3]);
  fail(path, std::string("not an IDX or .npy file (unrecognised magic bytes ") + magic + ")");
}

int64_t Dataset::sample_numel() const {
  return sample_shape.empty() ? 0 : checked_numel(sample_shape);
}

int32_t Dataset::max_label() const {
  return labels.empty() ? -1 : *std::max_element(labels.begin(), labels.end());
}

void Dataset::gather(const int64_t* indices, int64_t n, float* x, int32_t* y) const {
  // A table gives exactly static_cast<float>(v) / 255.0f without a division per pixel.
  static const std::array<float, 256> kScale = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[v] = static_cast<float>(v) / 255.0f;
    return t;
  }();
  const int64_t f = sample_numel();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t k = indices[i];
    if (k < 0 || k >= count) {
      throw std::out_of_range("Dataset::gather: index " + std::to_string(k) + " is outside [0, " +
                              std::to_string(count) + ")");
    }
    float* dst = x + i * f;
    if (!pixels_u8.empty()) {
      const uint8_t* src = pixels_u8.data() + k * f;
      for (int64_t j = 0; j < f; ++j) dst[j] = kScale[src[j]];
    } else {
      std::copy_n(pixels_f32.data() + k * f, f, dst);
    }
    y[i] = labels[static_cast<size_t>(k)];
  }
}

Dataset make_dataset(const NdArray& images, const std::string& images_path, const NdArray& labels,
                     const std::string& labels_path) {
  // A hand-built NdArray whose bytes disagree with its shape is a bug in the caller, not bad input.
  for (const NdArray* a : {&images, &labels}) {
    const int64_t n = a->numel();
    if (n < 0 || a->bytes.size() != static_cast<uint64_t>(n) * dtype_size(a->dtype)) {
      throw std::invalid_argument("make_dataset: NdArray bytes do not match its shape");
    }
  }
  if (images.dtype != DataType::U8 && images.dtype != DataType::F32) {
    fail(images_path,
         std::string("images must be uint8 or float32, not ") + dtype_name(images.dtype));
  }
  const std::vector<int64_t>& s = images.shape;
  if (s.size() < 2 || s.size() > 4) {
    fail(images_path,
         "images must have shape (N, F), (N, H, W) or (N, C, H, W), not " + shape_to_string(s));
  }
  if (labels.dtype == DataType::F32) fail(labels_path, "labels must be integers, not float32");
  if (labels.shape.size() != 1) {
    fail(labels_path, "labels must have shape (N,), not " + shape_to_string(labels.shape));
  }
  const int64_t n = s[0];
  if (n == 0) fail(images_path, "contains no images (shape " + shape_to_string(s) + ")");
  if (labels.shape[0] != n) {
    fail(images_path, std::to_string(n) + " images but " + labels_path + " has " +
                          std::to_string(labels.shape[0]) + " labels");
  }

  Dataset d;
  d.count = n;
  // (N, F) -> [F]; (N, H, W) -> [1, H, W]; (N, C, H, W) -> [C, H, W].
  d.sample_shape.assign(s.begin() + 1, s.end());
  if (s.size() == 3) d.sample_shape.insert(d.sample_shape.begin(), int64_t{1});
  if (d.sample_numel() == 0) {
    fail(images_path, "images have no pixels (shape " + shape_to_string(s) + ")");
  }
  if (images.dtype == DataType::U8) {
    d.pixels_u8 = images.bytes;
  } else {
    d.pixels_f32.resize(images.bytes.size() / sizeof(float));
    std::memcpy(d.pixels_f32.data(), images.bytes.data(), images.bytes.size());
    // One NaN or Inf pixel would silently turn every loss into NaN; refuse it up front.
    for (size_t i = 0; i < d.pixels_f32.size(); ++i) {
      if (!std::isfinite(d.pixels_f32[i])) {
        fail(images_path, "pixel value " + std::to_string(d.pixels_f32[i]) + " at element " +
                              std::to_string(i) + " is not finite");
      }
    }
  }

  d.labels.resize(static_cast<size_t>(n));
  const uint8_t* p = labels.bytes.data();
  for (int64_t i = 0; i < n; ++i) {
    int64_t v = 0;
    if (labels.dtype == DataType::U8) {
      v = p[i];
    } else if (labels.dtype == DataType::I32) {
      int32_t t;
      std::memcpy(&t, p + i * 4, 4);
      v = t;
    } else {
      std::memcpy(&v, p + i * 8, 8);
    }
    if (v < 0) {
      fail(labels_path,
           "label " + std::to_string(v) + " at index " + std::to_string(i) + " is negative");
    }
    if (v > std::numeric_limits<int32_t>::max()) {
      fail(labels_path, "label " + std::to_string(v) + " at index " + std::to_string(i) +
                            " does not fit in int32");
    }
    d.labels[static_cast<size_t>(i)] = static_cast<int32_t>(v);
  }
  return d;
}

Dataset load_dataset(const std::string& images_path, const std::string& labels_path) {
  const NdArray images = load_array(images_path);
  const NdArray labels = load_array(labels_path);
  return make_dataset(images, images_path, labels, labels_path);
}

}  // namespace dpt
