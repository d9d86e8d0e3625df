// Turning one rank's failure into the whole job's, without a hang.
#pragma once

#include <functional>

#include "comm/communicator.hpp"
#include "src/core/error.hpp"

namespace dpt {

// Runs `fn` on every rank, then agrees on the outcome: if it threw anywhere, the lowest failing
// rank prints "dptrain: error: ..." and every rank throws JobError (exit 2 for InputError,
// 1 otherwise). Every rank must call it at the same point, like a collective.
void run_collectively(Communicator& comm, const std::function<void()>& fn);

}  // namespace dpt
