// The MPI backend of Communicator: host memory; every collective runs on one worker thread, in
// the order it was submitted, so that a collective started during backward progresses while the
// main thread computes (as PyTorch's ProcessGroupMPI does).
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.hpp"
#include "src/core/bf16.hpp"
#include "src/core/error.hpp"

#define DPT_MPI_CHECK(call)                                                                \
  do {                                                                                     \
    int dpt_mpi_rc_ = (call);                                                              \
    if (dpt_mpi_rc_ != MPI_SUCCESS) {                                                      \
      char dpt_msg_[MPI_MAX_ERROR_STRING];                                                 \
      int dpt_len_ = 0;                                                                    \
      MPI_Error_string(dpt_mpi_rc_, dpt_msg_, &dpt_len_);                                  \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__, std::string(dpt_msg_, dpt_len_)); \
    }                                                                                      \
  } while (0)

namespace dpt {

namespace {

MPI_Datatype to_mpi(DataType t) {
  switch (t) {
    case DataType::F32:
      return MPI_FLOAT;
    case DataType::F64:
      return MPI_DOUBLE;
    case DataType::I32:
      return MPI_INT32_T;
    case DataType::I64:
      return MPI_INT64_T;
    case DataType::U64:
      return MPI_UINT64_T;
    case DataType::U8:
      return MPI_BYTE;
    case DataType::BF16:
      return MPI_UINT16_T;  // 16 bits, reduced by the bf16 ops below
  }
  throw SystemError(std::string("MPI communicator: no MPI type for ") + dtype_name(t));
}

// MPI has no bfloat16: its values travel as 16-bit integers, and its reductions are user ops
// that compute in float and round each result back (to nearest even), as NCCL reduces bf16.
template <class Combine>
void bf16_combine(void* in, void* inout, int* len, Combine combine) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i)
    b[i] = float_to_bf16(combine(bf16_to_float(a[i]), bf16_to_float(b[i])));
}
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  bf16_combine(in, inout, len, [](float x, float y) { return x + y; });
}
void bf16_max(void* in, void* inout, int* len, MPI_Datatype*) {
  bf16_combine(in, inout, len, [](float x, float y) { return x != x || x > y ? x : y; });
}
void bf16_min(void* in, void* inout, int* len, MPI_Datatype*) {
  bf16_combine(in, inout, len, [](float x, float y) { return x != x || x < y ? x : y; });
}

struct Bf16Ops {
  MPI_Op sum, max, min;
};
// Created once, after MPI_Init (the first communicator); MPI_Finalize frees them.
const Bf16Ops& bf16_ops() {
  static const Bf16Ops ops = [] {
    Bf16Ops o;
    DPT_MPI_CHECK(MPI_Op_create(&bf16_sum, 1, &o.sum));
    DPT_MPI_CHECK(MPI_Op_create(&bf16_max, 1, &o.max));
    DPT_MPI_CHECK(MPI_Op_create(&bf16_min, 1, &o.min));
    return o;
  }();
  return ops;
}

MPI_Op to_mpi(ReduceOp op, DataType t) {
  if (t == DataType::BF16) {
    const Bf16Ops& o = bf16_ops();
    return op == ReduceOp::Max ? o.max : op == ReduceOp::Min ? o.min : o.sum;
  }
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

bool is_floating(DataType t) {
  return t == DataType::F32 || t == DataType::F64 || t == DataType::BF16;
}

void scale(void* data, size_t count, DataType type, double factor) {
  if (type == DataType::F32) {
    float* p = static_cast<float*>(data);
    const float f = static_cast<float>(factor);
    for (size_t i = 0; i < count; ++i) p[i] *= f;
  } else if (type == DataType::F64) {
    double* p = static_cast<double*>(data);
    for (size_t i = 0; i < count; ++i) p[i] *= factor;
  } else if (type == DataType::BF16) {
    auto* p = static_cast<uint16_t*>(data);
    const float f = static_cast<float>(factor);
    for (size_t i = 0; i < count; ++i) p[i] = float_to_bf16(bf16_to_float(p[i]) * f);
  }
}

// Calls fn(offset, n) for consecutive pieces [offset, offset + n) of [0, count), each of at most
// max_count elements (max_count <= INT_MAX, so n fits MPI's int counts); none when count is 0.
template <class Fn>
void for_each_chunk(size_t count, size_t max_count, Fn fn) {
  for (size_t offset = 0; offset < count; offset += max_count)
    fn(offset, static_cast<int>(std::min(max_count, count - offset)));
}

// Completion state shared by a queued task and its Work handle.
struct TaskState {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  double start = 0, end = 0;
};

class MpiWork final : public Work {
 public:
  MpiWork(std::shared_ptr<TaskState> s, std::atomic<int>& waiting, std::string what, double timeout,
          int rank)
      : s_(std::move(s)),
        waiting_(waiting),
        what_(std::move(what)),
        timeout_(timeout),
        rank_(rank) {}
  void wait() override {
    waiting_.fetch_add(1);
    bool done = false;
    {
      std::unique_lock lock(s_->mu);
      const auto ready = [&] { return s_->done; };
      if (timeout_ > 0)
        done = s_->cv.wait_for(lock, std::chrono::duration<double>(timeout_), ready);
      else
        s_->cv.wait(lock, ready), done = true;
    }
    waiting_.fetch_sub(1);
    if (!done) {
      char msg[256];
      std::snprintf(msg, sizeof(msg), "%s did not complete within %g s (--comm-timeout) on rank %d",
                    what_.c_str(), timeout_, rank_);
      throw CommTimeout(msg);
    }
    if (s_->error) std::rethrow_exception(s_->error);
  }
  double start_time() const override { return s_->start; }
  double end_time() const override { return s_->end; }

 private:
  std::shared_ptr<TaskState> s_;
  std::atomic<int>& waiting_;  // the communicator's count of threads blocked in wait()
  std::string what_;
  double timeout_;
  int rank_;
};

// Waits for a nonblocking MPI request. Open MPI progresses a request only inside MPI calls, so
// the worker polls it. While the main thread is blocked in Work::wait nothing else needs the core
// and the worker spins, which measured fastest; while the main thread computes (a bucket started
// during backward), the worker yields between polls, so that waiting for a slower peer does not
// take the core from backward. Ranks that outnumber the cores always yield.
void wait_for(MPI_Request* req, const std::atomic<int>& main_waiting, bool oversubscribed) {
  int flag = 0;
  for (;;) {
    DPT_MPI_CHECK(MPI_Test(req, &flag, MPI_STATUS_IGNORE));
    if (flag) return;
    if (oversubscribed || main_waiting.load(std::memory_order_relaxed) == 0)
      std::this_thread::yield();
  }
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(int color, size_t max_count) : max_count_(max_count) {
    if (max_count_ == 0 || max_count_ > kMpiMaxCount)
      throw SystemError("MPI communicator: max_count must be in [1, INT_MAX]");
    int world_rank = 0;
    DPT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
    DPT_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, world_rank, &comm_));
    // Errors come back as return codes so that they carry the call that failed.
    DPT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    DPT_MPI_CHECK(MPI_Comm_dup(comm_, &health_));
    DPT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    DPT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm node;
    DPT_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    DPT_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    DPT_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
    oversubscribed_ = local_size_ > static_cast<int>(std::thread::hardware_concurrency());
    bf16_ops();
    worker_ = std::thread([this] { run_worker(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    worker_.join();
    MPI_Comm_free(&health_);
    MPI_Comm_free(&comm_);
  }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                        ReduceOp op) override {
    if (op == ReduceOp::Avg && !is_floating(type))
      throw SystemError("allreduce: average needs a floating-point type");
    return submit(
        [=, this] {
          if (size_ > 1)
            for_each_chunk(count, max_count_, [&](size_t offset, int n) {
              MPI_Request req;
              DPT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, at(data, offset, type), n, to_mpi(type),
                                           to_mpi(op, type), comm_, &req));
              wait_for(&req, main_waiting_, oversubscribed_);
            });
          if (op == ReduceOp::Avg && size_ > 1) scale(data, count, type, 1.0 / size_);
        },
        "allreduce of " + std::to_string(count) + " elements");
  }

  void broadcast(void* data, size_t count, DataType type, int root) override {
    submit(
        [=, this] {
          if (size_ > 1)
            for_each_chunk(count, max_count_, [&](size_t offset, int n) {
              DPT_MPI_CHECK(MPI_Bcast(at(data, offset, type), n, to_mpi(type), root, comm_));
            });
        },
        "broadcast")
        ->wait();
  }

  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                             DataType type, ReduceOp op) override {
    if (op == ReduceOp::Avg && !is_floating(type))
      throw SystemError("reduce_scatter: average needs a floating-point type");
    const bool in_place =
        is_block_in_place(send, recv, count, type, rank_, size_, "reduce_scatter");
    return submit(
        [=, this] {
          const size_t bytes = dtype_size(type);
          if (size_ == 1) {
            if (!in_place && count > 0) std::memcpy(recv, send, count * bytes);
          } else if (count <= max_count_) {
            // MPI_IN_PLACE means another layout here (the full buffer in recv, the result at its
            // start), and send and recv may not alias: in place, the block is received into a
            // buffer of its own and copied to where it belongs.
            std::vector<unsigned char> own(in_place ? count * bytes : 0);
            void* to = in_place ? own.data() : recv;
            MPI_Request req;
            DPT_MPI_CHECK(MPI_Ireduce_scatter_block(send, to, static_cast<int>(count), to_mpi(type),
                                                    to_mpi(op, type), comm_, &req));
            wait_for(&req, main_waiting_, oversubscribed_);
            if (in_place) std::memcpy(recv, own.data(), count * bytes);
          } else {
            // Piece [offset, offset + n) of every rank's block, packed next to each other, is
            // one MPI call whose rank r receives its piece at recv + offset. In place, a piece
            // of the rank's own block is overwritten only after it was packed.
            std::vector<unsigned char> packed(static_cast<size_t>(size_) * max_count_ * bytes);
            for_each_chunk(count, max_count_, [&](size_t offset, int n) {
              for (int r = 0; r < size_; ++r)
                std::memcpy(packed.data() + static_cast<size_t>(r) * n * bytes,
                            at(send, static_cast<size_t>(r) * count + offset, type), n * bytes);
              MPI_Request req;
              DPT_MPI_CHECK(MPI_Ireduce_scatter_block(packed.data(), at(recv, offset, type), n,
                                                      to_mpi(type), to_mpi(op, type), comm_, &req));
              wait_for(&req, main_waiting_, oversubscribed_);
            });
          }
          if (op == ReduceOp::Avg && size_ > 1) scale(recv, count, type, 1.0 / size_);
        },
        "reduce_scatter of " + std::to_string(count) + " elements per rank");
  }

  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    // In place, MPI_IN_PLACE says just that: the rank's contribution is already at its block.
    const void* from =
        is_block_in_place(recv, send, count, type, rank_, size_, "allgather") ? MPI_IN_PLACE : send;
    return submit(
        [=, this] {
          MPI_Request req;
          if (count <= max_count_) {
            DPT_MPI_CHECK(MPI_Iallgather(from, static_cast<int>(count), to_mpi(type), recv,
                                         static_cast<int>(count), to_mpi(type), comm_, &req));
            wait_for(&req, main_waiting_, oversubscribed_);
            return;
          }
          // Rank r's elements go to recv[r * count, (r + 1) * count). A piece of n elements at
          // `offset` is received as one block whose extent is the whole count, so that rank r's
          // block lands r * count elements after recv[offset] (an MPI_Aint, not an int). In
          // place, MPI finds the rank's own piece there too.
          const size_t bytes = dtype_size(type);
          for_each_chunk(count, max_count_, [&](size_t offset, int n) {
            MPI_Datatype piece, block;
            DPT_MPI_CHECK(MPI_Type_contiguous(n, to_mpi(type), &piece));
            DPT_MPI_CHECK(
                MPI_Type_create_resized(piece, 0, static_cast<MPI_Aint>(count * bytes), &block));
            MPI_Type_free(&piece);
            DPT_MPI_CHECK(MPI_Type_commit(&block));
            const void* piece_from = from == MPI_IN_PLACE ? MPI_IN_PLACE : at(send, offset, type);
            DPT_MPI_CHECK(MPI_Iallgather(piece_from, n, to_mpi(type), at(recv, offset, type), 1,
                                         block, comm_, &req));
            wait_for(&req, main_waiting_, oversubscribed_);
            MPI_Type_free(&block);
          });
        },
        "allgather of " + std::to_string(count) + " elements per rank");
  }

  void barrier() override {
    submit([this] { DPT_MPI_CHECK(MPI_Barrier(comm_)); }, "barrier")->wait();
  }

  std::vector<int> unresponsive_ranks(double seconds) override {
    // On a communicator of its own, so that nothing queued on comm_ can match these messages.
    static constexpr int kTag = 7177;
    std::vector<MPI_Request> sends, recvs(size_, MPI_REQUEST_NULL);
    std::vector<int> inbox(size_, 0);
    const int alive = 1;
    for (int peer = 0; peer < size_; ++peer) {
      if (peer == rank_) continue;
      MPI_Request r;
      if (MPI_Isend(&alive, 1, MPI_INT, peer, kTag, health_, &r) == MPI_SUCCESS) sends.push_back(r);
      MPI_Irecv(&inbox[peer], 1, MPI_INT, peer, kTag, health_, &recvs[peer]);
    }
    const double deadline = steady_seconds() + seconds;
    std::vector<int> missing;
    for (;;) {
      missing.clear();
      for (int peer = 0; peer < size_; ++peer) {
        if (peer == rank_) continue;
        int done = 0;
        if (recvs[peer] != MPI_REQUEST_NULL) MPI_Test(&recvs[peer], &done, MPI_STATUS_IGNORE);
        if (recvs[peer] != MPI_REQUEST_NULL && !done) missing.push_back(peer);
      }
      if (missing.empty() || steady_seconds() > deadline) return missing;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);
  }

 private:
  struct Task {
    std::function<void()> fn;
    std::shared_ptr<TaskState> state;
  };

  std::unique_ptr<Work> submit(std::function<void()> fn, std::string what) {
    auto state = std::make_shared<TaskState>();
    {
      std::lock_guard lock(mu_);
      queue_.push_back({std::move(fn), state});
    }
    cv_.notify_one();
    return std::make_unique<MpiWork>(state, main_waiting_, std::move(what), timeout_seconds_,
                                     rank_);
  }

  void run_worker() {
    for (;;) {
      Task task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      std::exception_ptr error;
      const double start = steady_seconds();
      try {
        task.fn();
      } catch (...) {
        error = std::current_exception();
      }
      const double end = steady_seconds();
      {
        std::lock_guard lock(task.state->mu);
        task.state->start = start;
        task.state->end = end;
        task.state->error = error;
        task.state->done = true;
      }
      task.state->cv.notify_all();
    }
  }

  // The element at `offset` of a buffer of `type`.
  static void* at(void* data, size_t offset, DataType type) {
    return static_cast<unsigned char*>(data) + offset * dtype_size(type);
  }
  static const void* at(const void* data, size_t offset, DataType type) {
    return static_cast<const unsigned char*>(data) + offset * dtype_size(type);
  }

  size_t max_count_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm health_ = MPI_COMM_NULL;  // heartbeats after a timeout
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  bool stop_ = false;
  bool oversubscribed_ = false;
  std::atomic<int> main_waiting_{0};
  std::thread worker_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int color, size_t max_count) {
  return std::make_unique<MpiCommunicator>(color, max_count);
}

MpiSession::MpiSession(int* argc, char*** argv) {
  // Open MPI's nonblocking allreduce picks its algorithm by default in a way that, for gradient
  // sized messages between ranks on one node, measured twice as slow as its ring algorithm (see
  // README, "Allreduce algorithm"); ring is also what NCCL and Horovod use for large messages.
  // Read by Open MPI at MPI_Init; a value the user set in the environment wins.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", /*overwrite=*/0);
  // Collectives run on each communicator's worker thread while the main thread also makes MPI
  // calls (communicator set-up, finalisation): MULTIPLE is the level that allows that.
  int provided = 0;
  DPT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided));
  if (provided < MPI_THREAD_MULTIPLE) {
    MPI_Finalize();
    throw SystemError("the MPI library does not support MPI_THREAD_MULTIPLE, which dptrain needs");
  }
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int MpiSession::world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

std::string MpiSession::library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);
  std::string s(buf, len);
  const auto eol = s.find_first_of("\r\n,");
  return s.substr(0, eol);
}

}  // namespace dpt
