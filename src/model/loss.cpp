#include "src/model/loss.hpp"

#include <vector>

#include "src/core/error.hpp"

namespace dpt {

void SoftmaxCrossEntropy::check_sizes(int rows, int classes, int ld) const {
  if (rows < 0 || classes < 1)
    throw InputError(name() + ": needs rows >= 0 and classes >= 1, got " + std::to_string(rows) +
                     " rows of " + std::to_string(classes) + " classes");
  if (ld < classes)
    throw InputError(name() + ": rows of " + std::to_string(classes) + " classes cannot lie " +
                     std::to_string(ld) + " elements apart");
}

void SoftmaxCrossEntropy::compute_deferred(Backend& be, ConstTensorRef logits,
                                           const int32_t* targets, int rows, int classes, int ld,
                                           float grad_scale, TensorRef dlogits) const {
  check_sizes(rows, classes, ld);
  be.softmax_cross_entropy_deferred(logits, targets, rows, classes, ld, ignore_index_, grad_scale,
                                    dlogits);
}

LossResult SoftmaxCrossEntropy::take(Backend& be) const {
  const LossResult r = be.take_loss_totals();
  if (r.invalid != 0)
    throw InputError(name() + ": " + std::to_string(r.invalid) +
                     " targets were neither a class nor the ignore index " +
                     std::to_string(ignore_index_));
  return r;
}

LossResult SoftmaxCrossEntropy::compute(Backend& be, ConstTensorRef logits, const int32_t* targets,
                                        int rows, int classes, int ld, float grad_scale,
                                        TensorRef dlogits) const {
  check_sizes(rows, classes, ld);
  const LossResult r = be.softmax_cross_entropy(logits, targets, rows, classes, ld, ignore_index_,
                                                grad_scale, dlogits);
  if (r.invalid == 0) return r;
  // The backend only counts bad targets; find the first for the message (a rare path, so
  // reading all targets back costs nothing that matters).
  std::vector<int32_t> host(static_cast<size_t>(rows));
  be.copy_to_host(host.data(), targets, sizeof(int32_t) * host.size());
  for (size_t i = 0; i < host.size(); ++i)
    if (host[i] != ignore_index_ && (host[i] < 0 || host[i] >= classes))
      throw InputError(name() + ": target " + std::to_string(host[i]) + " of row " +
                       std::to_string(i) + " is not a class of " + std::to_string(classes) +
                       " (0 to " + std::to_string(classes - 1) + ") nor the ignore index " +
                       std::to_string(ignore_index_) + " (" + std::to_string(r.invalid) +
                       " such rows)");
  throw SystemError(name() + ": the backend counted " + std::to_string(r.invalid) +
                    " invalid targets, but none was found");
}

std::unique_ptr<Loss> make_loss(const std::string& name, int32_t ignore_index) {
  if (name == "softmax_cross_entropy") return std::make_unique<SoftmaxCrossEntropy>(ignore_index);
  throw InputError("unknown loss '" + name + "' (known: softmax_cross_entropy)");
}

}  // namespace dpt
