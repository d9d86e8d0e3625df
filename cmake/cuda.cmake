# The CUDA backend (kernels/cuda) and the NCCL communicator (comm/nccl_communicator.cpp).
#
# Built when a CUDA compiler, cuBLAS, cuDNN 9 and NCCL 2 are all found; otherwise the build is
# CPU-only and says why in one configure message. DPT_CUDA=OFF skips the search, DPT_CUDA=ON makes
# a missing piece an error. cuDNN and NCCL are looked for in CUDNN_ROOT / NCCL_ROOT (variables or
# environment), in the CUDA toolkit, and in the nvidia-cudnn-cu* / nvidia-nccl-cu* Python wheels.
set(DPT_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO (when found), ON (required) or OFF")
set_property(CACHE DPT_CUDA PROPERTY STRINGS AUTO ON OFF)
set(DPT_HAVE_CUDA OFF)

function(dpt_cuda_unavailable why)
  if(DPT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "dptrain: DPT_CUDA=ON but ${why}")
  endif()
  message(STATUS "dptrain: building the CPU backend only: ${why}")
endfunction()

# Folders of the nvidia-* Python wheels (site-packages/nvidia/<name>), where a python3 has them.
function(dpt_wheel_dir name out)
  set(dir "")
  find_program(DPT_PYTHON3 python3)
  if(DPT_PYTHON3)
    execute_process(
      COMMAND ${DPT_PYTHON3} -c
              "import importlib.util as u, os; s = u.find_spec('nvidia.${name}'); print(list(s.submodule_search_locations)[0] if s else '')"
      OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  endif()
  set(${out} "${dir}" PARENT_SCOPE)
endfunction()

if(DPT_CUDA STREQUAL "OFF")
  message(STATUS "dptrain: DPT_CUDA=OFF; building the CPU backend only")
  return()
endif()

include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  dpt_cuda_unavailable("no CUDA compiler (nvcc) was found")
  return()
endif()

# Ampere and Hopper by default; the GPU at hand when there is one (nvidia-smi lists it).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  find_program(DPT_NVIDIA_SMI nvidia-smi)
  set(gpus "")
  if(DPT_NVIDIA_SMI)
    execute_process(COMMAND ${DPT_NVIDIA_SMI} -L OUTPUT_VARIABLE gpus ERROR_QUIET)
  endif()
  if(gpus MATCHES "GPU 0")
    set(CMAKE_CUDA_ARCHITECTURES native)
  else()
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
endif()
enable_language(CUDA)
# nvcc 13 takes C++20, but CMake 3.25 (Debian 12) knows no CUDA20 dialect; the .cu files need 17.
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)

dpt_wheel_dir(cudnn DPT_CUDNN_WHEEL)
dpt_wheel_dir(nccl DPT_NCCL_WHEEL)
set(cudnn_hints ${CUDNN_ROOT} $ENV{CUDNN_ROOT} ${DPT_CUDNN_WHEEL} ${CUDAToolkit_LIBRARY_ROOT})
set(nccl_hints ${NCCL_ROOT} $ENV{NCCL_ROOT} ${DPT_NCCL_WHEEL} ${CUDAToolkit_LIBRARY_ROOT})
# The wheels ship only the versioned names (libcudnn.so.9, libnccl.so.2).
find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${cudnn_hints} ${CUDAToolkit_INCLUDE_DIRS}
          PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 HINTS ${cudnn_hints}
             ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
find_path(NCCL_INCLUDE_DIR nccl.h HINTS ${nccl_hints} ${CUDAToolkit_INCLUDE_DIRS}
          PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl libnccl.so.2 HINTS ${nccl_hints}
             ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
find_path(NVTX3_INCLUDE_DIR nvtx3/nvToolsExt.h HINTS ${CUDAToolkit_INCLUDE_DIRS})

foreach(piece CUDNN_INCLUDE_DIR CUDNN_LIBRARY NCCL_INCLUDE_DIR NCCL_LIBRARY NVTX3_INCLUDE_DIR)
  if(NOT ${piece})
    dpt_cuda_unavailable("${piece} was not found (set CUDNN_ROOT / NCCL_ROOT, or install the
   nvidia-cudnn-cu13 / nvidia-nccl-cu13 wheels)")
    return()
  endif()
endforeach()
if(NOT TARGET CUDA::cublas)
  dpt_cuda_unavailable("cuBLAS was not found in the CUDA toolkit")
  return()
endif()

set(DPT_HAVE_CUDA ON)
message(STATUS "dptrain: building the CUDA backend for architectures ${CMAKE_CUDA_ARCHITECTURES} "
               "(CUDA ${CUDAToolkit_VERSION}; cuDNN ${CUDNN_LIBRARY}; NCCL ${NCCL_LIBRARY})")

# cuDNN's flash attention, for bf16 gpt, goes through the header-only cudnn_frontend (the
# nvidia-cudnn-frontend wheel's include folder, which launch/setup.sh unpacks into
# build-deps/cudnn-frontend): in CUDNN_FRONTEND_ROOT (variable or environment) or there. Without
# it the build is complete, and attention runs unfused (cuBLAS GEMMs and the softmax kernels).
find_path(CUDNN_FRONTEND_INCLUDE_DIR cudnn_frontend.h
          HINTS ${CUDNN_FRONTEND_ROOT} $ENV{CUDNN_FRONTEND_ROOT}
                ${PROJECT_SOURCE_DIR}/build-deps/cudnn-frontend
          PATH_SUFFIXES include NO_DEFAULT_PATH)
if(CUDNN_FRONTEND_INCLUDE_DIR AND NOT TARGET CUDA::nvrtc)
  set(DPT_HAVE_CUDNN_FRONTEND OFF)
  message(STATUS "dptrain: cudnn_frontend found, but not NVRTC, which it links: bf16 attention "
                 "runs unfused")
elseif(CUDNN_FRONTEND_INCLUDE_DIR)
  set(DPT_HAVE_CUDNN_FRONTEND ON)
  message(STATUS "dptrain: cuDNN flash attention through cudnn_frontend in "
                 "${CUDNN_FRONTEND_INCLUDE_DIR}")
else()
  set(DPT_HAVE_CUDNN_FRONTEND OFF)
  message(STATUS "dptrain: no cudnn_frontend headers (launch/setup.sh fetches them): "
                 "bf16 attention runs unfused")
endif()
