// The learning-rate schedule: nanoGPT's warmup and cosine decay, point by point, and the
// schedules refused.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "src/train/lr_schedule.hpp"
#include "tests/common/expect_input_error.hpp"

namespace {

using dpt::LrSchedule;

TEST(LrSchedule, ConstantWithoutWarmupOrDecay) {
  const LrSchedule s{0.05, 0, -1, 0};
  for (int64_t it : {0, 1, 1000, 1'000'000}) EXPECT_EQ(s.at(it), 0.05);
  EXPECT_EQ(s.describe(), "constant");
}

TEST(LrSchedule, WarmupThenCosineToTheFloor) {
  const LrSchedule s{1e-3, 100, 3000, 1e-4};
  s.validate();
  EXPECT_DOUBLE_EQ(s.at(0), 1e-3 * 1 / 101);
  EXPECT_DOUBLE_EQ(s.at(99), 1e-3 * 100 / 101);
  EXPECT_DOUBLE_EQ(s.at(100), 1e-3);  // cos(0): the peak
  // Half way through the decay the rate is half way between the peak and the floor.
  EXPECT_NEAR(s.at(1550), 0.5 * (1e-3 + 1e-4), 1e-15);
  const double r = static_cast<double>(2000 - 100) / (3000 - 100);
  EXPECT_DOUBLE_EQ(s.at(2000), 1e-4 + 0.5 * (1 + std::cos(std::numbers::pi * r)) * (1e-3 - 1e-4));
  EXPECT_NEAR(s.at(3000), 1e-4, 1e-18);  // cos(pi): the floor
  EXPECT_EQ(s.at(3001), 1e-4);
  EXPECT_EQ(s.at(100000), 1e-4);
  // Never above the peak nor below the floor, and never rising after warmup.
  for (int64_t it = 100; it < 3100; ++it) {
    EXPECT_LE(s.at(it + 1), s.at(it)) << it;
    EXPECT_GE(s.at(it), 1e-4 - 1e-18) << it;
  }
  EXPECT_EQ(s.describe(), "warmup 100, cosine to 0.0001 at 3000");
}

TEST(LrSchedule, WarmupOnly) {
  const LrSchedule s{0.1, 9, -1, 0};
  EXPECT_DOUBLE_EQ(s.at(4), 0.05);
  EXPECT_EQ(s.at(9), 0.1);
  EXPECT_EQ(s.at(500), 0.1);
}

TEST(LrSchedule, RefusesSchedulesThatDoNotMakeSense) {
  using dpt::testing::expect_input_error;
  expect_input_error([] { LrSchedule{1e-3, 100, 100, 0}.validate(); }, "option --lr-decay-steps",
                     "must be larger than --warmup-steps");
  expect_input_error([] { LrSchedule{1e-3, -1, -1, 0}.validate(); }, "option --warmup-steps",
                     "at least 0");
  expect_input_error([] { LrSchedule{1e-3, 0, 10, 1e-2}.validate(); }, "option --min-lr",
                     "larger than --lr");
}

}  // namespace
