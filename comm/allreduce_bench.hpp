// An allreduce sweep in the manner of nccl-tests: for each size, the mean time of an in-place
// float sum, the algorithm and bus bandwidth, and a count of wrong elements (every element is
// checked), so that a user can compare the wire with what training gets.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "comm/communicator.hpp"
#include "kernels/runtime/device.hpp"

namespace dpt {

struct AllreduceBenchOptions {
  uint64_t min_bytes = 8;
  uint64_t max_bytes = 256ull << 20;
  uint64_t factor = 2;
  int warmup = 5;
  int iters = 20;
};

// Parses sizes like 8, 1K, 64M, 1G (powers of 1024). Throws InputError naming `option`.
uint64_t parse_size(const std::string& option, const std::string& text);
// Throws InputError for bytes below 4, min > max, factor < 2, or counts that do not fit.
void validate(const AllreduceBenchOptions& o);

// Collective, over buffers in `be`'s memory. Rank 0 prints the table to `out`; returns the
// total of wrong elements (all ranks).
int64_t run_allreduce_bench(Communicator& comm, Device& be, const AllreduceBenchOptions& o,
                            std::FILE* out);

}  // namespace dpt
