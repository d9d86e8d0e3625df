#include "src/train/step_trace.hpp"

#include "src/core/clock.hpp"

namespace dpt {

StepTrace::StepTrace(Sequential& net, const FitOptions::Trace& options, double origin)
    : net_(net), be_(net.backend()), path_(options.path) {
  if (path_.empty()) return;
  tracer_ = std::make_unique<Tracer>(options.first, options.last, origin);
  layer_grad_bytes_.assign(net_.num_layers(), 0);
  for (const ParamInfo& p : net_.param_info())
    layer_grad_bytes_[p.layer] += static_cast<int64_t>(p.numel * sizeof(float));
  for (size_t i = 0; i < net_.num_layers(); ++i) {
    const std::string layer = std::to_string(i) + " " + net_.layer(i).describe();
    forward_names_.push_back("forward " + layer);
    backward_names_.push_back("backward " + layer);
  }
}

void StepTrace::step_begin(int64_t step) {
  recording_ = tracer_ && tracer_->records(step);
  if (tracer_) be_.record_ranges(recording_);  // (off also drops what a failed step left)
  if (!recording_) return;
  step_ = step;
  net_.set_layer_observer([this](int layer, bool backward, double start, double end) {
    const auto& names = backward ? backward_names_ : forward_names_;
    tracer_->span(Lane::Compute, names[static_cast<size_t>(layer)], start, end, step_,
                  backward ? layer_grad_bytes_[layer] : -1);
  });
}

void StepTrace::optimizer_begin() {
  if (!recording_) return;
  opt_start_ = steady_seconds();
  // On a GPU the optimizer's span comes from markers around it, as the layers' do.
  opt_begin_marker_ = be_.asynchronous() ? be_.record_marker() : -1;
}

void StepTrace::optimizer_end() {
  if (!recording_) return;
  opt_end_marker_ = opt_begin_marker_ >= 0 ? be_.record_marker() : -1;
  opt_end_ = steady_seconds();
}

void StepTrace::step_end(double start, double seconds, const StepCommStats& comm,
                         const std::vector<Bucket>& buckets) {
  if (!recording_) return;
  // The whole step too: what its layers and optimizer leave is the host's share (staging the
  // batch, the loss, zeroing the gradients) and, on a GPU, the gaps between launches.
  tracer_->span(Lane::Compute, "step", start, start + seconds, step_);
  net_.report_layer_times();  // a GPU's layer markers, now that they are done
  if (opt_begin_marker_ >= 0)
    tracer_->span(Lane::Compute, "optimizer", be_.marker_time(opt_begin_marker_),
                  be_.marker_time(opt_end_marker_), step_);
  else
    tracer_->span(Lane::Compute, "optimizer", opt_start_, opt_end_, step_);
  for (size_t i = 0; i < comm.buckets.size(); ++i)
    tracer_->span(Lane::Comm, "allreduce bucket " + std::to_string(i), comm.buckets[i].start,
                  comm.buckets[i].end, step_, static_cast<int64_t>(buckets[i].bytes));
  // The step's named ranges (its phases, layers and their parts), on the ops lane.
  for (const Device::TimedRange& r : be_.take_ranges())
    tracer_->span(Lane::Ops, r.path, r.start, r.end, step_);
  be_.record_ranges(false);
  net_.set_layer_observer(nullptr);
  recording_ = false;
}

void StepTrace::write(Communicator& comm) const {
  if (tracer_) tracer_->write(comm, path_);
}

}  // namespace dpt
