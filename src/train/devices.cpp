#include "src/train/devices.hpp"

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "comm/collective_check.hpp"
#include "comm/staged_communicator.hpp"
#include "src/core/error.hpp"

#ifdef DPT_WITH_CUDA
#include "comm/nccl_communicator.hpp"
#include "kernels/cuda/cuda_backend.hpp"
#endif

namespace dpt {

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

bool built_with_cuda() {
#ifdef DPT_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int visible_gpu_count() {
#ifdef DPT_WITH_CUDA
  return cuda_device_count();
#else
  return 0;
#endif
}

namespace {

std::string hostname() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::string visible_devices_env() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v ? std::string(" (CUDA_VISIBLE_DEVICES=") + v + ")" : std::string();
}

// The GPU of local rank `local_rank`: one per local rank when there are enough; when each rank
// sees a single GPU (Slurm's --gpus-per-task, or CUDA_VISIBLE_DEVICES set per rank), that one;
// otherwise ranks take turns (only --comm mpi allows sharing, checked by the caller).
int gpu_for(int local_rank, int gpus) {
  if (gpus == 1) return 0;
  return local_rank % gpus;
}

}  // namespace

std::string describe_local_device(Communicator& host) {
#ifdef DPT_WITH_CUDA
  const int gpus = cuda_device_count();
  if (gpus > 0) {
    const CudaDeviceInfo d = cuda_device_info(gpu_for(host.local_rank(), gpus));
    return "device cuda:" + std::to_string(d.ordinal) + " " + d.name + " (pci " + d.pci_bus_id +
           ", sm_" + std::to_string(d.cc_major) + std::to_string(d.cc_minor) + ", " +
           std::to_string(d.total_memory >> 30) + " GiB) of " + std::to_string(gpus) + " visible" +
           visible_devices_env();
  }
  return "device cpu (" + std::to_string(usable_cores()) + " cores; no CUDA device visible" +
         visible_devices_env() + ")";
#else
  (void)host;
  return "device cpu (" + std::to_string(usable_cores()) +
         (usable_cores() > 1 ? " cores" : " core") + "; built without CUDA)";
#endif
}

std::string gpu_library_versions() {
#ifdef DPT_WITH_CUDA
  return cuda_library_versions() + ", " + nccl_version();
#else
  return "";
#endif
}

ComputeSetup make_compute(const std::string& device_opt, const std::string& comm_opt,
                          int threads_opt, Communicator& host) {
  std::string device = device_opt, comm = comm_opt;
  int gpu = -1;
  run_collectively(host, [&] {
    const int gpus = visible_gpu_count();
    if (device == "auto") device = gpus > 0 ? "cuda" : "cpu";
    if (device == "cuda") {
#ifndef DPT_WITH_CUDA
      throw InputError(
          "option --device cuda: this dptrain was built without the CUDA backend (CMake "
          "found no CUDA toolkit, cuDNN or NCCL; see its configure output)");
#endif
      if (gpus == 0)
        throw InputError("option --device cuda: no CUDA device is visible on " + hostname() +
                         visible_devices_env());
      gpu = gpu_for(host.local_rank(), gpus);
    }
    if (comm == "auto") comm = device == "cuda" ? "nccl" : "mpi";
    if (comm == "nccl" && device != "cuda")
      throw InputError(
          "option --comm nccl: needs --device cuda (NCCL reduces GPU memory); use --comm "
          "mpi on the CPU");
  });
#ifdef DPT_WITH_CUDA
  if (comm == "nccl") {
    // NCCL refuses two ranks on one GPU with an obscure error, or hangs: say it plainly. The
    // PCI bus id tells a shared GPU even when ranks see different CUDA_VISIBLE_DEVICES.
    char mine[64] = {};
    run_collectively(host, [&] {
      const std::string id = hostname() + "/" + cuda_device_info(gpu).pci_bus_id;
      std::strncpy(mine, id.c_str(), sizeof(mine) - 1);
    });
    std::vector<char> all(sizeof(mine) * host.size());
    host.allgather(mine, all.data(), sizeof(mine), DataType::U8);
    run_collectively(host, [&] {
      // The higher rank of a pair reports it (run_collectively prints the lowest failing one).
      for (int r = 0; r < host.rank(); ++r)
        if (std::strcmp(all.data() + r * sizeof(mine), mine) == 0)
          throw InputError("option --comm nccl: ranks " + std::to_string(r) + " and " +
                           std::to_string(host.rank()) + " would share GPU " + std::string(mine) +
                           " (" + std::to_string(visible_gpu_count()) + " visible for " +
                           std::to_string(host.local_size()) + " ranks on this host" +
                           visible_devices_env() +
                           "); NCCL needs one GPU per rank: start fewer ranks, or use --comm mpi");
    });
  }
#endif

  ComputeSetup setup;
  run_collectively(host, [&] {
    if (device == "cpu") {
      setup.threads =
          threads_opt > 0 ? threads_opt : std::max(1, usable_cores() / host.local_size());
      setup.backend = make_cpu_backend(setup.threads);
      setup.device = "cpu (" + std::to_string(setup.threads) + " thread" +
                     (setup.threads > 1 ? "s" : "") + " per rank)";
      return;
    }
#ifdef DPT_WITH_CUDA
    std::unique_ptr<CudaBackend> be = make_cuda_backend(gpu);
    const CudaDeviceInfo d = cuda_device_info(gpu);
    setup.device = "cuda:" + std::to_string(gpu) + " " + d.name + " (" + d.pci_bus_id + ")";
    setup.backend = std::move(be);
#endif
  });
#ifdef DPT_WITH_CUDA
  if (comm == "nccl") {
    auto* cuda = dynamic_cast<CudaBackend*>(setup.backend.get());
    run_collectively(host, [&] { setup.comm = make_nccl_communicator(host, *cuda); });
    return setup;
  }
#endif
  setup.comm = make_staged_communicator(host, *setup.backend);
  return setup;
}

}  // namespace dpt
