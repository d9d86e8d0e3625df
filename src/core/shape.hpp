// Shapes as lists of dims: their element counts and how messages write them.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dpt {

using Shape = std::vector<int64_t>;

// The product of the dims, for shapes already known to be valid.
int64_t shape_numel(std::span<const int64_t> shape);
// The product of the dims, or -1 when a dim is negative or the product overflows int64.
int64_t checked_numel(std::span<const int64_t> shape);

// "[60000, 28, 28]": a layer's or a tensor's shape, for messages.
std::string shape_str(std::span<const int64_t> shape);
// "(60000, 28, 28)", "(5,)" or "()": a shape written as Python writes a tuple, for messages
// about arrays read from files (as NumPy prints their shapes).
std::string shape_to_string(std::span<const int64_t> shape);

}  // namespace dpt
