// StepTrace: the fit loop's timeline (FitOptions::Trace). For each step in the window, the
// compute lane gets each layer's forward and backward, the optimizer and the whole step; the
// communication lane each bucket's allreduce. Outside the window, or with no trace file, every
// call does nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/reducer.hpp"
#include "src/model/sequential.hpp"
#include "src/train/model.hpp"
#include "src/train/tracer.hpp"

namespace dpt {

class StepTrace {
 public:
  // `origin`: the time every rank took at the same collective point.
  StepTrace(Sequential& net, const FitOptions::Trace& options, double origin);

  // Step `step` starts: when it is traced, the layers report their times from now on.
  void step_begin(int64_t step);
  // Around the optimizer update.
  void optimizer_begin();
  void optimizer_end();
  // The step's device work is done (after synchronize(), before the markers are cleared): its
  // spans, from `start` for `seconds`, with the communication of `buckets` as `comm` reports it.
  void step_end(double start, double seconds, const StepCommStats& comm,
                const std::vector<Bucket>& buckets);
  // Collective: rank 0 writes the trace file (when there is one).
  void write(Communicator& comm) const;

 private:
  Sequential& net_;
  Backend& be_;
  std::string path_;
  std::unique_ptr<Tracer> tracer_;
  // Span names made once: building them per span cost mlp a tenth of its traced step.
  std::vector<std::string> forward_names_, backward_names_;
  std::vector<int64_t> layer_grad_bytes_;
  bool recording_ = false;
  int64_t step_ = 0;
  // The optimizer's span: markers on an asynchronous device, host times otherwise.
  int opt_begin_marker_ = -1, opt_end_marker_ = -1;
  double opt_start_ = 0, opt_end_ = 0;
};

}  // namespace dpt
