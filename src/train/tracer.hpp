// Tracer: a timeline of a window of training steps as Chrome trace-event JSON (opens in
// Perfetto and chrome://tracing). Each rank is one process with three lanes: compute (forward
// and backward of each layer, the optimizer), communication (each bucket's allreduce) and ops
// (the named ranges of the step, nested: its phases, each layer, and inside a composite layer
// each of its parts, named by their path, as "forward/transformer.h.0/attn/c_attn").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.hpp"

namespace dpt {

enum class Lane { Compute = 0, Comm = 1, Ops = 2 };

class Tracer {
 public:
  // Records steps in [first_step, last_step); times are seconds on the steady clock and are
  // written relative to `origin` (taken by every rank at the same collective point).
  Tracer(int64_t first_step, int64_t last_step, double origin);
  bool records(int64_t step) const { return step >= first_ && step < last_; }
  // bytes: the gradient bytes a layer produced or a bucket carried (-1: none), for the
  // performance model.
  void span(Lane lane, std::string name, double start, double end, int64_t step,
            int64_t bytes = -1);
  size_t size() const { return events_.size(); }
  // Collective: rank 0 gathers every rank's events and writes `path` (atomically).
  void write(Communicator& comm, const std::string& path) const;

 private:
  struct Event {
    Lane lane;
    std::string name;
    double start, end;
    int64_t step, bytes;
  };
  int64_t first_, last_;
  double origin_;
  std::vector<Event> events_;
};

// Parses "A:B" (steps A to B-1). Throws InputError naming --trace-steps.
std::pair<int64_t, int64_t> parse_step_window(const std::string& text);

}  // namespace dpt
