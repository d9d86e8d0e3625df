#include "src/train/tracer.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "src/core/error.hpp"

namespace dpt {

Tracer::Tracer(int64_t first_step, int64_t last_step, double origin)
    : first_(first_step), last_(last_step), origin_(origin) {}

void Tracer::span(Lane lane, std::string name, double start, double end, int64_t step,
                  int64_t bytes) {
  events_.push_back({lane, std::move(name), start, end, step, bytes});
}

void Tracer::write(Communicator& comm, const std::string& path) const {
  // This rank's events as one JSON array text; pid is the rank, tid the lane.
  nlohmann::json mine = nlohmann::json::array();
  const int rank = comm.rank();
  mine.push_back({{"ph", "M"},
                  {"pid", rank},
                  {"name", "process_name"},
                  {"args", {{"name", "rank " + std::to_string(rank)}}}});
  mine.push_back({{"ph", "M"},
                  {"pid", rank},
                  {"name", "process_sort_index"},
                  {"args", {{"sort_index", rank}}}});
  const char* lanes[] = {"compute", "communication", "ops"};
  for (int lane = 0; lane < 3; ++lane)
    mine.push_back({{"ph", "M"},
                    {"pid", rank},
                    {"tid", lane},
                    {"name", "thread_name"},
                    {"args", {{"name", lanes[lane]}}}});
  for (const Event& e : events_) {
    nlohmann::json args = {{"step", e.step}};
    if (e.bytes >= 0) args["bytes"] = e.bytes;
    mine.push_back({{"ph", "X"},
                    {"pid", rank},
                    {"tid", static_cast<int>(e.lane)},
                    {"name", e.name},
                    {"ts", (e.start - origin_) * 1e6},
                    {"dur", (e.end - e.start) * 1e6},
                    {"args", args}});
  }
  const std::string text = mine.dump();

  // Gather the texts on rank 0: lengths first, then the bytes, padded to the longest.
  const uint64_t len = text.size();
  std::vector<uint64_t> lens(comm.size());
  comm.allgather(&len, lens.data(), 1, DataType::U64);
  uint64_t longest = 0;
  for (uint64_t l : lens) longest = std::max(longest, l);
  std::string padded = text;
  padded.resize(longest, ' ');
  std::string all(longest * comm.size(), ' ');
  comm.allgather(padded.data(), all.data(), longest, DataType::U8);
  if (rank != 0) return;

  nlohmann::json trace;
  trace["displayTimeUnit"] = "ms";
  trace["traceEvents"] = nlohmann::json::array();
  for (int r = 0; r < comm.size(); ++r)
    for (auto& e : nlohmann::json::parse(all.substr(r * longest, lens[r])))
      trace["traceEvents"].push_back(std::move(e));
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) throw InputError(path + ": cannot write: " + std::strerror(errno));
  const std::string out = trace.dump();
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw SystemError(path + ": write failed: " + std::strerror(errno));
  }
}

std::pair<int64_t, int64_t> parse_step_window(const std::string& text) {
  const auto colon = text.find(':');
  int64_t a = -1, b = -1;
  const auto parse = [](const std::string& s, int64_t& v) {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
  };
  if (colon == std::string::npos || !parse(text.substr(0, colon), a) ||
      !parse(text.substr(colon + 1), b) || a < 0 || b <= a)
    throw InputError("option --trace-steps: '" + text +
                     "' is not A:B with 0 <= A < B (steps A to B-1)");
  return {a, b};
}

}  // namespace dpt
