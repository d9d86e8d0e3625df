#include "comm/collective_bench.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <memory>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"
#include "src/core/bf16.hpp"
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

void validate(const CollectiveBenchOptions& o) {
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

namespace {

// The element that rank r holds at index j of the full buffer before the collective. Every sum
// over ranks is a small integer, exact in the type whatever order it is added in: up to 7P(P+1)/2
// in float; in bfloat16, whose integers are exact up to 256, at most 3P (up to 85 ranks).
float contribution(DataType type, bool reduces, int r, size_t j) {
  if (type == DataType::BF16 && reduces)
    return static_cast<float>((static_cast<size_t>(r) + j) % 3 + 1);
  return static_cast<float>((r + 1) * (j % 7 + 1));
}

// One size of the sweep: the buffer in the device's memory, and the collective over it in
// place, as training runs it (ZeRO-1 keeps a rank's shard inside the full buffer).
struct Sweep {
  BenchCollective collective;
  Communicator& comm;
  DataType type;
  void* data = nullptr;
  size_t count = 0;  // elements of each rank's block (reduce_scatter, allgather) or of all
  size_t full = 0;   // elements of the whole buffer

  bool reduces() const { return collective != BenchCollective::Allgather; }

  std::unique_ptr<Work> start() const {
    void* block = static_cast<unsigned char*>(data) +
                  static_cast<size_t>(comm.rank()) * count * dtype_size(type);
    switch (collective) {
      case BenchCollective::Allreduce:
        break;
      case BenchCollective::ReduceScatter:
        return comm.reduce_scatter_async(data, block, count, type, ReduceOp::Sum);
      case BenchCollective::Allgather:
        return comm.allgather_async(block, data, count, type);
    }
    return comm.allreduce_async(data, count, type, ReduceOp::Sum);
  }

  // The buffer before the collective, as values: for allgather only the rank's own block holds
  // data.
  void fill(std::vector<float>& buf) const {
    const int r = comm.rank();
    buf.resize(full);
    for (size_t j = 0; j < full; ++j)
      buf[j] = collective != BenchCollective::Allgather || j / count == static_cast<size_t>(r)
                   ? contribution(type, reduces(), r, j)
                   : -1.0f;
  }

  // The values into the buffer in the device's memory, and back, in the sweep's type.
  void upload(Device& be, const std::vector<float>& buf) const {
    if (type == DataType::F32) return be.copy_from_host(data, buf.data(), full * 4);
    std::vector<uint16_t> b(full);
    for (size_t j = 0; j < full; ++j) b[j] = float_to_bf16(buf[j]);
    be.copy_from_host(data, b.data(), full * 2);
  }
  void download(Device& be, std::vector<float>& buf) const {
    if (type == DataType::F32) return be.copy_to_host(buf.data(), data, full * 4);
    std::vector<uint16_t> b(full);
    be.copy_to_host(b.data(), data, full * 2);
    for (size_t j = 0; j < full; ++j) buf[j] = bf16_to_float(b[j]);
  }

  // Wrong elements of the result: the whole buffer, or for reduce_scatter the rank's block.
  int64_t wrong(const std::vector<float>& buf) const {
    const int p = comm.size();
    size_t begin = 0, end = full;
    if (collective == BenchCollective::ReduceScatter)
      begin = static_cast<size_t>(comm.rank()) * count, end = begin + count;
    int64_t n = 0;
    for (size_t j = begin; j < end; ++j) {
      float want = 0;
      if (collective == BenchCollective::Allgather)
        want = contribution(type, false, static_cast<int>(j / count), j);
      else
        for (int r = 0; r < p; ++r) want += contribution(type, true, r, j);
      if (type == DataType::BF16) want = bf16_to_float(float_to_bf16(want));
      n += buf[j] != want;
    }
    return n;
  }

  // nccl-tests' bus bandwidth factors: what each rank's link carries per byte of the buffer.
  double bus_factor() const {
    const int p = comm.size();
    const double f = static_cast<double>(p - 1) / p;
    return collective == BenchCollective::Allreduce ? 2 * f : f;
  }
};

}  // namespace

const char* bench_collective_name(BenchCollective c) {
  switch (c) {
    case BenchCollective::Allreduce:
      return "allreduce";
    case BenchCollective::ReduceScatter:
      return "reduce_scatter";
    case BenchCollective::Allgather:
      return "allgather";
  }
  return "?";
}

int64_t run_collective_bench(Communicator& comm, Device& be, const CollectiveBenchOptions& o,
                             std::FILE* out) {
  validate(o);
  const int p = comm.size(), rank = comm.rank();
  const bool root = rank == 0;
  const bool reduces = o.collective != BenchCollective::Allgather;
  if (root) {
    std::fprintf(out,
                 "# dptrain bench %s: %d rank%s, communicator %s, in place, %d "
                 "warm-up and %d timed iterations per size\n",
                 bench_collective_name(o.collective), p, p > 1 ? "s" : "", comm.name().c_str(),
                 o.warmup, o.iters);
    std::fprintf(out, "#%11s %12s %6s %6s %10s %8s %8s %7s\n", "size", "count", "type", "redop",
                 "time", "algbw", "busbw", "#wrong");
    std::fprintf(out, "#%11s %12s %6s %6s %10s %8s %8s %7s\n", "(B)", "(elements)", "", "", "(us)",
                 "(GB/s)", "(GB/s)", "");
  }
  std::vector<float> buf;
  DeviceBuffer dev;  // the device's memory: where training's gradients live
  int64_t total_wrong = 0;
  const size_t elem = dtype_size(o.type);
  for (uint64_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.factor) {
    Sweep s{o.collective, comm, o.type};
    s.count = bytes / elem;
    if (o.collective != BenchCollective::Allreduce) s.count = std::max<size_t>(1, s.count / p);
    s.full = o.collective == BenchCollective::Allreduce ? s.count : s.count * p;
    s.fill(buf);
    dev.resize(be, o.type, s.full);
    s.data = dev.ref().data();
    s.upload(be, buf);
    s.start()->wait();
    s.download(be, buf);
    const int64_t wrong = comm.allreduce_sum(s.wrong(buf));
    total_wrong += wrong;

    for (int i = 0; i < o.warmup; ++i) s.start()->wait();
    comm.barrier();
    const double start = steady_seconds();
    for (int i = 0; i < o.iters; ++i) s.start()->wait();
    double seconds = (steady_seconds() - start) / o.iters;
    // The slowest rank's time is the collective's time.
    comm.allreduce(&seconds, 1, DataType::F64, ReduceOp::Max);
    const double algbw = static_cast<double>(s.full * elem) / seconds / 1e9;
    const double busbw = algbw * s.bus_factor();
    if (root)
      std::fprintf(out, "%12zu %12zu %6s %6s %10.2f %8.2f %8.2f %7lld\n", s.full * elem, s.full,
                   o.type == DataType::F32 ? "float" : "bf16", reduces ? "sum" : "none",
                   seconds * 1e6, algbw, busbw, static_cast<long long>(wrong));
    if (bytes > o.max_bytes / o.factor) break;  // the next size would pass the maximum
  }
  if (root) {
    std::fprintf(out, "# wrong elements in all: %lld\n", static_cast<long long>(total_wrong));
    std::fflush(out);
  }
  return total_wrong;
}

}  // namespace dpt
