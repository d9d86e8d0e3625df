// Model: the library's training API, shaped like Keras's: build a Sequential model from a spec,
// compile it with an optimizer and a loss, fit it, evaluate it, predict with it.
//
// Every rank of the job constructs the same Model and calls the same methods in the same order;
// the data-parallel work (sharding, gradient averaging, reducing metrics) happens inside.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.hpp"
#include "comm/reducer.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/dataset.hpp"
#include "src/model/loss.hpp"
#include "src/model/sequential.hpp"
#include "src/train/lr_schedule.hpp"
#include "src/train/optimizer.hpp"
#include "src/train/zero.hpp"

namespace dpt {

struct Environment {
  Communicator& comm;
  Backend& backend;
};

// Where training stands: enough, with the parameters and optimizer state, to resume exactly.
struct TrainPosition {
  int64_t step = 0;           // optimizer steps done
  int epoch = 0;              // 0-based epoch in progress
  int64_t step_in_epoch = 0;  // steps of that epoch already done
  double loss_sum = 0;        // this rank's loss sum over those steps
};

class CheckpointPolicy;

// How fit() trains, in groups: the schedule, the optimizer's learning rate and gradient
// clipping, the gradient buckets, checkpoints, health checks, the trace, stopping on request and
// the tests' injected faults.
struct FitOptions {
  struct Schedule {
    int epochs = 1;
    int64_t max_steps = -1;  // stop after this many optimizer steps in all (< 0: no limit)
    int batch_size = 64;     // per rank (per micro-batch)
    int accumulate = 1;      // micro-batches per optimizer step; only the last communicates
    bool shuffle = true;
    uint64_t seed = 0;  // data order and dropout
  } schedule;

  struct Optimization {
    // The learning rate of each optimizer step, at fit's 0-based step count (which a resumed run
    // carries on from); its lr is the peak. None: the optimizer's lr throughout.
    std::optional<LrSchedule> lr_schedule;
    // Clip the averaged gradients to this global L2 norm before each optimizer step
    // (grad_clip.hpp); 0: never, and no pass over the gradients is spent on it.
    double grad_clip = 0;
  } optim;

  struct Evaluation {
    int batch_size = 500;      // of the evaluation on the validation data after each epoch
    int64_t max_batches = -1;  // over the first N global batches only (< 0: every sample)
  } eval;

  struct Comm {
    double bucket_mb = 25;  // gradient bucket cap in MiB; 0: one allreduce after backward
    double first_bucket_mb = 1;
    // ZeRO stage: 0, every rank holds the whole optimizer state and allreduces the gradients;
    // 1, the optimizer state is sharded across the ranks (src/train/zero.hpp): each bucket is
    // reduce-scattered, each rank updates its blocks, and the parameters are allgathered.
    int zero = 0;
    // The element type gradients travel in: F32, or BF16 (half the bytes; each sum rounded to
    // bf16, as DDP's bf16_compress_hook does). Master weights and the update stay float32.
    DataType grad_comm = DataType::F32;
  } comm;

  struct Precision {
    // How a bf16 model's working copy is written from the master weights after each step:
    // rounded to nearest, or stochastically (llm.c's choice), from the seed and the step, alike
    // on every rank. Nothing changes for a float32 model.
    Sequential::WeightRounding weight_rounding = Sequential::WeightRounding::Nearest;
  } precision;

  struct Checkpoints {
    // When and where checkpoints are written (see checkpoint_policy.hpp); none: never.
    const CheckpointPolicy* policy = nullptr;
    std::optional<TrainPosition> resume;  // continue from here (after loading a checkpoint)
  } checkpoint;

  struct Health {
    // Non-finite gradients after the allreduce (a NaN or Inf loss makes them so): stop with an
    // error naming the step and layer, or skip that optimizer step on every rank alike.
    bool skip_nonfinite = false;
    int64_t check_replicas_every = 0;  // compare parameter checksums across ranks (0: never)
  } health;

  struct Trace {
    std::string path;  // Chrome trace of steps [first, last) when not empty
    int64_t first = 0, last = 0;
  } trace;

  struct Stop {
    // Polled every check_every steps (all ranks agree by an allreduce of one integer): when it
    // returns true on any rank, every rank finishes the step, a checkpoint is written (when
    // there is a policy), and fit() returns with stopped_on_request() set, skipping the
    // evaluation of the cut epoch. How a scheduler's warning signal, SIGTERM or Ctrl-C ends a
    // job; every step by default, since the launcher may allow only a second or so before it
    // kills the ranks.
    std::function<bool()> requested;
    int64_t check_every = 1;
  } stop;

  // Test-only faults (see faults.hpp): a NaN in rank 0's input at nan_step; a perturbed
  // parameter on drift_rank after step drift_step (< 0: none).
  struct Faults {
    int64_t nan_step = -1;
    int drift_rank = -1;
    int64_t drift_step = -1;
  } faults;

  // Throws InputError naming the option for settings fit() cannot follow.
  void validate() const;
};

struct EvalResult {
  double loss = 0;      // mean loss over the samples whose target counts (not ignored)
  double accuracy = 0;  // fraction of those whose arg-max prediction equals the label
  int64_t count = 0;    // samples evaluated, over all ranks
};

struct EpochMetrics {
  int epoch = 0;            // 1-based
  int64_t step = 0;         // optimizer steps so far
  int64_t epoch_steps = 0;  // optimizer steps in this epoch
  double train_loss = 0;    // mean over the epoch's samples, all ranks (0 without steps)
  std::optional<EvalResult> test;
  double samples_per_second = 0;  // global samples per second of training time
  double tokens_per_second = 0;   // global targets per second (samples/s x targets per sample)
  double train_seconds = 0;
  // Where this rank's training time went (rank 0's figures): compute is everything but the
  // exposed communication; comm is the allreduces' own duration, partly hidden behind backward.
  double compute_seconds = 0;
  double comm_seconds = 0;
  double exposed_comm_seconds = 0;
  double overlap_fraction = 0;     // hidden / total communication (0 when there was none)
  int64_t nonfinite_skips = 0;     // optimizer steps skipped for non-finite gradients
  double median_step_seconds = 0;  // rank 0's median step wall time in this epoch
  double elapsed_seconds = 0;      // since fit started
  int world_size = 1;
  int64_t global_batch = 0;
  std::optional<double> lr;  // of the epoch's last optimizer step (none without steps)
  // The global L2 norm of the averaged gradients of the epoch's last applied step, before
  // clipping (measured only with FitOptions::Optimization::grad_clip).
  std::optional<double> grad_norm;
};

// Hooks the fit loop calls; the progress line and the metrics file are callbacks.
class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_fit_begin(int64_t steps_per_epoch, int epochs) {}
  // loss: this rank's mean loss over the step's batch (not reduced across ranks).
  virtual void on_step_end(int epoch, int64_t step_in_epoch, int64_t global_step, double loss) {}
  virtual void on_epoch_end(const EpochMetrics& m) {}
};

class Model {
 public:
  // Builds the layers from a preset or spec string for samples of `input_shape`, initialises the
  // parameters from `seed` and makes every rank hold rank 0's. Throws InputError for a bad spec
  // or when ranks built different models. `compute`: the activations' type, float32 or bf16
  // (mixed precision: bf16 activations and a bf16 working copy of the float32 master weights,
  // the gradients, optimizer state and the loss in float32); InputError when a layer's op does
  // not take it.
  Model(Environment env, const std::string& spec, const Shape& input_shape, uint64_t seed = 0,
        DataType compute = DataType::F32);

  // Loss: a name for make_loss ("softmax_cross_entropy", the one there is; targets equal to
  // kIgnoreIndex do not count). Metrics: "accuracy".
  void compile(const OptimizerConfig& optimizer, const std::string& loss = "softmax_cross_entropy",
               const std::vector<std::string>& metrics = {"accuracy"});

  // Trains on batches of `train` (images and labels, or windows of tokens); the loss is the
  // mean over every target of the global batch (B·T of them for a language model).
  std::vector<EpochMetrics> fit(const BatchSource& train, const FitOptions& options,
                                const BatchSource* validation = nullptr,
                                const std::vector<Callback*>& callbacks = {});
  std::vector<EpochMetrics> fit(const Dataset& train, const FitOptions& options,
                                const Dataset* validation = nullptr,
                                const std::vector<Callback*>& callbacks = {});
  // Over every sample of `data` once, or over the first max_batches global batches of
  // batch_size per rank (< 0: all).
  EvalResult evaluate(const BatchSource& data, int batch_size = 500, int64_t max_batches = -1);
  EvalResult evaluate(const Dataset& data, int batch_size = 500);
  // Logits [n, outputs] for n samples in host memory (this rank only, no communication).
  std::vector<float> predict(const float* x, int n);

  // Replaces the parameters with a safetensors file's (names and shapes must match exactly).
  void load_weights(const std::string& path);
  // Rank 0 writes the parameters as a safetensors file named as nn.Sequential names them.
  void save_weights(const std::string& path,
                    const std::map<std::string, std::string>& metadata = {}) const;

  Sequential& net() { return *net_; }
  const Loss& loss() const { return *loss_; }
  const Optimizer* optimizer() const { return optimizer_.get(); }
  Optimizer* optimizer() { return optimizer_.get(); }
  Environment& environment() { return env_; }
  const Environment& environment() const { return env_; }
  int64_t steps_done() const { return steps_done_; }
  // The learning rate of the last step fit() took, and its gradients' norm before clipping
  // (known only when clipping), for callbacks that log by step.
  double last_lr() const { return last_lr_; }
  std::optional<double> last_grad_norm() const { return last_grad_norm_; }
  bool stopped_on_request() const { return stopped_on_request_; }
  // The gradient buckets fit() uses for these options (the same on every rank); under ZeRO-1
  // each padded to a multiple of the world size.
  std::vector<Bucket> buckets(const FitOptions::Comm& options) const;
  // Throws InputError when a target does not fit the model's outputs or a sample its input;
  // `what` names the data.
  void check_targets(const BatchSource& data, const std::string& what) const;

 private:
  struct FitRun;      // what fit() builds once: the state of a step's phases
  struct StepResult;  // what one optimizer step reports to its epoch
  StepResult train_step(FitRun& run, const std::vector<int64_t>& perm, int64_t s);
  // Sets how the working copy is rounded for the master weights after steps_done_ steps.
  void set_weight_rounding(const FitOptions& o);
  void sync_params_from_rank0();
  // Shards the optimizer's state as `blocks` say, or makes it whole again when they are empty.
  void layout_optimizer_state(const std::vector<ShardBlock>& blocks);

  Environment env_;
  std::unique_ptr<Sequential> net_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Loss> loss_ = make_loss("softmax_cross_entropy");  // evaluate() needs no compile
  int64_t steps_done_ = 0;
  double last_lr_ = 0;
  std::optional<double> last_grad_norm_;
  bool stopped_on_request_ = false;
};

}  // namespace dpt
