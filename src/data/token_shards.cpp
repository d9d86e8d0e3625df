#include "src/data/token_shards.hpp"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

#include "src/core/atomic_file.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {

// Header fields and tokens are little-endian and are read as they lie.
static_assert(std::endian::native == std::endian::little,
              "the token shard reader assumes a little-endian host");

bool has_glob_chars(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

}  // namespace

MappedFile::MappedFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw InputError(path + ": cannot read: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw InputError(path + (S_ISDIR(st.st_mode) ? ": is a folder, not a file"
                                                 : ": is not a regular file"));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw InputError(path + ": cannot map: " + std::strerror(err));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping stays valid without the descriptor
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
  }
  return *this;
}

std::vector<std::string> expand_token_sources(const std::vector<std::string>& sources,
                                              const std::string& option) {
  std::vector<std::string> files;
  for (const std::string& s : sources) {
    if (!has_glob_chars(s)) {
      files.push_back(s);  // a plain file: opening it names the problem, if there is one
      continue;
    }
    glob_t g{};
    const int rc = ::glob(s.c_str(), 0, nullptr, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
      ::globfree(&g);
      throw InputError("option " + option + ": '" + s + "' matches no file");
    }
    if (rc != 0) {
      ::globfree(&g);
      throw InputError("option " + option + ": '" + s + "' cannot be expanded");
    }
    std::vector<std::string> matched(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    ::globfree(&g);
    std::sort(matched.begin(), matched.end());
    files.insert(files.end(), matched.begin(), matched.end());
  }
  if (files.empty()) throw InputError("option " + option + ": no token files given");
  return files;
}

TokenShards::TokenShards(const std::vector<std::string>& sources, const std::string& option,
                         int64_t block_size, int64_t vocab_size)
    : block_(block_size), vocab_(vocab_size) {
  if (block_size < 1) throw InputError("block size must be at least 1");
  if (vocab_size < 1) throw InputError("vocabulary size must be at least 1");
  for (const std::string& path : expand_token_sources(sources, option)) {
    Shard s;
    s.path = path;
    s.map = MappedFile(path);
    if (s.map.size() < kTokenShardHeaderBytes)
      throw InputError(path + ": " + std::to_string(s.map.size()) +
                       " bytes, shorter than a token shard's header (1024 bytes)");
    int32_t header[3];
    std::memcpy(header, s.map.data(), sizeof(header));
    if (header[0] == kTokenShardMagicU16) {
      s.token_bytes = 2;
      if (header[1] != kTokenShardVersionU16)
        throw InputError(path + ": version " + std::to_string(header[1]) +
                         ", expected 1 for uint16 token shards");
    } else if (header[0] == kTokenShardMagicU32) {
      s.token_bytes = 4;
      if (header[1] != kTokenShardVersionU32)
        throw InputError(path + ": version " + std::to_string(header[1]) +
                         ", expected 7 for uint32 token shards");
    } else {
      throw InputError(path + ": magic " + std::to_string(header[0]) + " is not a token shard's (" +
                       std::to_string(kTokenShardMagicU16) + " or " +
                       std::to_string(kTokenShardMagicU32) + ")");
    }
    if (header[2] < 0)
      throw InputError(path + ": negative token count " + std::to_string(header[2]));
    s.tokens = header[2];
    const size_t expected = kTokenShardHeaderBytes + static_cast<size_t>(s.tokens) * s.token_bytes;
    if (s.map.size() != expected)
      throw InputError(path + ": " + std::to_string(s.map.size()) + " bytes, but its header says " +
                       std::to_string(s.tokens) + " tokens (" + std::to_string(expected) +
                       " bytes)");
    s.first_window = windows_;
    windows_ += s.tokens > 0 ? (s.tokens - 1) / block_ : 0;
    shards_.push_back(std::move(s));
  }
  if (windows_ == 0)
    throw InputError("option " + option + ": the token files hold no window of " +
                     std::to_string(block_ + 1) + " tokens (block size + 1)");
}

int64_t TokenShards::tokens() const {
  int64_t n = 0;
  for (const Shard& s : shards_) n += s.tokens;
  return n;
}

void TokenShards::gather(int64_t w, int32_t* x, int32_t* y) const {
  if (w < 0 || w >= windows_)
    throw SystemError("token window " + std::to_string(w) + " out of range");
  // The last shard whose first window is not past w holds it.
  auto it = std::upper_bound(shards_.begin(), shards_.end(), w,
                             [](int64_t v, const Shard& s) { return v < s.first_window; });
  const Shard& s = *(it - 1);
  const int64_t first = (w - s.first_window) * block_;  // token index within the shard
  const uint8_t* base = s.map.data() + kTokenShardHeaderBytes;
  for (int64_t i = 0; i <= block_; ++i) {
    const int64_t at = first + i;
    uint32_t t;
    if (s.token_bytes == 2) {
      uint16_t v;
      std::memcpy(&v, base + at * 2, 2);
      t = v;
    } else {
      std::memcpy(&t, base + at * 4, 4);
    }
    if (t >= static_cast<uint64_t>(vocab_))
      throw InputError(s.path + ": token " + std::to_string(t) + " at position " +
                       std::to_string(at) + " is not below the vocabulary size " +
                       std::to_string(vocab_));
    if (i < block_) x[i] = static_cast<int32_t>(t);
    if (i > 0) y[i - 1] = static_cast<int32_t>(t);
  }
}

void write_token_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    throw InputError(path + ": " + std::to_string(tokens.size()) +
                     " tokens do not fit one shard (at most 2^31 - 1)");
  int32_t header[256] = {};
  header[0] = kTokenShardMagicU16;
  header[1] = kTokenShardVersionU16;
  header[2] = static_cast<int32_t>(tokens.size());
  AtomicFile file(path);
  file.write(header, sizeof(header));
  file.write(tokens.data(), tokens.size() * sizeof(uint16_t));
  file.commit();
}

}  // namespace dpt
