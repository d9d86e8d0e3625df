// The typed ops of Backend: float32 calls go to the backend's float kernels; calls with bf16
// operands go to the bf16 twin, which widens them into float32 scratch on the device, runs the
// same float kernel, and rounds each bf16 output once, when it is stored.
#include "kernels/backend.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "src/core/error.hpp"

namespace dpt {

bool takes_bf16(Op op) {
  switch (op) {
    case Op::Gemm:
    case Op::Convert:
    case Op::AddBias:
    case Op::BiasGrad:
    case Op::Relu:
    case Op::Dropout:
    case Op::Mul:
    case Op::Add:
    case Op::LayerNorm:
    case Op::Gelu:
    case Op::Attention:
    case Op::Embedding:
    case Op::SoftmaxCrossEntropy:
      return true;
    default:
      return false;
  }
}

namespace {
bool is_f32(ConstTensorRef t) { return !t || t.dtype() == DataType::F32; }
}  // namespace

// One op's float32 view of its typed operands. in() gives a float32 input: the tensor itself, or
// its bf16 values widened (exactly) into scratch. out() gives the float32 memory the kernel
// writes: the tensor itself, or scratch that finish() rounds into the bf16 tensor (to nearest
// even). Each call takes the next scratch slot, so an op's operands never share one, and an
// output may overlap an input: the input was copied before the kernel ran.
class Bf16Twin {
 public:
  Bf16Twin(Backend& be, const char* op) : be_(be), op_(op) {}

  const float* in(ConstTensorRef t, size_t n) {
    if (is_f32(t)) return t.as<float>();
    check(t.dtype());
    float* s = slot(n);
    be_.convert(t.data(), DataType::BF16, s, DataType::F32, n);
    return s;
  }
  // `read`: the kernel also reads it (y += ...), so the scratch starts as its widened values.
  float* out(TensorRef t, size_t n, bool read = false) {
    if (is_f32(t)) return t.as<float>();
    check(t.dtype());
    float* s = slot(n);
    if (read) be_.convert(t.data(), DataType::BF16, s, DataType::F32, n);
    pending_.push_back({s, t.data(), n});
    return s;
  }
  void finish() {
    for (const Pending& p : pending_) be_.convert(p.from, DataType::F32, p.to, DataType::BF16, p.n);
    pending_.clear();
  }

 private:
  struct Pending {
    const float* from;
    void* to;
    size_t n;
  };
  float* slot(size_t n) {
    std::vector<DeviceBuffer>& slots = be_.twin_scratch_;
    if (next_ == slots.size()) slots.emplace_back();
    slots[next_].resize(be_, DataType::F32, std::max<size_t>(n, 1));
    return slots[next_++].data();
  }
  void check(DataType t) const {
    if (t != DataType::BF16)
      throw SystemError(be_.name() + " backend: " + op_ + " of " + dtype_name(t));
  }

  Backend& be_;
  std::string op_;
  size_t next_ = 0;
  std::vector<Pending> pending_;
};

void Backend::linear_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef bias, TensorRef y,
                             int m, int in, int out) {
  if (is_f32(x) && is_f32(w) && is_f32(bias) && is_f32(y))
    return linear_forward_f32(x.as<float>(), w.as<float>(), bias.as<float>(), y.as<float>(), m, in,
                              out);
  Bf16Twin twin(*this, "linear");
  const size_t rows = static_cast<size_t>(std::max(m, 0));
  float* yf = twin.out(y, rows * out);
  // The product on the mixed-precision GEMM when x and w share a type, in float32 otherwise.
  ConstTensorRef a = x, b = w;
  if (x.dtype() != w.dtype()) {
    a = twin.in(x, rows * in);
    b = twin.in(w, static_cast<size_t>(out) * in);
  }
  gemm_ex(false, true, m, out, in, 1.0f, a, in, b, in, 0.0f, TensorRef(yf), out);
  if (bias) add_bias_f32(yf, twin.in(bias, static_cast<size_t>(out)), m, out, 1);
  twin.finish();
}

void Backend::add_bias(TensorRef y, ConstTensorRef bias, int outer, int channels, int inner) {
  if (is_f32(y) && is_f32(bias))
    return add_bias_f32(y.as<float>(), bias.as<float>(), outer, channels, inner);
  Bf16Twin twin(*this, "add_bias");
  const size_t n = static_cast<size_t>(outer) * channels * inner;
  float* yf = twin.out(y, n, true);
  add_bias_f32(yf, twin.in(bias, static_cast<size_t>(channels)), outer, channels, inner);
  twin.finish();
}

void Backend::bias_grad(ConstTensorRef dy, float* dbias, int outer, int channels, int inner) {
  if (is_f32(dy)) return bias_grad_f32(dy.as<float>(), dbias, outer, channels, inner);
  Bf16Twin twin(*this, "bias_grad");
  bias_grad_f32(twin.in(dy, static_cast<size_t>(outer) * channels * inner), dbias, outer, channels,
                inner);
}

void Backend::relu_forward(ConstTensorRef x, TensorRef y, size_t n) {
  if (is_f32(x) && is_f32(y)) return relu_forward_f32(x.as<float>(), y.as<float>(), n);
  Bf16Twin twin(*this, "relu");
  const float* xf = twin.in(x, n);
  relu_forward_f32(xf, twin.out(y, n), n);
  twin.finish();
}

void Backend::relu_backward(ConstTensorRef y, ConstTensorRef dy, TensorRef dx, size_t n) {
  if (is_f32(y) && is_f32(dy) && is_f32(dx))
    return relu_backward_f32(y.as<float>(), dy.as<float>(), dx.as<float>(), n);
  Bf16Twin twin(*this, "relu");
  const float* yf = twin.in(y, n);
  const float* dyf = twin.in(dy, n);
  relu_backward_f32(yf, dyf, twin.out(dx, n), n);
  twin.finish();
}

void Backend::dropout_forward(ConstTensorRef x, TensorRef y, float* mask, size_t n, float p,
                              uint64_t seed) {
  if (is_f32(x) && is_f32(y))
    return dropout_forward_f32(x.as<float>(), y.as<float>(), mask, n, p, seed);
  Bf16Twin twin(*this, "dropout");
  const float* xf = twin.in(x, n);
  dropout_forward_f32(xf, twin.out(y, n), mask, n, p, seed);
  twin.finish();
}

void Backend::mul(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n) {
  if (is_f32(a) && is_f32(b) && is_f32(out))
    return mul_f32(a.as<float>(), b.as<float>(), out.as<float>(), n);
  Bf16Twin twin(*this, "mul");
  const float* af = twin.in(a, n);
  const float* bf = twin.in(b, n);
  mul_f32(af, bf, twin.out(out, n), n);
  twin.finish();
}

void Backend::add(ConstTensorRef a, ConstTensorRef b, TensorRef out, size_t n) {
  if (is_f32(a) && is_f32(b) && is_f32(out))
    return add_f32(a.as<float>(), b.as<float>(), out.as<float>(), n);
  Bf16Twin twin(*this, "add");
  const float* af = twin.in(a, n);
  const float* bf = twin.in(b, n);
  add_f32(af, bf, twin.out(out, n), n);
  twin.finish();
}

void Backend::layer_norm_forward(ConstTensorRef x, ConstTensorRef w, ConstTensorRef b, TensorRef y,
                                 float* mean, float* rstd, int64_t rows, int64_t c, float eps) {
  if (is_f32(x) && is_f32(w) && is_f32(b) && is_f32(y))
    return layer_norm_forward_f32(x.as<float>(), w.as<float>(), b.as<float>(), y.as<float>(), mean,
                                  rstd, rows, c, eps);
  Bf16Twin twin(*this, "layer_norm");
  const size_t n = static_cast<size_t>(rows * c);
  const float* xf = twin.in(x, n);
  const float* wf = twin.in(w, static_cast<size_t>(c));
  const float* bf = twin.in(b, static_cast<size_t>(c));
  layer_norm_forward_f32(xf, wf, bf, twin.out(y, n), mean, rstd, rows, c, eps);
  twin.finish();
}

void Backend::layer_norm_backward(ConstTensorRef x, ConstTensorRef w, const float* mean,
                                  const float* rstd, ConstTensorRef dy, TensorRef dx, float* dw,
                                  float* db, int64_t rows, int64_t c) {
  if (is_f32(x) && is_f32(w) && is_f32(dy) && is_f32(dx))
    return layer_norm_backward_f32(x.as<float>(), w.as<float>(), mean, rstd, dy.as<float>(),
                                   dx.as<float>(), dw, db, rows, c);
  Bf16Twin twin(*this, "layer_norm");
  const size_t n = static_cast<size_t>(rows * c);
  const float* xf = twin.in(x, n);
  const float* wf = twin.in(w, static_cast<size_t>(c));
  const float* dyf = twin.in(dy, n);
  layer_norm_backward_f32(xf, wf, mean, rstd, dyf, twin.out(dx, n), dw, db, rows, c);
  twin.finish();
}

void Backend::gelu_forward(ConstTensorRef x, TensorRef y, int64_t n) {
  if (is_f32(x) && is_f32(y)) return gelu_forward_f32(x.as<float>(), y.as<float>(), n);
  Bf16Twin twin(*this, "gelu");
  const float* xf = twin.in(x, static_cast<size_t>(n));
  gelu_forward_f32(xf, twin.out(y, static_cast<size_t>(n)), n);
  twin.finish();
}

void Backend::gelu_backward(ConstTensorRef x, ConstTensorRef dy, TensorRef dx, int64_t n) {
  if (is_f32(x) && is_f32(dy) && is_f32(dx))
    return gelu_backward_f32(x.as<float>(), dy.as<float>(), dx.as<float>(), n);
  Bf16Twin twin(*this, "gelu");
  const float* xf = twin.in(x, static_cast<size_t>(n));
  const float* dyf = twin.in(dy, static_cast<size_t>(n));
  gelu_backward_f32(xf, dyf, twin.out(dx, static_cast<size_t>(n)), n);
  twin.finish();
}

void Backend::attention_forward(ConstTensorRef qkv, TensorRef out, TensorRef att, int64_t b,
                                int64_t t, int64_t c, int64_t n_head) {
  if (is_f32(qkv) && is_f32(out) && is_f32(att))
    return attention_forward_f32(qkv.as<float>(), out.as<float>(), att.as<float>(), b, t, c, n_head,
                                 false);
  Bf16Twin twin(*this, "attention");
  const float* qkvf = twin.in(qkv, static_cast<size_t>(b * t * 3 * c));
  float* outf = twin.out(out, static_cast<size_t>(b * t * c));
  attention_forward_f32(qkvf, outf, twin.out(att, static_cast<size_t>(b * n_head * t * t)), b, t, c,
                        n_head, true);
  twin.finish();
}

void Backend::attention_backward(ConstTensorRef qkv, ConstTensorRef att, ConstTensorRef dout,
                                 TensorRef dqkv, int64_t b, int64_t t, int64_t c, int64_t n_head) {
  if (is_f32(qkv) && is_f32(att) && is_f32(dout) && is_f32(dqkv))
    return attention_backward_f32(qkv.as<float>(), att.as<float>(), dout.as<float>(),
                                  dqkv.as<float>(), b, t, c, n_head, false);
  Bf16Twin twin(*this, "attention");
  const float* qkvf = twin.in(qkv, static_cast<size_t>(b * t * 3 * c));
  const float* attf = twin.in(att, static_cast<size_t>(b * n_head * t * t));
  const float* doutf = twin.in(dout, static_cast<size_t>(b * t * c));
  attention_backward_f32(qkvf, attf, doutf, twin.out(dqkv, static_cast<size_t>(b * t * 3 * c)), b,
                         t, c, n_head, true);
  twin.finish();
}

void Backend::softmax_cross_entropy_deferred(ConstTensorRef logits, const int32_t* targets,
                                             int rows, int classes, int ld, int32_t ignore_index,
                                             float grad_scale, TensorRef dlogits) {
  deferred_loss_ +=
      softmax_cross_entropy(logits, targets, rows, classes, ld, ignore_index, grad_scale, dlogits);
}

LossResult Backend::take_loss_totals() {
  const LossResult r = deferred_loss_;
  deferred_loss_ = LossResult();
  return r;
}

void Backend::attention_fused_forward(ConstTensorRef, TensorRef, float*, int64_t, int64_t, int64_t,
                                      int64_t) {
  throw SystemError(name() + " backend: no fused attention");
}

void Backend::attention_fused_backward(ConstTensorRef, ConstTensorRef, const float*, ConstTensorRef,
                                       TensorRef, int64_t, int64_t, int64_t, int64_t) {
  throw SystemError(name() + " backend: no fused attention");
}

void Backend::embedding_forward(const int32_t* idx, ConstTensorRef wte, ConstTensorRef wpe,
                                TensorRef out, int64_t b, int64_t t, int64_t c, int64_t vocab) {
  if (is_f32(wte) && is_f32(wpe) && is_f32(out))
    return embedding_forward_f32(idx, wte.as<float>(), wpe.as<float>(), out.as<float>(), b, t, c,
                                 vocab);
  Bf16Twin twin(*this, "embedding");
  const float* wtef = twin.in(wte, static_cast<size_t>(vocab * c));
  const float* wpef = twin.in(wpe, static_cast<size_t>(t * c));  // the rows it reads
  embedding_forward_f32(idx, wtef, wpef, twin.out(out, static_cast<size_t>(b * t * c)), b, t, c,
                        vocab);
  twin.finish();
}

void Backend::embedding_backward(const int32_t* idx, ConstTensorRef dout, float* dwte, float* dwpe,
                                 int64_t b, int64_t t, int64_t c, int64_t vocab) {
  if (is_f32(dout))
    return embedding_backward_f32(idx, dout.as<float>(), dwte, dwpe, b, t, c, vocab);
  Bf16Twin twin(*this, "embedding");
  embedding_backward_f32(idx, twin.in(dout, static_cast<size_t>(b * t * c)), dwte, dwpe, b, t, c,
                         vocab);
}

LossResult Backend::softmax_cross_entropy(ConstTensorRef logits, const int32_t* targets, int rows,
                                          int classes, int ld, int32_t ignore_index,
                                          float grad_scale, TensorRef dlogits) {
  check_loss_row_stride(name(), classes, ld);
  if (is_f32(logits) && is_f32(dlogits))
    return softmax_cross_entropy_f32(logits.as<float>(), targets, rows, classes, ld, ignore_index,
                                     grad_scale, dlogits.as<float>());
  Bf16Twin twin(*this, "softmax_cross_entropy");
  // Through the last row's last class: the elements between rows go along, unread.
  const size_t n = rows > 0 && classes > 0 ? static_cast<size_t>(rows - 1) * ld + classes : 0;
  const float* lf = twin.in(logits, n);
  const LossResult r = softmax_cross_entropy_f32(lf, targets, rows, classes, ld, ignore_index,
                                                 grad_scale, twin.out(dlogits, n, ld > classes));
  twin.finish();
  return r;
}

}  // namespace dpt
