// Token shards (llm.c's format): windows and their shifted targets, globs, both token widths,
// and one clean InputError naming the file for every malformed shard.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/token_shards.hpp"
#include "tests/common/expect_input_error.hpp"
#include "tests/common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using dpt::TokenShards;
using dpt::testing::expect_input_error;

class TokenShardsTest : public dpt::testing::TempDirTest {
 protected:
  // A shard written byte by byte: header fields as given, then `tokens` of `width` bytes each.
  std::string raw_shard(const std::string& name, int32_t magic, int32_t version, int32_t count,
                        const std::vector<uint32_t>& tokens, int width) {
    std::vector<int32_t> header(256, 0);
    header[0] = magic;
    header[1] = version;
    header[2] = count;
    std::ofstream f(path(name), std::ios::binary);
    f.write(reinterpret_cast<const char*>(header.data()), 1024);
    for (uint32_t t : tokens) f.write(reinterpret_cast<const char*>(&t), width);
    return path(name);
  }
};

std::vector<uint16_t> iota16(int n, int start) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<uint16_t>(start + i);
  return v;
}

TEST_F(TokenShardsTest, WindowsAreShiftedByOneAndNeverCrossShards) {
  // 10 tokens with T = 3: windows [0..3], [3..6], [6..9]; 7 tokens: [0..3], [3..6].
  dpt::write_token_shard(path("a_000.bin"), iota16(10, 100));
  dpt::write_token_shard(path("a_001.bin"), iota16(7, 200));
  const TokenShards shards({path("a_*.bin")}, "--train-tokens", 3, 1000);
  ASSERT_EQ(shards.num_shards(), 2u);
  EXPECT_EQ(shards.tokens(), 17);
  EXPECT_EQ(shards.windows(), 3 + 2);
  const int32_t expect_x[5][3] = {
      {100, 101, 102}, {103, 104, 105}, {106, 107, 108}, {200, 201, 202}, {203, 204, 205}};
  for (int w = 0; w < 5; ++w) {
    int32_t x[3], y[3];
    shards.gather(w, x, y);
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(x[i], expect_x[w][i]) << "window " << w;
      EXPECT_EQ(y[i], expect_x[w][i] + 1) << "window " << w;
    }
  }
}

TEST_F(TokenShardsTest, GlobsExpandSortedAndFilesKeepTheirOrder) {
  dpt::write_token_shard(path("t_002.bin"), iota16(5, 30));
  dpt::write_token_shard(path("t_001.bin"), iota16(5, 20));
  dpt::write_token_shard(path("u.bin"), iota16(5, 10));
  const auto files =
      dpt::expand_token_sources({path("u.bin"), path("t_*.bin")}, "--train-tokens");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], path("u.bin"));
  EXPECT_EQ(files[1], path("t_001.bin"));
  EXPECT_EQ(files[2], path("t_002.bin"));
  expect_input_error([&] { dpt::expand_token_sources({path("v_*.bin")}, "--val-tokens"); },
                     "option --val-tokens", "matches no file");
}

TEST_F(TokenShardsTest, ReadsTheUint32Variant) {
  const std::string p = raw_shard("wide.bin", dpt::kTokenShardMagicU32, dpt::kTokenShardVersionU32,
                                  5, {70000, 70001, 70002, 5, 6}, 4);
  const TokenShards shards({p}, "--train-tokens", 2, 128256);
  ASSERT_EQ(shards.windows(), 2);
  int32_t x[2], y[2];
  shards.gather(0, x, y);
  EXPECT_EQ(x[0], 70000);
  EXPECT_EQ(x[1], 70001);
  EXPECT_EQ(y[1], 70002);
  shards.gather(1, x, y);
  EXPECT_EQ(x[0], 70002);
  EXPECT_EQ(y[1], 6);
}

TEST_F(TokenShardsTest, MalformedShardsNameTheFile) {
  const std::string magic = raw_shard("magic.bin", 12345, 1, 3, {1, 2, 3}, 2);
  expect_input_error([&] { TokenShards({magic}, "--train-tokens", 1, 256); }, magic,
                     "is not a token shard");
  const std::string version =
      raw_shard("version.bin", dpt::kTokenShardMagicU16, 2, 3, {1, 2, 3}, 2);
  expect_input_error([&] { TokenShards({version}, "--train-tokens", 1, 256); }, version,
                     "version 2, expected 1");
  const std::string version32 =
      raw_shard("version32.bin", dpt::kTokenShardMagicU32, 1, 3, {1, 2, 3}, 4);
  expect_input_error([&] { TokenShards({version32}, "--train-tokens", 1, 256); }, version32,
                     "version 1, expected 7");
  const std::string size = raw_shard("size.bin", dpt::kTokenShardMagicU16, 1, 4, {1, 2, 3}, 2);
  expect_input_error([&] { TokenShards({size}, "--train-tokens", 1, 256); }, size,
                     "header says 4 tokens");
  {
    std::ofstream f(path("short.bin"), std::ios::binary);
    f << "tiny";
  }
  expect_input_error([&] { TokenShards({path("short.bin")}, "--train-tokens", 1, 256); },
                     path("short.bin"), "shorter than a token shard's header");
  expect_input_error([&] { TokenShards({path("missing.bin")}, "--train-tokens", 1, 256); },
                     path("missing.bin"), "cannot open");
  expect_input_error([&] { TokenShards({dir_.string()}, "--train-tokens", 1, 256); },
                     dir_.string(), "is a folder");
}

TEST_F(TokenShardsTest, ATokenOutsideTheVocabularyNamesFileAndPosition) {
  std::vector<uint16_t> t = iota16(9, 0);
  t[6] = 300;
  dpt::write_token_shard(path("big.bin"), t);
  const TokenShards shards({path("big.bin")}, "--train-tokens", 4, 256);
  int32_t x[4], y[4];
  shards.gather(0, x, y);  // tokens 0..4 are in range
  expect_input_error([&] { shards.gather(1, x, y); }, path("big.bin"),
                     "token 300 at position 6 is not below the vocabulary size 256");
}

TEST_F(TokenShardsTest, TooFewTokensForOneWindowNamesTheOption) {
  dpt::write_token_shard(path("few.bin"), iota16(4, 0));
  expect_input_error([&] { TokenShards({path("few.bin")}, "--val-tokens", 4, 256); },
                     "option --val-tokens", "no window of 5 tokens");
}

TEST_F(TokenShardsTest, AFailedWriteLeavesNoFile) {
  const std::string p = path("no_such_folder/x.bin");
  expect_input_error([&] { dpt::write_token_shard(p, iota16(3, 0)); }, p, "cannot write");
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(TokenShardsTest, TokenBatchesGatherWindowsByIndex) {
  dpt::write_token_shard(path("a.bin"), iota16(9, 0));   // windows of 4: [0..4], [4..8]
  dpt::write_token_shard(path("b.bin"), iota16(6, 50));  // [50..54]
  const TokenShards shards({path("a.bin"), path("b.bin")}, "--train-tokens", 4, 256);
  const dpt::TokenBatches batches(shards);
  EXPECT_EQ(batches.size(), 3);
  EXPECT_EQ(batches.input_dtype(), dpt::DataType::I32);
  EXPECT_EQ(batches.sample_shape(), dpt::Shape{4});
  EXPECT_EQ(batches.targets_per_sample(), 4);
  EXPECT_EQ(batches.max_target(), 255);
  const int64_t idx[2] = {2, 0};
  int32_t x[8], y[8];
  batches.gather(idx, 2, x, y);
  const int32_t want_x[8] = {50, 51, 52, 53, 0, 1, 2, 3};
  const int32_t want_y[8] = {51, 52, 53, 54, 1, 2, 3, 4};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(x[i], want_x[i]) << i;
    EXPECT_EQ(y[i], want_y[i]) << i;
  }
}

}  // namespace
