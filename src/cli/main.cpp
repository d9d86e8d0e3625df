// dptrain's command line: a thin layer over the library (Model, data readers, Communicator).
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "comm/collective_bench.hpp"
#include "comm/collective_check.hpp"
#include "comm/communicator.hpp"
#include "kernels/backend.hpp"
#include "kernels/gemm_bench.hpp"
#include "src/cli/options.hpp"
#include "src/core/error.hpp"
#include "src/data/batch_source.hpp"
#include "src/data/dataset.hpp"
#include "src/data/prepare_text.hpp"
#include "src/data/token_shards.hpp"
#include "src/io/safetensors.hpp"
#include "src/model/embedding.hpp"
#include "src/model/model_spec.hpp"
#include "src/train/callbacks.hpp"
#include "src/train/checkpoint_policy.hpp"
#include "src/train/devices.hpp"
#include "src/train/generate.hpp"
#include "src/train/model.hpp"
#include "src/train/step_logger.hpp"
#include "src/train/stop_signals.hpp"
#include "src/train/tracer.hpp"

namespace fs = std::filesystem;

namespace dpt {
namespace {

constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// GPT models decay only their matrices (nanoGPT's configure_optimizers); any other model decays
// every parameter, as torch.optim does with one parameter group.
bool is_gpt_model(const std::string& model) { return model.rfind("gpt", 0) == 0; }

// The file `stem` in `dir`, gzipped or not, whichever exists (gzipped first, unless this build
// reads no gzip).
std::string find_in_folder(const std::string& dir, const std::string& stem) {
#if DPT_WITH_ZLIB
  const std::string names[] = {stem + ".gz", stem};
#else
  const std::string names[] = {stem, stem + ".gz"};
#endif
  for (const std::string& name : names)
    if (fs::exists(fs::path(dir) / name)) return (fs::path(dir) / name).string();
  throw InputError("--dataset " + dir + ": no " + stem + "[.gz] in that folder");
}

struct DataFiles {
  std::string train_images, train_labels, test_images, test_labels;
};

DataFiles resolve_data_files(const TrainOptions& o) {
  DataFiles f{o.train_images, o.train_labels, o.test_images, o.test_labels};
  if (!f.train_images.empty() && !f.train_labels.empty() && !f.test_images.empty() &&
      !f.test_labels.empty())
    return f;
  std::string dir = o.dataset;
  if (dir == "fashion-mnist") {
    dir = kFashionMnistDir;
    if (!fs::is_directory(dir))
      throw InputError("--dataset fashion-mnist: " + dir +
                       " is missing (install Debian's dataset-fashion-mnist package)");
  } else if (!fs::is_directory(dir)) {
    throw InputError("--dataset " + dir +
                     ": neither a known data set (fashion-mnist) nor a folder");
  }
  if (f.train_images.empty()) f.train_images = find_in_folder(dir, "train-images-idx3-ubyte");
  if (f.train_labels.empty()) f.train_labels = find_in_folder(dir, "train-labels-idx1-ubyte");
  if (f.test_images.empty()) f.test_images = find_in_folder(dir, "t10k-images-idx3-ubyte");
  if (f.test_labels.empty()) f.test_labels = find_in_folder(dir, "t10k-labels-idx1-ubyte");
  return f;
}

std::string default_run_dir() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "runs/%Y%m%d-%H%M%S", std::localtime(&t));
  std::string dir = buf;
  for (int i = 2; fs::exists(dir); ++i) dir = std::string(buf) + "-" + std::to_string(i);
  return dir;
}

// fit()'s options from the flags. Throws InputError for a bad --trace-steps or --inject-drift, or
// for settings fit() refuses.
FitOptions fit_options(const TrainOptions& o) {
  FitOptions fo;
  fo.schedule.epochs = o.epochs;
  fo.schedule.max_steps = o.max_steps;
  fo.schedule.batch_size = o.batch_size;
  fo.schedule.accumulate = o.accumulate;
  fo.schedule.shuffle = !o.no_shuffle;
  fo.schedule.seed = o.seed;
  fo.eval.batch_size = o.eval_batch_size;
  if (o.warmup_steps != 0 || o.lr_decay_steps >= 0 || o.min_lr != 0)
    fo.optim.lr_schedule = LrSchedule{o.lr, o.warmup_steps, o.lr_decay_steps, o.min_lr};
  fo.optim.grad_clip = o.grad_clip;
  fo.comm.bucket_mb = o.bucket_mb;
  fo.comm.first_bucket_mb = o.first_bucket_mb;
  fo.comm.zero = o.zero;
  fo.comm.grad_comm = o.grad_comm == "bf16" ? DataType::BF16 : DataType::F32;
  if (o.stochastic_rounding && o.precision != "bf16")
    throw InputError("option --stochastic-rounding: needs --precision bf16");
  // No batch would give no loss at all: a mean over nothing is not 0.
  if (o.val_steps == 0)
    throw InputError(
        "option --val-steps: 0 batches would validate nothing (-1: every val window; leave out "
        "--val-tokens for no validation)");
  fo.precision.weight_rounding = o.stochastic_rounding ? Sequential::WeightRounding::Stochastic
                                                       : Sequential::WeightRounding::Nearest;
  fo.health.skip_nonfinite = o.on_nonfinite == "skip";
  fo.health.check_replicas_every = o.check_replicas;
  if (!o.trace.empty()) {
    fo.trace.path = o.trace;
    std::tie(fo.trace.first, fo.trace.last) = parse_step_window(o.trace_steps);
  }
  fo.stop.requested = [] { return stop_signal() != 0; };
  fo.faults.nan_step = o.inject_nan_step;
  if (!o.inject_drift.empty()) {
    const auto [rank, step] = parse_step_window(o.inject_drift);  // RANK:STEP, RANK < STEP
    fo.faults.drift_rank = static_cast<int>(rank);
    fo.faults.drift_step = step;
  }
  fo.validate();
  return fo;
}

// A language model's window and vocabulary, from its spec (the first layer is the token
// embedding); nullopt for any other model.
struct TokenModel {
  int64_t block_size = 0, vocab_size = 0;
};
std::optional<TokenModel> token_model(const std::string& spec) {
  const std::vector<std::unique_ptr<Layer>> layers = parse_model_spec(spec);
  if (layers.empty()) return std::nullopt;
  const auto* e = dynamic_cast<const Embedding*>(layers.front().get());
  if (!e) return std::nullopt;
  return TokenModel{e->block_size(), e->vocab_size()};
}

int run_train(const TrainOptions& o, Communicator& host) {
  const bool root = host.rank() == 0;
  host.set_timeout(o.comm_timeout);
  ComputeSetup compute = make_compute(o.device, o.comm, o.threads, host);
  Communicator& comm = *compute.comm;
  comm.set_timeout(o.comm_timeout);
  Backend* backend = compute.backend.get();

  // A language model trains on token shards (--train-tokens); any other model on images and
  // labels. Either way fit() sees a BatchSource.
  const bool tokens = !o.train_tokens.empty();
  DataFiles files;
  Dataset train, test;
  std::unique_ptr<TokenShards> train_shards, val_shards;
  std::unique_ptr<BatchSource> train_source, test_source;
  std::string train_name, test_name;  // what messages call them
  Shape input;
  run_collectively(comm, [&] {
    if (tokens) {
      const std::optional<TokenModel> lm = token_model(o.model);
      if (!lm)
        throw InputError("option --train-tokens: --model \"" + o.model +
                         "\" is not a language model (use gpt(...) or gpt2)");
      train_shards = std::make_unique<TokenShards>(o.train_tokens, "--train-tokens", lm->block_size,
                                                   lm->vocab_size);
      train_source = std::make_unique<TokenBatches>(*train_shards);
      train_name = "--train-tokens";
      if (!o.val_tokens.empty()) {
        val_shards = std::make_unique<TokenShards>(o.val_tokens, "--val-tokens", lm->block_size,
                                                   lm->vocab_size);
        test_source = std::make_unique<TokenBatches>(*val_shards);
        test_name = "--val-tokens";
      }
      input = {lm->block_size};
      return;
    }
    if (!o.val_tokens.empty()) throw InputError("option --val-tokens: needs --train-tokens");
    files = resolve_data_files(o);
    train = load_dataset(files.train_images, files.train_labels);
    test = load_dataset(files.test_images, files.test_labels);
    if (test.sample_shape != train.sample_shape)
      throw InputError(files.test_images + ": samples of shape differ from " + files.train_images +
                       "'s");
    train_source = std::make_unique<ImageBatches>(train);
    test_source = std::make_unique<ImageBatches>(test);
    train_name = files.train_labels;
    test_name = files.test_labels;
    input = Shape(train.sample_shape.begin(), train.sample_shape.end());
  });

  std::unique_ptr<Model> model;
  FitOptions fo;
  const size_t memory_before_model = backend->memory_in_use();
  run_collectively(comm, [&] {
    model = std::make_unique<Model>(Environment{comm, *backend}, o.model, input, o.seed,
                                    o.precision == "bf16" ? DataType::BF16 : DataType::F32);
    model->check_targets(*train_source, train_name);
    if (test_source) model->check_targets(*test_source, test_name);
    if (!o.init_weights.empty()) model->load_weights(o.init_weights);
    OptimizerConfig oc;
    oc.name = o.optimizer;
    oc.lr = static_cast<float>(o.lr);
    oc.momentum = static_cast<float>(o.momentum);
    oc.nesterov = o.nesterov;
    oc.weight_decay = static_cast<float>(o.weight_decay);
    oc.beta1 = static_cast<float>(o.beta1);
    oc.beta2 = static_cast<float>(o.beta2);
    oc.decay_only_matrices = is_gpt_model(o.model);
    model->compile(oc);
    fo = fit_options(o);
    const int64_t shard = train_source->size() / comm.size();
    if (o.batch_size > shard)
      throw InputError("option --batch-size: " + std::to_string(o.batch_size) +
                       " is larger than a rank's shard of " +
                       (tokens ? std::string("--train-tokens") : files.train_images) + " (" +
                       std::to_string(train_source->size()) + (tokens ? " windows" : " samples") +
                       " / " + std::to_string(comm.size()) + " ranks = " + std::to_string(shard) +
                       ")");
    if (tokens) {
      // A language model's run is counted in steps: as many passes as --max-steps needs.
      const int64_t per_epoch =
          train_source->size() / (int64_t{o.batch_size} * o.accumulate * comm.size());
      if (o.max_steps >= 0 && per_epoch > 0)
        fo.schedule.epochs = static_cast<int>(std::max<int64_t>(
            o.epochs, std::min<int64_t>(1000000, (o.max_steps + per_epoch - 1) / per_epoch)));
      fo.eval.batch_size = o.batch_size;
      fo.eval.max_batches = o.val_steps;
    }
  });

  // Resume: every rank reads the same checkpoint (the run directory is on a shared file
  // system, or the node is one machine), so every rank fails or succeeds alike. The run
  // directory is named here and made below, once every input is checked.
  std::string out_dir = o.out;
  std::unique_ptr<CheckpointPolicy> checkpoints;
  std::optional<TrainPosition> resume_from;
  run_collectively(comm, [&] {
    if (root && out_dir.empty()) out_dir = default_run_dir();
    RunKeys keys = RunKeys::of(o.model, fo.schedule, comm.size());
    if (fo.optim.lr_schedule) keys.lr_schedule = fo.optim.lr_schedule->describe();
    keys.grad_clip = fo.optim.grad_clip;
    // Always a policy, so that a stop request can write its checkpoint; with
    // --checkpoint-every 0 that is the only one.
    checkpoints = std::make_unique<CheckpointPolicy>(out_dir, o.checkpoint_every,
                                                     o.keep_checkpoints, std::move(keys));
    if (o.resume.empty()) return;
    if (o.resume != "auto") {
      resume_from = checkpoints->resume_from(o.resume, *model);
      return;
    }
    if (o.out.empty()) throw InputError("--resume auto: needs --out, the run directory to resume");
    resume_from = checkpoints->resume_newest(*model, [&](const std::string& why) {
      if (root)
        std::fprintf(stderr, "dptrain: warning: %s; falling back to an older checkpoint\n",
                     why.c_str());
    });
    if (!resume_from && root)
      std::printf("resume: no usable checkpoint in %s, starting fresh\n",
                  checkpoints->folder().c_str());
  });

  // Only now, with every input checked, does anything get written.
  std::unique_ptr<MetricsWriter> metrics;
  run_collectively(comm, [&] {
    if (!root) return;
    if (o.resume.empty() && fs::exists(fs::path(out_dir) / "metrics.jsonl"))
      throw InputError("--out " + out_dir +
                       ": already holds a run (metrics.jsonl); choose another folder or --resume");
    std::error_code ec;
    fs::create_directories(out_dir, ec);
    if (ec || !fs::is_directory(out_dir))
      throw InputError("--out " + out_dir + ": cannot create: " + ec.message());
    metrics = std::make_unique<MetricsWriter>(0, (fs::path(out_dir) / "metrics.jsonl").string());
    checkpoints->create_folder();
  });

  const MemoryEstimate memory =
      estimate_memory(model->net(), model->optimizer()->config(), fo, comm.size(), comm.rank());
  if (root) {
    std::printf("dptrain 0.1.0 | %d rank%s | rank 0 on %s | %s\n", comm.size(),
                comm.size() > 1 ? "s" : "", compute.device.c_str(),
                MpiSession::library_version().c_str());
    if (tokens) {
      std::printf("data   %lld tokens in %zu shard%s (%lld windows of %lld)",
                  static_cast<long long>(train_shards->tokens()), train_shards->num_shards(),
                  train_shards->num_shards() > 1 ? "s" : "",
                  static_cast<long long>(train_shards->windows()),
                  static_cast<long long>(train_shards->block_size()));
      if (val_shards)
        std::printf(", val %lld tokens (%lld windows%s)",
                    static_cast<long long>(val_shards->tokens()),
                    static_cast<long long>(val_shards->windows()),
                    o.val_steps >= 0
                        ? (", " + std::to_string(o.val_steps) + " batches per evaluation").c_str()
                        : "");
      std::printf("\n");
    } else {
      std::printf("data   %s (%lld samples), test %s (%lld samples)\n", files.train_images.c_str(),
                  static_cast<long long>(train.count), files.test_images.c_str(),
                  static_cast<long long>(test.count));
    }
    std::printf("model  %s, %zu parameters\n%s\n", o.model.c_str(), model->net().num_params(),
                model->net().summary().c_str());
    std::printf(
        "train  %s, batch %d per rank (global %d), %d epoch%s%s, seed %llu%s\n",
        model->optimizer()->describe().c_str(), o.batch_size, o.batch_size * comm.size(),
        fo.schedule.epochs, fo.schedule.epochs > 1 ? "s" : "",
        o.max_steps >= 0 ? (", at most " + std::to_string(o.max_steps) + " steps").c_str() : "",
        static_cast<unsigned long long>(o.seed), o.no_shuffle ? ", no shuffle" : "");
    char clip[64] = "no gradient clipping";
    if (fo.optim.grad_clip > 0)
      std::snprintf(clip, sizeof(clip), "gradients clipped to norm %g", fo.optim.grad_clip);
    std::printf("optim  lr %s, %s\n",
                fo.optim.lr_schedule ? fo.optim.lr_schedule->describe().c_str() : "constant", clip);
    const std::vector<Bucket> buckets = model->buckets(fo.comm);
    std::printf(
        "comm   %s %s%s in %zu bucket%s (first %.2f MiB, cap %g MiB)%s\n", comm.name().c_str(),
        fo.comm.grad_comm == DataType::BF16 ? "bf16 gradients, " : "",
        fo.comm.zero == 1 ? "reduce-scatter, then allgather of the parameters (ZeRO-1: optimizer "
                            "state sharded)"
                          : "allreduce",
        buckets.size(), buckets.size() > 1 ? "s" : "",
        buckets.empty() ? 0.0 : buckets.front().bytes / 1048576.0, o.bucket_mb,
        o.accumulate > 1 ? (", " + std::to_string(o.accumulate) + " micro-batches per step").c_str()
                         : "");
    if (model->net().activation_dtype() == DataType::BF16)
      std::printf(
          "precision bf16 activations and working weights (written from the fp32 masters "
          "each step, rounded %s); fp32 master weights, gradients, optimizer state, "
          "LayerNorm statistics and loss\n",
          fo.precision.weight_rounding == Sequential::WeightRounding::Stochastic ? "stochastically"
                                                                                 : "to nearest");
    std::printf("memory per rank, estimated: %s\n", describe(memory).c_str());
    std::printf("out    %s\n", out_dir.c_str());
    std::fflush(stdout);
  }

  fo.checkpoint.policy = checkpoints.get();
  fo.checkpoint.resume = resume_from;
  if (root && resume_from)
    std::printf("resume: from step %lld (epoch %d, %lld steps into it)\n",
                static_cast<long long>(resume_from->step), resume_from->epoch + 1,
                static_cast<long long>(resume_from->step_in_epoch));
  ProgressPrinter progress(comm.rank(), comm.size(), o.batch_size);
  progress.show_lr(fo.optim.lr_schedule.has_value());
  MemoryCheck memory_check(comm.rank(), *backend, memory_before_model, memory);
  std::vector<Callback*> callbacks{&progress, &memory_check};
  if (metrics) callbacks.push_back(metrics.get());
  // Step-counted logging, as a language model's run wants it.
  std::unique_ptr<StepLogger> step_logger;
  if (o.log_every > 0 || o.eval_every > 0) {
    const double tokens_per_step = static_cast<double>(o.batch_size) * o.accumulate * comm.size() *
                                   train_source->targets_per_sample();
    std::function<EvalResult()> evaluate;
    if (test_source)
      evaluate = [&] { return model->evaluate(*test_source, fo.eval.batch_size, o.val_steps); };
    step_logger = std::make_unique<StepLogger>(comm, *model, o.log_every, o.eval_every, o.max_steps,
                                               tokens_per_step, evaluate, metrics.get());
    callbacks.push_back(step_logger.get());
  }
  const std::vector<EpochMetrics> history =
      model->fit(*train_source, fo, test_source.get(), callbacks);

  if (model->stopped_on_request()) {
    const int sig = agreed_stop_signal(comm);
    if (root) {
      std::printf(
          "stopped by %s after step %lld; checkpoint %s; resume with --resume auto --out %s\n",
          signal_name(sig).c_str(), static_cast<long long>(model->steps_done()),
          checkpoints->path(model->steps_done()).c_str(), out_dir.c_str());
      std::fflush(stdout);
    }
    return stop_exit_code(sig);
  }
  run_collectively(comm, [&] {
    if (root)
      model->save_weights((fs::path(out_dir) / "model.safetensors").string(),
                          {{"model", o.model}, {"format", "pt"}});
  });
  if (root && !history.empty()) {
    double samples = 0, seconds = 0;
    int64_t steps = 0;
    for (const EpochMetrics& m : history) {
      samples += m.samples_per_second * m.train_seconds;
      seconds += m.train_seconds;
      steps += m.epoch_steps;
    }
    const bool trained = steps > 0 && seconds > 0;
    const EpochMetrics& last = history.back();
    double compute_s = 0, comm_total = 0, exposed = 0;
    for (const EpochMetrics& m : history) {
      compute_s += m.compute_seconds;
      comm_total += m.comm_seconds;
      exposed += m.exposed_comm_seconds;
    }
    std::printf(
        "time   compute %.2f s, communication %.2f s of which exposed %.2f s "
        "(overlap %.0f%%)\n",
        compute_s, comm_total, exposed,
        comm_total > 0 ? 100.0 * (comm_total - exposed) / comm_total : 0.0);
    // "none" for what was not measured: no step (--max-steps 0), no evaluation.
    const auto number = [](bool known, const char* format, double v) {
      char text[64] = "none";
      if (known) std::snprintf(text, sizeof(text), format, v);
      return std::string(text);
    };
    if (tokens) {
      const double per_sample = static_cast<double>(train_source->targets_per_sample());
      std::printf("final train_loss=%s val_loss=%s tokens_per_second=%s\n",
                  number(last.epoch_steps > 0, "%.4f", last.train_loss).c_str(),
                  number(last.test.has_value(), "%f", last.test ? last.test->loss : 0.0).c_str(),
                  number(trained, "%.0f", trained ? samples * per_sample / seconds : 0.0).c_str());
    } else {
      std::printf(
          "final test_accuracy=%s test_loss=%s samples_per_second=%s\n",
          number(last.test.has_value(), "%.4f", last.test ? last.test->accuracy : 0.0).c_str(),
          number(last.test.has_value(), "%.4f", last.test ? last.test->loss : 0.0).c_str(),
          number(trained, "%.0f", trained ? samples / seconds : 0.0).c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

int run_info(Communicator& comm) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string device;
  try {
    device = describe_local_device(comm);
  } catch (const std::exception& e) {
    device = std::string("device error: ") + e.what();  // info must still print every rank
  }
  const std::string gpu_libs = gpu_library_versions();
  char line[1024];
  std::snprintf(line, sizeof(line), "rank %d/%d  local_rank %d/%d  host %s  %s  %s%s%s",
                comm.rank(), comm.size(), comm.local_rank(), comm.local_size(), host,
                device.c_str(), MpiSession::library_version().c_str(), gpu_libs.empty() ? "" : "  ",
                gpu_libs.c_str());
  std::vector<char> all(sizeof(line) * comm.size());
  comm.allgather(line, all.data(), sizeof(line), DataType::U8);
  if (comm.rank() == 0)
    for (int r = 0; r < comm.size(); ++r) std::printf("%s\n", all.data() + r * sizeof(line));
  return 0;
}

int run_bench_collective(const BenchCollectiveOptions& b, Communicator& host) {
  CollectiveBenchOptions o;
  for (BenchCollective c :
       {BenchCollective::Allreduce, BenchCollective::ReduceScatter, BenchCollective::Allgather})
    if (b.collective == bench_collective_name(c)) o.collective = c;
  run_collectively(host, [&] {
    if (b.comm == "nccl" && !built_with_cuda())
      throw InputError("option --comm nccl: this dptrain was built without the CUDA backend");
    if (b.comm == "nccl" && visible_gpu_count() == 0)
      throw InputError("option --comm nccl: no CUDA device is visible");
    o.min_bytes = parse_size("-b", b.min_bytes);
    o.max_bytes = parse_size("-e", b.max_bytes);
    o.factor = b.factor;
    o.iters = b.iters;
    o.warmup = b.warmup;
    o.type = b.datatype == "float" ? DataType::F32 : DataType::BF16;
    validate(o);
  });
  // nccl reduces GPU buffers, mpi host buffers (as in training on the CPU).
  ComputeSetup compute = make_compute(b.comm == "nccl" ? "cuda" : "cpu", b.comm, 1, host);
  const int64_t wrong = run_collective_bench(*compute.comm, *compute.backend, o, stdout);
  return wrong == 0 ? 0 : 1;
}

// Every rank times its own GEMMs at once (as the ranks of a run compute at once); rank 0 prints
// each rank's line. A sampled element of C that is wrong fails the command.
int run_bench_gemm(const BenchGemmOptions& b, Communicator& host) {
  run_collectively(host, [&] {
    if (b.device == "cuda" && !built_with_cuda())
      throw InputError("option --device cuda: this dptrain was built without the CUDA backend");
    if (b.device == "cuda" && visible_gpu_count() == 0)
      throw InputError("option --device cuda: no CUDA device is visible");
  });
  ComputeSetup compute = make_compute(b.device, "mpi", b.threads, host);
  Communicator& comm = *compute.comm;
  GemmBenchResult r;
  run_collectively(comm, [&] { r = run_gemm_bench(*compute.backend, b.size, b.repeats); });
  char line[256];
  std::snprintf(line, sizeof(line),
                "rank %d  sgemm %dx%dx%d on %s (%s), %d thread(s): %.2f GFLOP/s (best of %d, "
                "%.4f s)  worst sampled error %.1e  wrong %lld",
                comm.rank(), r.n, r.n, r.n, compute.backend->name().c_str(),
                compute.backend->gemm_name().c_str(), b.threads, r.flops_per_second / 1e9,
                r.repeats, r.best_seconds, r.worst_error, static_cast<long long>(r.wrong));
  std::vector<char> all(sizeof(line) * comm.size());
  comm.allgather(line, all.data(), sizeof(line), DataType::U8);
  if (comm.rank() == 0)
    for (int i = 0; i < comm.size(); ++i) std::printf("%s\n", all.data() + i * sizeof(line));
  return comm.allreduce_sum(r.wrong) == 0 ? 0 : 1;
}

// "464, 2068 318" -> {464, 2068, 318}: ids separated by commas and/or spaces, each below `vocab`.
std::vector<int32_t> parse_token_ids(const std::string& text, int64_t vocab) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ',' || std::isspace(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] != ',' &&
           !std::isspace(static_cast<unsigned char>(text[end])))
      ++end;
    const std::string word = text.substr(i, end - i);
    int64_t id = -1;
    const auto [stop, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || stop != word.data() + word.size() || id < 0)
      throw InputError("option --prompt-tokens: '" + word + "' is not a token id");
    if (id >= vocab)
      throw InputError("option --prompt-tokens: token " + word +
                       " is not below the model's vocabulary of " + std::to_string(vocab));
    ids.push_back(static_cast<int32_t>(id));
    i = end;
  }
  if (ids.empty()) throw InputError("option --prompt-tokens: no token ids in '" + text + "'");
  return ids;
}

// Every rank loads the model and draws the same tokens (the model's set-up is collective); rank
// 0 prints them. The prompt is read as bytes, the tokens of prepare-text's vocabulary of 256.
int run_generate(const GenerateOptions& g, Communicator& host) {
  ComputeSetup compute = make_compute("cpu", "mpi", 0, host);
  Communicator& comm = *compute.comm;
  std::unique_ptr<Model> model;
  std::vector<int32_t> prompt;
  SamplingOptions sampling{g.temperature, g.top_k, g.seed};
  const bool as_ids = g.prompt_is_tokens;
  run_collectively(comm, [&] {
    check_sampling(sampling);
    const SafetensorsFile file = read_safetensors(g.weights);
    const auto it = file.metadata.find("model");
    if (it == file.metadata.end())
      throw InputError(g.weights + ": no model spec in its metadata (not a dptrain model file)");
    const std::optional<TokenModel> lm = token_model(it->second);
    if (!lm) throw InputError(g.weights + ": model \"" + it->second + "\" is not a language model");
    if (as_ids)
      prompt = parse_token_ids(g.prompt_tokens, lm->vocab_size);
    else if (lm->vocab_size != 256)
      throw InputError(g.weights + ": a vocabulary of " + std::to_string(lm->vocab_size) +
                       " tokens; --prompt is read as bytes, which needs the byte vocabulary of "
                       "256 (prepare-text's): give --prompt-tokens");
    else
      for (unsigned char c : g.prompt) prompt.push_back(c);
    model = std::make_unique<Model>(Environment{comm, *compute.backend}, it->second,
                                    Shape{lm->block_size}, 0);
    model->load_weights(g.weights);
  });
  const bool root = comm.rank() == 0;
  if (root) {
    if (as_ids)
      for (size_t i = 0; i < prompt.size(); ++i) std::printf(i ? " %d" : "%d", prompt[i]);
    else
      std::fwrite(g.prompt.data(), 1, g.prompt.size(), stdout);
    std::fflush(stdout);
  }
  bool first = prompt.empty();
  run_collectively(comm, [&] {
    generate(*model, prompt, g.max_new_tokens, sampling, [&](int32_t t) {
      if (!root) return;
      if (as_ids) {  // ids, space-separated, on one line
        std::printf(first ? "%d" : " %d", t);
        first = false;
        return;
      }
      std::fputc(t, stdout);
      if (t == '\n') std::fflush(stdout);
    });
  });
  if (root) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  return 0;
}

// Only rank 0 writes the shards (the others wait for it), so that running it under mpirun
// writes each file once.
int run_prepare_text(const PrepareTextCliOptions& p, Communicator& comm) {
  int64_t failed = 0;
  if (comm.rank() == 0) {
    try {
      const PrepareTextReport r = prepare_text({p.inputs, p.out, p.val_fraction, p.shard_tokens});
      for (const std::string& s : r.skipped) std::printf("skipped %s\n", s.c_str());
      std::printf(
          "prepare-text: %zu text file(s), %zu skipped; %lld training and %lld validation tokens "
          "(bytes, vocabulary 256) in %zu shard(s) in %s\n",
          r.used.size(), r.skipped.size(), static_cast<long long>(r.train_tokens),
          static_cast<long long>(r.val_tokens), r.shards.size(), p.out.c_str());
      std::fflush(stdout);
    } catch (const InputError& e) {
      print_error(0, 1, e.what());
      failed = 2;
    }
  }
  comm.allreduce(&failed, 1, DataType::I64, ReduceOp::Max);
  return static_cast<int>(failed);
}

}  // namespace
}  // namespace dpt

int main(int argc, char** argv) {
  using namespace dpt;
  install_stop_signals();
  MpiSession mpi(&argc, &argv);
  const int world_rank = MpiSession::world_rank();
  const ParsedCommand cmd = parse_command_line(argc, argv, world_rank == 0);
  if (cmd.exit_code >= 0) return cmd.exit_code;
  // Only train stops at a step's end on a signal; any other command ends on it at once.
  if (cmd.command != Command::Train) restore_default_signals();

  std::unique_ptr<Communicator> comm;
  try {
    comm = make_mpi_communicator();
    switch (cmd.command) {
      case Command::Train:
        return run_train(cmd.train, *comm);
      case Command::Info:
        return run_info(*comm);
      case Command::BenchCollective:
        return run_bench_collective(cmd.bench_collective, *comm);
      case Command::BenchGemm:
        return run_bench_gemm(cmd.bench_gemm, *comm);
      case Command::PrepareText:
        return run_prepare_text(cmd.prepare_text, *comm);
      case Command::Generate:
        return run_generate(cmd.generate, *comm);
      case Command::None:
        return 2;
    }
  } catch (const JobError& e) {
    return e.exit_code();  // already reported by the rank that failed
  } catch (const CommTimeout& e) {
    // Name the peers that do not answer, then end the job: they may never reach a collective.
    std::string message = e.what();
    const std::vector<int> lost = comm->unresponsive_ranks(std::min(5.0, comm->timeout()));
    if (!lost.empty()) {
      message += "; no answer from rank";
      message += lost.size() > 1 ? "s " : " ";
      for (size_t i = 0; i < lost.size(); ++i) {
        if (i) message += ", ";
        message += std::to_string(lost[i]);
      }
      message += " (died, hangs, or is elsewhere in the program)";
    }
    message += "; ending the job";
    print_error(world_rank, comm->size(), message);
    comm->abort(1);
  } catch (const std::exception& e) {
    // A failure on this rank alone: the others may be waiting in a collective, so end the job.
    const int code = dynamic_cast<const InputError*>(&e) ? 2 : 1;
    print_error(world_rank, comm ? comm->size() : 1, e.what());
    if (comm && comm->size() > 1) comm->abort(code);
    return code;
  }
  return 0;
}
