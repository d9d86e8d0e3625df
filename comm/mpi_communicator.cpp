// The MPI backend of Communicator: host memory, nonblocking MPI collectives waited on by handle.
#include <mpi.h>

#include <cstdlib>
#include <string>

#include "comm/communicator.hpp"
#include "core/error.hpp"

#define DPT_MPI_CHECK(call)                                                    \
  do {                                                                         \
    int dpt_mpi_rc_ = (call);                                                  \
    if (dpt_mpi_rc_ != MPI_SUCCESS) {                                          \
      char dpt_msg_[MPI_MAX_ERROR_STRING];                                     \
      int dpt_len_ = 0;                                                        \
      MPI_Error_string(dpt_mpi_rc_, dpt_msg_, &dpt_len_);                      \
      ::dpt::throw_call_error(#call, __FILE__, __LINE__, std::string(dpt_msg_, dpt_len_)); \
    }                                                                          \
  } while (0)

namespace dpt {

size_t dtype_size(DataType t) {
  switch (t) {
    case DataType::F32: case DataType::I32: return 4;
    case DataType::F64: case DataType::I64: case DataType::U64: return 8;
    case DataType::Byte: return 1;
  }
  return 1;
}

namespace {

MPI_Datatype to_mpi(DataType t) {
  switch (t) {
    case DataType::F32: return MPI_FLOAT;
    case DataType::F64: return MPI_DOUBLE;
    case DataType::I32: return MPI_INT32_T;
    case DataType::I64: return MPI_INT64_T;
    case DataType::U64: return MPI_UINT64_T;
    case DataType::Byte: return MPI_BYTE;
  }
  return MPI_BYTE;
}

MPI_Op to_mpi(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: case ReduceOp::Avg: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

class MpiWork final : public Work {
 public:
  MpiWork(MPI_Request req, void* data, size_t count, DataType type, double scale)
      : req_(req), data_(data), count_(count), type_(type), scale_(scale) {}
  ~MpiWork() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (req_ == MPI_REQUEST_NULL) return;
    DPT_MPI_CHECK(MPI_Wait(&req_, MPI_STATUS_IGNORE));
    // MPI has no average: the sum is scaled once it has arrived.
    if (scale_ != 1.0) {
      if (type_ == DataType::F32) {
        float* p = static_cast<float*>(data_);
        const float s = static_cast<float>(scale_);
        for (size_t i = 0; i < count_; ++i) p[i] *= s;
      } else if (type_ == DataType::F64) {
        double* p = static_cast<double*>(data_);
        for (size_t i = 0; i < count_; ++i) p[i] *= scale_;
      }
    }
  }

 private:
  MPI_Request req_;
  void* data_;
  size_t count_;
  DataType type_;
  double scale_;
};

class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(int color) {
    int world_rank = 0;
    DPT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
    DPT_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, world_rank, &comm_));
    // Errors come back as return codes so that they carry the call that failed.
    DPT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    DPT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    DPT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm node;
    DPT_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    DPT_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    DPT_MPI_CHECK(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
  }
  ~MpiCommunicator() override { MPI_Comm_free(&comm_); }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                        ReduceOp op) override {
    if (op == ReduceOp::Avg && type != DataType::F32 && type != DataType::F64)
      throw SystemError("allreduce: average needs a floating-point type");
    MPI_Request req = MPI_REQUEST_NULL;
    if (size_ > 1 && count > 0)
      DPT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), to_mpi(type),
                                   to_mpi(op), comm_, &req));
    const double scale = (op == ReduceOp::Avg && size_ > 1) ? 1.0 / size_ : 1.0;
    return std::make_unique<MpiWork>(req, data, count, type, scale);
  }

  void broadcast(void* data, size_t count, DataType type, int root) override {
    if (size_ > 1 && count > 0)
      DPT_MPI_CHECK(MPI_Bcast(data, static_cast<int>(count), to_mpi(type), root, comm_));
  }

  void allgather(const void* send, void* recv, size_t count, DataType type) override {
    DPT_MPI_CHECK(MPI_Allgather(send, static_cast<int>(count), to_mpi(type), recv,
                                static_cast<int>(count), to_mpi(type), comm_));
  }

  void barrier() override { DPT_MPI_CHECK(MPI_Barrier(comm_)); }

  [[noreturn]] void abort(int exit_code) override {
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(int color) {
  return std::make_unique<MpiCommunicator>(color);
}

MpiSession::MpiSession(int* argc, char*** argv) {
  // Open MPI's nonblocking allreduce picks its algorithm by default in a way that, for gradient
  // sized messages between ranks on one node, measured twice as slow as its ring algorithm (see
  // README, "Allreduce algorithm"); ring is also what NCCL and Horovod use for large messages.
  // Read by Open MPI at MPI_Init; a value the user set in the environment wins.
  setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", /*overwrite=*/0);
  int provided = 0;
  // FUNNELED: only the main thread calls MPI (the data loader thread never does).
  DPT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
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
