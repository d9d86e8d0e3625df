#include "src/train/model.hpp"

#include <algorithm>
#include <functional>
#include <limits>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"
#include "src/core/hash.hpp"
#include "src/core/random.hpp"
#include "src/data/sampler.hpp"
#include "src/io/safetensors.hpp"
#include "src/model/model_spec.hpp"
#include "src/train/buckets.hpp"
#include "src/train/tracer.hpp"

namespace dpt {

Model::Model(Environment env, const std::string& spec, const Shape& input_shape, uint64_t seed)
    : env_(env) {
  try {
    net_ = std::make_unique<Sequential>(parse_model_spec(spec), env_.backend, input_shape);
  } catch (const InputError& e) {
    // Shape errors come from the layers, which do not know the spec: name it here.
    std::string what = e.what();
    if (what.rfind("model: ", 0) == 0)
      throw InputError("model spec \"" + expand_preset(spec) + "\": " + what.substr(7) +
                       " (input " + shape_str(input_shape) + ")");
    throw;
  }
  // Every rank must have built the same parameter names and shapes before any collective
  // over the flat buffers, or the allreduce would silently mix unrelated tensors.
  Communicator& comm = env_.comm;
  const uint64_t mine = fnv1a(net_->signature());
  std::vector<uint64_t> all(static_cast<size_t>(comm.size()));
  comm.allgather(&mine, all.data(), 1, DataType::U64);
  for (int r = 0; r < comm.size(); ++r)
    if (all[r] != all[0])
      throw InputError("model: rank " + std::to_string(r) +
                       " built different parameter shapes than rank 0 (check --model and the "
                       "data each rank reads)");
  net_->init_params(seed);
  sync_params_from_rank0();
}

void Model::sync_params_from_rank0() {
  env_.comm.broadcast(net_->params(), net_->flat_size(), DataType::F32, 0);
}

void Model::compile(const OptimizerConfig& optimizer, const std::string& loss,
                    const std::vector<std::string>& metrics) {
  if (loss != "softmax_cross_entropy")
    throw InputError("compile: unknown loss '" + loss + "' (known: softmax_cross_entropy)");
  for (const std::string& m : metrics)
    if (m != "accuracy") throw InputError("compile: unknown metric '" + m + "' (known: accuracy)");
  optimizer_ = std::make_unique<Optimizer>(env_.backend, optimizer, net_->flat_size());
}

void Model::check_labels(const Dataset& data, const std::string& what) const {
  const int32_t max_label = data.max_label();
  if (max_label >= net_->num_outputs())
    throw InputError(what + ": label " + std::to_string(max_label) +
                     " is out of range for a model with " + std::to_string(net_->num_outputs()) +
                     " outputs");
  Shape sample(data.sample_shape.begin(), data.sample_shape.end());
  if (shape_numel(sample) != shape_numel(net_->input_shape()))
    throw InputError(what + ": samples of shape " + shape_str(sample) +
                     " do not fit a model built for " + shape_str(net_->input_shape()));
}

void Model::throw_nonfinite(int64_t step) const {
  // Backward runs from the last layer down: the highest-numbered layer with a non-finite
  // gradient is the first that went bad.
  const auto& params = net_->param_info();
  for (size_t t = params.size(); t-- > 0;) {
    if (env_.backend.count_nonfinite(net_->grads() + params[t].offset, params[t].numel) == 0)
      continue;
    const int layer = params[t].layer;
    if (env_.comm.rank() == 0)
      print_error(0, env_.comm.size(),
                  "non-finite loss or gradients at step " + std::to_string(step) +
                      ": first in backward at layer " + std::to_string(layer) + " " +
                      net_->layer(layer).describe() + " (" + params[t].name +
                      "); --on-nonfinite skip skips such steps");
    throw JobError(1);
  }
  throw SystemError("non-finite gradients at step " + std::to_string(step));
}

void Model::check_replicas() {
  // A checksum of each rank's parameter bytes; any difference from rank 0 is drift.
  const std::vector<float> host = net_->params_to_host();
  const uint64_t h = fnv1a(host.data(), host.size() * sizeof(float));
  std::vector<uint64_t> all(env_.comm.size());
  env_.comm.allgather(&h, all.data(), 1, DataType::U64);
  std::string differ;
  for (int r = 1; r < env_.comm.size(); ++r)
    if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (differ.empty()) return;
  if (env_.comm.rank() == 0)
    print_error(0, env_.comm.size(),
                "replicas differ after step " + std::to_string(steps_done_) + ": rank" +
                    (differ.find(',') == std::string::npos ? " " + differ + " holds"
                                                           : "s " + differ + " hold") +
                    " other parameters than rank 0 (--check-replicas)");
  throw JobError(1);
}

std::vector<Bucket> Model::buckets(const FitOptions::Comm& o) const {
  constexpr double kMiB = 1024.0 * 1024.0;
  return assign_buckets(net_->param_info(), static_cast<size_t>(o.first_bucket_mb * kMiB),
                        static_cast<size_t>(o.bucket_mb * kMiB));
}

std::vector<EpochMetrics> Model::fit(const Dataset& train, const FitOptions& o,
                                     const Dataset* validation,
                                     const std::vector<Callback*>& callbacks) {
  if (!optimizer_) throw InputError("fit: call compile() first");
  Communicator& comm = env_.comm;
  Backend& be = env_.backend;
  if (o.schedule.batch_size < 1) throw InputError("option --batch-size: must be at least 1");
  if (o.schedule.epochs < 1) throw InputError("option --epochs: must be at least 1");
  if (o.schedule.accumulate < 1) throw InputError("option --accumulate: must be at least 1");
  if (!(o.comm.bucket_mb >= 0) || !(o.comm.first_bucket_mb > 0))
    throw InputError("option --bucket-mb: must be >= 0 (and --first-bucket-mb > 0)");
  check_labels(train, "training data");
  if (validation) check_labels(*validation, "test data");

  // With accumulation, one optimizer step takes accumulate micro-batches of batch_size from
  // this rank's shard: exactly the samples of one step with accumulate * batch_size.
  const int world = comm.size();
  const int b = o.schedule.batch_size, micro = o.schedule.accumulate;
  DistributedSampler sampler(train.count, world, comm.rank(), static_cast<int64_t>(b) * micro,
                             o.schedule.shuffle, o.schedule.seed);
  if (sampler.steps_per_epoch() == 0)
    throw InputError("option --batch-size: " + std::to_string(b) +
                     (micro > 1 ? " x --accumulate " + std::to_string(micro) : std::string()) +
                     " is larger than a rank's shard (" + std::to_string(train.count) +
                     " samples / " + std::to_string(world) + " ranks)");

  const int64_t numel = train.sample_numel();
  const int classes = static_cast<int>(net_->num_outputs());
  std::vector<int64_t> idx(static_cast<size_t>(b) * micro);
  // Batches are gathered into pinned host memory and copied without waiting; the next step's
  // first batch is gathered and sent while the device runs this step's optimizer update.
  // One host buffer suffices: every step waits for its loss, so the copy out of it is done
  // by the time the next gather writes it.
  PinnedBuffer x_pinned(be), y_pinned(be);
  float* x_host = x_pinned.as<float>(static_cast<size_t>(b) * numel);
  int32_t* y_host = y_pinned.as<int32_t>(b);
  DeviceBuffer x_dev(be, sizeof(float) * b * numel);
  DeviceBuffer y_dev(be, sizeof(int32_t) * b);
  int64_t staged_step = -1;  // the global step whose first micro-batch is on the device
  const auto stage = [&](const int64_t* batch_idx, bool inject_nan) {
    train.gather(batch_idx, b, x_host, y_host);
    if (inject_nan) x_host[0] = std::numeric_limits<float>::quiet_NaN();
    be.copy_from_host_async(x_dev.data(), x_host, sizeof(float) * b * numel);
    be.copy_from_host_async(y_dev.data(), y_host, sizeof(int32_t) * b);
  };
  DeviceBuffer dlogits(be, sizeof(float) * b * classes);
  // The loss gradient is scaled by 1 / global batch, so that the sum over ranks (and over
  // micro-batches) is the gradient of the mean over the global batch: averaging costs no pass.
  const float grad_scale = 1.0f / static_cast<float>(sampler.global_batch());
  Reducer reducer(comm, be, buckets(o.comm), param_ranges(net_->param_info()));
  std::vector<int64_t> layer_grad_bytes(net_->num_layers(), 0);  // for the trace
  for (const ParamInfo& p : net_->param_info())
    layer_grad_bytes[p.layer] += static_cast<int64_t>(p.numel * sizeof(float));

  comm.barrier();  // a common time origin for every rank's trace
  const double fit_start = steady_seconds();
  std::unique_ptr<Tracer> tracer;
  // Span names made once: building them per span cost mlp a tenth of its traced step.
  std::vector<std::string> forward_span_names, backward_span_names;
  if (!o.trace.path.empty()) {
    tracer = std::make_unique<Tracer>(o.trace.first, o.trace.last, fit_start);
    for (size_t i = 0; i < net_->num_layers(); ++i) {
      const std::string layer = std::to_string(i) + " " + net_->layer(i).describe();
      forward_span_names.push_back("forward " + layer);
      backward_span_names.push_back("backward " + layer);
    }
  }

  for (Callback* cb : callbacks) cb->on_fit_begin(sampler.steps_per_epoch(), o.schedule.epochs);
  std::vector<EpochMetrics> history;
  stopped_on_request_ = false;
  const TrainPosition from = o.checkpoint.resume.value_or(TrainPosition{steps_done_, 0, 0, 0.0});
  steps_done_ = from.step;
  const auto checkpoint = [&](int epoch, int64_t step_in_epoch, double loss_sum) {
    if (o.checkpoint.on_write) o.checkpoint.on_write({steps_done_, epoch, step_in_epoch, loss_sum});
  };
  for (int epoch = from.epoch; epoch < o.schedule.epochs; ++epoch) {
    const std::vector<int64_t> perm = sampler.permutation(epoch);
    const double t0 = steady_seconds();
    const bool resumed = epoch == from.epoch && from.step_in_epoch > 0;
    double loss_sum = resumed ? from.loss_sum : 0, comm_total = 0, comm_exposed = 0;
    int64_t steps = resumed ? from.step_in_epoch : 0, skips = 0;
    std::vector<double> step_times;  // wall time of each step (the callbacks' time excluded)
    for (int64_t s = steps; s < sampler.steps_per_epoch(); ++s) {
      if (o.schedule.max_steps >= 0 && steps_done_ >= o.schedule.max_steps) break;
      const bool tracing = tracer && tracer->records(steps_done_);
      if (tracing)
        net_->set_layer_observer([&](int layer, bool backward, double start, double end) {
          const auto& names = backward ? backward_span_names : forward_span_names;
          tracer->span(Lane::Compute, names[static_cast<size_t>(layer)], start, end, steps_done_,
                       backward ? layer_grad_bytes[layer] : -1);
        });
      const double step_wall = steady_seconds();
      reducer.step_begin();
      sampler.batch_indices(perm, s, idx.data());
      net_->zero_grad();
      double step_loss = 0;
      for (int m = 0; m < micro; ++m) {
        if (m > 0 || staged_step != steps_done_)
          stage(idx.data() + static_cast<size_t>(m) * b,
                steps_done_ == o.faults.nan_step && comm.rank() == 0 && m == 0);
        const uint64_t dropout_seed =
            random_u64(o.schedule.seed ^ 0xd1d1d1d1ULL,
                       (static_cast<uint64_t>(steps_done_) * micro + m) * world + comm.rank());
        const float* logits;
        {
          ScopedRange range(be, "forward");
          logits = net_->forward(x_dev.data(), b, true, dropout_seed);
        }
        step_loss += be.softmax_cross_entropy(logits, y_dev.as<int32_t>(), b, classes, grad_scale,
                                              dlogits.data())
                         .loss_sum;
        ScopedRange range(be, "backward");
        if (m + 1 < micro) {
          net_->backward(dlogits.data(), b);  // accumulate locally, no communication
          continue;
        }
        // The last micro-batch: each bucket's allreduce starts as soon as backward has
        // finished its layers, and overlaps the backward of the layers below. The
        // communicator orders each allreduce after the work queued so far (a device event
        // for NCCL, a copy that waits for the queue when staging through host memory).
        reducer.begin(net_->grads());
        net_->backward(dlogits.data(), b, [&](int layer) { reducer.stage_done(layer); });
        reducer.backward_done();
      }
      {
        ScopedRange range(be, "allreduce wait");
        reducer.finish();
      }
      // After the allreduce every rank holds the same gradients, so every rank decides alike.
      const bool finite = be.count_nonfinite(net_->grads(), net_->flat_size()) == 0;
      if (!finite && !o.health.skip_nonfinite) throw_nonfinite(steps_done_);
      const double opt_start = steady_seconds();
      // On a GPU the optimizer's span comes from markers around it, as the layers' do.
      const int opt_begin = tracing && be.asynchronous() ? be.record_marker() : -1;
      if (finite) {
        ScopedRange range(be, "optimizer");
        optimizer_->step(net_->params(), net_->grads());
      } else {
        ++skips;
      }
      const int opt_end = opt_begin >= 0 ? be.record_marker() : -1;
      const double opt_host_end = steady_seconds();
      // While the device runs the update, gather and send the next step's first batch.
      if (s + 1 < sampler.steps_per_epoch() &&
          !(o.schedule.max_steps >= 0 && steps_done_ + 1 >= o.schedule.max_steps)) {
        sampler.batch_indices(perm, s + 1, idx.data());
        stage(idx.data(), steps_done_ + 1 == o.faults.nan_step && comm.rank() == 0);
        staged_step = steps_done_ + 1;
      }
      be.synchronize();
      const double step_seconds = steady_seconds() - step_wall;
      const StepCommStats cs = reducer.step_end();
      if (tracing) {
        // The whole step too: what its layers and optimizer leave is the host's share (staging
        // the batch, the loss, zeroing the gradients) and, on a GPU, the gaps between launches.
        tracer->span(Lane::Compute, "step", step_wall, step_wall + step_seconds, steps_done_);
        net_->report_layer_times();  // a GPU's layer markers, now that they are done
        if (opt_begin >= 0)
          tracer->span(Lane::Compute, "optimizer", be.marker_time(opt_begin),
                       be.marker_time(opt_end), steps_done_);
        else
          tracer->span(Lane::Compute, "optimizer", opt_start, opt_host_end, steps_done_);
      }
      step_times.push_back(step_seconds);
      be.clear_markers();
      comm_total += cs.total_seconds;
      comm_exposed += cs.exposed_seconds;
      if (tracing) {
        for (size_t i = 0; i < cs.buckets.size(); ++i)
          tracer->span(Lane::Comm, "allreduce bucket " + std::to_string(i), cs.buckets[i].start,
                       cs.buckets[i].end, steps_done_,
                       static_cast<int64_t>(reducer.buckets()[i].bytes));
        net_->set_layer_observer(nullptr);
      }
      ++steps_done_;
      ++steps;
      if (finite) loss_sum += step_loss;
      if (comm.rank() == o.faults.drift_rank && steps_done_ == o.faults.drift_step) {
        float one_more = 0;
        be.copy_to_host(&one_more, net_->params(), sizeof(float));
        one_more += 1e-3f;
        be.copy_from_host(net_->params(), &one_more, sizeof(float));
      }
      if (o.health.check_replicas_every > 0 && steps_done_ % o.health.check_replicas_every == 0)
        check_replicas();
      for (Callback* cb : callbacks)
        cb->on_step_end(epoch + 1, s + 1, steps_done_,
                        step_loss / (static_cast<double>(b) * micro));
      // Mid-epoch checkpoints here; one that falls on the epoch's last step is taken after the
      // epoch's metrics below, so that a resumed run neither repeats nor misses that line.
      const bool stopping = o.schedule.max_steps >= 0 && steps_done_ >= o.schedule.max_steps;
      if (o.checkpoint.every > 0 && s + 1 < sampler.steps_per_epoch() && !stopping &&
          steps_done_ % o.checkpoint.every == 0)
        checkpoint(epoch, s + 1, loss_sum);
      if (stopping) break;
      if (o.stop.requested && steps_done_ % std::max<int64_t>(1, o.stop.check_every) == 0) {
        int64_t flag = o.stop.requested() ? 1 : 0;
        comm.allreduce(&flag, 1, DataType::I64, ReduceOp::Max);
        if (flag) {
          stopped_on_request_ = true;
          break;
        }
      }
    }
    be.synchronize();
    const double train_seconds = steady_seconds() - t0;

    EpochMetrics m;
    m.epoch = epoch + 1;
    m.step = steps_done_;
    m.epoch_steps = steps;
    m.world_size = world;
    m.global_batch = sampler.global_batch();
    const double samples = static_cast<double>((steps - skips) * sampler.global_batch());
    const double total_loss = comm.allreduce_sum(loss_sum);
    m.train_loss = samples > 0 ? total_loss / samples : 0;
    m.train_seconds = train_seconds;
    m.comm_seconds = comm_total;
    m.exposed_comm_seconds = comm_exposed;
    m.compute_seconds = train_seconds - comm_exposed;
    m.overlap_fraction = comm_total > 0 ? (comm_total - comm_exposed) / comm_total : 0;
    m.nonfinite_skips = skips;
    m.samples_per_second = train_seconds > 0 ? samples / train_seconds : 0;
    if (!step_times.empty()) {
      auto mid = step_times.begin() + static_cast<std::ptrdiff_t>(step_times.size() / 2);
      std::nth_element(step_times.begin(), mid, step_times.end());
      m.median_step_seconds = *mid;
    }
    if (validation) m.test = evaluate(*validation, o.eval.batch_size);
    m.elapsed_seconds = steady_seconds() - fit_start;
    history.push_back(m);
    for (Callback* cb : callbacks) cb->on_epoch_end(m);
    const bool stopping =
        (o.schedule.max_steps >= 0 && steps_done_ >= o.schedule.max_steps) || stopped_on_request_;
    const bool finished_epoch = steps == sampler.steps_per_epoch();
    if ((o.checkpoint.every > 0 || stopped_on_request_) && steps > 0 &&
        (stopped_on_request_ || steps_done_ % o.checkpoint.every == 0 || stopping ||
         epoch + 1 == o.schedule.epochs)) {
      if (finished_epoch)
        checkpoint(epoch + 1, 0, 0.0);
      else
        checkpoint(epoch, steps, loss_sum);  // stopped by --max-steps inside the epoch
    }
    if (stopping) break;
  }
  if (tracer) tracer->write(comm, o.trace.path);
  return history;
}

EvalResult Model::evaluate(const Dataset& data, int batch_size) {
  Communicator& comm = env_.comm;
  Backend& be = env_.backend;
  check_labels(data, "evaluation data");
  const int classes = static_cast<int>(net_->num_outputs());
  const int64_t numel = data.sample_numel();
  const int world = comm.size();
  // Rank r evaluates samples r, r + P, r + 2P, ...: every sample exactly once over all ranks.
  std::vector<int64_t> mine;
  for (int64_t i = comm.rank(); i < data.count; i += world) mine.push_back(i);
  const int bs = std::max(1, batch_size);
  std::vector<float> x_host(static_cast<size_t>(bs) * numel);
  std::vector<int32_t> y_host(bs);
  DeviceBuffer x_dev(be, sizeof(float) * x_host.size());
  DeviceBuffer y_dev(be, sizeof(int32_t) * bs);
  double loss_sum = 0;
  int64_t correct = 0;
  for (size_t start = 0; start < mine.size(); start += bs) {
    const int n = static_cast<int>(std::min<size_t>(bs, mine.size() - start));
    data.gather(mine.data() + start, n, x_host.data(), y_host.data());
    be.copy_from_host(x_dev.data(), x_host.data(), sizeof(float) * n * numel);
    be.copy_from_host(y_dev.data(), y_host.data(), sizeof(int32_t) * n);
    const float* logits = net_->forward(x_dev.data(), n, false, 0);
    const LossResult r =
        be.softmax_cross_entropy(logits, y_dev.as<int32_t>(), n, classes, 0.0f, nullptr);
    loss_sum += r.loss_sum;
    correct += r.correct;
  }
  EvalResult out;
  out.count = comm.allreduce_sum(static_cast<int64_t>(mine.size()));
  const double total_loss = comm.allreduce_sum(loss_sum);
  const int64_t total_correct = comm.allreduce_sum(correct);
  if (out.count > 0) {
    out.loss = total_loss / static_cast<double>(out.count);
    out.accuracy = static_cast<double>(total_correct) / static_cast<double>(out.count);
  }
  return out;
}

std::vector<float> Model::predict(const float* x, int n) {
  Backend& be = env_.backend;
  const int64_t numel = shape_numel(net_->input_shape());
  const int classes = static_cast<int>(net_->num_outputs());
  DeviceBuffer x_dev(be, sizeof(float) * n * numel);
  be.copy_from_host(x_dev.data(), x, sizeof(float) * n * numel);
  const float* logits = net_->forward(x_dev.data(), n, false, 0);
  std::vector<float> out(static_cast<size_t>(n) * classes);
  be.copy_to_host(out.data(), logits, sizeof(float) * out.size());
  return out;
}

void Model::load_weights(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  std::vector<float> host(net_->flat_size(), 0.0f);
  for (const ParamInfo& p : net_->param_info()) {
    const TensorIn* t = file.find(p.name);
    if (!t) {
      std::string held;
      for (size_t i = 0; i < file.tensors.size() && i < 4; ++i)
        held += (i ? ", '" : "'") + file.tensors[i].name + "'";
      if (file.tensors.size() > 4) held += ", ...";
      throw InputError(path + ": no tensor '" + p.name + "', which the model needs (the file has " +
                       (held.empty() ? std::string("none") : held) + ")");
    }
    if (Shape(t->shape.begin(), t->shape.end()) != p.shape)
      throw InputError(path + ": tensor '" + p.name + "' has shape " + shape_str(t->shape) +
                       ", the model needs " + shape_str(p.shape));
    std::copy(t->data.begin(), t->data.end(), host.begin() + p.offset);
  }
  for (const TensorIn& t : file.tensors) {
    bool known = false;
    for (const ParamInfo& p : net_->param_info()) known = known || p.name == t.name;
    if (!known)
      throw InputError(path + ": tensor '" + t.name + "' is not a parameter of the model");
  }
  net_->params_from_host(host);
}

void Model::save_weights(const std::string& path,
                         const std::map<std::string, std::string>& metadata) const {
  if (env_.comm.rank() != 0) return;
  const std::vector<float> host = net_->params_to_host();
  std::vector<TensorOut> tensors;
  for (const ParamInfo& p : net_->param_info())
    tensors.push_back({p.name, p.shape, host.data() + p.offset});
  write_safetensors(path, tensors, metadata);
}

}  // namespace dpt
