#include "src/train/buckets.hpp"

namespace dpt {

std::vector<ParamRange> param_ranges(const std::vector<ParamInfo>& params) {
  std::vector<ParamRange> ranges;
  ranges.reserve(params.size());
  // A tied tensor's stage is its holder's, the lowest layer that uses it: its last use.
  for (const ParamInfo& p : params) ranges.push_back({p.elem_offset, p.numel, p.layer, p.uses});
  return ranges;
}

std::vector<Bucket> assign_buckets(const std::vector<ParamInfo>& params, size_t first_cap_bytes,
                                   size_t cap_bytes) {
  return assign_buckets(param_ranges(params), first_cap_bytes, cap_bytes);
}

}  // namespace dpt
