// The phases of fit()'s step, each on its own: staging batches, the tests' fault injection, the
// health checks, and the epoch's tally and metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.hpp"
#include "src/core/error.hpp"
#include "src/data/sampler.hpp"
#include "src/train/batch_stager.hpp"
#include "src/train/epoch_metrics.hpp"
#include "src/train/faults.hpp"
#include "src/train/grad_clip.hpp"
#include "src/train/health.hpp"
#include "tests/common/one_rank_communicator.hpp"
#include "tests/common/synthetic.hpp"

namespace dpt {
namespace {

class FitPhases : public ::testing::Test {
 protected:
  FitPhases()
      : backend(make_cpu_backend(1)),
        data(testing::make_synthetic_dataset(40, {1, 2, 3}, 4, 11)),
        model({comm, *backend}, "flatten linear(5) relu linear(4)", {1, 2, 3}, 1) {}

  // The device's copy of `count` floats (or labels) at p.
  template <class T>
  std::vector<T> download(const T* p, size_t count) {
    std::vector<T> out(count);
    backend->copy_to_host(out.data(), p, count * sizeof(T));
    return out;
  }

  testing::OneRankCommunicator comm;
  std::unique_ptr<Backend> backend;
  Dataset data;
  Model model;
};

TEST_F(FitPhases, StagerPutsEachMicroBatchOnTheDeviceAndAPrefetchedOneOnlyOnce) {
  const int batch = 3, micro = 2;
  const DistributedSampler sampler(data.count, 1, 0, batch * micro, /*shuffle=*/true, 5);
  const std::vector<int64_t> perm = sampler.permutation(0);
  // What step s's micro-batch m must be: its samples, gathered on the host.
  const auto expected = [&](int64_t s, int m) {
    std::vector<int64_t> idx(batch * micro);
    sampler.batch_indices(perm, s, idx.data());
    std::vector<float> x(static_cast<size_t>(batch * data.sample_numel()));
    std::vector<int32_t> y(batch);
    data.gather(idx.data() + m * batch, batch, x.data(), y.data());
    return std::make_pair(x, y);
  };
  const ImageBatches source(data);
  BatchStager stager(*backend, source, sampler, batch, micro);
  std::vector<std::pair<int64_t, int>> sent;  // (step, micro) of each batch that went out
  stager.set_host_hook([&](int64_t step, int m, TensorRef) { sent.emplace_back(step, m); });
  const size_t floats = static_cast<size_t>(batch * data.sample_numel());
  const auto check = [&](int64_t s, int m) {
    const auto [x, y] = expected(s, m);
    EXPECT_EQ(download(stager.inputs().as<float>(), floats), x) << "step " << s << " micro " << m;
    EXPECT_EQ(download(stager.targets(), batch), y) << "step " << s << " micro " << m;
  };

  for (int m = 0; m < micro; ++m) {
    stager.stage(perm, 1, /*step=*/11, m);
    check(1, m);
  }
  stager.prefetch(perm, 2, 12);
  check(2, 0);
  stager.stage(perm, 2, 12, 0);  // already there: nothing is sent again
  check(2, 0);
  stager.stage(perm, 2, 12, 1);
  check(2, 1);
  EXPECT_EQ(sent, (std::vector<std::pair<int64_t, int>>{{11, 0}, {11, 1}, {12, 0}, {12, 1}}));
}

TEST_F(FitPhases, FaultInjectorExistsOnlyForAPlannedFault) {
  EXPECT_EQ(FaultInjector::make({}, 0), nullptr);
  EXPECT_EQ(FaultInjector::make({.drift_rank = 1}, 0), nullptr) << "a rank without a step";
  EXPECT_NE(FaultInjector::make({.nan_step = 3}, 0), nullptr);
  EXPECT_NE(FaultInjector::make({.drift_rank = 1, .drift_step = 4}, 0), nullptr);
}

TEST_F(FitPhases, FaultInjectorPutsANanIntoRankZerosFirstInputOfItsStep) {
  const auto inputs_after = [](int rank, int64_t step, int micro) {
    std::vector<float> x(4, 0.5f);
    FaultInjector::make({.nan_step = 7}, rank)->on_host_batch(step, micro, x.data());
    return x;
  };
  const std::vector<float> hit = inputs_after(0, 7, 0);
  EXPECT_TRUE(std::isnan(hit[0]));
  EXPECT_EQ(std::vector<float>(hit.begin() + 1, hit.end()), std::vector<float>(3, 0.5f));
  EXPECT_EQ(inputs_after(1, 7, 0), std::vector<float>(4, 0.5f)) << "another rank";
  EXPECT_EQ(inputs_after(0, 6, 0), std::vector<float>(4, 0.5f)) << "another step";
  EXPECT_EQ(inputs_after(0, 7, 1), std::vector<float>(4, 0.5f)) << "another micro-batch";
}

TEST_F(FitPhases, FaultInjectorMovesTheDriftingRanksFirstParameterAfterItsStep) {
  Sequential& net = model.net();
  const std::vector<float> before = net.params_to_host();
  FaultInjector::make({.drift_rank = 1, .drift_step = 4}, 0)->after_step(4, net);
  EXPECT_EQ(net.params_to_host(), before) << "rank 0 does not drift";
  const auto drifting = FaultInjector::make({.drift_rank = 1, .drift_step = 4}, 1);
  drifting->after_step(3, net);
  EXPECT_EQ(net.params_to_host(), before) << "not before its step";
  drifting->after_step(4, net);
  std::vector<float> want = before;
  want[0] += 1e-3f;
  EXPECT_EQ(net.params_to_host(), want);
}

TEST_F(FitPhases, HealthChecksPassFiniteGradientsAndStopOrSkipNonFiniteOnes) {
  Sequential& net = model.net();
  const HealthChecks stop({comm, *backend}, net, {});
  const HealthChecks skip({comm, *backend}, net, {.skip_nonfinite = true});
  net.zero_grad();
  EXPECT_TRUE(stop.gradients_usable(3));
  EXPECT_TRUE(skip.gradients_usable(3));

  // A NaN in the first layer's weight gradient, an Inf in the last layer's bias gradient:
  // backward made the last layer's first, so that is the one named.
  const float nan = std::nanf(""), inf = INFINITY;
  backend->copy_from_host(net.grads(), &nan, sizeof(float));
  const ParamInfo& last_bias = net.param_info().back();
  backend->copy_from_host(net.grads() + last_bias.elem_offset, &inf, sizeof(float));
  EXPECT_FALSE(skip.gradients_usable(3));
  ::testing::internal::CaptureStderr();
  EXPECT_THROW(stop.gradients_usable(3), JobError);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("non-finite loss or gradients at step 3: first in backward at layer 3 " +
                     net.layer(3).describe() + " (3.bias)"),
            std::string::npos)
      << err;

  // With clipping the trainer passes the squared norm instead, and no count is taken: a
  // non-finite sum decides (and the error still names the layer), a finite one passes.
  const GradClipper clipper(*backend, net.param_info(), 1.0);
  const double bad_sum = clipper.sum_of_squares(net.grads());
  EXPECT_FALSE(std::isfinite(bad_sum));
  EXPECT_FALSE(skip.gradients_usable(3, &bad_sum));
  ::testing::internal::CaptureStderr();
  EXPECT_THROW(stop.gradients_usable(3, &bad_sum), JobError);
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("(3.bias)"), std::string::npos);
  const double finite_sum = 4.0;  // says finite, whatever the buffer holds
  EXPECT_TRUE(stop.gradients_usable(3, &finite_sum));
  // Only an inf among the gradients, or the largest finite floats: their squares in double.
  net.zero_grad();
  const float big = 3.4e38f;
  backend->copy_from_host(net.grads(), &big, sizeof(float));
  backend->copy_from_host(net.grads() + last_bias.elem_offset, &big, sizeof(float));
  const double big_sum = clipper.sum_of_squares(net.grads());
  EXPECT_TRUE(std::isfinite(big_sum)) << "finite gradients, finite sum";
  EXPECT_TRUE(stop.gradients_usable(3, &big_sum));
  backend->copy_from_host(net.grads() + last_bias.elem_offset, &inf, sizeof(float));
  const double inf_sum = clipper.sum_of_squares(net.grads());
  EXPECT_FALSE(skip.gradients_usable(3, &inf_sum));
}

// Rank 0 of two, whose peer holds the same parameters until `drifted` is set; counts the
// checksum exchanges.
class TwoReplicas final : public Communicator {
 public:
  bool drifted = false;
  int exchanges = 0;

  std::string name() const override { return "two replicas"; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  std::unique_ptr<Work> allreduce_async(void*, size_t, DataType, ReduceOp) override {
    ADD_FAILURE() << "no allreduce expected";
    return nullptr;
  }
  std::unique_ptr<Work> reduce_scatter_async(const void*, void*, size_t, DataType,
                                             ReduceOp) override {
    ADD_FAILURE() << "no reduce-scatter expected";
    return nullptr;
  }
  void broadcast(void*, size_t, DataType, int) override {}
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    ++exchanges;
    EXPECT_EQ(type, DataType::U64);
    EXPECT_EQ(count, 1u);
    const uint64_t mine = *static_cast<const uint64_t*>(send);
    static_cast<uint64_t*>(recv)[0] = mine;
    static_cast<uint64_t*>(recv)[1] = drifted ? mine + 1 : mine;
    return std::make_unique<DoneWork>();
  }
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  struct DoneWork final : Work {
    void wait() override {}
    double start_time() const override { return 0; }
    double end_time() const override { return 0; }
  };
};

TEST_F(FitPhases, HealthChecksCompareReplicasEveryNStepsAndNameTheOneThatDrifted) {
  TwoReplicas two;
  const HealthChecks every5({two, *backend}, model.net(), {.check_replicas_every = 5});
  for (int64_t step = 1; step <= 10; ++step) every5.after_step(step);
  EXPECT_EQ(two.exchanges, 2) << "steps 5 and 10 only";

  two.drifted = true;
  EXPECT_NO_THROW(every5.after_step(14));
  ::testing::internal::CaptureStderr();
  EXPECT_THROW(every5.after_step(15), JobError);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("replicas differ after step 15: rank 1 holds other parameters than rank 0 "
                     "(--check-replicas)"),
            std::string::npos)
      << err;

  const HealthChecks never({two, *backend}, model.net(), {});
  EXPECT_NO_THROW(never.after_step(15));
}

TEST(EpochMetrics, AreMadeFromTheEpochsTally) {
  testing::OneRankCommunicator comm;
  EpochTally tally;
  // Four steps of 0.5, 0.1, 0.3 and 0.2 s; the third skipped (its loss is not counted).
  const double seconds[] = {0.5, 0.1, 0.3, 0.2}, losses[] = {8, 6, 1000, 4};
  for (int i = 0; i < 4; ++i) {
    StepCommStats c;
    c.total_seconds = 0.25;
    c.exposed_seconds = 0.05;
    tally.add_step(seconds[i], c, /*applied=*/i != 2, losses[i]);
  }
  EXPECT_EQ(tally.steps, 4);
  EXPECT_EQ(tally.skips, 1);
  EXPECT_DOUBLE_EQ(tally.loss_sum, 18);

  const EpochMetrics m = epoch_metrics(comm, tally, /*epoch=*/2, /*step=*/40, /*global_batch=*/6,
                                       /*train_seconds=*/2.0);
  EXPECT_EQ(m.epoch, 3);
  EXPECT_EQ(m.step, 40);
  EXPECT_EQ(m.epoch_steps, 4);
  EXPECT_EQ(m.nonfinite_skips, 1);
  EXPECT_DOUBLE_EQ(m.train_loss, 18.0 / (3 * 6));  // the mean over the samples of steps taken
  EXPECT_DOUBLE_EQ(m.samples_per_second, 3 * 6 / 2.0);
  EXPECT_DOUBLE_EQ(m.comm_seconds, 1.0);
  EXPECT_NEAR(m.exposed_comm_seconds, 0.2, 1e-12);
  EXPECT_NEAR(m.compute_seconds, 1.8, 1e-12);  // all but the exposed communication
  EXPECT_NEAR(m.overlap_fraction, 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(m.median_step_seconds, 0.3);  // the upper median of four
  EXPECT_EQ(m.world_size, 1);
  EXPECT_EQ(m.global_batch, 6);
}

TEST(EpochMetrics, AResumedEpochCarriesOnItsStepsAndLoss) {
  const TrainPosition from{.step = 30, .epoch = 2, .step_in_epoch = 6, .loss_sum = 12.5};
  const EpochTally resumed = EpochTally::starting(2, from);
  EXPECT_EQ(resumed.steps, 6);
  EXPECT_DOUBLE_EQ(resumed.loss_sum, 12.5);
  const EpochTally next = EpochTally::starting(3, from);
  EXPECT_EQ(next.steps, 0);
  EXPECT_EQ(next.loss_sum, 0);
  // A position at an epoch's start (as written after its last step) starts it afresh.
  const EpochTally at_start = EpochTally::starting(2, {.step = 24, .epoch = 2});
  EXPECT_EQ(at_start.steps, 0);
  EXPECT_EQ(at_start.loss_sum, 0);
}

}  // namespace
}  // namespace dpt
