#include "comm/collective_check.hpp"

#include <limits>
#include <string>

#include "src/core/error.hpp"

namespace dpt {

void run_collectively(Communicator& comm, const std::function<void()>& fn) {
  std::string message;
  int64_t code = 0;
  try {
    fn();
  } catch (const CommTimeout&) {
    throw;  // the collective below would only time out again: end the job from main
  } catch (const InputError& e) {
    message = e.what();
    code = 2;
  } catch (const std::exception& e) {
    message = e.what();
    code = 1;
  }
  const int64_t none = std::numeric_limits<int64_t>::max();
  const int64_t first = comm.allreduce_min(code ? comm.rank() : none);
  if (first == none) return;
  int64_t worst = code;
  comm.allreduce(&worst, 1, DataType::I64, ReduceOp::Max);
  if (comm.rank() == first) print_error(comm.rank(), comm.size(), message);
  throw JobError(static_cast<int>(worst == 2 ? 2 : 1));
}

}  // namespace dpt
