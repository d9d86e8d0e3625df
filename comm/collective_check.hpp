// Turning one rank's failure into the whole job's, without a hang.
#pragma once

#include <functional>
#include <stdexcept>

#include "comm/communicator.hpp"

namespace dpt {

// The job is ending with `exit_code`; the reason has already been printed by the rank that failed.
class JobError : public std::runtime_error {
 public:
  explicit JobError(int exit_code) : std::runtime_error("job error"), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Runs `fn` on every rank, then agrees on the outcome: if it threw anywhere, the lowest failing
// rank prints "dptrain: error: ..." and every rank throws JobError (exit 2 for InputError,
// 1 otherwise). Every rank must call it at the same point, like a collective.
void run_collectively(Communicator& comm, const std::function<void()>& fn);

// The one-line form of an error on stderr, with the rank when the job has several.
void print_error(int rank, int world_size, const std::string& message);

}  // namespace dpt
