// Token shards: the files a language model trains on, in llm.c's format.
//
// A shard is a header of 256 little-endian int32 (magic, version, token count; the rest unused)
// followed by the tokens: uint16 when the magic is 20240520 (version 1, GPT-2's vocabulary fits),
// uint32 when it is 20240801 (version 7). Shards are memory-mapped; only the windows a step asks
// for are read, so a shard of any size costs no memory up front.
//
// Window i of a shard is its tokens [i*T, i*T + T]: T inputs, and as targets the same T shifted
// by one. A shard of n tokens has (n - 1) / T windows; windows never cross shards. The windows of
// a set of shards are numbered shard by shard, in the order the files were given (a glob's matches
// sorted by name).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dpt {

// A read-only memory map of a whole file; unmapped when destroyed.
class MappedFile {
 public:
  // Throws InputError naming the path when it cannot be opened or mapped.
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

constexpr int32_t kTokenShardMagicU16 = 20240520;
constexpr int32_t kTokenShardVersionU16 = 1;
constexpr int32_t kTokenShardMagicU32 = 20240801;
constexpr int32_t kTokenShardVersionU32 = 7;
constexpr size_t kTokenShardHeaderBytes = 256 * sizeof(int32_t);

// Expands files and glob patterns, in the order given; each pattern's matches sorted by name.
// Throws InputError naming `option` and the pattern when one matches no file.
std::vector<std::string> expand_token_sources(const std::vector<std::string>& sources,
                                              const std::string& option);

class TokenShards {
 public:
  // Maps every file of `sources` (files or globs) and checks each header and size. Throws
  // InputError naming the file for a wrong size, magic or version, and naming `option` when the
  // shards hold no window of block_size + 1 tokens at all.
  TokenShards(const std::vector<std::string>& sources, const std::string& option,
              int64_t block_size, int64_t vocab_size);

  int64_t windows() const { return windows_; }
  int64_t block_size() const { return block_; }
  int64_t vocab_size() const { return vocab_; }
  int64_t tokens() const;  // in all shards
  size_t num_shards() const { return shards_.size(); }
  const std::string& path(size_t shard) const { return shards_[shard].path; }

  // Writes window `w`'s T inputs to x and its T targets to y. Throws InputError naming the file
  // and the token's position when a token is not below vocab_size.
  void gather(int64_t w, int32_t* x, int32_t* y) const;

 private:
  struct Shard {
    std::string path;
    MappedFile map;
    int64_t tokens = 0;
    int token_bytes = 2;
    int64_t first_window = 0;  // the number of this shard's first window
  };
  std::vector<Shard> shards_;
  int64_t block_, vocab_, windows_ = 0;
};

// Writes `tokens` as one shard in the uint16 format (every token must fit in 16 bits), through a
// temporary file renamed into place, so a failed write leaves no partial shard at `path`.
void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace dpt
