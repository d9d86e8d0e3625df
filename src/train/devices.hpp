// Choosing where a rank computes and how it communicates (dptrain's --device and --comm): part of
// the library, so that a program using it reaches the GPU and NCCL as the CLI does.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.hpp"
#include "kernels/backend.hpp"

namespace dpt {

struct ComputeSetup {
  std::unique_ptr<Backend> backend;
  // What training uses: NCCL, or the host communicator (staging device buffers through host
  // memory when the backend is a GPU).
  std::unique_ptr<Communicator> comm;
  std::string device;  // "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3 (0000:1B:00.0)"
  int threads = 1;     // BLAS threads on the CPU
};

// Every rank calls it at the same point (it runs collectives over `host`). Bad combinations
// (cuda without a GPU or without the CUDA build, nccl with cpu, two ranks on one GPU with nccl)
// end the job with one error line naming the option. `threads` <= 0: cores / local ranks.
ComputeSetup make_compute(const std::string& device, const std::string& comm, int threads,
                          Communicator& host);

// Cores this process may run on.
int usable_cores();
// Whether this build has the CUDA backend, and the GPUs this process sees (0 without it).
bool built_with_cuda();
int visible_gpu_count();

// One line about the device this rank would use with --device auto (for `dptrain info`).
std::string describe_local_device(Communicator& host);

// Versions of the GPU libraries in use, or "" without the CUDA build.
std::string gpu_library_versions();

}  // namespace dpt
