#!/usr/bin/env bash
# The tests whose results depend on the order of float additions, under every OpenBLAS kernel
# this CPU can run: OpenBLAS picks its GEMM kernel by CPU and each kernel adds in its own order,
# so a bound that holds under one kernel only would fail on another machine. Runs the accuracy
# tests, the equivalence tests (P ranks against one, bucketed against one allreduce, micro-batches
# against one batch, resume at another world size, bit-exact resume) and the unit tests with
# OPENBLAS_CORETYPE set to each kernel (and every float GEMM OpenBLAS's, DPT_CPU_GEMM=blas; the
# "default" column runs dptrain's own AVX2 GEMM where the CPU has AVX2), then prints a table of test x kernel: PASS or FAIL, with
# the measured value where the test reports one ("measure: WHAT VALUE OP BOUND" in its output).
# It also compares the CPU parameters after the GPU parity recipe (tests/e2e/gpu_check.sh,
# mpi_parity) under each kernel with those under the first, against that test's bound: how far
# the CPU twin itself moves between kernels.
#   tests/cross_cpu.sh                  kernels: default SkylakeX Cooperlake Haswell Zen Sandybridge
#   KERNELS="Haswell Zen" tests/cross_cpu.sh
# Needs a built tree (launch/setup.sh). Exits 1 if any cell failed. About 3 minutes a kernel on
# 2 cores.
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root_dir/launch/mpi_env.sh"
build=${DPT_BUILD_DIR:-$root_dir/build}
read -r -a kernels <<< "${KERNELS:-default SkylakeX Cooperlake Haswell Zen Sandybridge}"
tests='^(e2e\.(mlp_accuracy|cnn_accuracy|example_program|resume\.other_world_size|resume\.kill_and_resume)|mpi\.data_parallel\.np[23])$'
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# shellcheck source=openblas_kernels.sh
source "$root_dir/tests/openblas_kernels.sh"

mapfile -t usable < <(openblas_usable_kernels "${kernels[@]}")
for k in "${usable[@]}"; do
  openblas_select "$k"
  if [ "$k" = default ]; then
    echo "== kernel: default (OpenBLAS reports $(openblas_corename))"
  else
    echo "== kernel: $k"
  fi
  (cd "$build" && ctest -V -R "$tests" --timeout 900) > "$logs/$k.log" 2>&1 || true
  (cd "$build" && ctest -L unit --timeout 900) > "$logs/$k.unit.log" 2>&1 || true
  # The CPU side of the GPU parity recipe, kept for the comparison below.
  rm -rf "$logs/run-$k"
  mpirun -np 2 "$build/dptrain" train --device cpu --comm mpi --model mlp --batch-size 32 \
    --lr 0.05 --momentum 0.9 --max-steps 30 --seed 7 --out "$logs/run-$k" > /dev/null 2>&1 || true
  grep -E 'Test +#[0-9]+: ' "$logs/$k.log" | sed 's/^ *[0-9]*\/[0-9]* //' || true
  grep -E "tests passed|tests failed" "$logs/$k.unit.log" | sed "s/^/unit: /" || true
done
unset OPENBLAS_CORETYPE DPT_CPU_VECTOR DPT_CPU_GEMM

python3 - "$logs" "$root_dir/tests/e2e/compare_safetensors.py" "${usable[@]}" <<'PY'
import os, re, subprocess, sys
logs, compare, kernels = sys.argv[1], sys.argv[2], sys.argv[3:]
cells, order = {}, []  # (test, kernel) -> text
def put(test, kernel, text):
    if test not in order:
        order.append(test)
    cells[test, kernel] = text
for k in kernels:
    text = open(os.path.join(logs, f"{k}.log")).read()
    names = dict(re.findall(r"^test (\d+)$\n\s*Start +\1: (\S+)", text, re.M))
    # "N: measure: ..." lines belong to test N (ctest -V prefixes output with the test number).
    measures = {}
    for num, what in re.findall(r"^(\d+): measure: (.*)$", text, re.M):
        measures.setdefault(num, []).append(what)
    for num, name, status in re.findall(r"Test +#(\d+): (\S+) \.+\**\s*(\S+)", text):
        ok = "PASS" if status == "Passed" else "FAIL"
        found = measures.get(num, [])
        if not found:
            put(name, k, ok)
        for what in found:
            m = re.match(r"(.*?) ([-+0-9.e]+ [<>=]+ [-+0-9.e]+)$", what)
            if m:
                put(f"{name}: {m.group(1)}", k, f"{ok} {m.group(2)}")
            else:  # not "WHAT VALUE OP BOUND": the line as it is
                put(f"{name}: {what}", k, ok)
    unit = open(os.path.join(logs, f"{k}.unit.log")).read()
    m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", unit)
    put("unit tests", k, (f"PASS {m.group(3)}" if m.group(2) == "0" else
                          f"FAIL {m.group(2)} of {m.group(3)}") if m else "FAIL (no result)")
    # The CPU twin between kernels, against the GPU parity test's bound.
    first = os.path.join(logs, f"run-{kernels[0]}", "model.safetensors")
    mine = os.path.join(logs, f"run-{k}", "model.safetensors")
    if os.path.exists(first) and os.path.exists(mine):
        r = subprocess.run([sys.executable, compare, mine, first, "1e-4"], capture_output=True,
                           text=True)
        got = re.search(r"largest relative difference (\S+)", r.stdout)
        put(f"CPU twin vs {kernels[0]} (GPU parity bound)", k,
            ("PASS" if r.returncode == 0 else "FAIL") + (f" {got.group(1)} < 1e-4" if got else ""))
    else:
        put(f"CPU twin vs {kernels[0]} (GPU parity bound)", k, "FAIL (no run)")
print()
print("| test | " + " | ".join(kernels) + " |")
print("|---" * (len(kernels) + 1) + "|")
failed = 0
for t in order:
    row = [cells.get((t, k), "-") for k in kernels]
    failed += sum(c.startswith("FAIL") or c == "-" for c in row)
    print(f"| {t} | " + " | ".join(row) + " |")
print(f"\n{failed} failed cell(s)")
sys.exit(1 if failed else 0)
PY
