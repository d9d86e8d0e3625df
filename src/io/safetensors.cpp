#include "src/io/safetensors.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

#include "src/core/atomic_file.hpp"
#include "src/core/error.hpp"
#include "src/core/shape.hpp"

namespace dpt {
namespace {

// Tensor data and the length field are little-endian and are copied as is.
static_assert(std::endian::native == std::endian::little,
              "safetensors I/O assumes a little-endian host");

constexpr uint64_t kMaxHeader = 100ull << 20;  // as the reference implementation limits it

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(path + ": " + what);
}

// Names (valid UTF-8) and parser messages (possibly not) go into one-line messages.
std::string printable(std::string s, bool ascii_only = false) {
  for (char& c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || (ascii_only && u > 0x7f)) c = '?';
  }
  return s;
}

uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

// A JSON integer that fits in [0, max], or nothing.
bool as_index(const nlohmann::json& v, uint64_t max, uint64_t& out) {
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
  } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = static_cast<uint64_t>(v.get<int64_t>());
  } else {
    return false;
  }
  return out <= max;
}

Entry parse_entry(const std::string& path, const std::string& name, const nlohmann::json& v,
                  uint64_t data_size) {
  const std::string what = "tensor '" + printable(name) + "'";
  if (!v.is_object()) fail(path, what + " is not a JSON object");
  for (const auto& [key, value] : v.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail(path, what + " has an unexpected key '" + printable(key) + "'");
    }
  }
  const auto dtype = v.find("dtype");
  const auto shape = v.find("shape");
  const auto offsets = v.find("data_offsets");
  if (dtype == v.end() || !dtype->is_string()) fail(path, what + " has no string \"dtype\"");
  if (shape == v.end() || !shape->is_array()) fail(path, what + " has no array \"shape\"");
  if (offsets == v.end() || !offsets->is_array() || offsets->size() != 2) {
    fail(path, what + " has no \"data_offsets\" array of two numbers");
  }
  if (dtype->get<std::string>() != "F32") {
    fail(path,
         what + " has dtype " + printable(dtype->get<std::string>()) + "; only F32 is supported");
  }
  Entry e;
  e.name = name;
  uint64_t numel = 1;
  for (const nlohmann::json& d : *shape) {
    uint64_t dim = 0;
    if (!as_index(d, std::numeric_limits<int64_t>::max(), dim)) {
      fail(path, what + " has a shape entry " + printable(d.dump()) +
                     " that is not a non-negative integer");
    }
    e.shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(numel, dim, &numel)) {
      fail(path, what + " has a shape whose size overflows 64 bits");
    }
  }
  if (!as_index((*offsets)[0], data_size, e.begin) || !as_index((*offsets)[1], data_size, e.end) ||
      e.begin > e.end) {
    fail(path, what + " has data_offsets " + printable(offsets->dump()) +
                   " that are not a range within the data section of " + std::to_string(data_size) +
                   " bytes");
  }
  if (numel > (e.end - e.begin) / 4 || numel * 4 != e.end - e.begin) {
    fail(path, what + " has shape " + printable(shape->dump()) + " (" + std::to_string(numel) +
                   " floats) but data_offsets span " + std::to_string(e.end - e.begin) + " bytes");
  }
  return e;
}

// Parses the header, refusing duplicate keys (nlohmann would keep the last one silently) and
// nesting deeper than the format has (top object > entry object > shape array).
nlohmann::json parse_header(const std::string& path, std::string_view text) {
  std::set<std::string> top_keys, entry_keys;
  auto check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if ((event == E::object_start || event == E::array_start) && depth > 2) {
      fail(path, "header JSON is nested too deeply");
    }
    if (event == E::object_start && depth == 1) entry_keys.clear();
    if (event == E::key && depth <= 2) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!(depth == 1 ? top_keys : entry_keys).insert(key).second) {
        fail(path, "header JSON has the key '" + printable(key) + "' twice");
      }
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();  // "[json.exception.parse_error.101] parse error at ..."
    msg.erase(0, msg.find("] ") == std::string::npos ? 0 : msg.find("] ") + 2);
    fail(path, "header is not valid JSON: " + printable(msg, true));
  }
}

std::vector<uint8_t> read_raw(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  std::vector<uint8_t> out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) out.reserve(static_cast<size_t>(st.st_size));
  constexpr size_t kChunk = 1 << 20;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const ssize_t n = ::read(fd, out.data() + old, kChunk);
    if (n < 0 && errno == EINTR) {
      out.resize(old);
      continue;
    }
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("cannot read: ") + std::strerror(err));
    }
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  ::close(fd);
  return out;
}

}  // namespace

const TensorIn* SafetensorsFile::find(const std::string& name) const {
  for (const TensorIn& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

SafetensorsFile parse_safetensors(const std::string& path, std::span<const uint8_t> bytes) {
  if (bytes.size() < 8) {
    fail(path, "too short for a safetensors file (" + std::to_string(bytes.size()) +
                   " bytes, the header length alone takes 8)");
  }
  const uint64_t header_len = load_le64(bytes.data());
  if (header_len > bytes.size() - 8) {
    fail(path, "header length " + std::to_string(header_len) + " exceeds the " +
                   std::to_string(bytes.size() - 8) + " bytes after the length field");
  }
  if (header_len > kMaxHeader) {
    fail(path, "header length " + std::to_string(header_len) + " exceeds the 100 MiB limit");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_len);
  const nlohmann::json header = parse_header(path, text);
  if (!header.is_object()) fail(path, "header is not a JSON object");

  const std::span<const uint8_t> data = bytes.subspan(8 + header_len);
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(path, "\"__metadata__\" is not a JSON object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string())
          fail(path, "metadata value for '" + printable(key) + "' is not a string");
        file.metadata[key] = v.get<std::string>();
      }
    } else {
      entries.push_back(parse_entry(path, name, value, data.size()));
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].begin < entries[i - 1].end) {
      fail(path, "tensors '" + printable(entries[i - 1].name) + "' and '" +
                     printable(entries[i].name) + "' overlap in the data section");
    }
  }
  for (Entry& e : entries) {
    TensorIn t;
    t.name = std::move(e.name);
    t.shape = std::move(e.shape);
    t.data.resize((e.end - e.begin) / 4);
    if (!t.data.empty()) std::memcpy(t.data.data(), data.data() + e.begin, e.end - e.begin);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::vector<uint8_t> bytes = read_raw(path);
  return parse_safetensors(path, bytes);
}

void write_safetensors(const std::string& path, const std::vector<TensorOut>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given, which is also their order in the data.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const TensorOut& t : tensors) {
    if (t.name == "__metadata__" || header.contains(t.name)) {
      throw std::invalid_argument(path + ": tensor name '" + printable(t.name) +
                                  "' is reserved or used twice");
    }
    const int64_t numel = checked_numel(t.shape);
    if (numel < 0 || numel > (INT64_MAX >> 2)) {
      throw std::invalid_argument(path + ": tensor '" + printable(t.name) + "' has a bad shape");
    }
    if (numel > 0 && t.data == nullptr) {
      throw std::invalid_argument(path + ": tensor '" + printable(t.name) + "' has no data");
    }
    const uint64_t size = static_cast<uint64_t>(numel) * 4;
    nlohmann::ordered_json& e = header[t.name];
    e["dtype"] = "F32";
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + size};
    sizes.push_back(size);
    offset += size;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata that is not UTF-8
    throw std::invalid_argument(path + ": cannot write header: " + printable(e.what()));
  }
  // Spaces after the JSON make the data section start 8-byte aligned, as the reference does.
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();

  AtomicFile file(path);
  file.write(&header_len, 8);
  file.write(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i) file.write(tensors[i].data, sizes[i]);
  file.commit();
}

}  // namespace dpt
