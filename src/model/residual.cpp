#include "src/model/residual.hpp"

#include "src/core/error.hpp"

namespace dpt {

Residual::Residual(std::vector<std::unique_ptr<Layer>> body, std::string spec)
    : Composite(numbered(std::move(body))), spec_(std::move(spec)) {}

Shape Residual::setup(const Shape& input) {
  const Shape body = setup_chain(input);
  if (body != input)
    throw InputError("model: " + spec_ + ": body maps " + shape_str(input) + " to " +
                     shape_str(body) + "; a residual block must keep the shape");
  return in_ = out_ = input;
}

std::vector<Op> Residual::ops() const {
  std::vector<Op> ops = Composite::ops();
  ops.push_back(Op::Add);
  return ops;
}

void Residual::forward(Backend& be, ConstTensorRef x, TensorRef y, int batch,
                       const ForwardContext& ctx) {
  const ConstTensorRef body = forward_chain(be, x, batch, ctx);
  be.add(x, body, y, static_cast<size_t>(batch) * shape_numel(in_));
}

void Residual::backward(Backend& be, ConstTensorRef x, ConstTensorRef, ConstTensorRef dy,
                        TensorRef dx, int batch) {
  backward_chain(be, x, dy, dx, batch);
  if (dx) be.add(dx, dy, dx, static_cast<size_t>(batch) * shape_numel(in_));
}

}  // namespace dpt
