// safetensors: atomic write + read round trip, and a clean InputError for every malformed file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <source_location>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/io/safetensors.hpp"
#include "tests/common/expect_input_error.hpp"
#include "tests/common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

using dpt::testing::expect_input_error;

// A file image: 8-byte little-endian header length, the header text, then `data` bytes.
Bytes st(const std::string& header, size_t data = 0) {
  Bytes b(8 + header.size() + data, 0);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(n >> (8 * i));
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

class Safetensors : public dpt::testing::TempDirTest {
 protected:
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename());
    return names;
  }
};

TEST_F(Safetensors, RoundTripWithMetadata) {
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {-0.5f, 0.25f, 1e-30f};
  const std::string p = (dir_ / "m.safetensors").string();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "12"}};
  dpt::write_safetensors(p, {{"0.weight", {3, 2}, w.data()}, {"0.bias", {3}, b.data()}}, meta);

  const dpt::SafetensorsFile f = dpt::read_safetensors(p);
  EXPECT_EQ(f.metadata, meta);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "0.weight");  // in data order, i.e. the order written
  EXPECT_EQ(f.tensors[0].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(f.tensors[0].data, w);
  ASSERT_NE(f.find("0.bias"), nullptr);
  EXPECT_EQ(f.find("0.bias")->data, b);
  EXPECT_EQ(f.find("nope"), nullptr);

  // The data section starts 8-byte aligned, and the temporary file is gone.
  std::ifstream in(p, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(fs::file_size(p), 8 + n + 4 * (w.size() + b.size()));
  EXPECT_EQ(files(), std::vector<std::string>{"m.safetensors"});

  // Overwriting works and drops metadata when none is given.
  dpt::write_safetensors(p, {{"s", {}, b.data()}, {"e", {0, 4}, nullptr}});
  const dpt::SafetensorsFile g = dpt::read_safetensors(p);
  EXPECT_TRUE(g.metadata.empty());
  ASSERT_EQ(g.tensors.size(), 2u);
  EXPECT_EQ(g.find("s")->data, std::vector<float>{-0.5f});
  EXPECT_TRUE(g.find("e")->data.empty());
  EXPECT_EQ(files(), std::vector<std::string>{"m.safetensors"});
}

TEST_F(Safetensors, TensorsAreReturnedInOffsetOrder) {
  Bytes b = st(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
               8);
  const float one = 1.0f;
  std::memcpy(b.data() + b.size() - 4, &one, 4);
  const dpt::SafetensorsFile f = dpt::parse_safetensors("o.safetensors", b);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "b");
  EXPECT_EQ(f.tensors[1].data, std::vector<float>{1.0f});
}

TEST_F(Safetensors, MissingFile) {
  const std::string p = (dir_ / "none.safetensors").string();
  expect_input_error([&] { dpt::read_safetensors(p); }, p,
                     "cannot open: No such file or directory");
}

TEST_F(Safetensors, WriteIntoMissingFolder) {
  const std::string p = (dir_ / "no" / "x.safetensors").string();
  const float v = 1.0f;
  expect_input_error(
      [&] {
        dpt::write_safetensors(p, {{"v", {1}, &v}});
      },
      p, "cannot write: No such file or directory");
  EXPECT_TRUE(files().empty());
}

TEST_F(Safetensors, BadFiles) {
  const std::string p = "x.safetensors";
  auto parse = [&](const Bytes& b) { return [&p, b] { dpt::parse_safetensors(p, b); }; };
  const std::string ok_entry = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";

  expect_input_error(parse(Bytes{1, 2, 3}), p, "too short");
  Bytes long_len = st("{}");
  long_len[0] = 200;
  expect_input_error(parse(long_len), p, "header length 200 exceeds the 2 bytes");
  Bytes huge_len = st("{}");
  huge_len[7] = 0xff;
  expect_input_error(parse(huge_len), p, "exceeds the");
  expect_input_error(parse(st("not json")), p, "not valid JSON");
  expect_input_error(parse(st("{\"a\xff\": 1}")), p, "not valid JSON");
  expect_input_error(parse(st("[1, 2]")), p, "not a JSON object");
  expect_input_error(parse(st(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", 4)), p,
                     "tensor 't' has dtype F16; only F32 is supported");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)), p,
                     "(3 floats) but data_offsets span 8 bytes");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)), p,
                     "not a range within the data section of 4 bytes");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8)), p,
                     "not a range within the data section");
  expect_input_error(parse(st(R"({"a":{)" + ok_entry +
                                  R"(},"b":{"dtype":"F32","shape":[2],)"
                                  R"("data_offsets":[4,12]}})",
                              12)),
                     p, "overlap");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), p,
                     "not a non-negative integer");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", 8)), p,
                     "not a non-negative integer");
  expect_input_error(
      parse(st(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})")),
      p, "overflows");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[2]}})", 8)), p, "data_offsets");
  expect_input_error(parse(st(R"({"t":{)" + ok_entry + R"(,"extra":1}})", 8)), p,
                     "unexpected key 'extra'");
  expect_input_error(parse(st(R"({"t":{)" + ok_entry + R"(},"t":{)" + ok_entry + "}}", 8)), p,
                     "twice");
  expect_input_error(parse(st(R"({"t":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", 8)), p,
                     "nested too deeply");
  expect_input_error(parse(st(R"({"__metadata__":{"k":1}})")), p, "is not a string");
  expect_input_error(parse(st(R"({"__metadata__":"x"})")), p, "not a JSON object");
  expect_input_error(parse(st("[" + std::string(100000, '[') + std::string(100001, ']'))), p,
                     "nested too deeply");
}

}  // namespace
