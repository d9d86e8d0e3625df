// The single-process communicator of a build without MPI (comm/self_communicator.cpp); a build
// with MPI tests its communicator under mpirun instead (tests/mpi).
#if !DPT_WITH_MPI
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "src/core/error.hpp"

namespace {

TEST(SelfCommunicator, IsRankZeroOfOne) {
  const auto comm = dpt::make_mpi_communicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  EXPECT_EQ(comm->local_rank(), 0);
  EXPECT_EQ(comm->local_size(), 1);
  EXPECT_EQ(dpt::MpiSession::world_rank(), 0);
  EXPECT_EQ(dpt::MpiSession::library_version(), "none (built without MPI)");
  EXPECT_TRUE(comm->unresponsive_ranks(0.1).empty());
}

TEST(SelfCommunicator, CollectivesOfOneRank) {
  const auto comm = dpt::make_mpi_communicator();
  std::vector<float> f = {1.5f, -2.0f, 3.25f};
  const std::vector<float> f0 = f;
  for (dpt::ReduceOp op :
       {dpt::ReduceOp::Sum, dpt::ReduceOp::Avg, dpt::ReduceOp::Max, dpt::ReduceOp::Min}) {
    auto work = comm->allreduce_async(f.data(), f.size(), dpt::DataType::F32, op);
    work->wait();
    EXPECT_LE(work->start_time(), work->end_time());
    EXPECT_EQ(f, f0);
  }
  EXPECT_EQ(comm->allreduce_sum(int64_t{7}), 7);
  EXPECT_EQ(comm->allreduce_min(int64_t{-3}), -3);
  EXPECT_EQ(comm->allreduce_sum(2.5), 2.5);
  int64_t i = 4;
  EXPECT_THROW(comm->allreduce(&i, 1, dpt::DataType::I64, dpt::ReduceOp::Avg), dpt::SystemError);

  comm->broadcast(f.data(), f.size(), dpt::DataType::F32, 0);
  EXPECT_EQ(f, f0);
  EXPECT_THROW(comm->broadcast(f.data(), f.size(), dpt::DataType::F32, 1), dpt::SystemError);

  const std::vector<double> send = {1.0, 2.0};
  std::vector<double> recv(2, 0.0);
  comm->allgather(send.data(), recv.data(), send.size(), dpt::DataType::F64);
  EXPECT_EQ(recv, send);
  comm->barrier();
}

// One rank's block is the whole buffer: reduce-scatter and allgather copy it, or, in place, leave
// it where it is.
TEST(SelfCommunicator, ReduceScatterAndAllgatherOfOneRank) {
  const auto comm = dpt::make_mpi_communicator();
  const std::vector<float> f0 = {1.5f, -2.0f, 3.25f};
  for (dpt::ReduceOp op :
       {dpt::ReduceOp::Sum, dpt::ReduceOp::Avg, dpt::ReduceOp::Max, dpt::ReduceOp::Min}) {
    std::vector<float> recv(4, -1.0f);
    auto work = comm->reduce_scatter_async(f0.data(), recv.data(), 3, dpt::DataType::F32, op);
    work->wait();
    EXPECT_LE(work->start_time(), work->end_time());
    EXPECT_EQ(recv, (std::vector<float>{1.5f, -2.0f, 3.25f, -1.0f}));
    std::vector<float> f = f0;
    comm->reduce_scatter(f.data(), f.data(), f.size(), dpt::DataType::F32, op);
    EXPECT_EQ(f, f0);
  }
  std::vector<int64_t> i = {4, 5};
  EXPECT_THROW(comm->reduce_scatter(i.data(), i.data(), 2, dpt::DataType::I64, dpt::ReduceOp::Avg),
               dpt::SystemError);
  comm->reduce_scatter(i.data(), i.data(), 2, dpt::DataType::I64, dpt::ReduceOp::Max);
  EXPECT_EQ(i, (std::vector<int64_t>{4, 5}));

  const std::vector<int64_t> send = {7, -8};
  std::vector<int64_t> recv(3, 0);
  auto work = comm->allgather_async(send.data(), recv.data(), 2, dpt::DataType::I64);
  work->wait();
  EXPECT_EQ(recv, (std::vector<int64_t>{7, -8, 0}));
  comm->allgather(recv.data(), recv.data(), 2, dpt::DataType::I64);
  EXPECT_EQ(recv, (std::vector<int64_t>{7, -8, 0}));
  // Overlapping other than in place: refused, as by every communicator.
  EXPECT_THROW(comm->allgather(recv.data() + 1, recv.data(), 2, dpt::DataType::I64),
               dpt::SystemError);
}

// Copies started by a launcher would each train alone as "rank 0 of 1": refused in one line.
TEST(SelfCommunicator, RefusesToBeOneOfManyRanks) {
  ASSERT_EQ(setenv("OMPI_COMM_WORLD_SIZE", "2", 1), 0);
  std::string msg;
  try {
    dpt::make_mpi_communicator();
  } catch (const dpt::SystemError& e) {
    msg = e.what();
  }
  unsetenv("OMPI_COMM_WORLD_SIZE");
  EXPECT_NE(msg.find("built without MPI"), std::string::npos) << msg;
  EXPECT_NE(msg.find("one of 2 ranks"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

}  // namespace
#endif
