#!/usr/bin/env bash
# One call on the GPU machine: the GPU check into a scratch folder, then the files worth reading
# into $OUT (the device tool brings back at most 8 files from there; the check writes dozens,
# model weights among them).
#
#   experiments/gpu/device_run.sh ["PARTS"]     (from the repository root, .carry/ carried)
#
# PARTS as check.sh takes them ("tests gpt2" by default). CHECK_BUDGET (check.sh's, 540 s here)
# leaves the call room inside the tool's 600 s. Exits with check.sh's status.
set -uo pipefail
dest=${OUT:?device_run.sh: error: OUT is not set (the device tool sets it)}
work=${CHECK_WORK:-/tmp/dpt-check}
export PYTHONUNBUFFERED=1
PARTS=${1:-tests gpt2} CHECK_BUDGET=${CHECK_BUDGET:-540} \
  experiments/gpu/check.sh .carry/fashion-mnist "$work"
rc=$?
for f in results.tsv check.log ctest_gpu.log trace_gpt2_bf16_b8.txt trace_gpt2_bf16_b8.json; do
  [ -f "$work/$f" ] || continue
  # Each file that comes back may hold 16 MiB: a longer log keeps its end.
  if [ "$(stat -c %s "$work/$f")" -gt $((15 << 20)) ]; then
    tail -c $((15 << 20)) "$work/$f" >"$dest/$f"
  else
    cp "$work/$f" "$dest/$f"
  fi
done
exit $rc
