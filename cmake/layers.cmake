# The layers of dptrain, from the bottom: each one's folder (from the repository root, which is
# also the one include root) and the layers it builds on directly. A layer may include from
# itself and from every layer beneath it, directly or not; never from one above or beside it.
# CMakeLists.txt makes one static library per layer linked the same way, and
# cmake/check_layers.cmake fails the build on an include that breaks the rule.
#
# A file belongs to the layer whose folder is the longest prefix of its path: kernels/runtime/
# is the device runtime, the rest of kernels/ the ops.
set(DPT_LAYERS core runtime kernels comm data io model train cli examples)

set(DPT_LAYER_core_DIR src/core)  # errors, clock, dtype, counter-based RNG, hash, shapes
set(DPT_LAYER_core_USES "")
set(DPT_LAYER_runtime_DIR kernels/runtime)  # device memory, copies, streams, markers
set(DPT_LAYER_runtime_USES core)
set(DPT_LAYER_kernels_DIR kernels)  # the ops: Backend, kernels/cpu, kernels/cuda
set(DPT_LAYER_kernels_USES runtime)
set(DPT_LAYER_comm_DIR comm)  # Communicator (MPI, NCCL, staged), Reducer
set(DPT_LAYER_comm_USES runtime)
set(DPT_LAYER_data_DIR src/data)  # readers, data sets, sampler
set(DPT_LAYER_data_USES core)
set(DPT_LAYER_io_DIR src/io)  # safetensors
set(DPT_LAYER_io_USES core)
set(DPT_LAYER_model_DIR src/model)  # layers, Sequential, spec parser, losses
set(DPT_LAYER_model_USES kernels)
set(DPT_LAYER_train_DIR src/train)  # Model (fit), optimizers, checkpoints, a rank's devices
set(DPT_LAYER_train_USES model data io comm)
set(DPT_LAYER_cli_DIR src/cli)  # the dptrain command
set(DPT_LAYER_cli_USES train)
set(DPT_LAYER_examples_DIR src/examples)  # programs that use the library as a user would
set(DPT_LAYER_examples_USES train)

# DPT_LAYER_<layer>_BELOW: every layer that <layer> builds on, directly or not.
foreach(layer ${DPT_LAYERS})
  set(below "")
  foreach(used ${DPT_LAYER_${layer}_USES})
    list(APPEND below ${used} ${DPT_LAYER_${used}_BELOW})
  endforeach()
  list(REMOVE_DUPLICATES below)
  set(DPT_LAYER_${layer}_BELOW ${below})
endforeach()

# The layer of `path` (relative to the root) in `out`, or "" when it lies in none.
function(dpt_layer_of path out)
  set(found "")
  set(found_length 0)
  foreach(layer ${DPT_LAYERS})
    set(dir "${DPT_LAYER_${layer}_DIR}/")
    string(LENGTH "${dir}" length)
    string(FIND "${path}" "${dir}" at)
    if(at EQUAL 0 AND length GREATER found_length)
      set(found ${layer})
      set(found_length ${length})
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()
