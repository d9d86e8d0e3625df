// A sweep of one collective over message sizes in the manner of nccl-tests (all_reduce_perf,
// reduce_scatter_perf, all_gather_perf): for each size, the mean time of an in-place float or
// bfloat16 collective (a sum, for the reductions), the algorithm and bus bandwidth, and a count of
// wrong elements (every element is checked), so that a user can compare the wire with what training
// gets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "comm/communicator.hpp"
#include "kernels/runtime/device.hpp"

namespace dpt {

enum class BenchCollective { Allreduce, ReduceScatter, Allgather };

// "allreduce", "reduce_scatter", "allgather": the bench subcommand's name.
const char* bench_collective_name(BenchCollective c);

struct CollectiveBenchOptions {
  BenchCollective collective = BenchCollective::Allreduce;
  uint64_t min_bytes = 8;
  uint64_t max_bytes = 256ull << 20;
  uint64_t factor = 2;
  int warmup = 5;
  int iters = 20;
  DataType type = DataType::F32;  // or BF16
};

// Parses sizes like 8, 1K, 64M, 1G (powers of 1024). Throws InputError naming `option`.
uint64_t parse_size(const std::string& option, const std::string& text);
// Throws InputError for bytes below 4, min > max, factor < 2, or counts that do not fit.
void validate(const CollectiveBenchOptions& o);

// Collective, over buffers in `be`'s memory. A size is the whole buffer, as in nccl-tests: for
// reduce_scatter and allgather it is size() blocks, rounded down to whole elements per rank (at
// least one). Rank 0 prints the table to `out`; returns the total of wrong elements (all ranks).
int64_t run_collective_bench(Communicator& comm, Device& be, const CollectiveBenchOptions& o,
                             std::FILE* out);

}  // namespace dpt
