#include "src/train/step_gate.hpp"

#include <cstring>

#include "src/train/grad_clip.hpp"

namespace dpt {

StepGate::StepGate(Backend& backend, const std::vector<ParamInfo>& params, double max_norm)
    : backend_(backend), max_norm_(max_norm), state_(backend, DataType::F32, 4) {
  const auto [begin, end] = gradient_span(params);
  begin_ = begin;
  end_ = end;
  backend.require(Op::SumSquares, DataType::F32, "the gradients' check");
  backend.require(Op::Scale, DataType::F32, "the gradients' check");
}

double* StepGate::sum() const { return reinterpret_cast<double*>(state_.data()); }
float* StepGate::coef() const { return state_.data() + 2; }
int32_t* StepGate::flag() const { return reinterpret_cast<int32_t*>(state_.data() + 3); }
const int32_t* StepGate::skip() const { return flag(); }

void StepGate::queue(float* grads) {
  backend_.sum_squares_into(grads + begin_, end_ - begin_, sum());
  backend_.update_gate(sum(), max_norm_, coef(), flag());
  if (max_norm_ > 0) backend_.scale_by(grads + begin_, end_ - begin_, coef());
}

StepGate::Outcome StepGate::read() const {
  unsigned char host[16];
  backend_.copy_to_host(host, state_.data(), sizeof(host));
  Outcome out;
  int32_t skip = 0;
  std::memcpy(&out.sum_of_squares, host, sizeof(double));
  std::memcpy(&skip, host + 12, sizeof(int32_t));
  out.skipped = skip != 0;
  return out;
}

}  // namespace dpt
