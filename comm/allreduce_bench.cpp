#include "comm/allreduce_bench.hpp"

#include <charconv>
#include <cmath>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"
#include "src/core/error.hpp"

namespace dpt {

uint64_t parse_size(const std::string& option, const std::string& text) {
  uint64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(text.data(), end, value);
  uint64_t unit = 1;
  if (rest != end) {
    const std::string suffix(rest, end);
    if (suffix == "K" || suffix == "k")
      unit = 1ull << 10;
    else if (suffix == "M" || suffix == "m")
      unit = 1ull << 20;
    else if (suffix == "G" || suffix == "g")
      unit = 1ull << 30;
    else
      unit = 0;
  }
  if (ec != std::errc() || rest == text.data() || unit == 0 || value > (1ull << 40) / unit)
    throw InputError("option " + option + ": '" + text +
                     "' is not a size (a number with an optional K, M or G suffix)");
  return value * unit;
}

void validate(const AllreduceBenchOptions& o) {
  if (o.min_bytes < 4)
    throw InputError("option -b: " + std::to_string(o.min_bytes) +
                     " bytes is less than one float (4 bytes)");
  if (o.max_bytes < o.min_bytes)
    throw InputError("option -e: " + std::to_string(o.max_bytes) + " bytes is below -b " +
                     std::to_string(o.min_bytes));
  if (o.max_bytes / 4 > static_cast<uint64_t>(INT32_MAX))
    throw InputError("option -e: " + std::to_string(o.max_bytes) +
                     " bytes is more floats than one MPI call can take");
  if (o.factor < 2) throw InputError("option -f: the size factor must be at least 2");
  if (o.iters < 1 || o.warmup < 0) throw InputError("option -n/-w: need -n >= 1 and -w >= 0");
}

int64_t run_allreduce_bench(Communicator& comm, Device& be, const AllreduceBenchOptions& o,
                            std::FILE* out) {
  validate(o);
  const int p = comm.size(), rank = comm.rank();
  const bool root = rank == 0;
  if (root) {
    std::fprintf(out,
                 "# dptrain bench allreduce: %d rank%s, communicator %s, in place, %d "
                 "warm-up and %d timed iterations per size\n",
                 p, p > 1 ? "s" : "", comm.name().c_str(), o.warmup, o.iters);
    std::fprintf(out, "#%11s %12s %6s %6s %10s %8s %8s %7s\n", "size", "count", "type", "redop",
                 "time", "algbw", "busbw", "#wrong");
    std::fprintf(out, "#%11s %12s %6s %6s %10s %8s %8s %7s\n", "(B)", "(elements)", "", "", "(us)",
                 "(GB/s)", "(GB/s)", "");
  }
  std::vector<float> buf;
  DeviceBuffer dev;  // the device's memory: where training's gradients live
  int64_t total_wrong = 0;
  for (uint64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.factor) {
    const size_t count = bytes / 4;
    buf.assign(count, 0.0f);
    // Check: rank r contributes (r + 1) * (i % 7 + 1); every sum is a small integer, exact.
    for (size_t i = 0; i < count; ++i) buf[i] = static_cast<float>((rank + 1) * (i % 7 + 1));
    dev.resize(be, DataType::F32, count);
    be.copy_from_host(dev.data(), buf.data(), count * 4);
    comm.allreduce(dev.data(), count, DataType::F32, ReduceOp::Sum);
    be.copy_to_host(buf.data(), dev.data(), count * 4);
    int64_t wrong = 0;
    const float ranks_sum = static_cast<float>(p * (p + 1) / 2);
    for (size_t i = 0; i < count; ++i) wrong += buf[i] != ranks_sum * static_cast<float>(i % 7 + 1);
    wrong = comm.allreduce_sum(wrong);
    total_wrong += wrong;

    for (int i = 0; i < o.warmup; ++i)
      comm.allreduce(dev.data(), count, DataType::F32, ReduceOp::Sum);
    comm.barrier();
    const double start = steady_seconds();
    for (int i = 0; i < o.iters; ++i)
      comm.allreduce(dev.data(), count, DataType::F32, ReduceOp::Sum);
    double seconds = (steady_seconds() - start) / o.iters;
    // The slowest rank's time is the collective's time.
    comm.allreduce(&seconds, 1, DataType::F64, ReduceOp::Max);
    const double algbw = static_cast<double>(count * 4) / seconds / 1e9;
    const double busbw = algbw * 2.0 * (p - 1) / p;
    if (root)
      std::fprintf(out, "%12zu %12zu %6s %6s %10.2f %8.2f %8.2f %7lld\n", count * 4, count, "float",
                   "sum", seconds * 1e6, algbw, busbw, static_cast<long long>(wrong));
    if (bytes > o.max_bytes / o.factor) break;  // the next size would pass the maximum
  }
  if (root) {
    std::fprintf(out, "# wrong elements in all: %lld\n", static_cast<long long>(total_wrong));
    std::fflush(out);
  }
  return total_wrong;
}

}  // namespace dpt
