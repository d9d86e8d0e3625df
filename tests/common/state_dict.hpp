// Loading a PyTorch fixture's weights into a model by name, for the parity tests: the fixture
// holds other tensors too (tokens, reference values), so Model::load_weights, which refuses
// tensors that are no parameter, does not fit.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "src/io/safetensors.hpp"
#include "src/model/sequential.hpp"

namespace dpt::testing {

// Copies every parameter of `net` from the tensor of the same name in `f`, and checks that the
// fixture's tensors named with one of `prefixes` (its state_dict) are exactly the model's
// parameters, with their shapes. A mismatch is a test failure (check HasFatalFailure()).
inline void load_state_dict(Sequential& net, const SafetensorsFile& f,
                            const std::vector<std::string>& prefixes) {
  std::set<std::string> state_dict, ours;
  for (const TensorIn& x : f.tensors)
    for (const std::string& prefix : prefixes)
      if (x.name.rfind(prefix, 0) == 0) state_dict.insert(x.name);
  std::vector<float> params = net.params_to_host();
  for (const ParamInfo& p : net.param_info()) {
    ours.insert(p.name);
    const TensorIn* x = f.find(p.name);
    ASSERT_NE(x, nullptr) << p.name;
    ASSERT_EQ(x->shape, p.shape) << p.name;
    std::copy(x->data.begin(), x->data.end(),
              params.begin() + static_cast<std::ptrdiff_t>(p.elem_offset));
  }
  ASSERT_EQ(ours, state_dict);
  net.params_from_host(params);
}

}  // namespace dpt::testing
