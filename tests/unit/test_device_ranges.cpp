// Device's named ranges: passed on to the profiler hooks always, and while recording, kept with
// their paths, depths and times for the trace's ops lane.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "kernels/runtime/device.hpp"

namespace dpt {
namespace {

// A device with no memory of its own that logs the profiler hooks (NVTX on CUDA).
class LoggingDevice final : public Device {
 public:
  std::string name() const override { return "logging"; }
  void* alloc(size_t) override { return nullptr; }
  void free(void*) override {}
  void copy_from_host(void*, const void*, size_t) override {}
  void copy_to_host(void*, const void*, size_t) override {}
  void copy(void*, const void*, size_t) override {}
  void push_range(const char* name) override { hooks.push_back(std::string("push ") + name); }
  void pop_range() override { hooks.push_back("pop"); }
  std::vector<std::string> hooks;
};

std::vector<std::string> paths(const std::vector<Device::TimedRange>& ranges) {
  std::vector<std::string> p;
  for (const Device::TimedRange& r : ranges) p.push_back(r.path + "@" + std::to_string(r.depth));
  return p;
}

TEST(DeviceRanges, NestedRangesAreKeptWithTheirPathsWhileRecording) {
  LoggingDevice d;
  {
    ScopedRange outside(d, "before");  // not recorded: recording is off
  }
  d.record_ranges(true);
  {
    ScopedRange forward(d, "forward");
    {
      ScopedRange block(d, "h.0");
      { ScopedRange a(d, "attn"); }
      { ScopedRange m(d, "mlp"); }
    }
    { ScopedRange head(d, "lm_head"); }
  }
  { ScopedRange loss(d, "loss"); }
  const std::vector<Device::TimedRange> got = d.take_ranges();
  EXPECT_EQ(paths(got),
            (std::vector<std::string>{"forward@0", "forward/h.0@1", "forward/h.0/attn@2",
                                      "forward/h.0/mlp@2", "forward/lm_head@1", "loss@0"}));
  // Each range lies within its parent's span, and times run forward.
  for (const Device::TimedRange& r : got) EXPECT_LE(r.start, r.end) << r.path;
  EXPECT_LE(got[0].start, got[1].start);
  EXPECT_GE(got[0].end, got[4].end);
  EXPECT_LE(got[2].end, got[3].start);
  // The profiler hooks saw every range, recorded or not, in order.
  EXPECT_EQ(d.hooks.size(), 14u);
  EXPECT_EQ(d.hooks.front(), "push before");
  EXPECT_EQ(d.hooks[2], "push forward");
  EXPECT_EQ(d.hooks.back(), "pop");
  EXPECT_TRUE(d.take_ranges().empty()) << "taken once";
}

TEST(DeviceRanges, RecordingThatStartsInsideARangeKeepsOnlyWhatOpensAfter) {
  LoggingDevice d;
  {
    ScopedRange outer(d, "fit");  // open before recording starts: never recorded
    d.record_ranges(true);
    { ScopedRange step(d, "step"); }
  }  // closing "fit" must not close anything recorded
  { ScopedRange next(d, "next"); }
  EXPECT_EQ(paths(d.take_ranges()), (std::vector<std::string>{"step@1", "next@0"}));
}

TEST(DeviceRanges, RangesStillOpenAreDroppedAndStoppingDropsTheRest) {
  LoggingDevice d;
  d.record_ranges(true);
  {
    ScopedRange open(d, "open");
    { ScopedRange done(d, "done"); }
    EXPECT_EQ(paths(d.take_ranges()), (std::vector<std::string>{"open/done@1"}));
  }  // "open" closes after the take: nothing to record
  EXPECT_TRUE(d.take_ranges().empty());
  { ScopedRange later(d, "later"); }
  d.record_ranges(false);
  EXPECT_TRUE(d.take_ranges().empty());
  { ScopedRange off(d, "off"); }
  EXPECT_TRUE(d.take_ranges().empty());
}

}  // namespace
}  // namespace dpt
