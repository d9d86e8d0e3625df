#include "src/train/generate.hpp"

#include <algorithm>
#include <string>

#include "src/core/error.hpp"

namespace dpt {

std::vector<int32_t> generate(Model& model, const std::vector<int32_t>& prompt,
                              int64_t max_new_tokens, const SamplingOptions& sampling,
                              const std::function<void(int32_t)>& on_token) {
  check_sampling(sampling);
  Sequential& net = model.net();
  Backend& be = net.backend();
  if (net.input_shape().size() != 1)
    throw InputError("generate: the model does not take windows of tokens (input " +
                     shape_str(net.input_shape()) + ")");
  const int64_t t = net.input_shape()[0];
  if (net.rows_per_sample() != t)
    throw InputError("generate: the model's outputs are not rows of logits per position");
  const int64_t vocab = net.num_classes(), stride = net.output_row_stride();
  if (prompt.empty()) throw InputError("option --prompt: empty (give at least one token)");
  if (max_new_tokens < 0) throw InputError("option --max-new-tokens: must be at least 0");
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      throw InputError("option --prompt: token " + std::to_string(prompt[i]) + " at position " +
                       std::to_string(i) + " is not in the vocabulary of " + std::to_string(vocab));

  std::vector<int32_t> tokens = prompt, window(static_cast<size_t>(t));
  std::vector<float> row(static_cast<size_t>(vocab));
  DeviceBuffer x(be, DataType::I32, static_cast<size_t>(t));
  std::vector<int32_t> out;
  for (int64_t n = 0; n < max_new_tokens; ++n) {
    const size_t len = std::min<size_t>(tokens.size(), static_cast<size_t>(t));
    std::fill(window.begin(), window.end(), 0);
    std::copy(tokens.end() - static_cast<std::ptrdiff_t>(len), tokens.end(), window.begin());
    be.copy_from_host(x.as<int32_t>(), window.data(), sizeof(int32_t) * window.size());
    const float* logits = net.forward(x.ref(), 1, false, 0).as<float>();
    be.copy_to_host(row.data(), logits + (len - 1) * stride, sizeof(float) * row.size());
    const int32_t next = sample_token(row.data(), vocab, sampling, static_cast<uint64_t>(n));
    tokens.push_back(next);
    out.push_back(next);
    if (on_token) on_token(next);
  }
  return out;
}

}  // namespace dpt
