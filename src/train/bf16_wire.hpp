// --grad-comm bf16: gradients travel as bfloat16 (DDP's bf16_compress_hook), converted by the
// backend: rounded to nearest even on the way out, exact on the way back.
#pragma once

#include "comm/reducer.hpp"
#include "kernels/backend.hpp"

namespace dpt {

class Bf16Wire final : public WireCodec {
 public:
  explicit Bf16Wire(Backend& backend) : backend_(backend) {
    backend.require(Op::Convert, DataType::BF16, "--grad-comm bf16");
  }
  DataType type() const override { return DataType::BF16; }
  void encode(const float* grads, void* wire, size_t n) override {
    backend_.convert(grads, DataType::F32, wire, DataType::BF16, n);
  }
  void decode(const void* wire, float* grads, size_t n) override {
    backend_.convert(wire, DataType::BF16, grads, DataType::F32, n);
  }

 private:
  Backend& backend_;
};

}  // namespace dpt
