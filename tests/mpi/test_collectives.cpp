// Reduce-scatter and allgather under mpirun: every element of every rank's result against values
// computed here from each rank's inputs, in place and out of place, for each element type and
// reduction, through MPI in one call, MPI split into pieces, and the staged communicator.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/staged_communicator.hpp"
#include "src/core/error.hpp"

namespace dpt {
namespace {

// Pieces of at most 100 elements: counts 101 and 1009 take 2 and 11 MPI calls, the last of 1
// and 9 elements.
constexpr size_t kLimit = 100;
const size_t kCounts[] = {0, 1, 101, 1009};

// Host memory that calls itself device memory, so that the staged communicator stages it as it
// stages a GPU's buffers (its staging buffers, alloc_host, are host memory).
class FakeDevice final : public Device {
 public:
  std::string name() const override { return "fake"; }
  void* alloc(size_t bytes) override {
    void* p = std::calloc(bytes + 1, 1);
    blocks_[reinterpret_cast<uintptr_t>(p)] = bytes + 1;
    return p;
  }
  void free(void* p) override {
    blocks_.erase(reinterpret_cast<uintptr_t>(p));
    std::free(p);
  }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void* alloc_host(size_t bytes) override { return std::calloc(bytes + 1, 1); }
  void free_host(void* p) override { std::free(p); }
  bool is_device_memory(const void* p) const override {
    const auto at = reinterpret_cast<uintptr_t>(p);
    auto it = blocks_.upper_bound(at);
    if (it == blocks_.begin()) return false;
    --it;
    return at < it->first + it->second;
  }

 private:
  std::map<uintptr_t, size_t> blocks_;  // start -> bytes
};

// `n` elements of T in the fake device's memory (plain host memory, readable here).
template <class T>
class Buffer {
 public:
  Buffer(Device& device, size_t n)
      : device_(device), p_(static_cast<T*>(device.alloc(n * sizeof(T)))) {}
  ~Buffer() { device_.free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return p_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  Device& device_;
  T* p_;
};

// Rank r's element at index j of a full buffer: small integers (every sum exact), differing
// from rank to rank and from block to block, with a part that needs the whole type (an int64
// beyond 32 bits, a double's fraction).
template <class T>
T value(int r, size_t j) {
  const int64_t v = static_cast<int64_t>((j * 31 + static_cast<size_t>(r) * 17) % 97) - 48;
  if constexpr (std::is_same_v<T, int64_t>)
    return v + (int64_t{1} << 40);
  else if constexpr (std::is_same_v<T, double>)
    return static_cast<double>(v) + 0.25;
  else
    return static_cast<T>(v);
}
constexpr float kGuard = -12345.0f;  // just past a buffer: must stay as it was

template <class T>
T reduced(ReduceOp op, int p, size_t j) {
  T acc = value<T>(0, j);
  for (int r = 1; r < p; ++r) {
    const T v = value<T>(r, j);
    acc = op == ReduceOp::Max ? std::max(acc, v) : op == ReduceOp::Min ? std::min(acc, v) : acc + v;
  }
  // The average is the sum times 1/p in T, as the communicators scale it.
  return op == ReduceOp::Avg ? acc * static_cast<T>(1.0 / p) : acc;
}

// Elements that differ from what they should be: counted, and the first one described. A test
// checks every element and fails once at the end (expect_no_mismatch), rather than returning at
// the first wrong one, so that every rank still calls the same collectives as the others.
class Mismatches {
 public:
  template <class T>
  void check(const char* what, size_t index, T got, T want) {
    if (got == want) return;
    if (count_++ == 0)
      first_ = std::string(what) + " element " + std::to_string(index) + ": " +
               std::to_string(got) + ", want " + std::to_string(want);
  }
  int64_t count() const { return count_; }
  const std::string& first() const { return first_; }

 private:
  int64_t count_ = 0;
  std::string first_;
};

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Avg:
      return "avg";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "?";
}

enum class Path { Mpi, MpiPieces, Staged };

class Collectives : public ::testing::TestWithParam<Path> {
 protected:
  void SetUp() override {
    host = make_mpi_communicator(0, GetParam() == Path::Mpi ? kMpiMaxCount : kLimit);
    if (GetParam() == Path::Staged) staged = make_staged_communicator(*host, device);
    comm = staged ? staged.get() : host.get();
    p = comm->size();
    r = comm->rank();
  }

  // Fails the test on every rank if any rank found a wrong element (only rank 0 prints).
  void expect_no_mismatch(const Mismatches& m) {
    EXPECT_EQ(host->allreduce_sum(m.count()), 0)
        << "wrong elements over all ranks (rank " << r << ": " << m.count()
        << (m.count() ? ", the first " + m.first() : std::string()) << ")";
  }

  template <class T>
  void check_reduce_scatter(ReduceOp op) {
    const DataType type = dtype_of<T>();
    for (size_t n : kCounts)
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(type)) + " " + op_name(op) + ", count " +
                     std::to_string(n) + (in_place ? ", in place" : ", out of place"));
        Buffer<T> send(device, p * n + 1), out(device, n + 1);
        for (size_t j = 0; j < p * n; ++j) send[j] = value<T>(r, j);
        send[p * n] = out[n] = static_cast<T>(kGuard);
        T* recv = in_place ? send.get() + r * n : out.get();
        auto work = comm->reduce_scatter_async(send.get(), recv, n, type, op);
        work->wait();
        EXPECT_LE(work->start_time(), work->end_time());
        Mismatches m;
        for (size_t i = 0; i < n; ++i) m.check("recv", i, recv[i], reduced<T>(op, p, r * n + i));
        // Only the rank's block of send changes in place; out of place, none of it.
        for (size_t j = 0; j < p * n; ++j)
          if (!in_place || j / n != static_cast<size_t>(r))
            m.check("send", j, send[j], value<T>(r, j));
        expect_no_mismatch(m);
        EXPECT_EQ(send[p * n], static_cast<T>(kGuard));
        EXPECT_EQ(out[n], static_cast<T>(kGuard));
      }
  }

  template <class T>
  void check_allgather() {
    const DataType type = dtype_of<T>();
    for (size_t n : kCounts)
      for (bool in_place : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(type)) + ", count " + std::to_string(n) +
                     (in_place ? ", in place" : ", out of place"));
        Buffer<T> recv(device, p * n + 1), mine(device, n + 1);
        // The other ranks' blocks hold what must be overwritten.
        for (size_t j = 0; j < p * n; ++j) recv[j] = static_cast<T>(kGuard);
        for (size_t i = 0; i < n; ++i) mine[i] = value<T>(r, r * n + i);
        recv[p * n] = mine[n] = static_cast<T>(kGuard);
        const T* send = mine.get();
        if (in_place) {
          std::copy(mine.get(), mine.get() + n, recv.get() + r * n);
          send = recv.get() + r * n;
        }
        auto work = comm->allgather_async(send, recv.get(), n, type);
        work->wait();
        EXPECT_LE(work->start_time(), work->end_time());
        Mismatches m;
        for (size_t j = 0; j < p * n; ++j)
          m.check("recv", j, recv[j], value<T>(static_cast<int>(j / n), j));
        for (size_t i = 0; i < n; ++i) m.check("send", i, mine[i], value<T>(r, r * n + i));
        expect_no_mismatch(m);
        EXPECT_EQ(recv[p * n], static_cast<T>(kGuard));
      }
  }

  FakeDevice device;
  std::unique_ptr<Communicator> host, staged;
  Communicator* comm = nullptr;
  size_t p = 1;
  int r = 0;
};

TEST_P(Collectives, ReduceScatterGivesEachRankTheReductionOfItsBlock) {
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min})
    check_reduce_scatter<float>(op);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg}) check_reduce_scatter<double>(op);
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) check_reduce_scatter<int64_t>(op);
}

TEST_P(Collectives, AllgatherPlacesEachRanksBlockAtItsRank) {
  check_allgather<float>();
  check_allgather<double>();
  check_allgather<int64_t>();
  check_allgather<int32_t>();
}

// ZeRO-1's step: reduce-scatter the gradients into each rank's shard, update it, allgather the
// parameters; started together and waited for in reverse, each completes as if alone.
TEST_P(Collectives, CollectivesInFlightTogetherEachComplete) {
  const size_t n = 1009;
  Buffer<float> grads(device, p * n), params(device, p * n), sums(device, n);
  for (size_t j = 0; j < p * n; ++j) grads[j] = value<float>(r, j);
  for (size_t i = 0; i < n; ++i) params[r * n + i] = value<float>(r, r * n + i);
  for (size_t i = 0; i < n; ++i) sums[i] = static_cast<float>(r + i);
  auto scatter =
      comm->reduce_scatter_async(grads.get(), grads.get() + r * n, n, DataType::F32, ReduceOp::Avg);
  auto gather = comm->allgather_async(params.get() + r * n, params.get(), n, DataType::F32);
  auto sum = comm->allreduce_async(sums.get(), n, DataType::F32, ReduceOp::Sum);
  sum->wait();
  gather->wait();
  scatter->wait();
  Mismatches m;
  for (size_t i = 0; i < n; ++i) {
    m.check("grads", r * n + i, grads[r * n + i],
            reduced<float>(ReduceOp::Avg, static_cast<int>(p), r * n + i));
    m.check("sums", i, sums[i], static_cast<float>(p * (p - 1) / 2 + p * i));
  }
  for (size_t j = 0; j < p * n; ++j)
    m.check("params", j, params[j], value<float>(static_cast<int>(j / n), j));
  expect_no_mismatch(m);
}

TEST_P(Collectives, AverageOfIntegersAndStrayOverlapsAreRefused) {
  const size_t n = 8;
  Buffer<int64_t> ints(device, p * n);
  EXPECT_THROW(
      comm->reduce_scatter_async(ints.get(), ints.get() + r * n, n, DataType::I64, ReduceOp::Avg),
      SystemError);
  // Overlapping, but not at the rank's block: neither MPI nor NCCL defines what that does.
  Buffer<float> full(device, p * n + 1);
  float* stray = full.get() + r * n + 1;
  EXPECT_THROW(comm->reduce_scatter_async(full.get(), stray, n, DataType::F32, ReduceOp::Sum),
               SystemError);
  EXPECT_THROW(comm->allgather_async(stray, full.get(), n, DataType::F32), SystemError);
}

// A rank that does not join in time: the others' wait ends in CommTimeout, not a hang. The late
// rank joins once the others have given up (a barrier on another communicator), so that the
// collective can complete and the communicators end cleanly; then it still gives every rank
// the right result.
TEST_P(Collectives, ACollectiveARankDoesNotJoinEndsInCommTimeout) {
  const size_t n = 101;
  const int late = static_cast<int>(p) - 1;
  const std::unique_ptr<Communicator> world_comm = make_mpi_communicator();
  Communicator& world = *world_comm;  // where the late rank learns that the others gave up
  Buffer<float> send(device, p * n), recv(device, n), gathered(device, p * n);
  for (size_t j = 0; j < p * n; ++j) send[j] = value<float>(r, j);
  std::vector<float> mine(n);
  for (size_t i = 0; i < n; ++i) mine[i] = value<float>(r, r * n + i);

  comm->set_timeout(0.2);
  std::unique_ptr<Work> scatter, gather;
  if (r != late) {
    scatter = comm->reduce_scatter_async(send.get(), recv.get(), n, DataType::F32, ReduceOp::Sum);
    try {
      scatter->wait();
      ADD_FAILURE() << "reduce_scatter completed without rank " << late;
    } catch (const CommTimeout& e) {
      EXPECT_NE(std::string(e.what()).find("reduce_scatter of 101 elements per rank did not "
                                           "complete within 0.2 s (--comm-timeout) on rank " +
                                           std::to_string(r)),
                std::string::npos)
          << e.what();
    }
    gather = comm->allgather_async(mine.data(), gathered.get(), n, DataType::F32);
    try {
      gather->wait();
      ADD_FAILURE() << "allgather completed without rank " << late;
    } catch (const CommTimeout& e) {
      EXPECT_NE(std::string(e.what()).find("allgather of 101 elements per rank did not complete"),
                std::string::npos)
          << e.what();
    }
  }
  world.barrier();
  if (r == late) {
    scatter = comm->reduce_scatter_async(send.get(), recv.get(), n, DataType::F32, ReduceOp::Sum);
    gather = comm->allgather_async(mine.data(), gathered.get(), n, DataType::F32);
  }
  // Each wait gives up after 0.2 s again; a loaded machine may need several.
  for (Work* w : {scatter.get(), gather.get()})
    for (int tries = 0;; ++tries) {
      try {
        w->wait();
        break;
      } catch (const CommTimeout&) {
        ASSERT_LT(tries, 600) << "not complete two minutes after every rank joined";
      }
    }
  // The checks' own collective, with no limit (the staged communicator passes its own on).
  comm->set_timeout(0);
  host->set_timeout(0);
  Mismatches m;
  for (size_t i = 0; i < n; ++i)
    m.check("reduce_scatter", i, recv[i], reduced<float>(ReduceOp::Sum, late + 1, r * n + i));
  for (size_t j = 0; j < p * n; ++j)
    m.check("allgather", j, gathered[j], value<float>(static_cast<int>(j / n), j));
  expect_no_mismatch(m);
}

std::string path_name(const ::testing::TestParamInfo<Path>& param) {
  switch (param.param) {
    case Path::Mpi:
      return "Mpi";
    case Path::MpiPieces:
      return "MpiInPiecesOf100";
    case Path::Staged:
      return "StagedThroughHost";
  }
  return "?";
}

INSTANTIATE_TEST_SUITE_P(, Collectives, ::testing::Values(Path::Mpi, Path::MpiPieces, Path::Staged),
                         path_name);

}  // namespace
}  // namespace dpt
