// What fit() does around the optimizer step: the learning-rate schedule at each step (also
// after a resume), clipping the averaged gradients, weight decay per tensor as compile sets it
// up, and a stop request polled every step.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "kernels/backend.hpp"
#include "src/train/model.hpp"
#include "tests/common/one_rank_communicator.hpp"
#include "tests/common/synthetic.hpp"

namespace dpt {
namespace {

constexpr const char* kSpec = "flatten linear(5) relu linear(4)";

// The learning rate the optimizer held at the end of each step, by global step.
class LrRecorder final : public Callback {
 public:
  explicit LrRecorder(const Model& model) : model_(model) {}
  void on_step_end(int, int64_t, int64_t global_step, double) override {
    seen.emplace_back(global_step, model_.optimizer()->lr());
  }
  std::vector<std::pair<int64_t, float>> seen;

 private:
  const Model& model_;
};

class FitOptimization : public ::testing::Test {
 protected:
  FitOptimization()
      : backend(make_cpu_backend(1)), data(testing::make_synthetic_dataset(40, {1, 2, 3}, 4, 11)) {}

  std::unique_ptr<Model> make_model(const OptimizerConfig& config) {
    auto model = std::make_unique<Model>(Environment{comm, *backend}, kSpec, Shape{1, 2, 3}, 1);
    model->compile(config);
    return model;
  }

  static OptimizerConfig sgd(float lr) {
    OptimizerConfig c;
    c.lr = lr;
    return c;
  }

  static FitOptions options(int epochs) {
    FitOptions o;
    o.schedule.epochs = epochs;
    o.schedule.batch_size = 4;  // 10 steps an epoch
    return o;
  }

  testing::OneRankCommunicator comm;
  std::unique_ptr<Backend> backend;
  Dataset data;
};

TEST_F(FitOptimization, TheScheduleSetsEveryStepsRateAndCarriesOnAfterAResume) {
  const LrSchedule schedule{0.1, 3, 25, 0.01};
  std::unique_ptr<Model> model = make_model(sgd(0.1f));
  FitOptions o = options(2);
  o.optim.lr_schedule = schedule;
  LrRecorder first(*model);
  const std::vector<EpochMetrics> history = model->fit(data, o, nullptr, {&first});
  ASSERT_EQ(first.seen.size(), 20u);
  for (const auto& [step, lr] : first.seen)
    EXPECT_EQ(lr, static_cast<float>(schedule.at(step - 1))) << "step " << step;
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[1].lr, static_cast<float>(schedule.at(19))) << "the epoch's last step";
  EXPECT_FALSE(history[1].grad_norm) << "measured only when clipping";

  // Resumed at step 20 (as from a checkpoint): warmup is long over, the decay goes on.
  o.schedule.epochs = 3;
  o.checkpoint.resume = TrainPosition{20, 2, 0, 0.0};
  LrRecorder resumed(*model);
  model->fit(data, o, nullptr, {&resumed});
  ASSERT_EQ(resumed.seen.size(), 10u);
  for (const auto& [step, lr] : resumed.seen)
    EXPECT_EQ(lr, static_cast<float>(schedule.at(step - 1))) << "step " << step;
  EXPECT_EQ(resumed.seen.back().second, static_cast<float>(schedule.at(29)));
  EXPECT_LT(resumed.seen.back().second, resumed.seen.front().second);
}

TEST_F(FitOptimization, WithoutAScheduleTheRateStaysTheConfiguredOne) {
  std::unique_ptr<Model> model = make_model(sgd(0.05f));
  LrRecorder seen(*model);
  model->fit(data, options(1), nullptr, {&seen});
  ASSERT_EQ(seen.seen.size(), 10u);
  for (const auto& [step, lr] : seen.seen) EXPECT_EQ(lr, 0.05f) << step;
}

// One SGD step with lr 1 moves the parameters by minus the gradients, so the step of a clipped
// run is the unclipped run's step times the clipping coefficient.
TEST_F(FitOptimization, ClippingScalesTheStepByMaxNormOverTheGradientsNorm) {
  std::unique_ptr<Model> plain = make_model(sgd(1.0f));
  std::unique_ptr<Model> clipped = make_model(sgd(1.0f));
  const std::vector<float> start = plain->net().params_to_host();
  ASSERT_EQ(clipped->net().params_to_host(), start);
  FitOptions o = options(1);
  o.schedule.max_steps = 1;
  plain->fit(data, o);
  const double max_norm = 1e-3;
  o.optim.grad_clip = max_norm;
  const std::vector<EpochMetrics> history = clipped->fit(data, o);
  ASSERT_EQ(history.size(), 1u);
  ASSERT_TRUE(history[0].grad_norm);
  const double norm = *history[0].grad_norm;
  const std::vector<float> a = plain->net().params_to_host(), b = clipped->net().params_to_host();
  // The unclipped step is the gradient: its norm is the one reported.
  double step_norm = 0, clipped_norm = 0;
  for (size_t i = 0; i < start.size(); ++i) {
    step_norm += double(start[i] - a[i]) * (start[i] - a[i]);
    clipped_norm += double(start[i] - b[i]) * (start[i] - b[i]);
  }
  EXPECT_NEAR(std::sqrt(step_norm), norm, 1e-5 * norm);
  ASSERT_GT(norm, 10 * max_norm) << "the test needs a step that clips";
  EXPECT_NEAR(std::sqrt(clipped_norm), max_norm, 1e-3 * max_norm);
  const double coef = max_norm / (norm + 1e-6);
  for (size_t i = 0; i < start.size(); ++i)
    EXPECT_NEAR(start[i] - b[i], (start[i] - a[i]) * coef, 1e-7) << "element " << i;
}

TEST_F(FitOptimization, CompileDecaysOnlyMatricesWhenAskedTo) {
  OptimizerConfig config;
  config.name = "adamw";
  config.lr = 1e-3f;
  EXPECT_EQ(make_model(config)->optimizer()->ranges().size(), 1u) << "everything decays";
  config.decay_only_matrices = true;
  std::unique_ptr<Model> model = make_model(config);
  const std::vector<DecayRange>& ranges = model->optimizer()->ranges();
  const std::vector<ParamInfo>& params = model->net().param_info();
  ASSERT_EQ(ranges.size(), params.size()) << "weights and biases alternate";
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(ranges[i].elem_offset, params[i].elem_offset) << params[i].name;
    EXPECT_EQ(ranges[i].decay, params[i].shape.size() >= 2) << params[i].name;
  }
}

TEST_F(FitOptimization, AStopRequestEndsTheRunAfterTheStepThatSawItWithoutEvaluating) {
  std::unique_ptr<Model> model = make_model(sgd(0.05f));
  FitOptions o = options(2);
  int polls = 0;
  o.stop.requested = [&] { return ++polls == 7; };
  const std::vector<EpochMetrics> history = model->fit(data, o, &data);
  EXPECT_TRUE(model->stopped_on_request());
  EXPECT_EQ(model->steps_done(), 7) << "polled after every step";
  EXPECT_EQ(polls, 7);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].epoch_steps, 7);
  EXPECT_FALSE(history[0].test) << "a stop skips the evaluation";
}

TEST_F(FitOptimization, BadOptimizationSettingsAreRefusedNamingTheOption) {
  std::unique_ptr<Model> model = make_model(sgd(0.05f));
  FitOptions o = options(1);
  o.optim.grad_clip = -1;
  EXPECT_THROW(model->fit(data, o), InputError);
  o.optim.grad_clip = 0;
  o.optim.lr_schedule = LrSchedule{0.05, 10, 5, 0};
  try {
    o.validate();
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("option --lr-decay-steps", 0), 0u) << e.what();
  }
}

}  // namespace
}  // namespace dpt
