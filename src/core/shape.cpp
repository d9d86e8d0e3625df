#include "src/core/shape.hpp"

namespace dpt {
namespace {

std::string join_dims(std::span<const int64_t> shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s;
}

}  // namespace

int64_t shape_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t checked_numel(std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  }
  return n;
}

// Appended rather than "[" + ...: GCC 12 warns (-Wrestrict) about a copy inside
// operator+(const char*, std::string&&) that cannot happen.
std::string shape_str(std::span<const int64_t> shape) {
  std::string s = "[";
  s += join_dims(shape);
  s += "]";
  return s;
}

std::string shape_to_string(std::span<const int64_t> shape) {
  std::string s = "(";
  s += join_dims(shape);
  s += shape.size() == 1 ? ",)" : ")";
  return s;
}

}  // namespace dpt
