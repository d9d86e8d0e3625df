// GoogleTest main for tests run under mpirun: every rank runs every test; only rank 0 prints,
// and the process exits non-zero on any rank whose assertions failed.
#include <gtest/gtest.h>

#include "comm/communicator.hpp"

int main(int argc, char** argv) {
  dpt::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (dpt::MpiSession::world_rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  return RUN_ALL_TESTS();
}
