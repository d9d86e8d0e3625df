// BatchSource: what training and evaluation draw their batches from. A set of samples, each an
// input of one shape and element type and its targets: an image and its label (a classifier:
// one target per sample), or a window of T tokens and the T tokens that follow each (a language
// model: one target per position).
#pragma once

#include <cstdint>

#include "src/core/dtype.hpp"
#include "src/core/shape.hpp"
#include "src/data/dataset.hpp"
#include "src/data/token_shards.hpp"

namespace dpt {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t size() const = 0;  // samples
  // The inputs' element type: float32 (pixels, features) or int32 (token ids).
  virtual DataType input_dtype() const = 0;
  virtual Shape sample_shape() const = 0;            // one sample's input, without the batch
  virtual int64_t targets_per_sample() const = 0;    // 1, or T for a window of T tokens
  // The largest target any sample can have (to check against a model's outputs).
  virtual int32_t max_target() const = 0;
  // Writes the inputs (C order, input_dtype()) and targets of n samples, by index. May throw
  // InputError for bad data found only when read (a token beyond the vocabulary).
  virtual void gather(const int64_t* indices, int64_t n, void* x, int32_t* y) const = 0;
};

// A labelled data set in memory (images or features, float32 inputs, one label each). A view:
// `data` must outlive it (a temporary Dataset leaves it dangling).
class ImageBatches final : public BatchSource {
 public:
  explicit ImageBatches(const Dataset& data) : data_(data) {}
  explicit ImageBatches(Dataset&&) = delete;
  int64_t size() const override { return data_.count; }
  DataType input_dtype() const override { return DataType::F32; }
  Shape sample_shape() const override {
    return Shape(data_.sample_shape.begin(), data_.sample_shape.end());
  }
  int64_t targets_per_sample() const override { return 1; }
  int32_t max_target() const override { return data_.max_label(); }
  void gather(const int64_t* indices, int64_t n, void* x, int32_t* y) const override {
    data_.gather(indices, n, static_cast<float*>(x), y);
  }
  const Dataset& data() const { return data_; }

 private:
  const Dataset& data_;
};

// The windows of token shards: sample i is window i (TokenShards numbers them shard by shard),
// its input the window's T tokens, its targets the next token at each position.
class TokenBatches final : public BatchSource {
 public:
  explicit TokenBatches(const TokenShards& shards) : shards_(shards) {}
  int64_t size() const override { return shards_.windows(); }
  DataType input_dtype() const override { return DataType::I32; }
  Shape sample_shape() const override { return {shards_.block_size()}; }
  int64_t targets_per_sample() const override { return shards_.block_size(); }
  int32_t max_target() const override { return static_cast<int32_t>(shards_.vocab_size() - 1); }
  void gather(const int64_t* indices, int64_t n, void* x, int32_t* y) const override;
  const TokenShards& shards() const { return shards_; }

 private:
  const TokenShards& shards_;
};

}  // namespace dpt
