// The Reducer's readiness: a bucket starts once every parameter in it has had its last use in
// backward, buckets start in build order, and a parameter used twice (tied) waits for both uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "comm/reducer.hpp"
#include "src/core/error.hpp"

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
    return std::make_unique<DoneWork>();
  }
  void broadcast(void*, size_t, DataType, int) override {}
  void allgather(const void*, void*, size_t, DataType) override {}
  void barrier() override {}
  [[noreturn]] void abort(int) override { std::abort(); }

 private:
  struct DoneWork final : Work {
    void wait() override {}
    double start_time() const override { return 0; }
    double end_time() const override { return 0; }
  };
};

// A model's gradient buffer as ranges: a tied embedding first (used by the first layer, stage 0,
// and by the output head, stage 2), then a layer-1 tensor and a layer-2 tensor.
std::vector<ParamRange> tied_ranges() {
  return {{.offset = 0, .numel = 64, .stage = 0, .uses = 2},
          {.offset = 64, .numel = 64, .stage = 1},
          {.offset = 128, .numel = 64, .stage = 2}};
}

TEST(Reducer, TiedParameterIsReadyAfterItsLastUse) {
  const std::vector<ParamRange> ranges = tied_ranges();
  // Caps of one tensor: a bucket per tensor, from the end of the buffer.
  std::vector<Bucket> buckets = assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float));
  ASSERT_EQ(buckets.size(), 3u);
  RecordingCommunicator comm;
  Reducer reducer(comm, buckets, ranges);
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
  Reducer reducer(comm, assign_buckets(ranges, 1 << 20, 1 << 20), ranges);
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
  const std::vector<ParamRange> ranges = {{.offset = 0, .numel = 64, .stage = 0},
                                          {.offset = 64, .numel = 64, .stage = 1}};
  RecordingCommunicator comm;
  Reducer reducer(comm, assign_buckets(ranges, 64 * sizeof(float), 64 * sizeof(float)), ranges);
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
  Reducer reducer(comm, assign_buckets(ranges, 1 << 20, 1 << 20), ranges);
  std::vector<float> grads(192);
  reducer.begin(grads.data());
  reducer.stage_done(1);
  EXPECT_THROW(reducer.param_done(1), SystemError);
  EXPECT_THROW(reducer.param_done(7), SystemError);
}

}  // namespace
}  // namespace dpt
