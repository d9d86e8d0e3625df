// .npy files: "\x93NUMPY", version, header length, a Python dict literal header, then raw data.
#include <bit>
#include <cstring>
#include <limits>
#include <string_view>

#include "src/core/error.hpp"
#include "src/data/dataset.hpp"

namespace dpt {
namespace {

// The data of the supported dtypes is little-endian and is copied as is.
static_assert(std::endian::native == std::endian::little,
              "the .npy reader assumes a little-endian host");

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

// Header text goes into one-line messages: show anything but printable ASCII as '?'.
std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
};

// A strict reader of the dict numpy writes, e.g. {'descr': '<f4', 'fortran_order': False,
// 'shape': (60000, 28, 28), }: only the three keys, each once, in any order; no expressions.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view text) : path_(path), s_(text) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    auto once = [&](bool& seen, const std::string& key) {
      if (seen) error("key '" + key + "' appears twice");
      seen = true;
    };
    skip_ws();
    expect('{');
    skip_ws();
    while (!eat('}')) {
      const std::string key = string_literal();
      skip_ws();
      expect(':');
      skip_ws();
      if (key == "descr") {
        once(seen_descr, key);
        h.descr = string_literal();
      } else if (key == "fortran_order") {
        once(seen_fortran, key);
        h.fortran_order = boolean();
      } else if (key == "shape") {
        once(seen_shape, key);
        h.shape = tuple();
      } else {
        error("unexpected key '" + printable(key) + "'");
      }
      skip_ws();
      if (eat(',')) {
        skip_ws();
        continue;
      }
      expect('}');
      break;
    }
    skip_ws();  // numpy pads with spaces and ends the header with '\n'
    if (pos_ != s_.size()) error("unexpected text after the closing '}'");
    if (!seen_descr) error("missing key 'descr'");
    if (!seen_fortran) error("missing key 'fortran_order'");
    if (!seen_shape) error("missing key 'shape'");
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    fail(path_, "malformed .npy header: " + what + " (at character " + std::to_string(pos_) + ")");
  }
  bool at_end() const { return pos_ >= s_.size(); }
  void skip_ws() {
    while (!at_end() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }
  bool eat(char c) {
    if (at_end() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!eat(c)) error(std::string("expected '") + c + "'");
  }
  // 'text' or "text"; numpy never writes escapes, so a backslash is refused.
  std::string string_literal() {
    if (at_end() || (s_[pos_] != '\'' && s_[pos_] != '"')) error("expected a quoted string");
    const char quote = s_[pos_++];
    const size_t begin = pos_;
    while (!at_end() && s_[pos_] != quote) {
      if (s_[pos_] == '\\' || static_cast<unsigned char>(s_[pos_]) < 0x20) {
        error("unsupported character in a string");
      }
      ++pos_;
    }
    if (at_end()) error("unterminated string");
    return std::string(s_.substr(begin, pos_++ - begin));
  }
  bool boolean() {
    for (const std::string_view word : {"True", "False"}) {
      if (s_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return word == "True";
      }
    }
    error("expected True or False");
  }
  int64_t integer() {
    if (at_end() || s_[pos_] < '0' || s_[pos_] > '9') error("expected a non-negative integer");
    int64_t v = 0;
    while (!at_end() && s_[pos_] >= '0' && s_[pos_] <= '9') {
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[pos_] - '0', &v)) {
        error("dimension does not fit in 64 bits");
      }
      ++pos_;
    }
    return v;
  }
  // (), (5,), (5, 3) or (5, 3,); (5) is an int in Python, not a tuple, so it is refused.
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    skip_ws();
    if (eat(')')) return dims;
    for (;;) {
      dims.push_back(integer());
      skip_ws();
      if (eat(',')) {
        skip_ws();
        if (eat(')')) return dims;
        continue;
      }
      if (dims.size() == 1) error("a one-element shape needs a trailing comma: (N,)");
      expect(')');
      return dims;
    }
  }

  const std::string& path_;
  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

NdArray parse_npy(const std::string& path, std::span<const uint8_t> bytes) {
  if (bytes.size() < 6 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0) {
    fail(path, "not a .npy file (no \\x93NUMPY magic)");
  }
  if (bytes.size() < 8) fail(path, "truncated: the .npy preamble is cut short");
  const unsigned major = bytes[6], minor = bytes[7];
  // Version 1 stores the header length in 2 bytes, versions 2 and 3 in 4 (both little-endian).
  const size_t len_bytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (len_bytes == 0) {
    fail(path, "unsupported .npy format version " + std::to_string(major) + "." +
                   std::to_string(minor) + " (supported: 1.x, 2.x, 3.x)");
  }
  const size_t start = 8 + len_bytes;
  if (bytes.size() < start) fail(path, "truncated: the .npy preamble is cut short");
  uint64_t header_len = 0;
  for (size_t i = 0; i < len_bytes; ++i) header_len |= uint64_t{bytes[8 + i]} << (8 * i);
  if (header_len > bytes.size() - start) {
    fail(path, "truncated: header length " + std::to_string(header_len) + " exceeds the " +
                   std::to_string(bytes.size() - start) + " bytes after the preamble");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + start), header_len);
  const NpyHeader h = HeaderParser(path, text).parse();

  NdArray a;
  size_t elem = 0;
  if (h.descr == "|u1" || h.descr == "<u1" || h.descr == "u1") {
    a.dtype = DataType::U8;
    elem = 1;
  } else if (h.descr == "<i4") {
    a.dtype = DataType::I32;
    elem = 4;
  } else if (h.descr == "<i8") {
    a.dtype = DataType::I64;
    elem = 8;
  } else if (h.descr == "<f4") {
    a.dtype = DataType::F32;
    elem = 4;
  } else {
    const bool big = !h.descr.empty() && h.descr[0] == '>';
    fail(path, "unsupported dtype '" + printable(h.descr) + "' (" + (big ? "big-endian; " : "") +
                   "supported: |u1, <i4, <i8, <f4)");
  }
  if (h.fortran_order) fail(path, "Fortran order is not supported (save the array in C order)");
  a.shape = h.shape;

  // Compare the declared size with what is there before allocating anything.
  const int64_t n = checked_numel(a.shape);
  if (n < 0 || static_cast<uint64_t>(n) > std::numeric_limits<uint64_t>::max() / elem) {
    fail(path, "shape " + shape_to_string(a.shape) + " is too large (size overflows 64 bits)");
  }
  const uint64_t want = static_cast<uint64_t>(n) * elem;
  const uint64_t have = bytes.size() - start - header_len;
  if (want != have) {
    fail(path, std::string(want > have ? "truncated" : "trailing bytes") + ": header declares " +
                   std::to_string(want) + " bytes of data, file has " + std::to_string(have));
  }
  a.bytes.assign(bytes.begin() + static_cast<ptrdiff_t>(start + header_len), bytes.end());
  return a;
}

}  // namespace dpt
