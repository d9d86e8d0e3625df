// The NCCL backend of Communicator: collectives over device memory on a dedicated comm stream.
//
// A collective over device memory is ordered after everything queued so far on the compute
// stream (an event the comm stream waits on), so backward's gradients need no host sync before
// they are sent. Work::wait() blocks the host until the collective is done, checking
// ncclCommGetAsyncError meanwhile, so that a failed or vanished peer ends the job with an error
// and not a hang. Collectives over host memory (loss sums, flags, strings) go through the
// bootstrap communicator (MPI), which also carries NCCL's unique id.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.hpp"
#include "kernels/runtime/cuda_device.hpp"

namespace dpt {

// Collective over the ranks of `bootstrap`; a collective follows the work queued on `device`'s
// compute stream, and goes to NCCL for its device memory. The current CUDA device must be the
// rank's device. `bootstrap` and `device` must outlive the result.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, CudaDevice& device);

// "NCCL 2.28.3" (the library loaded).
std::string nccl_version();

}  // namespace dpt
