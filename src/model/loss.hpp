// Loss: a function of a model's output rows and one integer target per row, with its gradient.
// A classifier has one row per sample; a language model has B*T rows, one per position, and
// marks the positions that must not count (padding, a prompt) with an ignore index.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/backend.hpp"

namespace dpt {

// PyTorch's default ignore_index for cross-entropy.
constexpr int32_t kIgnoreIndex = -100;

class Loss {
 public:
  virtual ~Loss() = default;
  virtual std::string name() const = 0;

  // Over `rows` rows of logits [rows, classes] with one target per row (backend memory), each
  // row `ld` elements after the one before in logits and dlogits (Sequential::
  // output_row_stride): the loss summed over the counted rows, the counted rows and the correct
  // ones among them. A row whose target is the ignore index does not count: no loss, no count,
  // zero gradient. Writes dlogits (the first `classes` elements of every row) when it is not
  // null: the gradient of grad_scale * loss_sum.
  //
  // The caller picks grad_scale, and with it the divisor of the mean. Data parallelism folds
  // the average into it, 1 / (rows over all ranks), so that the sum over ranks is the gradient
  // of the global mean. With ignored rows the divisor is the caller's choice as well: counting
  // the rows that count needs their total over all ranks before backward, so a trainer may divide
  // by all rows instead, as llm.c divides by B*T.
  //
  // Throws InputError for a target that is neither the ignore index nor in [0, classes), naming
  // the row and the target; dlogits is then unspecified.
  // The logits and dlogits are float32 or bf16 (the loss itself is summed in double either way).
  virtual LossResult compute(Backend& be, ConstTensorRef logits, const int32_t* targets, int rows,
                             int classes, int ld, float grad_scale, TensorRef dlogits) const = 0;

  // The same, deferred (Backend::softmax_cross_entropy_deferred): queued without waiting, and
  // take() returns the totals of every deferred call since the last take(). A training step
  // defers its loss so as not to wait for forward before it queues backward. A bad target shows
  // in take(), as an InputError that counts such rows but cannot name one: the batch it was in
  // may be gone. (The data readers check every target before that.)
  virtual void compute_deferred(Backend& be, ConstTensorRef logits, const int32_t* targets,
                                int rows, int classes, int ld, float grad_scale,
                                TensorRef dlogits) const = 0;
  virtual LossResult take(Backend& be) const = 0;
};

// -log softmax(logits)[target] per row (PyTorch's CrossEntropyLoss with reduction "sum").
// Correct means the first arg-max logit equals the target.
class SoftmaxCrossEntropy : public Loss {
 public:
  explicit SoftmaxCrossEntropy(int32_t ignore_index = kIgnoreIndex) : ignore_index_(ignore_index) {}
  std::string name() const override { return "softmax_cross_entropy"; }
  int32_t ignore_index() const { return ignore_index_; }

  LossResult compute(Backend& be, ConstTensorRef logits, const int32_t* targets, int rows,
                     int classes, int ld, float grad_scale, TensorRef dlogits) const override;
  void compute_deferred(Backend& be, ConstTensorRef logits, const int32_t* targets, int rows,
                        int classes, int ld, float grad_scale, TensorRef dlogits) const override;
  LossResult take(Backend& be) const override;

 private:
  void check_sizes(int rows, int classes, int ld) const;
  int32_t ignore_index_;
};

// The loss of that name ("softmax_cross_entropy"), for Model::compile; InputError for an unknown
// name, listing the known ones.
std::unique_ptr<Loss> make_loss(const std::string& name, int32_t ignore_index = kIgnoreIndex);

}  // namespace dpt
