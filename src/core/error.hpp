// Errors: a user-facing InputError for bad input (exit code 2), SystemError for failed calls
// (exit code 1), JobError for a job that is ending, and how an error is printed.
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

// The job is ending with `exit_code`; the reason has already been printed by the rank that failed.
class JobError : public std::runtime_error {
 public:
  explicit JobError(int exit_code) : std::runtime_error("job error"), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

[[noreturn]] void throw_call_error(const char* call, const char* file, int line,
                                   const std::string& detail);

// The one-line form of an error on stderr, with the rank when the job has several.
void print_error(int rank, int world_size, const std::string& message);

}  // namespace dpt

#define DPT_STRINGIFY_(x) #x
#define DPT_STRINGIFY(x) DPT_STRINGIFY_(x)
