#include "src/core/error.hpp"

#include <cstdio>
#include <sstream>

namespace dpt {

void throw_call_error(const char* call, const char* file, int line, const std::string& detail) {
  std::ostringstream os;
  os << call << " failed at " << file << ":" << line << ": " << detail;
  throw SystemError(os.str());
}

void print_error(int rank, int world_size, const std::string& message) {
  if (world_size > 1 && rank != 0)
    std::fprintf(stderr, "dptrain: error: rank %d: %s\n", rank, message.c_str());
  else
    std::fprintf(stderr, "dptrain: error: %s\n", message.c_str());
  std::fflush(stderr);
}

}  // namespace dpt
