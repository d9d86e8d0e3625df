// The checkpoint policy: file names, which checkpoints are kept and which one a resume takes,
// when fit() writes one, and what a checkpoint must agree on to be resumed from.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/train/checkpoint_policy.hpp"
#include "tests/common/one_rank_communicator.hpp"
#include "tests/common/synthetic.hpp"

namespace fs = std::filesystem;

namespace dpt {
namespace {

// A run directory of this test's own, removed afterwards.
class RunDir {
 public:
  RunDir()
      : path_((fs::path(::testing::TempDir()) /
               ("dpt_policy_" + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                  .string()) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~RunDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

RunKeys keys(int batch = 4) {
  FitOptions::Schedule s;
  s.batch_size = batch;
  s.seed = 7;
  return RunKeys::of("flatten linear(8) relu linear(4)", s, 1);
}

std::vector<std::string> names(const std::vector<std::string>& paths) {
  std::vector<std::string> out;
  for (const std::string& p : paths) out.push_back(fs::path(p).filename().string());
  return out;
}

TEST(CheckpointPolicy, NamesAreZeroPaddedStepsInTheRunsCheckpointsFolder) {
  const CheckpointPolicy policy("/runs/a", 100, 3, keys());
  EXPECT_EQ(policy.folder(), "/runs/a/checkpoints");
  EXPECT_EQ(policy.path(42), "/runs/a/checkpoints/step-000000042.safetensors");
  EXPECT_EQ(policy.path(1234567890), "/runs/a/checkpoints/step-1234567890.safetensors");
}

TEST(CheckpointPolicy, ListsCheckpointsNewestFirstAndNothingElse) {
  RunDir dir;
  const CheckpointPolicy policy(dir.path(), 10, 0, keys());
  EXPECT_TRUE(policy.list().empty()) << "no folder yet";
  policy.create_folder();
  for (const char* name :
       {"step-000000005.safetensors", "step-000000120.safetensors", "step-000000030.safetensors",
        "notes.txt", "step-000000007.safetensors.tmp"})
    std::ofstream(fs::path(policy.folder()) / name) << "x";
  EXPECT_EQ(names(policy.list()),
            (std::vector<std::string>{"step-000000120.safetensors", "step-000000030.safetensors",
                                      "step-000000005.safetensors"}));
}

TEST(CheckpointPolicy, InsideAnEpochWritesEveryNStepsButNotOnItsLastStepOrTheRunsLast) {
  const CheckpointPolicy every3("/r", 3, 0, keys());
  EXPECT_TRUE(every3.due_after_step(6, false, false));
  EXPECT_FALSE(every3.due_after_step(7, false, false));
  EXPECT_FALSE(every3.due_after_step(6, /*last_of_epoch=*/true, false)) << "taken at the end";
  EXPECT_FALSE(every3.due_after_step(6, false, /*run_ends=*/true)) << "taken at the end";
  const CheckpointPolicy never("/r", 0, 0, keys());
  EXPECT_FALSE(never.due_after_step(6, false, false));
}

TEST(CheckpointPolicy, AtAnEpochsEndWritesOnScheduleWhenTrainingEndsAndWhenAskedToStop) {
  const CheckpointPolicy every3("/r", 3, 0, keys());
  EXPECT_TRUE(every3.due_at_epoch_end(12, 12, false, false));
  EXPECT_FALSE(every3.due_at_epoch_end(13, 13, false, false));
  EXPECT_TRUE(every3.due_at_epoch_end(13, 13, /*run_ends=*/true, false));
  EXPECT_TRUE(every3.due_at_epoch_end(13, 5, true, /*stop_requested=*/true));
  EXPECT_FALSE(every3.due_at_epoch_end(12, /*epoch_steps=*/0, true, true)) << "nothing new";
  // Without a schedule, only a stop request writes one (so that the job can be resumed).
  const CheckpointPolicy never("/r", 0, 0, keys());
  EXPECT_FALSE(never.due_at_epoch_end(12, 12, true, false));
  EXPECT_TRUE(never.due_at_epoch_end(13, 1, true, true));
}

TEST(RunKeys, RecordTheGlobalBatchAndWhatDecidesTheDataOrder) {
  FitOptions::Schedule s;
  s.batch_size = 16;
  s.accumulate = 4;
  s.seed = 3;
  s.shuffle = false;
  const RunKeys k = RunKeys::of("mlp", s, 2);
  EXPECT_EQ(k.global_batch, 128);
  // As checkpoints store it: the same text byte for byte as before, so that they are identical.
  EXPECT_EQ(k.to_json(),
            R"({"global_batch":128,"model":"mlp","seed":3,"shuffle":false,"world_size":2})");
}

TEST(RunKeys, AResumeMustAgreeOnGlobalBatchSeedAndShufflingOnly) {
  FitOptions::Schedule s;
  s.batch_size = 64;
  const RunKeys now = RunKeys::of("mlp", s, 2);
  // 1 rank x 128: the same global batch, so the same samples every step.
  EXPECT_NO_THROW(
      now.check_resume("c.safetensors", RunKeys::of("mlp", {.batch_size = 128}, 1).to_json()));
  const auto refused = [&](const std::string& saved, const std::string& want) {
    try {
      now.check_resume("c.safetensors", saved);
      ADD_FAILURE() << "accepted " << saved;
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()), want);
    }
  };
  refused(RunKeys::of("mlp", {.batch_size = 32}, 2).to_json(),
          "c.safetensors: saved with global_batch 64, this run has 128 (they must match to "
          "resume)");
  refused(RunKeys::of("mlp", {.batch_size = 64, .seed = 9}, 2).to_json(),
          "c.safetensors: saved with seed 9, this run has 0 (they must match to resume)");
  refused(RunKeys::of("mlp", {.batch_size = 64, .shuffle = false}, 2).to_json(),
          "c.safetensors: saved with shuffle false, this run has true (they must match to "
          "resume)");
  refused("{", "c.safetensors: no readable configuration in its metadata");
}

class PolicyInFit : public ::testing::Test {
 protected:
  static constexpr const char* kSpec = "flatten linear(8) relu linear(4)";
  PolicyInFit()
      : backend(make_cpu_backend(1)), data(testing::make_synthetic_dataset(48, {1, 4, 4}, 4, 5)) {}

  std::unique_ptr<Model> model(uint64_t seed) {
    auto m = std::make_unique<Model>(Environment{comm, *backend}, kSpec, Shape{1, 4, 4}, seed);
    m->compile({.name = "sgd", .lr = 0.1f, .momentum = 0.9f});
    return m;
  }
  // 12 steps per epoch of 4 samples.
  FitOptions options(int64_t max_steps, const CheckpointPolicy* policy) {
    FitOptions fo;
    fo.schedule.epochs = 3;
    fo.schedule.batch_size = 4;
    fo.schedule.seed = 7;
    fo.schedule.max_steps = max_steps;
    fo.checkpoint.policy = policy;
    return fo;
  }

  testing::OneRankCommunicator comm;
  std::unique_ptr<Backend> backend;
  Dataset data;
};

TEST_F(PolicyInFit, WritesOnScheduleKeepsTheNewestAndResumesExactly) {
  RunDir dir;
  const CheckpointPolicy policy(dir.path(), 3, 2, keys());
  policy.create_folder();
  auto first = model(1);
  first->fit(data, options(7, &policy));
  // Steps 3 and 6 inside the epoch, 7 where training stopped; the newest two kept.
  EXPECT_EQ(names(policy.list()),
            (std::vector<std::string>{"step-000000007.safetensors", "step-000000006.safetensors"}));

  auto resumed = model(2);
  std::vector<std::string> refusals;
  const std::optional<TrainPosition> from =
      policy.resume_newest(*resumed, [&](const std::string& why) { refusals.push_back(why); });
  ASSERT_TRUE(from.has_value());
  EXPECT_TRUE(refusals.empty());
  EXPECT_EQ(from->step, 7);
  EXPECT_EQ(from->epoch, 0);
  EXPECT_EQ(from->step_in_epoch, 7);
  EXPECT_EQ(resumed->net().params_to_host(), first->net().params_to_host());

  // Carried on to step 30 (into the third epoch), it ends bit for bit where a run that was
  // never stopped ends.
  FitOptions more = options(30, nullptr);
  more.checkpoint.resume = from;
  resumed->fit(data, more);
  auto straight = model(1);
  straight->fit(data, options(30, nullptr));
  EXPECT_EQ(resumed->steps_done(), 30);
  EXPECT_EQ(resumed->net().params_to_host(), straight->net().params_to_host());
  EXPECT_NE(resumed->net().params_to_host(), first->net().params_to_host());
}

TEST_F(PolicyInFit, ResumeTakesTheNewestCheckpointThatLoads) {
  RunDir dir;
  const CheckpointPolicy policy(dir.path(), 2, 0, keys());
  policy.create_folder();
  model(1)->fit(data, options(4, &policy));
  const std::string newest = policy.path(4);
  ASSERT_EQ(policy.list().front(), newest);
  {
    // One byte of the tensor data flipped, well past the header.
    std::fstream f(newest, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-40, std::ios::end);
    char c = 0;
    f.read(&c, 1);
    f.seekp(-40, std::ios::end);
    c = static_cast<char>(c ^ 1);
    f.write(&c, 1);
  }
  auto resumed = model(2);
  std::vector<std::string> refusals;
  const std::optional<TrainPosition> from =
      policy.resume_newest(*resumed, [&](const std::string& why) { refusals.push_back(why); });
  ASSERT_TRUE(from.has_value());
  EXPECT_EQ(from->step, 2);
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0], newest + ": checksum mismatch: the tensor data is corrupt");

  // A run with another global batch refuses every one and starts fresh, unchanged.
  const CheckpointPolicy other(dir.path(), 2, 0, keys(/*batch=*/8));
  auto fresh = model(3);
  const std::vector<float> before = fresh->net().params_to_host();
  refusals.clear();
  EXPECT_FALSE(other.resume_newest(*fresh, [&](const std::string& why) { refusals.push_back(why); })
                   .has_value());
  EXPECT_EQ(refusals.size(), 2u);
  EXPECT_EQ(fresh->net().params_to_host(), before);
}

TEST_F(PolicyInFit, AStopRequestEndsTrainingWithACheckpointEvenWithoutASchedule) {
  RunDir dir;
  const CheckpointPolicy policy(dir.path(), 0, 0, keys());
  policy.create_folder();
  auto m = model(1);
  FitOptions fo = options(-1, &policy);
  int polls = 0;
  fo.stop.requested = [&] { return ++polls == 5; };
  fo.stop.check_every = 1;
  m->fit(data, fo);
  EXPECT_TRUE(m->stopped_on_request());
  EXPECT_EQ(m->steps_done(), 5);
  EXPECT_EQ(names(policy.list()), std::vector<std::string>{"step-000000005.safetensors"});

  // And without a stop request, no schedule writes nothing.
  fs::remove_all(policy.folder());
  policy.create_folder();
  model(1)->fit(data, options(20, &policy));
  EXPECT_TRUE(policy.list().empty());
}

}  // namespace
}  // namespace dpt
