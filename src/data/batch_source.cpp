#include "src/data/batch_source.hpp"

namespace dpt {

void TokenBatches::gather(const int64_t* indices, int64_t n, void* x, int32_t* y) const {
  const int64_t t = shards_.block_size();
  auto* tokens = static_cast<int32_t*>(x);
  for (int64_t i = 0; i < n; ++i) shards_.gather(indices[i], tokens + i * t, y + i * t);
}

}  // namespace dpt
