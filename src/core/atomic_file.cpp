#include "src/core/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "src/core/error.hpp"

namespace dpt {
namespace {

[[noreturn]] void system_fail(const std::string& path, const std::string& what, int err) {
  throw SystemError(path + ": " + what + ": " + std::strerror(err));
}

}  // namespace

AtomicFile::AtomicFile(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int err = errno;
    done_ = true;  // nothing was created, so there is nothing to remove
    // A path the user got wrong is bad input; anything else is the system's failure.
    if (err == ENOENT || err == ENOTDIR || err == EACCES || err == EROFS)
      throw InputError(path + ": cannot write: " + std::strerror(err));
    system_fail(path, "cannot write", err);
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, std::min<size_t>(size, 1 << 30));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) system_fail(path_, "cannot write", errno);
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) system_fail(path_, "cannot write (fsync)", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) system_fail(path_, "cannot write (close)", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    system_fail(path_, "cannot rename " + tmp_ + " over it", errno);
  done_ = true;
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  const int dir_fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace dpt
