// prepare-text: byte tokens, the validation split on line boundaries, files that are not text
// skipped, inputs reached twice used once, shard sizes, and bad options refused up front.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "src/data/prepare_text.hpp"
#include "src/data/token_shards.hpp"
#include "tests/common/expect_input_error.hpp"
#include "tests/common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using dpt::testing::expect_input_error;

class PrepareText : public dpt::testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "in" / "sub");
  }
  void put(const std::string& name, const std::string& bytes) {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  // Every token of the shards matching `pattern`, in order, as bytes.
  std::string tokens_of(const std::string& pattern) {
    const dpt::TokenShards s({path(pattern)}, "test", 1, 256);
    std::string out;
    for (int64_t w = 0; w < s.windows(); ++w) {
      int32_t x, y;
      s.gather(w, &x, &y);
      out += static_cast<char>(x);
      if (w + 1 == s.windows()) out += static_cast<char>(y);
    }
    return out;
  }
};

TEST_F(PrepareText, SplitsEachFileOnALineAndSkipsWhatIsNotText) {
  put("in/a.txt", "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n");  // 49 bytes
  put("in/sub/b.txt", "h\xc3\xa9llo\nw\xc3\xb6rld\n");
  put("in/a.dat", std::string("\x01\x02\0\x03", 4));
  put("in/latin1.txt", "caf\xe9\n");
  fs::create_symlink(path("in/a.txt"), path("in/sub/a.u8"));
  dpt::PrepareTextOptions o;
  o.inputs = {path("in")};
  o.out_dir = path("out");
  o.val_fraction = 0.25;
  const dpt::PrepareTextReport r = dpt::prepare_text(o);
  ASSERT_EQ(r.used.size(), 2u);
  EXPECT_EQ(r.used[0], path("in/a.txt"));
  EXPECT_EQ(r.used[1], path("in/sub/b.txt"));
  ASSERT_EQ(r.skipped.size(), 2u);
  EXPECT_NE(r.skipped[0].find("a.dat: not text (a NUL byte at offset 2)"), std::string::npos);
  EXPECT_NE(r.skipped[1].find("latin1.txt: not text (not UTF-8 at offset 3)"), std::string::npos);
  // a.txt: 49 * 0.75 = 36.75 -> 36 is inside "eight\n" (bytes 34..39): the cut moves to 40.
  // b.txt (14 bytes): 10.5 -> 10 is inside its last line "wörld\n" (7..13): the cut moves back
  // to that line's start, 7.
  EXPECT_EQ(tokens_of("out/train_*.bin"),
            "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nh\xc3\xa9llo\n");
  EXPECT_EQ(tokens_of("out/val_*.bin"), "nine\nten\nw\xc3\xb6rld\n");
  EXPECT_EQ(r.train_tokens, 40 + 7);
  EXPECT_EQ(r.val_tokens, 9 + 7);
}

TEST_F(PrepareText, AFileOfOneLineAllTrains) {
  put("in/one.txt", "a single line\n");
  dpt::PrepareTextOptions o;
  o.inputs = {path("in/one.txt")};
  o.out_dir = path("out");
  const dpt::PrepareTextReport r = dpt::prepare_text(o);
  EXPECT_EQ(r.train_tokens, 14);
  EXPECT_EQ(r.val_tokens, 0);
  EXPECT_EQ(tokens_of("out/train_*.bin"), "a single line\n");
}

TEST_F(PrepareText, ShardsHoldAtMostTheirSize) {
  put("in/a.txt", std::string(25, 'x'));
  dpt::PrepareTextOptions o;
  o.inputs = {path("in/a.txt")};
  o.out_dir = path("out");
  o.val_fraction = 0;
  o.shard_tokens = 10;
  const dpt::PrepareTextReport r = dpt::prepare_text(o);
  ASSERT_EQ(r.shards.size(), 3u);
  EXPECT_EQ(r.shards[2], path("out/train_000002.bin"));
  EXPECT_EQ(fs::file_size(r.shards[0]), 1024u + 2 * 10);
  EXPECT_EQ(fs::file_size(r.shards[2]), 1024u + 2 * 5);
  EXPECT_FALSE(fs::exists(path("out/val_000000.bin")));
}

TEST_F(PrepareText, BadInputIsRefusedBeforeAnyShard) {
  dpt::PrepareTextOptions o;
  o.out_dir = path("out");
  o.inputs = {path("in/missing.txt")};
  expect_input_error([&] { dpt::prepare_text(o); }, path("in/missing.txt"), "no such file");
  put("in/bin.dat", std::string("\0\0", 2));
  o.inputs = {path("in")};
  expect_input_error([&] { dpt::prepare_text(o); }, "prepare-text", "no text");
  put("in/a.txt", "text\n");
  o.val_fraction = 1.0;
  expect_input_error([&] { dpt::prepare_text(o); }, "option --val-fraction", "not in [0, 1)");
  EXPECT_FALSE(fs::exists(path("out")));
}

TEST(WhyNotText, AcceptsUtf8AndNamesTheFirstBadByte) {
  EXPECT_EQ(dpt::why_not_text("plain\ttext\n"), "");
  EXPECT_EQ(dpt::why_not_text("\xe2\x82\xac \xf0\x9f\x98\x80"), "");
  EXPECT_EQ(dpt::why_not_text("ab\xe2\x82"), "not UTF-8 at offset 2");  // cut short
  EXPECT_EQ(dpt::why_not_text("a\x80"), "not UTF-8 at offset 1");       // stray continuation
}

}  // namespace
