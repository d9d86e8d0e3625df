// The command line: options of each subcommand, parsed by CLI11 (flags and TOML config files).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt {

struct TrainOptions {
  std::string dataset = "fashion-mnist";  // a known name or a folder with the four IDX files
  std::string train_images, train_labels, test_images, test_labels;
  std::string model = "mlp";
  std::string device = "auto";
  std::string comm = "auto";  // auto, nccl or mpi
  int epochs = 1;
  int64_t max_steps = -1;
  int batch_size = 64;
  int eval_batch_size = 500;
  double lr = 0.01;
  std::string optimizer = "sgd";
  double momentum = 0;
  bool nesterov = false;
  double weight_decay = -1;           // < 0: the optimizer's default
  double beta1 = 0.9, beta2 = 0.999;  // adamw
  int64_t warmup_steps = 0;
  int64_t lr_decay_steps = -1;  // < 0: no decay
  double min_lr = 0;
  double grad_clip = 0;  // 0: no clipping
  bool no_shuffle = false;
  uint64_t seed = 0;
  int threads = 0;  // 0: cores / ranks on this node
  int accumulate = 1;
  double bucket_mb = 25;
  double first_bucket_mb = 1;
  int zero = 0;                    // ZeRO stage: 0 or 1
  std::string grad_comm = "fp32";  // fp32 or bf16
  std::string precision = "fp32";  // fp32 or bf16 (activations and working weights)
  bool stochastic_rounding = false;  // bf16 working weights rounded stochastically
  std::string trace;
  std::string trace_steps = "10:20";
  int64_t checkpoint_every = 0;
  int keep_checkpoints = 3;
  std::string resume;  // "", "auto" or a checkpoint file
  double comm_timeout = 120;
  std::string on_nonfinite = "stop";
  int64_t check_replicas = 0;
  int64_t inject_nan_step = -1;  // test-only
  std::string inject_drift;      // test-only, RANK:STEP
  std::string init_weights;
  // A language model's data: token shards (files or globs) instead of images and labels.
  std::vector<std::string> train_tokens, val_tokens;
  int64_t val_steps = -1;  // evaluate over this many global batches of the validation windows
  int64_t log_every = 0;   // train metrics every N steps (0: per epoch only)
  int64_t eval_every = 0;  // validation loss every N steps (0: per epoch only)
  std::string out;         // default runs/<timestamp>
  std::string config;
};

// bench allreduce, reduce_scatter and allgather: the same options.
struct BenchCollectiveOptions {
  std::string collective = "allreduce";  // the subcommand
  std::string min_bytes = "8", max_bytes = "256M";
  uint64_t factor = 2;
  int iters = 20, warmup = 5;
  std::string comm = "mpi";
  std::string datatype = "float";  // or bfloat16
};

struct BenchGemmOptions {
  int size = 2048, repeats = 5, threads = 1;
  std::string device = "cpu";
};

struct PrepareTextCliOptions {
  std::vector<std::string> inputs;  // files or folders
  std::string out;
  double val_fraction = 0.1;
  int64_t shard_tokens = 100'000'000;
};

struct GenerateOptions {
  std::string weights;  // a model.safetensors that dptrain wrote (its metadata names the model)
  std::string prompt;   // text, read as bytes
  std::string prompt_tokens;      // or token ids, "464, 2068 318"
  bool prompt_is_tokens = false;  // --prompt-tokens was given
  int64_t max_new_tokens = 200;
  double temperature = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 0;
};

enum class Command { None, Train, Info, BenchCollective, BenchGemm, PrepareText, Generate };

struct ParsedCommand {
  Command command = Command::None;
  TrainOptions train;
  BenchCollectiveOptions bench_collective;
  BenchGemmOptions bench_gemm;
  PrepareTextCliOptions prepare_text;
  GenerateOptions generate;
  int exit_code = -1;  // >= 0: stop now with this code (help printed, or a parse error)
};

// Parses argv; on --help prints the help (on rank 0) and sets exit_code 0; on a parse error
// prints "dptrain: error: ..." (on rank 0) and sets exit_code 2.
ParsedCommand parse_command_line(int argc, char** argv, bool print);

}  // namespace dpt
