// The Reducer's readiness: a bucket starts once every parameter in it has had its last use in
// backward, buckets start in build order, and a parameter used twice (tied) waits for both uses.
// And its accounting: the step's total communication, and the part of it the step waited for.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "comm/reducer.hpp"
#include "src/core/error.hpp"
#include "tests/common/one_rank_communicator.hpp"

namespace dpt {
namespace {

// A two-rank communicator that only records which ranges were allreduced, in order.
class RecordingCommunicator final : public Communicator {
 public:
  struct Call {
    const float* data;
    size_t count;
  };
  std::vector<Call> calls;
  // The (start, end) times the allreduces report, in the order they start; (0, 0) past the end.
  std::vector<BucketTiming> timings;

  std::string name() const override { return "recording"; }
  int rank() const override { return 0; }
  int size() const override { return 2; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 2; }
  std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                        ReduceOp op) override {
    EXPECT_EQ(type, DataType::F32);
    EXPECT_EQ(op, ReduceOp::Sum);
    calls.push_back({static_cast<const float*>(data), count});
    const BucketTiming t =
        calls.size() <= timings.size() ? timings[calls.size() - 1] : BucketTiming{};
    return std::make_unique<DoneWork>(t);
  }
  std::unique_ptr<Work> reduce_scatter_async(const void*, void*, size_t, DataType,
                                             ReduceOp) override {
    return std::make_unique<DoneWork>(BucketTiming{});
  }
  void broadcast(void*, size_t, DataType, int) override {}
  std::unique_ptr<Work> allgather_async(const void*, void*, size_t, DataType) override {
    return std::make_unique<DoneWork>(BucketTiming{});
  }
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  struct DoneWork final : Work {
    explicit DoneWork(BucketTiming t) : timing(t) {}
    void wait() override {}
    double start_time() const override { return timing.start; }
    double end_time() const override { return timing.end; }
    BucketTiming timing;
  };
};

// Host memory as a device. Asynchronous when asked, with markers that complete at times the test
// sets (a GPU's queue, without the GPU).
class FakeDevice final : public Device {
 public:
  explicit FakeDevice(bool asynchronous = false) : asynchronous_(asynchronous) {}
  std::vector<double> marker_times;  // when each recorded marker completes (asynchronous)

  std::string name() const override { return "fake"; }
  void* alloc(size_t bytes) override { return std::calloc(bytes, 1); }
  void free(void* p) override { std::free(p); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  bool asynchronous() const override { return asynchronous_; }
  int record_marker() override {
    if (!asynchronous_) return Device::record_marker();
    return recorded_++;
  }
  double marker_time(int marker) override {
    if (!asynchronous_) return Device::marker_time(marker);
    return marker_times.at(static_cast<size_t>(marker));
  }

 private:
  bool asynchronous_;
  int recorded_ = 0;
};

// A model's gradient buffer as ranges: a tied embedding first (used by the first layer, stage 0,
// and by the output head, stage 2), then a layer-1 tensor and a layer-2 tensor.
std::vector<ParamRange> tied_ranges() {
  return {{.elem_offset = 0, .numel = 64, .stage = 0, .uses = 2},
          {.elem_offset = 64, .numel = 64, .stage = 1},
          {.elem_offset = 128, .numel = 64, .stage = 2}};
}

TEST(Reducer, TiedParameterIsReadyAfterItsLastUse) {
  const std::vector<ParamRange> ranges = tied_ranges();
  // Caps of one tensor: a bucket per tensor, from the end of the buffer.
  std::vector<Bucket> buckets = assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float));
  ASSERT_EQ(buckets.size(), 3u);
  RecordingCommunicator comm;
  FakeDevice device;
  Reducer reducer(comm, device, buckets, ranges);
  std::vector<float> grads(192);
  reducer.begin(grads.data());

  // Backward: the head (stage 2) uses the tied tensor and layer 2's tensor.
  reducer.param_done(0);
  EXPECT_TRUE(comm.calls.empty()) << "nothing is complete before stage 2 ends";
  reducer.stage_done(2);
  ASSERT_EQ(comm.calls.size(), 1u);
  EXPECT_EQ(comm.calls[0].data, grads.data() + 128);
  reducer.stage_done(1);
  ASSERT_EQ(comm.calls.size(), 2u);
  EXPECT_EQ(comm.calls[1].data, grads.data() + 64);
  // One use of the tied tensor is still to come: its bucket waits for it.
  reducer.stage_done(0);
  ASSERT_EQ(comm.calls.size(), 3u);
  EXPECT_EQ(comm.calls[2].data, grads.data());
  EXPECT_EQ(comm.calls[2].count, 64u);
  reducer.finish();
  EXPECT_EQ(comm.calls.size(), 3u) << "finish starts nothing twice";
}

TEST(Reducer, ABucketWithATiedParameterWaitsForItsLastUse) {
  const std::vector<ParamRange> ranges = tied_ranges();
  // One bucket of everything: it must not start when layer 2 and layer 1 are done, because the
  // tied tensor has a use left.
  RecordingCommunicator comm;
  FakeDevice device;
  Reducer reducer(comm, device, assign_buckets(ranges, 1 << 20, 1 << 20), ranges);
  std::vector<float> grads(192);
  reducer.begin(grads.data());
  reducer.stage_done(2);
  reducer.stage_done(1);
  reducer.param_done(0);  // the head's use, reported late
  EXPECT_TRUE(comm.calls.empty());
  reducer.stage_done(0);
  ASSERT_EQ(comm.calls.size(), 1u);
  EXPECT_EQ(comm.calls[0].count, 192u);
  reducer.finish();

  // The counts start again with each step.
  comm.calls.clear();
  reducer.begin(grads.data());
  reducer.stage_done(2);
  reducer.stage_done(1);
  reducer.stage_done(0);
  EXPECT_TRUE(comm.calls.empty()) << "one use of the tied tensor is still pending";
  reducer.param_done(0);
  EXPECT_EQ(comm.calls.size(), 1u);
  reducer.finish();
}

TEST(Reducer, BucketsStartInBuildOrderEvenWhenALaterOneIsCompleteFirst) {
  // Two buckets, {layer 1} then {layer 0}; layer 0's tensor reported first.
  const std::vector<ParamRange> ranges = {{.elem_offset = 0, .numel = 64, .stage = 0},
                                          {.elem_offset = 64, .numel = 64, .stage = 1}};
  RecordingCommunicator comm;
  FakeDevice device;
  Reducer reducer(comm, device, assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float)),
                  ranges);
  std::vector<float> grads(128);
  reducer.begin(grads.data());
  reducer.param_done(0);
  EXPECT_TRUE(comm.calls.empty()) << "bucket 1 may not start before bucket 0";
  reducer.param_done(1);
  ASSERT_EQ(comm.calls.size(), 2u);
  EXPECT_EQ(comm.calls[0].data, grads.data() + 64);
  EXPECT_EQ(comm.calls[1].data, grads.data());
  reducer.finish();
}

TEST(Reducer, AUseMoreThanDeclaredIsAnError) {
  const std::vector<ParamRange> ranges = tied_ranges();
  RecordingCommunicator comm;
  FakeDevice device;
  Reducer reducer(comm, device, assign_buckets(ranges, 1 << 20, 1 << 20), ranges);
  std::vector<float> grads(192);
  reducer.begin(grads.data());
  reducer.stage_done(1);
  EXPECT_THROW(reducer.param_done(1), SystemError);
  EXPECT_THROW(reducer.param_done(7), SystemError);
}

// Two buckets, one per tensor, reduced over a step the way fit() drives the Reducer.
StepCommStats run_step(Reducer& reducer, float* grads, const std::function<void()>& during_step) {
  reducer.step_begin();
  reducer.begin(grads);
  reducer.stage_done(1);
  reducer.stage_done(0);
  reducer.backward_done();
  reducer.finish();
  if (during_step) during_step();
  return reducer.step_end();
}

std::vector<ParamRange> two_layer_ranges() {
  return {{.elem_offset = 0, .numel = 64, .stage = 0},
          {.elem_offset = 64, .numel = 64, .stage = 1}};
}

TEST(ReducerAccounting, OnAnAsynchronousDeviceExposedRunsFromBackwardDoneToTheLastBucket) {
  const std::vector<ParamRange> ranges = two_layer_ranges();
  const std::vector<Bucket> buckets =
      assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float));
  std::vector<float> grads(128);
  // Bucket 0 ran from 10.0 to 10.5 s, bucket 1 from 10.6 to 11.0 s: 0.9 s of communication.
  RecordingCommunicator comm;
  comm.timings = {{10.0, 10.5}, {10.6, 11.0}};
  struct Case {
    double backward_done;
    double exposed;
  };
  // Backward done at 10.8 s: the step waited 0.2 s. Done at 11.5 s: all of it was hidden. Done
  // at 9.0 s: the step waited 2 s, but only 0.9 s of that was communication.
  for (const Case c : {Case{10.8, 0.2}, Case{11.5, 0.0}, Case{9.0, 0.9}}) {
    comm.calls.clear();
    FakeDevice device(/*asynchronous=*/true);
    device.marker_times = {c.backward_done};
    Reducer reducer(comm, device, buckets, ranges);
    const StepCommStats stats = run_step(reducer, grads.data(), nullptr);
    ASSERT_EQ(stats.buckets.size(), 2u);
    EXPECT_DOUBLE_EQ(stats.buckets[1].end, 11.0);
    EXPECT_NEAR(stats.total_seconds, 0.9, 1e-12);
    EXPECT_NEAR(stats.exposed_seconds, c.exposed, 1e-12) << "backward done at " << c.backward_done;
  }
}

TEST(ReducerAccounting, OnTheCpuExposedIsTheWallTimeNotSpentComputingAtMostTheTotal) {
  const std::vector<ParamRange> ranges = two_layer_ranges();
  const std::vector<Bucket> buckets =
      assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float));
  std::vector<float> grads(128);
  const auto sleep = [] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); };
  {
    // 100 s of communication; the step slept 30 ms of it (wall time without CPU time).
    RecordingCommunicator comm;
    comm.timings = {{0.0, 40.0}, {40.0, 100.0}};
    FakeDevice device;
    Reducer reducer(comm, device, buckets, ranges);
    const StepCommStats stats = run_step(reducer, grads.data(), sleep);
    EXPECT_DOUBLE_EQ(stats.total_seconds, 100.0);
    EXPECT_GE(stats.exposed_seconds, 0.02);
    EXPECT_LT(stats.exposed_seconds, 100.0);
  }
  {
    // 1 ms of communication: a step that waited 30 ms exposed no more than that millisecond.
    RecordingCommunicator comm;
    comm.timings = {{5.0, 5.0005}, {5.0005, 5.001}};
    FakeDevice device;
    Reducer reducer(comm, device, buckets, ranges);
    const StepCommStats stats = run_step(reducer, grads.data(), sleep);
    EXPECT_NEAR(stats.total_seconds, 0.001, 1e-12);
    EXPECT_DOUBLE_EQ(stats.exposed_seconds, stats.total_seconds);
  }
}

TEST(ReducerAccounting, WithoutCommunicationNothingIsExposed) {
  // One rank starts no allreduce: a step that waited still exposed nothing.
  class OneRank final : public testing::OneRankCommunicator {
   public:
    std::unique_ptr<Work> allreduce_async(void*, size_t, DataType, ReduceOp) override {
      ADD_FAILURE() << "one rank needs no allreduce";
      return nullptr;
    }
  } comm;
  const std::vector<ParamRange> ranges = two_layer_ranges();
  std::vector<float> grads(128);
  for (bool asynchronous : {false, true}) {
    FakeDevice device(asynchronous);
    device.marker_times = {1.0};
    Reducer reducer(comm, device, assign_buckets(ranges, 1 << 20, 1 << 20), ranges);
    const StepCommStats stats = run_step(
        reducer, grads.data(), [] { std::this_thread::sleep_for(std::chrono::milliseconds(5)); });
    EXPECT_TRUE(stats.buckets.empty());
    EXPECT_EQ(stats.total_seconds, 0.0);
    EXPECT_EQ(stats.exposed_seconds, 0.0) << (asynchronous ? "asynchronous" : "cpu");
  }
}

}  // namespace
}  // namespace dpt
