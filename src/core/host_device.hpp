// DPT_HOST_DEVICE marks a function that CUDA kernels call too, so that host and device compute
// the very same values (random draws, bf16 rounding); in a plain C++ build it marks nothing.
#pragma once

#if defined(__CUDACC__)
#define DPT_HOST_DEVICE __host__ __device__
#else
#define DPT_HOST_DEVICE
#endif
