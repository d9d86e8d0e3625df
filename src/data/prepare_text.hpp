// prepare-text: turns text files into token shards with a byte-level tokenizer (vocabulary 256:
// token = byte), held-out validation included, so a language model can train offline on any text.
//
// Inputs are files or folders (walked recursively, in name order). A file that is not text (a NUL
// byte, or bytes that are not UTF-8) is skipped and reported; a file reached twice (a symlink to
// another input) is used once. Each file is split on a line boundary: about its first
// 1 - val_fraction of bytes go to training (up to the first line start past that point, or the
// start of the last line when the point lies in it), the rest to validation, so both sets draw
// from every file of more than one line. Files are
// concatenated in order. The shards are DIR/train_NNNNNN.bin and DIR/val_NNNNNN.bin in llm.c's
// uint16 format, each of at most shard_tokens tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt {

struct PrepareTextOptions {
  std::vector<std::string> inputs;  // files or folders
  std::string out_dir;              // created when missing
  double val_fraction = 0.1;        // in [0, 1)
  int64_t shard_tokens = 100'000'000;
};

struct PrepareTextReport {
  std::vector<std::string> used;     // the files read, in order
  std::vector<std::string> skipped;  // "PATH: why", for files that are not text
  int64_t train_tokens = 0, val_tokens = 0;
  std::vector<std::string> shards;  // the files written
};

// Throws InputError naming the input or option on bad input (a missing input, no text at all, a
// fraction out of range) before any shard is written.
PrepareTextReport prepare_text(const PrepareTextOptions& options);

// Why `bytes` is not text ("a NUL byte at offset 12", "not UTF-8 at offset 3"), or "" if it is.
std::string why_not_text(const std::string& bytes);

}  // namespace dpt
