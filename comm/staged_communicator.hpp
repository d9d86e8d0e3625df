// A communicator for device memory on top of one that works on host memory (MPI): a collective
// over device memory copies it to a host buffer, runs there, and copies the result back.
//
// This is `--comm mpi` with `--device cuda`: slower than NCCL, but it needs nothing of the GPU
// beyond copies, so several ranks can share one GPU (handy for tests) and a machine without
// NCCL can still train on its GPUs. Host pointers pass straight through.
#pragma once

#include <memory>

#include "comm/communicator.hpp"
#include "kernels/runtime/device.hpp"

namespace dpt {

// `host` and `device` must outlive the result. On the CPU every pointer is host memory, and the
// result behaves exactly as `host`.
std::unique_ptr<Communicator> make_staged_communicator(Communicator& host, Device& device);

}  // namespace dpt
