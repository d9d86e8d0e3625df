// AtomicFile: a file that appears at its path whole or not at all. The bytes go to a temporary
// name in the same folder; commit() flushes them to disk (fsync) and renames the file over the
// path. Destroyed without commit() (an error on the way), the temporary file is removed, so a
// failed write never leaves a half-written file behind.
#pragma once

#include <cstddef>
#include <string>

namespace dpt {

class AtomicFile {
 public:
  // Creates the temporary file. A folder that does not exist or cannot be written is bad input
  // (InputError naming `path`); any other failure is a SystemError.
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  // fsync, close and rename over the path; then (best effort) fsync the folder, so that the
  // rename itself survives a crash.
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

}  // namespace dpt
