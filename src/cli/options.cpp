#include "src/cli/options.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace dpt {
namespace {

// Whether the command line itself gives option `name` (as --name V or --name=V).
bool given(const std::vector<std::string>& args, const std::string& name) {
  for (const std::string& a : args)
    if (a == name || a.rfind(name + "=", 0) == 0) return true;
  return false;
}

// CLI11 reads config files for the main app only, so `train --config F` is handled here: each
// key of F (top level or under [train]) becomes an option of train unless the command line
// gives it already, so that flags on the command line win.
void append_config_file_options(CLI::App& train, std::vector<std::string>& args) {
  std::string path;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) path = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) path = args[i].substr(9);
  }
  if (path.empty()) return;
  if (!std::filesystem::is_regular_file(path))
    throw CLI::ValidationError("--config", path + ": cannot open: no such file");
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML().from_file(path);
  } catch (const CLI::Error& e) {
    throw CLI::ValidationError("--config", path + ": " + e.what());
  }
  std::vector<std::string> extra;
  for (const CLI::ConfigItem& item : items) {
    if (item.name == "++" || item.name == "--") continue;  // section markers
    if (!item.parents.empty() && !(item.parents.size() == 1 && item.parents[0] == "train"))
      throw CLI::ValidationError("--config", path + ": unknown section [" + item.parents[0] + "]");
    const std::string flag = "--" + item.name;
    const CLI::Option* opt = train.get_option_no_throw(flag);
    if (!opt || item.name == "config")
      throw CLI::ValidationError("--config", path + ": unknown option '" + item.name + "'");
    if (given(args, flag)) continue;
    if (opt->get_expected_min() == 0) {  // a flag: true sets it, false leaves it off
      if (item.inputs.size() == 1 && (item.inputs[0] == "true" || item.inputs[0] == "1"))
        extra.push_back(flag);
      else if (!(item.inputs.size() == 1 && (item.inputs[0] == "false" || item.inputs[0] == "0")))
        throw CLI::ValidationError("--config", path + ": " + item.name + " must be true or false");
      continue;
    }
    extra.push_back(flag);
    extra.insert(extra.end(), item.inputs.begin(), item.inputs.end());
  }
  args.insert(args.end(), extra.begin(), extra.end());
}

}  // namespace

ParsedCommand parse_command_line(int argc, char** argv, bool print) {
  ParsedCommand out;
  TrainOptions& t = out.train;
  CLI::App app{"dptrain: data-parallel training with MPI ranks (one per GPU, or CPU cores)",
               "dptrain"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "dptrain 0.1.0");

  CLI::App* train = app.add_subcommand("train", "Train a model on a data set");
  train->add_option("--config", t.config,
                    "Read options from a TOML file (keys as the long option names, at the top "
                    "level or under [train]); flags on the command line win");
  train
      ->add_option("--dataset", t.dataset,
                   "Data set: fashion-mnist (the Debian package's files) or a folder holding "
                   "train/t10k images and labels IDX files")
      ->capture_default_str();
  train->add_option("--train-images", t.train_images,
                    "Training images: IDX (gzipped or not) or .npy");
  train->add_option("--train-labels", t.train_labels, "Training labels: IDX or .npy");
  train->add_option("--test-images", t.test_images, "Test images: IDX or .npy");
  train->add_option("--test-labels", t.test_labels, "Test labels: IDX or .npy");
  train->add_option("--train-tokens", t.train_tokens,
                    "Token shards to train a language model on (files or globs, llm.c's format)");
  train->add_option("--val-tokens", t.val_tokens, "Token shards to validate on");
  train
      ->add_option("--val-steps", t.val_steps,
                   "Validate over this many global batches of --val-tokens (-1: all of them)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 40))
      ->capture_default_str();
  train
      ->add_option("--log-every", t.log_every,
                   "Print and record the train loss, tokens/s and lr every N steps (0: per epoch)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  train
      ->add_option("--eval-every", t.eval_every,
                   "Validation loss every N steps and after the last (0: per epoch)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->capture_default_str();
  train
      ->add_option("--model", t.model,
                   "Preset (mlp, cnn) or layer spec, e.g. \"conv2d(32,3,pad=1) relu "
                   "maxpool2d(2) flatten linear(10)\"")
      ->capture_default_str();
  train
      ->add_option("--device", t.device,
                   "Where to compute: cuda (rank r uses the GPU of its local rank), cpu, or auto "
                   "(cuda where a GPU is visible)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  train
      ->add_option("--comm", t.comm,
                   "Gradient allreduce: nccl (GPU memory), mpi (host memory; with cuda it "
                   "stages through host buffers, so ranks may share a GPU), or auto (nccl for "
                   "cuda, mpi for cpu)")
      ->check(CLI::IsMember({"auto", "nccl", "mpi"}))
      ->capture_default_str();
  train->add_option("--epochs", t.epochs, "Passes over the training data")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  train->add_option("--max-steps", t.max_steps, "Stop after this many optimizer steps (-1: none)")
      ->check(CLI::Range(int64_t{-1}, int64_t{1} << 50))
      ->capture_default_str();
  train->add_option("--batch-size", t.batch_size, "Samples per rank per step")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  train->add_option("--eval-batch-size", t.eval_batch_size, "Samples per evaluation batch")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  train->add_option("--lr", t.lr, "Learning rate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  train->add_option("--optimizer", t.optimizer, "sgd or adamw")
      ->check(CLI::IsMember({"sgd", "adamw"}))
      ->capture_default_str();
  train->add_option("--momentum", t.momentum, "SGD momentum")
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  train->add_flag("--nesterov", t.nesterov, "Nesterov momentum (SGD)");
  train
      ->add_option("--weight-decay", t.weight_decay,
                   "Weight decay (default: 0 for sgd, 0.01 for adamw, as in PyTorch)")
      ->check(CLI::Range(0.0, 1.0));
  train->add_option("--beta1", t.beta1, "AdamW's beta1, in [0, 1)")->capture_default_str();
  train->add_option("--beta2", t.beta2, "AdamW's beta2, in [0, 1)")->capture_default_str();
  train
      ->add_option("--warmup-steps", t.warmup_steps,
                   "Raise the learning rate linearly over the first W optimizer steps, "
                   "lr * (step + 1) / (W + 1), as nanoGPT does")
      ->capture_default_str();
  train
      ->add_option("--lr-decay-steps", t.lr_decay_steps,
                   "After warmup, decay the learning rate along a cosine to --min-lr at step D "
                   "(-1: no decay)")
      ->capture_default_str();
  train->add_option("--min-lr", t.min_lr, "Learning rate at and after --lr-decay-steps")
      ->capture_default_str();
  train
      ->add_option("--grad-clip", t.grad_clip,
                   "Clip the averaged gradients to this global L2 norm before each optimizer "
                   "step, as torch.nn.utils.clip_grad_norm_ (0: no clipping)")
      ->capture_default_str();
  train->add_flag("--no-shuffle", t.no_shuffle, "Keep the data in file order");
  train->add_option("--seed", t.seed, "Seed of initial weights, data order and dropout")
      ->capture_default_str();
  train
      ->add_option("--threads", t.threads,
                   "BLAS threads per rank (default: cores / ranks on this node)")
      ->check(CLI::Range(1, 1024));
  train
      ->add_option("--accumulate", t.accumulate,
                   "Micro-batches per optimizer step (gradient accumulation); only the last "
                   "one communicates")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  train
      ->add_option("--bucket-mb", t.bucket_mb,
                   "Gradient bucket cap in MiB; each bucket's allreduce starts during backward "
                   "(0: one allreduce after backward)")
      ->check(CLI::Range(0.0, 1e6))
      ->capture_default_str();
  train
      ->add_option("--first-bucket-mb", t.first_bucket_mb,
                   "Cap of the first (last layers') bucket in MiB")
      ->check(CLI::Range(1e-6, 1e6))
      ->capture_default_str();
  train
      ->add_option("--zero", t.zero,
                   "ZeRO stage: 1 shards the optimizer state across the ranks (each bucket is "
                   "reduce-scattered, each rank updates its shard, the parameters are "
                   "allgathered); 0 keeps it whole on every rank")
      ->check(CLI::IsMember({0, 1}))
      ->capture_default_str();
  train
      ->add_option("--grad-comm", t.grad_comm,
                   "Element type the gradients travel in: fp32, or bf16 (half the bytes, each "
                   "sum rounded to bf16, as DDP's bf16_compress_hook)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  train
      ->add_option("--precision", t.precision,
                   "What forward and backward compute in: fp32, or bf16 (bf16 activations and a "
                   "bf16 working copy of the weights, GEMMs summing in fp32; the master weights, "
                   "gradients, optimizer state, LayerNorm's statistics and the loss stay fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}))
      ->capture_default_str();
  train->add_flag("--stochastic-rounding", t.stochastic_rounding,
                  "With --precision bf16: write the bf16 working weights from the fp32 masters "
                  "with stochastic rounding (as llm.c does) instead of rounding to nearest");
  train->add_option("--trace", t.trace,
                    "Write a Chrome trace-event timeline (Perfetto, chrome://tracing) of "
                    "--trace-steps to this JSON file");
  train->add_option("--trace-steps", t.trace_steps, "Steps A to B-1 to trace, as A:B")
      ->capture_default_str();
  train
      ->add_option("--checkpoint-every", t.checkpoint_every,
                   "Write a checkpoint to DIR/checkpoints every N steps and at the end (0: never)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50))
      ->capture_default_str();
  train
      ->add_option("--keep-checkpoints", t.keep_checkpoints,
                   "Keep the newest K checkpoints (0: all)")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  train->add_option("--resume", t.resume,
                    "Continue from a checkpoint: auto (the newest good one in DIR/checkpoints; "
                    "fresh start if there is none) or a checkpoint file");
  train
      ->add_option("--comm-timeout", t.comm_timeout,
                   "Seconds a collective may take before this rank ends the job with an error "
                   "(0: wait forever)")
      ->check(CLI::Range(0.0, 1e7))
      ->capture_default_str();
  train
      ->add_option("--on-nonfinite", t.on_nonfinite,
                   "A NaN or Inf in the loss or averaged gradients: stop (with the step and "
                   "layer) or skip that optimizer step on every rank")
      ->check(CLI::IsMember({"stop", "skip"}))
      ->capture_default_str();
  train
      ->add_option("--check-replicas", t.check_replicas,
                   "Compare a checksum of the parameters across ranks every N steps (0: never)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 50))
      ->capture_default_str();
  // Fault injection for the tests; not shown in --help.
  train->add_option("--inject-nan-step", t.inject_nan_step)->group("");
  train->add_option("--inject-drift", t.inject_drift)->group("");
  train->add_option("--init-weights", t.init_weights,
                    "Start from these weights (safetensors, named as nn.Sequential names them)");
  train->add_option("--out", t.out, "Run directory (default: runs/<timestamp>)");

  CLI::App* info =
      app.add_subcommand("info", "Print each rank's host, rank, local rank and versions");

  CLI::App* bench = app.add_subcommand("bench", "Benchmarks of the communication and the compute");
  bench->require_subcommand(1);
  // One subcommand per collective, with nccl-tests' options; only one is parsed, so all three
  // fill the same options.
  BenchCollectiveOptions& bc = out.bench_collective;
  std::vector<CLI::App*> collectives;
  for (const auto& [name, what] :
       {std::pair{"allreduce",
                  "Allreduce sweep over message sizes, as nccl-tests' all_reduce_perf "
                  "prints it"},
        std::pair{"reduce_scatter",
                  "Reduce-scatter sweep over message sizes, as nccl-tests' "
                  "reduce_scatter_perf prints it"},
        std::pair{"allgather",
                  "Allgather sweep over message sizes, as nccl-tests' "
                  "all_gather_perf prints it"}}) {
    CLI::App* c = bench->add_subcommand(name, what);
    c->add_option("-b,--minbytes", bc.min_bytes, "Smallest size (bytes; K, M, G suffixes)")
        ->capture_default_str();
    c->add_option("-e,--maxbytes", bc.max_bytes, "Largest size")->capture_default_str();
    c->add_option("-f,--stepfactor", bc.factor, "Size multiplier between steps")
        ->capture_default_str();
    c->add_option("-n,--iters", bc.iters, "Timed iterations per size")->capture_default_str();
    c->add_option("-w,--warmup_iters", bc.warmup, "Untimed iterations per size")
        ->capture_default_str();
    c->add_option("-d,--datatype", bc.datatype,
                  "Element type: float, or bfloat16 (what --grad-comm bf16 sends)")
        ->check(CLI::IsMember({"float", "bfloat16", "bf16"}))
        ->capture_default_str();
    c->add_option("--comm", bc.comm,
                  "Communicator: mpi (host buffers) or nccl (GPU buffers, one GPU per rank)")
        ->check(CLI::IsMember({"mpi", "nccl"}))
        ->capture_default_str();
    collectives.push_back(c);
  }

  CLI::App* gemm = bench->add_subcommand(
      "gemm",
      "Float GEMM FLOP/s on one rank's device: the peak that utilization is measured against");
  BenchGemmOptions& bg = out.bench_gemm;
  gemm->add_option("--size", bg.size, "n of the n x n x n product")->capture_default_str();
  gemm->add_option("--repeats", bg.repeats, "Timed products; the best counts")
      ->capture_default_str();
  gemm->add_option("--threads", bg.threads, "BLAS threads (cpu)")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  gemm->add_option("--device", bg.device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();

  CLI::App* prepare = app.add_subcommand(
      "prepare-text",
      "Turn text files into token shards (bytes as tokens, vocabulary 256) for language models");
  PrepareTextCliOptions& pt = out.prepare_text;
  prepare->add_option("inputs", pt.inputs, "Text files or folders (walked recursively)")
      ->required();
  prepare->add_option("--out", pt.out, "Folder for train_NNNNNN.bin and val_NNNNNN.bin")
      ->required();
  prepare
      ->add_option("--val-fraction", pt.val_fraction,
                   "Share of each file, from its end, held out for validation")
      ->capture_default_str();
  prepare->add_option("--shard-tokens", pt.shard_tokens, "Tokens per shard at most")
      ->capture_default_str();

  CLI::App* gen = app.add_subcommand("generate", "Sample text from a trained language model");
  GenerateOptions& g = out.generate;
  gen->add_option("--weights", g.weights, "model.safetensors of a language model dptrain trained")
      ->required();
  CLI::Option* prompt =
      gen->add_option("--prompt", g.prompt, "Text to continue (bytes as tokens: vocabulary 256)");
  CLI::Option* prompt_tokens = gen->add_option(
      "--prompt-tokens", g.prompt_tokens,
      "Token ids to continue, separated by commas or spaces, for any vocabulary (GPT-2's BPE "
      "ids from its tokenizer); prints token ids");
  prompt->excludes(prompt_tokens);
  gen->add_option("--max-new-tokens", g.max_new_tokens, "Tokens to generate")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  gen->add_option("--temperature", g.temperature, "Softmax temperature (> 0; lower is greedier)")
      ->capture_default_str();
  gen->add_option("--top-k", g.top_k, "Draw only from the k likeliest tokens (0: all)")
      ->capture_default_str();
  gen->add_option("--seed", g.seed, "Seed of the draws: the same seed, the same text")
      ->capture_default_str();

  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (!args.empty() && args[0] == "train") append_config_file_options(*train, args);
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    app.parse(args);
    if (gen->parsed() && prompt->count() == 0 && prompt_tokens->count() == 0)
      throw CLI::RequiredError("--prompt or --prompt-tokens");
    g.prompt_is_tokens = prompt_tokens->count() > 0;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      if (print) app.exit(e);
      out.exit_code = 0;
      return out;
    }
    if (print) std::fprintf(stderr, "dptrain: error: %s\n", e.what());
    out.exit_code = 2;
    return out;
  }
  if (train->parsed()) out.command = Command::Train;
  if (info->parsed()) out.command = Command::Info;
  for (CLI::App* c : collectives)
    if (c->parsed()) {
      out.command = Command::BenchCollective;
      bc.collective = c->get_name();
    }
  if (gemm->parsed()) out.command = Command::BenchGemm;
  if (prepare->parsed()) out.command = Command::PrepareText;
  if (gen->parsed()) out.command = Command::Generate;
  return out;
}

}  // namespace dpt
