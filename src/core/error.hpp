// Errors: a user-facing InputError for bad input (exit code 2) and check macros for library calls.
#pragma once

#include <stdexcept>
#include <string>

namespace dpt {

// Bad input from the user: a file, an option, a spec. The message is one line that names the
// file or option and the problem; the CLI prints it as "dptrain: error: <message>" and exits 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failure of the system or of a library call (MPI, BLAS, CUDA...). Exit code 1.
class SystemError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_call_error(const char* call, const char* file, int line,
                                   const std::string& detail);

}  // namespace dpt

#define DPT_STRINGIFY_(x) #x
#define DPT_STRINGIFY(x) DPT_STRINGIFY_(x)
