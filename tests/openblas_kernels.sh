# shellcheck shell=bash
# Sourced by tests/cross_cpu.sh and experiments/accuracy_spread.sh: which OpenBLAS kernels
# (OPENBLAS_CORETYPE) this CPU can run, and how to select one.

# openblas_corename [KERNEL]: the kernel OpenBLAS really runs when asked for KERNEL (it falls
# back when this CPU lacks it), or the one it picks by itself without an argument.
openblas_corename() {
  env ${1:+OPENBLAS_CORETYPE=$1} python3 -c "import ctypes; l = ctypes.CDLL('libopenblas.so.0'); \
l.openblas_get_corename.restype = ctypes.c_char_p; print(l.openblas_get_corename().decode())"
}

# openblas_sgemm_runs KERNEL: succeeds if a small sgemm runs under KERNEL. OpenBLAS takes a
# forced kernel that the CPU lacks the instructions for (SkylakeX without AVX-512) and reports
# it as chosen; the first GEMM then dies of an illegal instruction.
openblas_sgemm_runs() {
  (env OPENBLAS_CORETYPE="$1" python3 -c "
import ctypes
l = ctypes.CDLL('libopenblas.so.0')
n = 64
A = (ctypes.c_float * (n * n))(*([1.0] * (n * n)))
C = (ctypes.c_float * (n * n))()
# cblas_sgemm(RowMajor=101, NoTrans=111, NoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
l.cblas_sgemm(101, 111, 111, n, n, n, ctypes.c_float(1), A, n, A, n, ctypes.c_float(0), C, n)
assert C[0] == n and C[n * n - 1] == n
"
    exit $?  # not the subshell's last command: it reaps the process and its "Illegal instruction"
  ) 2>/dev/null
}

# openblas_usable_kernels KERNEL...: prints, one a line, those this CPU runs as asked ("default",
# OpenBLAS's own choice, always); says on stderr which it leaves out and why.
openblas_usable_kernels() {
  local k got
  for k in "$@"; do
    if [ "$k" = default ]; then echo default; continue; fi
    got=$(openblas_corename "$k")
    if [ "${got,,}" != "${k,,}" ]; then
      echo "# $k: this CPU runs $got instead; left out" >&2
    elif ! openblas_sgemm_runs "$k"; then
      echo "# $k: this CPU cannot run it (its GEMM fails, e.g. an illegal instruction); left out" >&2
    else
      echo "$k"
    fi
  done
}

# openblas_select KERNEL: exports OPENBLAS_CORETYPE for it ("default": unsets it). A named kernel
# also sets DPT_CPU_GEMM=blas, so that every float GEMM is OpenBLAS's (by default, on a CPU with
# AVX2, most are dptrain's own: kernels/cpu/cpu_gemm.hpp); "default" leaves dptrain's choice.
# For a kernel of a CPU without AVX2 (Sandybridge and older) it also sets DPT_CPU_VECTOR=baseline,
# so that dptrain's own CPU kernels take their baseline (SSE2) builds as on such a CPU.
openblas_select() {
  if [ "$1" = default ]; then
    unset OPENBLAS_CORETYPE DPT_CPU_GEMM
  else
    export OPENBLAS_CORETYPE=$1 DPT_CPU_GEMM=blas
  fi
  case "${1,,}" in
    sandybridge|nehalem|core2|penryn|dunnington|atom|barcelona|bobcat|bulldozer|piledriver|steamroller|prescott|katmai|northwood)
      export DPT_CPU_VECTOR=baseline ;;
    *) unset DPT_CPU_VECTOR ;;
  esac
}
