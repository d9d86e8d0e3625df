// Collectives over more elements than one MPI call carries (INT_MAX) are split into pieces. A
// communicator whose limit is 7 elements takes the same path with counts small enough to test.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "comm/communicator.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {

constexpr size_t kLimit = 7;
// Counts below, at, just above and well above the limit, and a multiple of it.
const size_t kCounts[] = {0, 1, 6, 7, 8, 14, 100};
constexpr float kGuard = -12345.0f;  // beyond the count: must stay as it was

class MpiChunks : public ::testing::Test {
 protected:
  void SetUp() override { comm = make_mpi_communicator(0, kLimit); }
  std::unique_ptr<Communicator> comm;
};

TEST_F(MpiChunks, AllreduceSumsAndAveragesEveryPiece) {
  const int p = comm->size(), r = comm->rank();
  for (size_t n : kCounts) {
    // Small integers: every sum is exact whatever order MPI adds in.
    std::vector<float> sum(n + 1, kGuard), avg(n + 1, kGuard);
    for (size_t i = 0; i < n; ++i) sum[i] = avg[i] = static_cast<float>(i * p + r);
    comm->allreduce(sum.data(), n, DataType::F32, ReduceOp::Sum);
    comm->allreduce(avg.data(), n, DataType::F32, ReduceOp::Avg);
    for (size_t i = 0; i < n; ++i) {
      const float want = static_cast<float>(i * p * p + p * (p - 1) / 2);
      EXPECT_EQ(sum[i], want) << "count " << n << " element " << i;
      EXPECT_EQ(avg[i], want * static_cast<float>(1.0 / p)) << "count " << n << " element " << i;
    }
    EXPECT_EQ(sum[n], kGuard) << "count " << n;
    EXPECT_EQ(avg[n], kGuard) << "count " << n;
  }
  std::vector<int64_t> mins(100);
  for (size_t i = 0; i < mins.size(); ++i) mins[i] = static_cast<int64_t>(i) - r;
  comm->allreduce(mins.data(), mins.size(), DataType::I64, ReduceOp::Min);
  for (size_t i = 0; i < mins.size(); ++i) EXPECT_EQ(mins[i], static_cast<int64_t>(i) - (p - 1));
}

TEST_F(MpiChunks, BroadcastSendsEveryPieceFromTheRoot) {
  const int root = comm->size() - 1;
  for (size_t n : kCounts) {
    std::vector<double> v(n + 1, kGuard);
    for (size_t i = 0; i < n; ++i) v[i] = 1000.0 * comm->rank() + static_cast<double>(i);
    comm->broadcast(v.data(), n, DataType::F64, root);
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(v[i], 1000.0 * root + static_cast<double>(i)) << n;
    EXPECT_EQ(v[n], kGuard) << "count " << n;
  }
}

TEST_F(MpiChunks, AllgatherPlacesEveryPieceAfterItsRank) {
  const int p = comm->size();
  for (size_t n : kCounts) {
    std::vector<int32_t> mine(n);
    for (size_t i = 0; i < n; ++i) mine[i] = static_cast<int32_t>(1000 * comm->rank() + i);
    std::vector<int32_t> all(n * p + 1, -1);
    comm->allgather(mine.data(), all.data(), n, DataType::I32);
    for (int r = 0; r < p; ++r)
      for (size_t i = 0; i < n; ++i)
        EXPECT_EQ(all[r * n + i], static_cast<int32_t>(1000 * r + i))
            << "count " << n << " rank " << r << " element " << i;
    EXPECT_EQ(all[n * p], -1) << "count " << n;
  }
}

TEST_F(MpiChunks, LimitsOutsideOneToIntMaxAreRefused) {
  EXPECT_THROW(make_mpi_communicator(0, 0), SystemError);
  EXPECT_THROW(make_mpi_communicator(0, kMpiMaxCount + 1), SystemError);
}

}  // namespace
}  // namespace dpt
