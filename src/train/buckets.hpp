// The Reducer's view of a model: one gradient range per parameter tensor, finished by the stage
// of backward that is its layer. comm knows only ranges; here they are made from the model.
#pragma once

#include <cstddef>
#include <vector>

#include "comm/reducer.hpp"
#include "src/model/sequential.hpp"

namespace dpt {

// One range per entry of `params` (a Sequential's param_info()), in the same order, each with
// its layer as its backward stage (Sequential::backward reports layers last to first) and its
// uses (2 for a tensor tied to a later layer, whose use is reported with Reducer::param_done).
std::vector<ParamRange> param_ranges(const std::vector<ParamInfo>& params);

// assign_buckets over param_ranges(params): Bucket::tensors index into `params`.
std::vector<Bucket> assign_buckets(const std::vector<ParamInfo>& params, size_t first_cap_bytes,
                                   size_t cap_bytes);

}  // namespace dpt
