# shellcheck shell=bash
# Sourced by tests/cross_cpu.sh and experiments/accuracy_spread.sh: which OpenBLAS kernels
# (OPENBLAS_CORETYPE) this CPU can run, and how to select one.

# openblas_corename [KERNEL]: the kernel OpenBLAS really runs when asked for KERNEL (it falls
# back when this CPU lacks it), or the one it picks by itself without an argument.
openblas_corename() {
  env ${1:+OPENBLAS_CORETYPE=$1} python3 -c "import ctypes; l = ctypes.CDLL('libopenblas.so.0'); \
l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())"
}

# openblas_usable_kernels KERNEL...: prints, one a line, those this CPU runs as asked ("default",
# OpenBLAS's own choice, always); says on stderr which it leaves out and why.
openblas_usable_kernels() {
  local k got
  for k in "$@"; do
    if [ "$k" = default ]; then echo default; continue; fi
    got=$(openblas_corename "$k")
    if [ "${got,,}" = "${k,,}" ]; then echo "$k"; else echo "# $k: this CPU runs $got instead; left out" >&2; fi
  done
}

# openblas_select KERNEL: exports OPENBLAS_CORETYPE for it ("default": unsets it). For a kernel
# of a CPU without AVX2 (Sandybridge and older) it also sets DPT_CPU_VECTOR=baseline, so that
# dptrain's own CPU kernels take their baseline (SSE2) builds as on such a CPU.
openblas_select() {
  if [ "$1" = default ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$1; fi
  case "${1,,}" in
    sandybridge|nehalem|core2|penryn|dunnington|atom|barcelona|bobcat|bulldozer|piledriver|steamroller|prescott|katmai|northwood)
      export DPT_CPU_VECTOR=baseline ;;
    *) unset DPT_CPU_VECTOR ;;
  esac
}
