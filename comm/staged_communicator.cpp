#include "comm/staged_communicator.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/runtime/device_buffer.hpp"

namespace dpt {
namespace {

// Staging buffers for collectives in flight: each Work holds one until it is destroyed, so
// the buckets of a step, all in flight at once, each get their own, reused step after step.
class BufferPool {
 public:
  explicit BufferPool(Device& be) : be_(be) {}
  std::unique_ptr<PinnedBuffer> take() {
    if (free_.empty()) return std::make_unique<PinnedBuffer>(be_);
    std::unique_ptr<PinnedBuffer> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void give(std::unique_ptr<PinnedBuffer> b) { free_.push_back(std::move(b)); }

 private:
  Device& be_;
  std::vector<std::unique_ptr<PinnedBuffer>> free_;
};

class StagedWork final : public Work {
 public:
  StagedWork(std::unique_ptr<Work> inner, Device& be, BufferPool& pool,
             std::unique_ptr<PinnedBuffer> buffer, void* device, const void* host, size_t bytes)
      : inner_(std::move(inner)),
        be_(be),
        pool_(pool),
        buffer_(std::move(buffer)),
        device_(device),
        host_(host),
        bytes_(bytes) {}
  ~StagedWork() override {
    // A Work dropped unwaited (an error elsewhere) must not free memory MPI may still use.
    if (device_) {
      try {
        inner_->wait();
      } catch (...) {
      }
    }
    pool_.give(std::move(buffer_));
  }
  void wait() override {
    inner_->wait();
    if (device_) be_.copy_from_host(device_, host_, bytes_);
    device_ = nullptr;
  }
  double start_time() const override { return inner_->start_time(); }
  double end_time() const override { return inner_->end_time(); }

 private:
  std::unique_ptr<Work> inner_;
  Device& be_;
  BufferPool& pool_;
  std::unique_ptr<PinnedBuffer> buffer_;
  void* device_;
  const void* host_;
  size_t bytes_;
};

class StagedCommunicator final : public Communicator {
 public:
  StagedCommunicator(Communicator& host, Device& be) : host_(host), be_(be), pool_(be) {}

  std::string name() const override { return host_.name(); }
  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  int local_size() const override { return host_.local_size(); }

  std::unique_ptr<Work> allreduce_async(void* data, size_t count, DataType type,
                                        ReduceOp op) override {
    host_.set_timeout(timeout());
    if (!be_.is_device_memory(data)) return host_.allreduce_async(data, count, type, op);
    const size_t bytes = count * dtype_size(type);
    std::unique_ptr<PinnedBuffer> buffer = pool_.take();
    void* staging = buffer->get(bytes);
    // copy_to_host waits for the device's queue, so the gradients backward wrote are final.
    be_.copy_to_host(staging, data, bytes);
    std::unique_ptr<Work> inner = host_.allreduce_async(staging, count, type, op);
    return std::make_unique<StagedWork>(std::move(inner), be_, pool_, std::move(buffer), data,
                                        staging, bytes);
  }

  void broadcast(void* data, size_t count, DataType type, int root) override {
    host_.set_timeout(timeout());
    if (!be_.is_device_memory(data)) return host_.broadcast(data, count, type, root);
    const size_t bytes = count * dtype_size(type);
    std::vector<unsigned char> staging(bytes);
    be_.copy_to_host(staging.data(), data, bytes);
    host_.broadcast(staging.data(), count, type, root);
    be_.copy_from_host(data, staging.data(), bytes);
  }

  void allgather(const void* send, void* recv, size_t count, DataType type) override {
    host_.set_timeout(timeout());
    const bool send_dev = be_.is_device_memory(send), recv_dev = be_.is_device_memory(recv);
    if (!send_dev && !recv_dev) return host_.allgather(send, recv, count, type);
    const size_t bytes = count * dtype_size(type);
    std::vector<unsigned char> s(bytes), r(bytes * size());
    if (send_dev)
      be_.copy_to_host(s.data(), send, bytes);
    else
      std::memcpy(s.data(), send, bytes);
    host_.allgather(s.data(), r.data(), count, type);
    if (recv_dev)
      be_.copy_from_host(recv, r.data(), r.size());
    else
      std::memcpy(recv, r.data(), r.size());
  }

  void barrier() override { host_.barrier(); }
  [[noreturn]] void abort(int exit_code) override {
    host_.abort(exit_code);
    std::abort();  // not reached: the host communicator's abort does not return
  }
  std::vector<int> unresponsive_ranks(double seconds) override {
    return host_.unresponsive_ranks(seconds);
  }

 private:
  Communicator& host_;
  Device& be_;
  BufferPool pool_;  // outlives every StagedWork: the Reducer drops them each step
};

}  // namespace

std::unique_ptr<Communicator> make_staged_communicator(Communicator& host, Device& device) {
  return std::make_unique<StagedCommunicator>(host, device);
}

}  // namespace dpt
