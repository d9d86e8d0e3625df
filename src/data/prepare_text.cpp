#include "src/data/prepare_text.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "src/core/error.hpp"
#include "src/data/token_shards.hpp"

namespace dpt {
namespace {

namespace fs = std::filesystem;

// Files under `path` (itself when it is a file), sorted by path; symlinks followed.
void collect(const std::string& path, std::vector<std::string>& out) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw InputError(path + ": no such file or folder");
  if (fs::is_regular_file(st)) {
    out.push_back(path);
    return;
  }
  if (!fs::is_directory(st)) throw InputError(path + ": neither a file nor a folder");
  std::vector<std::string> found;
  for (auto it = fs::recursive_directory_iterator(
           path, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code e2;
    if (fs::is_regular_file(it->path(), e2)) found.push_back(it->path().string());
  }
  if (ec) throw InputError(path + ": cannot list: " + ec.message());
  std::sort(found.begin(), found.end());
  out.insert(out.end(), found.begin(), found.end());
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InputError(path + ": cannot open");
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) throw InputError(path + ": cannot read");
  return s.str();
}

// Writes tokens into numbered shards of at most `per_shard` tokens each.
class ShardWriter {
 public:
  ShardWriter(std::string prefix, int64_t per_shard, std::vector<std::string>& written)
      : prefix_(std::move(prefix)), per_shard_(per_shard), written_(written) {}
  void add(const std::string& bytes) {
    for (unsigned char c : bytes) {
      buf_.push_back(c);
      if (static_cast<int64_t>(buf_.size()) == per_shard_) flush();
    }
  }
  void flush() {
    if (buf_.empty()) return;
    char name[32];
    std::snprintf(name, sizeof(name), "_%06d.bin", index_++);
    written_.push_back(prefix_ + name);
    write_token_shard(written_.back(), buf_);
    buf_.clear();
  }

 private:
  std::string prefix_;
  int64_t per_shard_;
  std::vector<std::string>& written_;
  std::vector<uint16_t> buf_;
  int index_ = 0;
};

}  // namespace

std::string why_not_text(const std::string& b) {
  size_t i = 0;
  while (i < b.size()) {
    const auto c = static_cast<unsigned char>(b[i]);
    if (c == 0) return "a NUL byte at offset " + std::to_string(i);
    // The number of continuation bytes the lead byte announces; -1 for a byte no UTF-8
    // sequence starts with.
    const int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : -1;
    if (extra < 0 || i + static_cast<size_t>(extra) >= b.size())
      return "not UTF-8 at offset " + std::to_string(i);
    for (int k = 1; k <= extra; ++k)
      if ((static_cast<unsigned char>(b[i + static_cast<size_t>(k)]) >> 6) != 0x2)
        return "not UTF-8 at offset " + std::to_string(i);
    i += 1 + static_cast<size_t>(extra);
  }
  return "";
}

PrepareTextReport prepare_text(const PrepareTextOptions& o) {
  if (!(o.val_fraction >= 0 && o.val_fraction < 1))
    throw InputError("option --val-fraction: " + std::to_string(o.val_fraction) +
                     " is not in [0, 1)");
  if (o.shard_tokens < 1) throw InputError("option --shard-tokens: must be at least 1");
  if (o.inputs.empty()) throw InputError("prepare-text: no input files or folders given");
  if (o.out_dir.empty()) throw InputError("option --out: missing");

  std::vector<std::string> files;
  for (const std::string& in : o.inputs) collect(in, files);

  PrepareTextReport report;
  std::set<fs::path> seen;
  std::vector<std::string> texts;
  for (const std::string& f : files) {
    std::error_code ec;
    const fs::path canon = fs::canonical(f, ec);
    if (!seen.insert(ec ? fs::path(f) : canon).second) continue;  // reached twice
    std::string bytes = read_all(f);
    const std::string why = why_not_text(bytes);
    if (!why.empty()) {
      report.skipped.push_back(f + ": not text (" + why + ")");
      continue;
    }
    if (bytes.empty()) continue;
    report.used.push_back(f);
    texts.push_back(std::move(bytes));
  }
  if (texts.empty())
    throw InputError("prepare-text: no text in " + std::to_string(files.size()) +
                     " file(s) under the inputs given");

  std::error_code ec;
  fs::create_directories(o.out_dir, ec);
  if (ec) throw InputError(o.out_dir + ": cannot create: " + ec.message());
  ShardWriter train(o.out_dir + "/train", o.shard_tokens, report.shards);
  ShardWriter val(o.out_dir + "/val", o.shard_tokens, report.shards);
  for (const std::string& t : texts) {
    // The split point: the first line start at or after (1 - fraction) of the file, or, when
    // the last line holds that point, the start of the last line.
    const size_t at = static_cast<size_t>(static_cast<double>(t.size()) * (1.0 - o.val_fraction));
    size_t cut = t.size();
    if (o.val_fraction > 0) {
      cut = at;
      while (cut < t.size() && cut > 0 && t[cut - 1] != '\n') ++cut;
      if (cut == t.size()) {
        cut = std::min(at, t.size());
        while (cut > 0 && t[cut - 1] != '\n') --cut;
        if (cut == 0) cut = t.size();  // one line: all of it trains
      }
    }
    train.add(t.substr(0, cut));
    val.add(t.substr(cut));
    report.train_tokens += static_cast<int64_t>(cut);
    report.val_tokens += static_cast<int64_t>(t.size() - cut);
  }
  train.flush();
  val.flush();
  return report;
}

}  // namespace dpt
