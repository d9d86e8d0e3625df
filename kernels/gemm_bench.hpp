// The compute peak that utilization is measured against: the best time of a square float GEMM
// (C = A B, n x n x n) on a backend, as FLOP/s (2 n^3 per product), with a check of sampled
// elements of C against a double-precision dot product, so that a fast wrong GEMM is not taken
// for a peak. On the CPU the thread count is the backend's (train's --threads).
#pragma once

#include <cstdint>

#include "kernels/backend.hpp"

namespace dpt {

struct GemmBenchResult {
  int n = 0;
  int repeats = 0;
  double best_seconds = 0;
  double flops_per_second = 0;  // 2 n^3 / best_seconds
  double worst_error = 0;  // over the sampled elements, relative to sum |a_ik b_kj|
  int64_t wrong = 0;       // sampled elements whose error is above 1e-4 of that sum
};

// Throws InputError for n outside [16, 16384] or repeats outside [1, 1000].
GemmBenchResult run_gemm_bench(Backend& be, int n, int repeats);

}  // namespace dpt
