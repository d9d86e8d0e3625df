// Sampling the next token: deterministic for a seed, top-k excludes the rest, low temperature
// approaches the arg-max, and the frequencies follow softmax(logits / temperature).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "src/train/sampling.hpp"
#include "tests/common/expect_input_error.hpp"

namespace {

using dpt::sample_token;
using dpt::SamplingOptions;

TEST(Sampling, AFixedSeedDrawsTheSameTokens) {
  const std::vector<float> logits = {0.1f, 1.5f, -0.3f, 0.9f, 0.0f};
  SamplingOptions o{1.0, 0, 42};
  std::vector<int32_t> a, b;
  for (uint64_t d = 0; d < 50; ++d) a.push_back(sample_token(logits.data(), 5, o, d));
  for (uint64_t d = 0; d < 50; ++d) b.push_back(sample_token(logits.data(), 5, o, d));
  EXPECT_EQ(a, b);
  o.seed = 43;
  std::vector<int32_t> c;
  for (uint64_t d = 0; d < 50; ++d) c.push_back(sample_token(logits.data(), 5, o, d));
  EXPECT_NE(a, c);
}

TEST(Sampling, FrequenciesFollowTheSoftmaxAtTheTemperature) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  for (double temperature : {1.0, 0.5}) {
    SamplingOptions o{temperature, 0, 7};
    const int n = 60000;
    std::vector<int> count(3, 0);
    for (int d = 0; d < n; ++d) ++count[sample_token(logits.data(), 3, o, d)];
    double z = 0;
    for (float l : logits) z += std::exp(l / temperature);
    for (int c = 0; c < 3; ++c) {
      const double p = std::exp(logits[c] / temperature) / z;
      // Binomial standard deviation sqrt(n p (1-p)) is at most ~122 here; 5 of them is a bound
      // that a correct sampler misses with probability below 1e-6.
      EXPECT_NEAR(count[c], n * p, 5 * std::sqrt(n * p * (1 - p))) << "class " << c
                                                                     << " temperature "
                                                                     << temperature;
    }
  }
}

TEST(Sampling, TopKNeverDrawsOutsideTheKLargest) {
  const std::vector<float> logits = {3.0f, -1.0f, 2.5f, 0.0f, 2.9f, 1.0f};
  SamplingOptions o{2.0, 3, 1};
  for (uint64_t d = 0; d < 2000; ++d) {
    const int32_t t = sample_token(logits.data(), 6, o, d);
    EXPECT_TRUE(t == 0 || t == 2 || t == 4) << t;
  }
  o.top_k = 1;  // greedy
  for (uint64_t d = 0; d < 100; ++d) EXPECT_EQ(sample_token(logits.data(), 6, o, d), 0);
  o.top_k = 100;  // more than there are: all
  bool saw_low = false;
  for (uint64_t d = 0; d < 5000 && !saw_low; ++d) saw_low = sample_token(logits.data(), 6, o, d) == 1;
  EXPECT_TRUE(saw_low);
}

TEST(Sampling, ALowTemperatureIsNearlyGreedy) {
  const std::vector<float> logits = {0.2f, 0.3f, 0.1f};
  SamplingOptions o{1e-3, 0, 3};
  for (uint64_t d = 0; d < 200; ++d) EXPECT_EQ(sample_token(logits.data(), 3, o, d), 1);
}

TEST(Sampling, BadOptionsAreRefused) {
  dpt::testing::expect_input_error([] { dpt::check_sampling({0.0, 0, 0}); },
                                   "option --temperature", "positive");
  dpt::testing::expect_input_error([] { dpt::check_sampling({1.0, -2, 0}); }, "option --top-k",
                                   "at least 0");
}

}  // namespace
