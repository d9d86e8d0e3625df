// IDX / .npy readers and Dataset: round trips, and a clean InputError for every kind of bad file.
#include <gtest/gtest.h>
#include <unistd.h>
#if DPT_WITH_ZLIB
#include <zlib.h>
#endif

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <source_location>
#include <string>
#include <vector>

#include "src/core/error.hpp"
#include "src/data/dataset.hpp"
#include "tests/common/expect_input_error.hpp"
#include "tests/common/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

using dpt::testing::expect_input_error;

class DataReaders : public dpt::testing::TempDirTest {
 protected:
  std::string write(const std::string& name, const Bytes& b) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    return p;
  }
#if DPT_WITH_ZLIB
  std::string write_gz(const std::string& name, const Bytes& b) {
    const std::string p = (dir_ / name).string();
    gzFile f = gzopen(p.c_str(), "wb");
    EXPECT_NE(f, nullptr);
    EXPECT_EQ(gzwrite(f, b.data(), static_cast<unsigned>(b.size())), static_cast<int>(b.size()));
    EXPECT_EQ(gzclose(f), Z_OK);
    return p;
  }
#endif
};

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

Bytes idx(uint8_t type, const std::vector<uint32_t>& dims, const Bytes& data) {
  Bytes b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) put_be32(b, d);
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

// A .npy file as numpy writes it: header padded with spaces to a multiple of 64, ending in '\n'.
Bytes npy(const std::string& dict, const Bytes& data, int major = 1) {
  const size_t pre = major == 1 ? 10 : 12;
  std::string h = dict;
  while ((pre + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  Bytes b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < pre - 8; ++i) b.push_back(static_cast<uint8_t>(h.size() >> (8 * i)));
  b.insert(b.end(), h.begin(), h.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

template <class T>
Bytes raw(const std::vector<T>& v) {
  Bytes b(v.size() * sizeof(T));
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

template <class T>
std::vector<T> values(const dpt::NdArray& a) {
  std::vector<T> v(a.bytes.size() / sizeof(T));
  std::memcpy(v.data(), a.bytes.data(), a.bytes.size());
  return v;
}

dpt::NdArray array(dpt::DataType t, std::vector<int64_t> shape, Bytes bytes) {
  dpt::NdArray a;
  a.dtype = t;
  a.shape = std::move(shape);
  a.bytes = std::move(bytes);
  return a;
}

TEST_F(DataReaders, IdxU8ThreeDimRoundTrip) {
  const Bytes pixels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255};
  const dpt::NdArray a = dpt::load_array(write("x.idx", idx(0x08, {2, 2, 3}, pixels)));
  EXPECT_EQ(a.dtype, dpt::DataType::U8);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2, 3}));
  EXPECT_EQ(a.numel(), 12);
  EXPECT_EQ(a.bytes, pixels);
}

TEST_F(DataReaders, IdxInt32AndFloat32AreConvertedFromBigEndian) {
  Bytes data;
  put_be32(data, 0x01020304);
  put_be32(data, 0xFFFFFFFE);  // -2
  const dpt::NdArray i = dpt::load_array(write("i.idx", idx(0x0C, {2}, data)));
  EXPECT_EQ(i.dtype, dpt::DataType::I32);
  EXPECT_EQ(values<int32_t>(i), (std::vector<int32_t>{0x01020304, -2}));

  Bytes fdata;
  put_be32(fdata, 0x3FC00000);  // 1.5f
  const dpt::NdArray f = dpt::load_array(write("f.idx", idx(0x0D, {1, 1}, fdata)));
  EXPECT_EQ(f.dtype, dpt::DataType::F32);
  EXPECT_EQ(values<float>(f), (std::vector<float>{1.5f}));
}

#if DPT_WITH_ZLIB
TEST_F(DataReaders, GzippedIdxIsInflated) {
  Bytes pixels(28 * 28 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  const dpt::NdArray a = dpt::load_array(write_gz("x.idx.gz", idx(0x08, {3, 28, 28}, pixels)));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 28, 28}));
  EXPECT_EQ(a.bytes, pixels);
}

TEST_F(DataReaders, CorruptGzipIsAnInputError) {
  Bytes b = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const std::string p = write("bad.gz", b);
  expect_input_error([&] { dpt::read_file_bytes(p); }, p, "corrupt gzip");

  // A valid gzip stream cut in half.
  const std::string whole = write_gz("whole.gz", idx(0x08, {1000}, Bytes(1000, 42)));
  std::ifstream in(whole, std::ios::binary);
  Bytes gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  gz.resize(gz.size() / 2);
  const std::string cut = write("cut.gz", gz);
  expect_input_error([&] { dpt::read_file_bytes(cut); }, cut, "corrupt gzip");
}
#else
// A build without zlib refuses a gzip stream (known by its magic bytes) in one line, whatever the
// file is called, and still reads the same data uncompressed.
TEST_F(DataReaders, GzipWithoutZlibIsAnInputError) {
  const Bytes gzip_header = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x63, 0x60, 0x00, 0x00};
  const std::string p = write("x.idx", gzip_header);
  for (const auto& read : {std::function<void()>([&] { dpt::read_file_bytes(p); }),
                           std::function<void()>([&] { dpt::load_array(p); })}) {
    try {
      read();
      ADD_FAILURE() << "no error for " << p;
    } catch (const dpt::InputError& e) {
      EXPECT_EQ(std::string(e.what()),
                p + ": gzip-compressed, but this build has no zlib (gunzip it first)");
    }
  }
  const Bytes pixels(2 * 28 * 28, 7);
  EXPECT_EQ(dpt::load_array(write("x.raw.idx", idx(0x08, {2, 28, 28}, pixels))).bytes, pixels);
}
#endif

TEST_F(DataReaders, NpyU8Version1) {
  const Bytes pixels = {1, 2, 3, 4, 5, 6};
  const dpt::NdArray a = dpt::load_array(
      write("u8.npy", npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }", pixels)));
  EXPECT_EQ(a.dtype, dpt::DataType::U8);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.bytes, pixels);
}

TEST_F(DataReaders, NpyF4Version2AnyKeyOrderAndQuotes) {
  const std::vector<float> v = {0.5f, -1.25f, 3.0f};
  const dpt::NdArray a = dpt::load_array(
      write("f4.npy", npy(R"({"shape":(3,),"fortran_order":False,"descr":"<f4"})", raw(v), 2)));
  EXPECT_EQ(a.dtype, dpt::DataType::F32);
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(values<float>(a), v);
}

TEST_F(DataReaders, NpyI8StaysInt64InBothVersions) {
  const std::vector<int64_t> v = {7, -1, int64_t{1} << 40};
  for (int major : {1, 2}) {
    const dpt::NdArray a = dpt::load_array(write(
        "i8.npy", npy("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw(v), major)));
    EXPECT_EQ(a.dtype, dpt::DataType::I64);
    EXPECT_EQ(values<int64_t>(a), v);
  }
}

TEST_F(DataReaders, NpyScalarAndEmptyShapes) {
  const dpt::NdArray s = dpt::parse_npy(
      "s.npy", npy("{'descr': '<i4', 'fortran_order': False, 'shape': (), }", raw<int32_t>({9})));
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(s.numel(), 1);
  const dpt::NdArray e =
      dpt::parse_npy("e.npy", npy("{'descr': 'u1', 'fortran_order': False, 'shape': (0, 5)}", {}));
  EXPECT_EQ(e.numel(), 0);
}

TEST_F(DataReaders, MissingFile) {
  const std::string p = (dir_ / "nope.idx").string();
  expect_input_error([&] { dpt::load_array(p); }, p, "cannot open: No such file or directory");
  const std::string d = dir_.string();
  expect_input_error([&] { dpt::load_array(d); }, d, "cannot read: Is a directory");
}

TEST_F(DataReaders, UnrecognisedMagic) {
  const std::string p = write("x.bin", {'G', 'I', 'F', '8', '9'});
  expect_input_error([&] { dpt::load_array(p); }, p, "unrecognised magic bytes 47 49 46 38");
}

TEST_F(DataReaders, WrongIdxMagic) {
  const std::string p = write("x.idx", idx(0x0A, {1}, {0}));
  expect_input_error([&] { dpt::load_array(p); }, p, "unsupported IDX data type code 0x0a");
  expect_input_error(
      [&] {
        dpt::parse_idx(p, Bytes{1, 0, 8, 1, 0, 0, 0, 0});
      },
      p, "wrong IDX magic 0x01000801");
  expect_input_error(
      [&] {
        dpt::parse_idx(p, idx(0x08, {1, 1, 1, 1, 1}, {0}));
      },
      p, "5 dimensions");
}

TEST_F(DataReaders, TruncatedIdx) {
  const std::string p = write("x.idx", idx(0x08, {10, 28, 28}, Bytes(100)));
  expect_input_error([&] { dpt::load_array(p); }, p,
                     "truncated: header declares 7840 bytes of data, file has 100");
  expect_input_error([&] { dpt::parse_idx(p, Bytes{0, 0, 8, 3, 0, 0}); }, p, "truncated");
}

TEST_F(DataReaders, IdxTrailingBytes) {
  const std::string p = write("x.idx", idx(0x0C, {2}, Bytes(9)));
  expect_input_error([&] { dpt::load_array(p); }, p,
                     "trailing bytes: header declares 8 bytes of data, file has 9");
}

TEST_F(DataReaders, HugeDeclaredDimsThrowWithoutAllocating) {
  const std::string p = "huge.idx";
  expect_input_error(
      [&] {
        dpt::parse_idx(p, idx(0x08, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
      },
      p, "too large");
  expect_input_error(
      [&] {
        dpt::parse_idx(p, idx(0x0D, {0xFFFF, 0xFFFF, 0xFFFF}, {1, 2}));
      },
      p, "truncated");
  expect_input_error(
      [&] {
        dpt::parse_npy(p, npy("{'descr': '<f4', 'fortran_order': False, "
                              "'shape': (9223372036854775807, 2), }",
                              {}));
      },
      p, "too large");
  expect_input_error(
      [&] {
        dpt::parse_npy(
            p,
            npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", {}));
      },
      p, "does not fit in 64 bits");
}

TEST_F(DataReaders, TruncatedNpy) {
  const std::string p = write(
      "t.npy",
      npy("{'descr': '|u1', 'fortran_order': False, 'shape': (60000, 28, 28), }", Bytes(1200)));
  expect_input_error([&] { dpt::load_array(p); }, p,
                     "truncated: header declares 47040000 bytes of data, file has 1200");
  Bytes cut = npy("{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }", {1});
  cut.resize(30);  // inside the header
  expect_input_error([&] { dpt::parse_npy(p, cut); }, p, "truncated: header length");
  expect_input_error(
      [&] {
        dpt::parse_npy(p, Bytes{0x93, 'N', 'U', 'M', 'P', 'Y', 1});
      },
      p, "truncated");
  expect_input_error(
      [&] {
        dpt::parse_npy(p,
                       npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", Bytes(5)));
      },
      p, "trailing bytes");
}

TEST_F(DataReaders, NpyUnsupportedDtypes) {
  const std::string p = write(
      "labels.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", Bytes(8)));
  expect_input_error([&] { dpt::load_array(p); }, p,
                     "unsupported dtype '<f8' (supported: |u1, <i4, <i8, <f4)");
  const std::string q =
      write("be.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", Bytes(4)));
  expect_input_error([&] { dpt::load_array(q); }, q, "unsupported dtype '>f4' (big-endian");
  expect_input_error(
      [&] {
        dpt::parse_npy(q,
                       npy("{'descr': '|i1', 'fortran_order': False, 'shape': (1,), }", Bytes(1)));
      },
      q, "unsupported dtype '|i1'");
}

TEST_F(DataReaders, NpyFortranOrder) {
  const std::string p =
      write("f.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", Bytes(16)));
  expect_input_error([&] { dpt::load_array(p); }, p, "Fortran order is not supported");
}

TEST_F(DataReaders, MalformedNpyHeaders) {
  const std::string p = "m.npy";
  for (const char* dict : {
           "",
           "{'descr': '<f4', 'fortran_order': False}",                         // no shape
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",  // extra key
           "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
           "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
           "{'descr': '<f4\", 'fortran_order': False, 'shape': (1,)}",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
           "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
           "{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
       }) {
    expect_input_error([&] { dpt::parse_npy(p, npy(dict, Bytes(4))); }, p, "malformed .npy header");
  }
  Bytes v9 = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", Bytes(4));
  v9[6] = 9;
  expect_input_error([&] { dpt::parse_npy(p, v9); }, p, "unsupported .npy format version 9.0");
}

TEST_F(DataReaders, ImageLabelCountMismatch) {
  const std::string xi = write("x.idx", idx(0x08, {3, 2, 2}, Bytes(12)));
  const std::string yi = write("y.idx", idx(0x08, {2}, {0, 1}));
  expect_input_error([&] { dpt::load_dataset(xi, yi); }, xi,
                     "3 images but " + yi + " has 2 labels");
}

TEST_F(DataReaders, LabelsOfWrongNdim) {
  const std::string xi = write("x.idx", idx(0x08, {2, 2, 2}, Bytes(8)));
  const std::string yi = write("y.idx", idx(0x08, {2, 1}, {0, 1}));
  expect_input_error([&] { dpt::load_dataset(xi, yi); }, yi, "labels must have shape (N,)");
}

TEST_F(DataReaders, NegativeAndHugeLabels) {
  const dpt::NdArray x = array(dpt::DataType::U8, {3, 1}, Bytes(3));
  expect_input_error(
      [&] {
        dpt::make_dataset(x, "x.npy", array(dpt::DataType::I32, {3}, raw<int32_t>({0, 4, -3})),
                          "y.npy");
      },
      "y.npy", "label -3 at index 2 is negative");
  expect_input_error(
      [&] {
        dpt::make_dataset(
            x, "x.npy", array(dpt::DataType::I64, {3}, raw<int64_t>({0, 3000000000, 1})), "y.npy");
      },
      "y.npy", "label 3000000000 at index 1 does not fit in int32");
}

TEST_F(DataReaders, BadImageArrays) {
  const dpt::NdArray y = array(dpt::DataType::U8, {2}, {0, 1});
  expect_input_error(
      [&] {
        dpt::make_dataset(array(dpt::DataType::I32, {2, 1}, Bytes(8)), "x", y, "y");
      },
      "x", "must be uint8 or float32");
  expect_input_error(
      [&] { dpt::make_dataset(array(dpt::DataType::U8, {2}, Bytes(2)), "x", y, "y"); }, "x",
      "images must have shape");
  expect_input_error(
      [&] {
        dpt::make_dataset(array(dpt::DataType::U8, {0, 4}, {}), "x",
                          array(dpt::DataType::U8, {0}, {}), "y");
      },
      "x", "no images");
  expect_input_error(
      [&] {
        dpt::make_dataset(array(dpt::DataType::F32, {2, 1},
                                raw<float>({1.0f, std::numeric_limits<float>::quiet_NaN()})),
                          "x", y, "y");
      },
      "x", "not finite");
}

TEST_F(DataReaders, DatasetShapesAndGather) {
  // (N, H, W) uint8 -> sample shape {1, H, W}; values scale by 1/255.
  const std::string xi = write("x.idx", idx(0x08, {3, 1, 2}, {0, 255, 51, 102, 7, 8}));
  const std::string yi = write("y.npy", npy("{'descr': '<i8', 'fortran_order': False, "
                                            "'shape': (3,), }",
                                            raw<int64_t>({4, 0, 9})));
  const dpt::Dataset d = dpt::load_dataset(xi, yi);
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.sample_shape, (std::vector<int64_t>{1, 1, 2}));
  EXPECT_EQ(d.sample_numel(), 2);
  EXPECT_EQ(d.max_label(), 9);
  EXPECT_TRUE(d.pixels_f32.empty());
  EXPECT_EQ(d.pixels_u8.size(), 6u);

  const int64_t idxs[] = {2, 0, 0};
  float x[6];
  int32_t y[3];
  d.gather(idxs, 3, x, y);
  EXPECT_EQ(x[0], static_cast<float>(7) / 255.0f);
  EXPECT_EQ(x[1], static_cast<float>(8) / 255.0f);
  EXPECT_EQ(x[2], 0.0f);
  EXPECT_EQ(x[3], 1.0f);  // exactly
  EXPECT_EQ(x[4], 0.0f);
  EXPECT_EQ(x[5], 1.0f);
  EXPECT_EQ(y[0], 9);
  EXPECT_EQ(y[1], 4);
  EXPECT_EQ(y[2], 4);
  const int64_t bad[] = {3};
  EXPECT_THROW(d.gather(bad, 1, x, y), std::out_of_range);

  // (N, C, H, W) float32 is used as is; (N, F) gives {F}.
  const dpt::NdArray labels = array(dpt::DataType::U8, {2}, {1, 0});
  const dpt::Dataset f = dpt::make_dataset(
      array(dpt::DataType::F32, {2, 2, 1, 1}, raw<float>({0.25f, -2.0f, 3.5f, 4.0f})), "x", labels,
      "y");
  EXPECT_EQ(f.sample_shape, (std::vector<int64_t>{2, 1, 1}));
  EXPECT_TRUE(f.pixels_u8.empty());
  const int64_t one[] = {1};
  f.gather(one, 1, x, y);
  EXPECT_EQ(x[0], 3.5f);
  EXPECT_EQ(x[1], 4.0f);
  EXPECT_EQ(y[0], 0);
  const dpt::Dataset flat =
      dpt::make_dataset(array(dpt::DataType::U8, {2, 5}, Bytes(10)), "x", labels, "y");
  EXPECT_EQ(flat.sample_shape, (std::vector<int64_t>{5}));
}

TEST(DataHelpers, ShapeToStringAndDtypeName) {
  EXPECT_EQ(dpt::shape_to_string(std::vector<int64_t>{60000, 28, 28}), "(60000, 28, 28)");
  EXPECT_EQ(dpt::shape_to_string(std::vector<int64_t>{5}), "(5,)");
  EXPECT_EQ(dpt::shape_to_string(std::vector<int64_t>{}), "()");
  EXPECT_EQ(dpt::checked_numel(std::vector<int64_t>{int64_t{1} << 62, 4}), -1);
  EXPECT_STREQ(dpt::dtype_name(dpt::DataType::I64), "int64");
  EXPECT_STREQ(dpt::dtype_name(dpt::DataType::F32), "float32");
}

}  // namespace

// Regression: found by fuzzing the IDX reader, an array with a zero dimension once passed a null
// pointer to memcpy (UBSan). It must parse as an empty array; a data set of it is refused.
TEST(DataReadersRegression, IdxWithAZeroDimensionIsAnEmptyArray) {
  for (uint8_t type : {uint8_t{0x08}, uint8_t{0x0C}, uint8_t{0x0D}}) {
    const Bytes b = idx(type, {0, 28, 28}, {});
    const dpt::NdArray a = dpt::parse_idx("empty.idx", {b.data(), b.size()});
    EXPECT_EQ(a.numel(), 0);
    EXPECT_TRUE(a.bytes.empty());
  }
  const Bytes images = idx(0x08, {0, 2, 2}, {});
  const Bytes labels = idx(0x08, {0}, {});
  const dpt::NdArray im = dpt::parse_idx("empty-images.idx", {images.data(), images.size()});
  const dpt::NdArray lb = dpt::parse_idx("empty-labels.idx", {labels.data(), labels.size()});
  EXPECT_THROW(dpt::make_dataset(im, "empty-images.idx", lb, "empty-labels.idx"), dpt::InputError);
}
