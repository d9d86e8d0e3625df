// Communicator: the collectives the trainer needs, behind one interface (MPI now, NCCL later).
//
// Collectives are started asynchronously and return a Work handle to wait on, as PyTorch's c10d
// ProcessGroup does; the synchronous forms are start-then-wait. Every rank must call the same
// collectives in the same order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "src/core/clock.hpp"
#include "src/core/dtype.hpp"

namespace dpt {

enum class ReduceOp { Sum, Avg, Max, Min };

class Work {
 public:
  virtual ~Work() = default;
  // Blocks until the collective has completed; rethrows its error.
  virtual void wait() = 0;
  // When the collective ran (steady clock, seconds; valid after wait()): for timelines and for
  // telling hidden from exposed communication.
  virtual double start_time() const = 0;
  virtual double end_time() const = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Rank and rank count among the processes on this node (shared-memory domain).
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;

  // In place over count elements. Avg is defined for floating types only.
  virtual std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                                ReduceOp op) = 0;
  // send holds size() * count elements; rank r receives in recv (count elements) the reduction
  // over ranks of send[r * count, (r + 1) * count), as MPI_Reduce_scatter_block and
  // ncclReduceScatter do. In place when recv == send + rank() * count (a rank's shard inside the
  // full buffer, as ZeRO-1 keeps it): then only that block of send changes. send is otherwise
  // only read; buffers that overlap in any other way are refused. Avg as in allreduce_async.
  virtual std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                                     DataType type, ReduceOp op) = 0;
  virtual void broadcast(void* data, size_t count, DataType type, int root) = 0;
  // recv holds size() * count elements: rank r's contribution at r * count (MPI_Allgather,
  // ncclAllGather). In place when send == recv + rank() * count; buffers that overlap in any
  // other way are refused.
  virtual std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                                DataType type) = 0;
  virtual void barrier() = 0;
  // Ends every rank of the job with this exit code; does not return.
  [[noreturn]] virtual void abort(int exit_code) = 0;
  // Work::wait throws CommTimeout once a collective has taken this long (<= 0: waits forever):
  // a peer that died or hangs then ends the job with an error instead of a hang.
  void set_timeout(double seconds) { timeout_seconds_ = seconds; }
  // After a CommTimeout: every rank that timed out calls this; it exchanges a heartbeat with
  // every peer for up to `seconds` and returns the ranks that sent none (the ones that died,
  // hang, or are somewhere else in the program).
  virtual std::vector<int> unresponsive_ranks(double seconds) { return {}; }
  double timeout() const { return timeout_seconds_; }

  void allreduce(void* data, size_t count, DataType type, ReduceOp op) {
    allreduce_async(data, count, type, op)->wait();
  }
  void reduce_scatter(const void* send, void* recv, size_t count, DataType type, ReduceOp op) {
    reduce_scatter_async(send, recv, count, type, op)->wait();
  }
  void allgather(const void* send, void* recv, size_t count, DataType type) {
    allgather_async(send, recv, count, type)->wait();
  }
  double allreduce_sum(double v) {
    allreduce(&v, 1, DataType::F64, ReduceOp::Sum);
    return v;
  }
  int64_t allreduce_sum(int64_t v) {
    allreduce(&v, 1, DataType::I64, ReduceOp::Sum);
    return v;
  }
  int64_t allreduce_min(int64_t v) {
    allreduce(&v, 1, DataType::I64, ReduceOp::Min);
    return v;
  }

 protected:
  double timeout_seconds_ = 0;
};

class CommTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// For reduce-scatter and allgather, whose buffers are one of size * count elements (`full`) and
// one of count (`block`): whether `block` is rank's block of `full` (in place). Throws
// SystemError naming `what` when the two overlap in any other way, which neither MPI nor NCCL
// defines.
bool is_block_in_place(const void* full, const void* block, size_t count, DataType type, int rank,
                       int size, const char* what);

// The most elements one MPI call carries: MPI counts are int, so a collective over more elements
// is split into calls of at most this many (Open MPI 4 has no large-count MPI_*_c calls).
inline constexpr size_t kMpiMaxCount = 2147483647;  // INT_MAX

// MPI must have been initialised (see MpiSession). Spans the ranks of MPI_COMM_WORLD that pass
// the same `color` (all of them by default); tests use a color per rank for one-rank references,
// and a small `max_count` to split collectives without gigabytes of data.
std::unique_ptr<Communicator> make_mpi_communicator(int color = 0, size_t max_count = kMpiMaxCount);

// Initialises MPI for the life of the object and finalises it on destruction.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  static int world_rank();
  static std::string library_version();
};

}  // namespace dpt
