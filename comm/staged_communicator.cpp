#include "comm/staged_communicator.hpp"

#include <cstdlib>
#include <cstring>
#include <functional>
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

// A collective run by the host communicator on a staging buffer; wait() copies the result to
// where the caller wants it.
class StagedWork final : public Work {
 public:
  StagedWork(std::unique_ptr<Work> inner, BufferPool& pool, std::unique_ptr<PinnedBuffer> buffer,
             std::function<void()> copy_back)
      : inner_(std::move(inner)),
        pool_(pool),
        buffer_(std::move(buffer)),
        copy_back_(std::move(copy_back)) {}
  ~StagedWork() override {
    // A Work dropped unwaited (an error elsewhere) must not free memory MPI may still use.
    if (copy_back_) {
      try {
        inner_->wait();
      } catch (...) {
      }
    }
    pool_.give(std::move(buffer_));
  }
  void wait() override {
    inner_->wait();
    if (copy_back_) copy_back_();
    copy_back_ = nullptr;
  }
  double start_time() const override { return inner_->start_time(); }
  double end_time() const override { return inner_->end_time(); }

 private:
  std::unique_ptr<Work> inner_;
  BufferPool& pool_;
  std::unique_ptr<PinnedBuffer> buffer_;
  std::function<void()> copy_back_;  // empty once done
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
    return std::make_unique<StagedWork>(std::move(inner), pool_, std::move(buffer),
                                        [=, this] { be_.copy_from_host(data, staging, bytes); });
  }

  // The full buffer and the block side by side in one staging buffer, out of place on the host
  // (an in-place reduce-scatter over MPI would copy the block once more).
  std::unique_ptr<Work> reduce_scatter_async(const void* send, void* recv, size_t count,
                                             DataType type, ReduceOp op) override {
    host_.set_timeout(timeout());
    const bool send_dev = be_.is_device_memory(send), recv_dev = be_.is_device_memory(recv);
    if (!send_dev && !recv_dev) return host_.reduce_scatter_async(send, recv, count, type, op);
    is_block_in_place(send, recv, count, type, rank(), size(), "reduce_scatter");
    const size_t bytes = count * dtype_size(type), full = bytes * size();
    std::unique_ptr<PinnedBuffer> buffer = pool_.take();
    auto* staging = static_cast<unsigned char*>(buffer->get(full + bytes));
    to_host(staging, send, full, send_dev);
    unsigned char* block = staging + full;
    std::unique_ptr<Work> inner = host_.reduce_scatter_async(staging, block, count, type, op);
    return std::make_unique<StagedWork>(std::move(inner), pool_, std::move(buffer),
                                        [=, this] { from_host(recv, block, bytes, recv_dev); });
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

  // In place on the host: the rank's block is staged where the full buffer holds it.
  std::unique_ptr<Work> allgather_async(const void* send, void* recv, size_t count,
                                        DataType type) override {
    host_.set_timeout(timeout());
    const bool send_dev = be_.is_device_memory(send), recv_dev = be_.is_device_memory(recv);
    if (!send_dev && !recv_dev) return host_.allgather_async(send, recv, count, type);
    is_block_in_place(recv, send, count, type, rank(), size(), "allgather");
    const size_t bytes = count * dtype_size(type), full = bytes * size();
    std::unique_ptr<PinnedBuffer> buffer = pool_.take();
    auto* staging = static_cast<unsigned char*>(buffer->get(full));
    unsigned char* mine = staging + static_cast<size_t>(rank()) * bytes;
    to_host(mine, send, bytes, send_dev);
    std::unique_ptr<Work> inner = host_.allgather_async(mine, staging, count, type);
    return std::make_unique<StagedWork>(std::move(inner), pool_, std::move(buffer),
                                        [=, this] { from_host(recv, staging, full, recv_dev); });
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
  // Copies between host memory and `p`, which is in device memory when `device` is set.
  void to_host(void* host, const void* p, size_t bytes, bool device) {
    if (bytes == 0) return;
    if (device)
      be_.copy_to_host(host, p, bytes);
    else
      std::memcpy(host, p, bytes);
  }
  void from_host(void* p, const void* host, size_t bytes, bool device) {
    if (bytes == 0) return;
    if (device)
      be_.copy_from_host(p, host, bytes);
    else
      std::memcpy(p, host, bytes);
  }

  Communicator& host_;
  Device& be_;
  BufferPool pool_;  // outlives every StagedWork: the Reducer drops them each step
};

}  // namespace

std::unique_ptr<Communicator> make_staged_communicator(Communicator& host, Device& device) {
  return std::make_unique<StagedCommunicator>(host, device);
}

}  // namespace dpt
