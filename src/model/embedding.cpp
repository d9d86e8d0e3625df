#include "src/model/embedding.hpp"

#include "src/core/error.hpp"

namespace dpt {

std::string Embedding::describe() const {
  return "Embedding(wte=(" + std::to_string(vocab_) + ", " + std::to_string(c_) + "), wpe=(" +
         std::to_string(block_size_) + ", " + std::to_string(c_) + "))";
}

Shape Embedding::setup(const Shape& input) {
  if (input.size() != 1 || input[0] < 1 || input[0] > block_size_)
    throw InputError("model: " + describe() + " takes sequences [T] of 1 to block_size " +
                     std::to_string(block_size_) + " token ids, got " + shape_str(input));
  t_ = input[0];
  in_ = input;
  out_ = {t_, c_};
  return out_;
}

std::vector<ParamSpec> Embedding::param_specs() const {
  return {{"wte.weight", {vocab_, c_}, Init::normal(0.02f)},
          {"wpe.weight", {block_size_, c_}, Init::normal(0.02f)}};
}

void Embedding::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                        const ForwardContext&) {
  be.embedding_forward(x.as<int32_t>(), params_[0], params_[1], y, batch, t_, c_, vocab_);
}

void Embedding::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                         TensorRef, int batch) {
  be.embedding_backward(x.as<int32_t>(), dy, grads_[0], grads_[1], batch, t_, c_, vocab_);
}

}  // namespace dpt
