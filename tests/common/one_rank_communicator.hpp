// A job of one rank for tests that need a Communicator but no MPI: every collective of one rank
// leaves the data as it is (reduce-scatter and allgather copy it), and completes at once.
#pragma once

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "comm/communicator.hpp"

namespace dpt::testing {

class OneRankCommunicator : public Communicator {
 public:
  std::string name() const override { return "one rank"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::unique_ptr<Work> allreduce_async(void*, size_t, DataType, ReduceOp) override {
    return std::make_unique<DoneWork>();
  }
  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                             DataType type, ReduceOp) override {
    std::memmove(recv, send, count * dtype_size(type));
    return std::make_unique<DoneWork>();
  }
  void broadcast(void*, size_t, DataType, int) override {}
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    std::memmove(recv, send, count * dtype_size(type));
    return std::make_unique<DoneWork>();
  }
  void barrier() override {}
  [[noreturn]] void abort(int exit_code) override { std::exit(exit_code); }

 private:
  struct DoneWork final : Work {
    void wait() override {}
    double start_time() const override { return 0; }
    double end_time() const override { return 0; }
  };
};

}  // namespace dpt::testing
