// The communicator of a build without MPI (DPT_WITH_MPI=0; CMake compiles this file instead of
// mpi_communicator.cpp): one process, rank 0 of 1, so every collective is already complete on
// its own data and the program runs as it does under `mpirun -np 1`.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "src/core/error.hpp"

namespace dpt {

namespace {

// Done when made: the collective had nothing to wait for.
class SelfWork final : public Work {
 public:
  SelfWork() : time_(steady_seconds()) {}
  void wait() override {}
  double start_time() const override { return time_; }
  double end_time() const override { return time_; }

 private:
  double time_;
};

class SelfCommunicator final : public Communicator {
 public:
  std::string name() const override { return "self"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }

  // Sum, max and min over one rank are the data itself; the average divides by 1.
  std::unique_ptr<Work> allreduce_async(void*, size_t, DataType type, ReduceOp op) override {
    if (op == ReduceOp::Avg && type != DataType::F32 && type != DataType::F64 &&
        type != DataType::BF16)
      throw SystemError("allreduce: average needs a floating-point type");
    return std::make_unique<SelfWork>();
  }

  void broadcast(void*, size_t, DataType, int root) override {
    if (root != 0)
      throw SystemError("broadcast: root " + std::to_string(root) + " of a 1-rank communicator");
  }

  // The reduction over one rank is its block, which is all of send; in place, there is nothing
  // to copy.
  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                             DataType type, ReduceOp op) override {
    if (op == ReduceOp::Avg && type != DataType::F32 && type != DataType::F64 &&
        type != DataType::BF16)
      throw SystemError("reduce_scatter: average needs a floating-point type");
    if (!is_block_in_place(send, recv, count, type, 0, 1, "reduce_scatter") && count > 0)
      std::memcpy(recv, send, count * dtype_size(type));
    return std::make_unique<SelfWork>();
  }

  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    if (!is_block_in_place(recv, send, count, type, 0, 1, "allgather") && count > 0)
      std::memcpy(recv, send, count * dtype_size(type));
    return std::make_unique<SelfWork>();
  }

  void barrier() override {}

  [[noreturn]] void abort(int exit_code) override { std::_Exit(exit_code); }

  std::vector<int> unresponsive_ranks(double) override { return {}; }
};

// How many ranks a launcher started (Open MPI's mpirun, or a PMI one: srun, MPICH's mpiexec).
int launched_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* v = std::getenv(name);
    if (v && std::atoi(v) > 1) return std::atoi(v);
  }
  return 1;
}

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int, size_t) {
  // Each of N copies started by mpirun would think itself the only rank and train alone (all
  // writing one run folder): refuse instead.
  if (const int ranks = launched_ranks(); ranks > 1)
    throw SystemError("this dptrain was built without MPI and runs as one process, but it was " +
                      ("started as one of " + std::to_string(ranks)) +
                      " ranks; rebuild it with MPI, or run it without mpirun");
  return std::make_unique<SelfCommunicator>();
}

MpiSession::MpiSession(int*, char***) {}
MpiSession::~MpiSession() = default;

int MpiSession::world_rank() { return 0; }

std::string MpiSession::library_version() { return "none (built without MPI)"; }

}  // namespace dpt
