#include "src/train/model.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

#include "src/core/clock.hpp"
#include "src/core/error.hpp"
#include "src/core/hash.hpp"
#include "src/core/random.hpp"
#include "src/data/sampler.hpp"
#include "src/io/safetensors.hpp"
#include "src/model/model_spec.hpp"
#include "src/train/batch_stager.hpp"
#include "src/train/bf16_wire.hpp"
#include "src/train/buckets.hpp"
#include "src/train/checkpoint_policy.hpp"
#include "src/train/epoch_metrics.hpp"
#include "src/train/faults.hpp"
#include "src/train/grad_clip.hpp"
#include "src/train/health.hpp"
#include "src/train/step_gate.hpp"
#include "src/train/step_trace.hpp"

namespace dpt {

void FitOptions::validate() const {
  if (schedule.batch_size < 1) throw InputError("option --batch-size: must be at least 1");
  if (schedule.epochs < 1) throw InputError("option --epochs: must be at least 1");
  if (schedule.accumulate < 1) throw InputError("option --accumulate: must be at least 1");
  if (comm.zero != 0 && comm.zero != 1)
    throw InputError("option --zero: stage " + std::to_string(comm.zero) +
                     " is not supported (0: off, 1: shard the optimizer state)");
  if (comm.grad_comm != DataType::F32 && comm.grad_comm != DataType::BF16)
    throw InputError(std::string("option --grad-comm: ") + dtype_name(comm.grad_comm) +
                     " is not supported (fp32 or bf16)");
  if (!(comm.bucket_mb >= 0) || !(comm.first_bucket_mb > 0))
    throw InputError("option --bucket-mb: must be >= 0 (and --first-bucket-mb > 0)");
  if (!(optim.grad_clip >= 0) || !std::isfinite(optim.grad_clip))
    throw InputError("option --grad-clip: must be a number >= 0 (0: no clipping)");
  if (optim.lr_schedule) optim.lr_schedule->validate();
}

namespace {

// With accumulation, one optimizer step takes accumulate micro-batches of batch_size from this
// rank's shard: exactly the samples of one step with accumulate * batch_size.
DistributedSampler shard_sampler(const BatchSource& train, const Communicator& comm,
                                 const FitOptions::Schedule& o) {
  DistributedSampler sampler(train.size(), comm.size(), comm.rank(),
                             static_cast<int64_t>(o.batch_size) * o.accumulate, o.shuffle, o.seed);
  if (sampler.steps_per_epoch() == 0)
    throw InputError(
        "option --batch-size: " + std::to_string(o.batch_size) +
        (o.accumulate > 1 ? " x --accumulate " + std::to_string(o.accumulate) : std::string()) +
        " is larger than a rank's shard (" + std::to_string(train.size()) + " samples / " +
        std::to_string(comm.size()) + " ranks)");
  return sampler;
}

bool max_steps_reached(const FitOptions::Schedule& o, int64_t steps) {
  return o.max_steps >= 0 && steps >= o.max_steps;
}

// Dropout masks differ by step, micro-batch and rank, and depend on nothing else, so a resumed
// run draws the same ones.
uint64_t dropout_seed(const FitOptions::Schedule& o, int64_t step, int micro,
                      const Communicator& comm) {
  return random_u64(
      o.seed ^ 0xd1d1d1d1ULL,
      (static_cast<uint64_t>(step) * o.accumulate + micro) * comm.size() + comm.rank());
}

// A common time origin for every rank's trace: the moment after a barrier.
double common_origin(Communicator& comm) {
  comm.barrier();
  return steady_seconds();
}

// Whether any rank was asked to stop, polled every check_every steps; every rank agrees.
bool stop_requested(Communicator& comm, const FitOptions::Stop& stop, int64_t steps_done) {
  if (!stop.requested || steps_done % std::max<int64_t>(1, stop.check_every) != 0) return false;
  int64_t flag = stop.requested() ? 1 : 0;
  comm.allreduce(&flag, 1, DataType::I64, ReduceOp::Max);
  return flag != 0;
}

}  // namespace

Model::Model(Environment env, const std::string& spec, const Shape& input_shape, uint64_t seed,
             DataType compute)
    : env_(env) {
  try {
    // Laid out so that ZeRO-1 can cut any bucket into equal blocks (zero.hpp).
    net_ = std::make_unique<Sequential>(parse_model_spec(spec), env_.backend, input_shape, compute,
                                        shard_alignment(env_.comm.size()));
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
  std::unique_ptr<Loss> made;
  try {
    made = make_loss(loss);
  } catch (const InputError& e) {
    throw InputError(std::string("compile: ") + e.what());
  }
  for (const std::string& m : metrics)
    if (m != "accuracy") throw InputError("compile: unknown metric '" + m + "' (known: accuracy)");
  optimizer_ = std::make_unique<Optimizer>(
      env_.backend, optimizer, net_->flat_size(),
      decay_ranges(net_->param_info(), net_->flat_size(), optimizer.decay_only_matrices));
  loss_ = std::move(made);
}

void Model::check_targets(const BatchSource& data, const std::string& what) const {
  const auto kind = [](DataType t) {
    return t == DataType::I32 ? std::string("int32 token ids") : std::string(dtype_name(t));
  };
  if (data.input_dtype() != net_->input_dtype())
    throw InputError(what + ": inputs are " + kind(data.input_dtype()) + ", the model takes " +
                     kind(net_->input_dtype()));
  const Shape sample = data.sample_shape();
  if (shape_numel(sample) != shape_numel(net_->input_shape()))
    throw InputError(what + ": samples of shape " + shape_str(sample) +
                     " do not fit a model built for " + shape_str(net_->input_shape()));
  if (data.targets_per_sample() != net_->rows_per_sample())
    throw InputError(what + ": " + std::to_string(data.targets_per_sample()) +
                     " targets per sample, but the model gives " +
                     std::to_string(net_->rows_per_sample()) + " rows of outputs per sample");
  const int32_t max_target = data.max_target();
  if (max_target >= net_->num_classes())
    throw InputError(what + ": label " + std::to_string(max_target) +
                     " is out of range for a model with " + std::to_string(net_->num_classes()) +
                     " outputs");
}

std::vector<Bucket> Model::buckets(const FitOptions::Comm& o) const {
  constexpr double kMiB = 1024.0 * 1024.0;
  std::vector<Bucket> b =
      assign_buckets(net_->param_info(), static_cast<size_t>(o.first_bucket_mb * kMiB),
                     static_cast<size_t>(o.bucket_mb * kMiB));
  if (o.zero == 1) b = pad_buckets(std::move(b), net_->flat_size(), env_.comm.size());
  return b;
}

void Model::layout_optimizer_state(const std::vector<ShardBlock>& blocks) {
  if (optimizer_->sharded() && optimizer_->shard_blocks() == blocks) return;
  optimizer_->unshard(env_.comm);  // a whole state, or other blocks (other buckets) before
  if (!blocks.empty()) optimizer_->shard(blocks);
}

// The phases of a step, built once per fit().
struct Model::FitRun {
  FitRun(Model& model, const BatchSource& train, const FitOptions& o)
      : options(o),
        rows_per_sample(train.targets_per_sample()),
        classes(model.net_->num_classes()),
        row_stride(model.net_->output_row_stride()),
        sampler(shard_sampler(train, model.env_.comm, o.schedule)),
        stager(model.env_.backend, train, sampler, o.schedule.batch_size, o.schedule.accumulate),
        dlogits(model.env_.backend, model.net_->activation_dtype(),
                static_cast<size_t>(o.schedule.batch_size) * model.net_->output_elems()),
        grad_scale(1.0f / static_cast<float>(sampler.global_batch() * rows_per_sample)),
        buckets(model.buckets(o.comm)),
        shard(o.comm.zero == 1
                  ? shard_blocks(buckets, model.env_.comm.size(), model.env_.comm.rank())
                  : std::vector<ShardBlock>{}),
        wire(o.comm.grad_comm == DataType::BF16 ? std::make_unique<Bf16Wire>(model.env_.backend)
                                                : nullptr),
        reducer(
            model.env_.comm, model.env_.backend, buckets, param_ranges(model.net_->param_info()),
            o.comm.zero == 1 ? GradReduction::ReduceScatter : GradReduction::Allreduce, wire.get()),
        health(model.env_, *model.net_, o.health),
        clipper(o.optim.grad_clip > 0
                    ? std::make_unique<GradClipper>(model.env_.backend, model.net_->param_info(),
                                                    o.optim.grad_clip)
                    : nullptr),
        gate(o.comm.zero == 1
                 ? nullptr
                 : std::make_unique<StepGate>(model.env_.backend, model.net_->param_info(),
                                              std::max(0.0, o.optim.grad_clip))),
        faults(FaultInjector::make(o.faults, model.env_.comm.rank())),
        start(common_origin(model.env_.comm)),
        trace(*model.net_, o.trace, start) {
    health.set_shard(shard);
    if (clipper && !shard.empty()) clipper->set_shard(model.env_.comm, shard);
    model.layout_optimizer_state(shard);
    if (faults)
      stager.set_host_hook([this](int64_t step, int micro, TensorRef inputs) {
        faults->on_host_batch(step, micro, inputs);
      });
  }

  const FitOptions& options;
  const int64_t rows_per_sample;  // loss rows (targets) per sample: 1, or T tokens
  const int64_t classes;          // outputs per row
  const int64_t row_stride;       // elements from one row of the outputs to the next
  DistributedSampler sampler;
  BatchStager stager;
  DeviceBuffer dlogits;
  // The loss gradient is scaled by 1 / (global batch x rows per sample), so that the sum over
  // ranks (and over micro-batches) is the gradient of the mean over every target of the global
  // batch: averaging costs no pass.
  float grad_scale;
  std::vector<Bucket> buckets;
  std::vector<ShardBlock> shard;    // this rank's blocks under ZeRO-1; empty without
  std::unique_ptr<WireCodec> wire;  // gradients sent as bf16; none: as float32
  Reducer reducer;
  HealthChecks health;
  std::unique_ptr<GradClipper> clipper;   // none without --grad-clip
  std::unique_ptr<StepGate> gate;         // none under ZeRO-1 (the host decides there)
  std::unique_ptr<FaultInjector> faults;  // none unless the tests plan a fault
  double start;                           // of training, the same moment on every rank
  StepTrace trace;
};

struct Model::StepResult {
  double loss = 0;       // this rank's loss sum over the step's micro-batches
  bool applied = false;  // false: skipped for non-finite gradients
  double seconds = 0;    // wall time
  StepCommStats comm;
  double lr = 0;                    // the optimizer's learning rate for this step
  std::optional<double> grad_norm;  // before clipping, when clipping
};

std::vector<EpochMetrics> Model::fit(const Dataset& train, const FitOptions& o,
                                     const Dataset* validation,
                                     const std::vector<Callback*>& callbacks) {
  const ImageBatches train_batches(train);
  if (!validation) return fit(train_batches, o, nullptr, callbacks);
  const ImageBatches validation_batches(*validation);
  return fit(train_batches, o, &validation_batches, callbacks);
}

std::vector<EpochMetrics> Model::fit(const BatchSource& train, const FitOptions& o,
                                     const BatchSource* validation,
                                     const std::vector<Callback*>& callbacks) {
  if (!optimizer_) throw InputError("fit: call compile() first");
  o.validate();
  check_targets(train, "training data");
  if (validation) check_targets(*validation, "test data");
  FitRun run(*this, train, o);
  const int64_t steps_per_epoch = run.sampler.steps_per_epoch();
  // Targets (loss rows) per optimizer step on this rank, for the callbacks' mean step loss.
  const double rows_per_step =
      static_cast<double>(o.schedule.batch_size) * o.schedule.accumulate * run.rows_per_sample;
  const CheckpointPolicy* checkpoints = o.checkpoint.policy;

  for (Callback* cb : callbacks) cb->on_fit_begin(steps_per_epoch, o.schedule.epochs);
  std::vector<EpochMetrics> history;
  stopped_on_request_ = false;
  const TrainPosition from = o.checkpoint.resume.value_or(TrainPosition{steps_done_, 0, 0, 0.0});
  steps_done_ = from.step;
  set_weight_rounding(o);
  env_.backend.take_loss_totals();  // nothing left over from a fit that stopped mid-step
  for (int epoch = from.epoch; epoch < o.schedule.epochs; ++epoch) {
    const std::vector<int64_t> perm = run.sampler.permutation(epoch);
    const double epoch_start = steady_seconds();
    EpochTally tally = EpochTally::starting(epoch, from);
    for (int64_t s = tally.steps;
         s < steps_per_epoch && !max_steps_reached(o.schedule, steps_done_); ++s) {
      const StepResult step = train_step(run, perm, s);
      tally.add_step(step.seconds, step.comm, step.applied, step.loss);
      tally.add_optimizer_figures(step.lr, step.grad_norm);
      last_lr_ = step.lr;
      last_grad_norm_ = step.grad_norm;
      ++steps_done_;
      set_weight_rounding(o);
      if (run.faults) run.faults->after_step(steps_done_, *net_);
      run.health.after_step(steps_done_);
      for (Callback* cb : callbacks)
        cb->on_step_end(epoch + 1, s + 1, steps_done_, step.loss / rows_per_step);
      const bool run_ends = max_steps_reached(o.schedule, steps_done_);
      if (checkpoints &&
          checkpoints->due_after_step(steps_done_, s + 1 == steps_per_epoch, run_ends))
        checkpoints->write(*this, {steps_done_, epoch, s + 1, tally.loss_sum});
      if (run_ends) break;
      if (stop_requested(env_.comm, o.stop, steps_done_)) {
        stopped_on_request_ = true;
        break;
      }
    }
    env_.backend.synchronize();
    EpochMetrics m = epoch_metrics(env_.comm, tally, epoch, steps_done_, run.sampler.global_batch(),
                                   steady_seconds() - epoch_start, run.rows_per_sample);
    // A stop request cuts the epoch short and asks for a prompt end: no evaluation.
    if (validation && !stopped_on_request_)
      m.test = evaluate(*validation, o.eval.batch_size, o.eval.max_batches);
    m.elapsed_seconds = steady_seconds() - run.start;
    history.push_back(m);
    for (Callback* cb : callbacks) cb->on_epoch_end(m);
    const bool stopping = max_steps_reached(o.schedule, steps_done_) || stopped_on_request_;
    // A checkpoint of the epoch's last step is taken here, after the epoch's metrics, so that a
    // resumed run neither repeats nor misses that line.
    if (checkpoints && checkpoints->due_at_epoch_end(steps_done_, tally.steps,
                                                     stopping || epoch + 1 == o.schedule.epochs,
                                                     stopped_on_request_)) {
      if (tally.steps == steps_per_epoch)
        checkpoints->write(*this, {steps_done_, epoch + 1, 0, 0.0});
      else  // stopped inside the epoch
        checkpoints->write(*this, {steps_done_, epoch, tally.steps, tally.loss_sum});
    }
    if (stopping) break;
  }
  run.trace.write(env_.comm);
  return history;
}

void Model::set_weight_rounding(const FitOptions& o) {
  // The seed follows the masters' version (the optimizer steps done), so that a resumed run
  // writes the same working copy.
  net_->set_weight_rounding(o.precision.weight_rounding,
                            mix64(o.schedule.seed ^ (0xd1342543de82ef95ULL * (steps_done_ + 1))));
}

// One optimizer step: per micro-batch stage, forward, loss, backward (the last one reducing),
// then health, learning rate, gradient clipping, optimizer, timing and trace.
Model::StepResult Model::train_step(FitRun& run, const std::vector<int64_t>& perm, int64_t s) {
  Backend& be = env_.backend;
  const FitOptions::Schedule& o = run.options.schedule;
  const int b = o.batch_size;
  const int rows = static_cast<int>(b * run.rows_per_sample);
  const int classes = static_cast<int>(run.classes);
  StepResult r;
  run.trace.step_begin(steps_done_);
  const double step_start = steady_seconds();
  run.reducer.step_begin();
  net_->zero_grad();
  for (int m = 0; m < o.accumulate; ++m) {
    run.stager.stage(perm, s, steps_done_, m);
    ConstTensorRef logits;
    {
      ScopedRange range(be, "forward");
      logits =
          net_->forward(run.stager.inputs(), b, true, dropout_seed(o, steps_done_, m, env_.comm));
    }
    // The loss over the micro-batch, and its gradient (scaled by grad_scale) into dlogits. The
    // loss is deferred: it is read at the end of the step, where the host waits anyway.
    {
      ScopedRange range(be, "loss");
      loss_->compute_deferred(be, logits, run.stager.targets(), rows, classes,
                              static_cast<int>(run.row_stride), run.grad_scale, run.dlogits.ref());
    }
    ScopedRange range(be, "backward");
    if (m + 1 < o.accumulate) {
      net_->backward(run.dlogits.ref(), b);  // accumulate locally, no communication
      continue;
    }
    // The last micro-batch: each bucket's allreduce starts as soon as backward has finished its
    // layers, and overlaps the backward of the layers below. The communicator orders each
    // allreduce after the work queued so far (a device event for NCCL, a copy that waits for
    // the queue when staging through host memory).
    run.reducer.begin(net_->grads());
    net_->backward(run.dlogits.ref(), b, [&](int layer) {
      for (size_t p : net_->tied_params(static_cast<size_t>(layer))) run.reducer.param_done(p);
      run.reducer.stage_done(layer);
    });
    run.reducer.backward_done();
  }
  {
    ScopedRange range(be, "allreduce wait");
    run.reducer.finish();
  }
  // Every rank holds every averaged gradient: the gate checks and clips them where they are,
  // and the update reads its flag, so nothing waits until the step's end. Under ZeRO-1 the
  // blocks' sums need an allreduce first, on the host: there the squared norm, with clipping,
  // also tells whether every gradient is finite (one pass over them and one wait, not two).
  std::optional<double> sum_of_squares;
  if (!run.gate) {
    if (run.clipper) {
      ScopedRange range(be, "gradient norm");
      sum_of_squares = run.clipper->sum_of_squares(net_->grads());
    }
    r.applied =
        run.health.gradients_usable(steps_done_, sum_of_squares ? &*sum_of_squares : nullptr);
  } else {
    r.applied = true;  // unless the gate says otherwise, read below
  }
  if (const auto& schedule = run.options.optim.lr_schedule)
    optimizer_->set_lr(static_cast<float>(schedule->at(steps_done_)));
  r.lr = optimizer_->lr();
  run.trace.optimizer_begin();
  if (run.gate) {
    ScopedRange range(be, run.clipper ? "clip gradients" : "check gradients");
    run.gate->queue(net_->grads());
  } else if (r.applied && run.clipper) {
    ScopedRange range(be, "clip gradients");
    r.grad_norm = run.clipper->apply(net_->grads(), *sum_of_squares).norm;
  }
  if (r.applied) {
    ScopedRange range(be, "optimizer");
    optimizer_->step(net_->params(), net_->grads(), run.gate ? run.gate->skip() : nullptr);
  }
  if (r.applied && !run.shard.empty()) {
    ScopedRange range(be, "allgather parameters");
    run.reducer.gather_params(net_->params());
  }
  run.trace.optimizer_end();
  // While the device runs the update, gather and send the next step's first batch.
  if (s + 1 < run.sampler.steps_per_epoch() && !max_steps_reached(o, steps_done_ + 1))
    run.stager.prefetch(perm, s + 1, steps_done_ + 1);
  be.synchronize();
  if (run.gate) {
    const StepGate::Outcome gate = run.gate->read();
    // Not finite: the update left everything alone; stop here (naming the layer), or count the
    // step as skipped and take back its optimizer count.
    r.applied = run.health.gradients_usable(steps_done_, &gate.sum_of_squares);
    if (!r.applied) optimizer_->undo_step();
    if (r.applied && run.clipper) r.grad_norm = std::sqrt(gate.sum_of_squares);
  }
  r.seconds = steady_seconds() - step_start;
  r.loss = loss_->take(be).loss_sum;
  r.comm = run.reducer.step_end();
  run.trace.step_end(step_start, r.seconds, r.comm, run.reducer.buckets());
  be.clear_markers();
  return r;
}

EvalResult Model::evaluate(const Dataset& data, int batch_size) {
  return evaluate(ImageBatches(data), batch_size);
}

EvalResult Model::evaluate(const BatchSource& data, int batch_size, int64_t max_batches) {
  Communicator& comm = env_.comm;
  Backend& be = env_.backend;
  check_targets(data, "evaluation data");
  const int64_t rows_per_sample = data.targets_per_sample();
  const int classes = static_cast<int>(net_->num_classes());
  const int world = comm.size();
  const int bs = std::max(1, batch_size);
  int64_t limit = data.size();
  if (max_batches >= 0) limit = std::min(limit, max_batches * bs * world);
  // Rank r evaluates samples r, r + P, r + 2P, ... below the limit: each exactly once over all
  // ranks.
  std::vector<int64_t> mine;
  for (int64_t i = comm.rank(); i < limit; i += world) mine.push_back(i);
  const size_t x_per_sample = static_cast<size_t>(shape_numel(data.sample_shape()));
  const size_t x_bytes = dtype_size(data.input_dtype());
  std::vector<unsigned char> x_host(static_cast<size_t>(bs) * x_per_sample * x_bytes);
  std::vector<int32_t> y_host(static_cast<size_t>(bs * rows_per_sample));
  DeviceBuffer x_dev(be, data.input_dtype(), static_cast<size_t>(bs) * x_per_sample);
  DeviceBuffer y_dev(be, DataType::I32, y_host.size());
  double loss_sum = 0;
  int64_t correct = 0, counted = 0;
  for (size_t start = 0; start < mine.size(); start += bs) {
    const int n = static_cast<int>(std::min<size_t>(bs, mine.size() - start));
    const int rows = static_cast<int>(n * rows_per_sample);
    data.gather(mine.data() + start, n, x_host.data(), y_host.data());
    be.copy_from_host(x_dev.ref().data(), x_host.data(), n * x_per_sample * x_bytes);
    be.copy_from_host(y_dev.as<int32_t>(), y_host.data(), sizeof(int32_t) * rows);
    const ConstTensorRef logits = net_->forward(x_dev.ref(), n, false, 0);
    const LossResult r = loss_->compute(be, logits, y_dev.as<int32_t>(), rows, classes,
                                        static_cast<int>(net_->output_row_stride()), 0.0f, nullptr);
    loss_sum += r.loss_sum;
    correct += r.correct;
    counted += r.count;
  }
  EvalResult out;
  out.count = comm.allreduce_sum(static_cast<int64_t>(mine.size()));
  const double total_loss = comm.allreduce_sum(loss_sum);
  const int64_t total_correct = comm.allreduce_sum(correct);
  // Means over the targets that count (every one, unless some carry the ignore index).
  const int64_t total_counted = comm.allreduce_sum(counted);
  if (total_counted > 0) {
    out.loss = total_loss / static_cast<double>(total_counted);
    out.accuracy = static_cast<double>(total_correct) / static_cast<double>(total_counted);
  }
  return out;
}

std::vector<float> Model::predict(const float* x, int n) {
  Backend& be = env_.backend;
  const int64_t numel = shape_numel(net_->input_shape());
  const int classes = static_cast<int>(net_->num_outputs());
  DeviceBuffer x_dev(be, DataType::F32, n * numel);
  be.copy_from_host(x_dev.data(), x, sizeof(float) * n * numel);
  const ConstTensorRef logits = net_->forward(x_dev.data(), n, false, 0);
  std::vector<float> out(static_cast<size_t>(n) * classes);
  if (logits.dtype() == DataType::F32) {
    be.copy_to_host(out.data(), logits.data(), sizeof(float) * out.size());
  } else {  // widened on the device, then copied
    DeviceBuffer wide(be, DataType::F32, out.size());
    be.convert(logits.data(), logits.dtype(), wide.data(), DataType::F32, out.size());
    be.copy_to_host(out.data(), wide.data(), sizeof(float) * out.size());
  }
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
    std::copy(t->data.begin(), t->data.end(), host.begin() + p.elem_offset);
  }
  for (const TensorIn& t : file.tensors) {
    bool known = false;
    for (const ParamInfo& p : net_->param_info()) known = known || p.name == t.name;
    // A tied tensor's other name (nanoGPT saves lm_head.weight beside transformer.wte.weight):
    // accepted when it holds the same values, since the model has one tensor for both.
    for (const auto& [alias, index] : net_->aliases()) {
      if (alias != t.name) continue;
      const ParamInfo& p = net_->param_info()[index];
      if (Shape(t.shape.begin(), t.shape.end()) != p.shape ||
          !std::equal(t.data.begin(), t.data.end(), host.begin() + p.elem_offset))
        throw InputError(path + ": tensor '" + t.name + "' differs from '" + p.name +
                         "', which the model ties it to");
      known = true;
    }
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
    tensors.push_back({p.name, p.shape, host.data() + p.elem_offset});
  write_safetensors(path, tensors, metadata);
}

}  // namespace dpt
