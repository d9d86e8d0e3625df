#include "src/core/error.hpp"

#include <sstream>

namespace dpt {

void throw_call_error(const char* call, const char* file, int line, const std::string& detail) {
  std::ostringstream os;
  os << call << " failed at " << file << ":" << line << ": " << detail;
  throw SystemError(os.str());
}

}  // namespace dpt
