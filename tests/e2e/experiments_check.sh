#!/usr/bin/env bash
# The experiments' scripts, run small: the scaling sweep writes its CSV and its plots; the
# performance model predicts from a trace; the GPU check's trace summary adds up.
#   experiments_check.sh CASE BUILD_DIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

case $case_name in
  scaling_smoke)
    "$root_dir/experiments/scaling.sh" --model mlp --sizes "1 2" --steps 2 --repeats 1 \
      --out "$tmp/sweep" > "$tmp/out"
    python3 - "$tmp/sweep" <<'PY'
import csv, math, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(f"{d}/scaling.csv")))
assert [r["world_size"] for r in rows] == ["1", "2"], rows
for r in rows:
    assert float(r["samples_per_second"]) > 0 and float(r["median_step_seconds"]) > 0, r
    assert r["global_batch"] == str(64 * int(r["world_size"])), r
assert float(rows[0]["efficiency"]) == 1.0
assert 0 < float(rows[1]["efficiency"]) and math.isfinite(float(rows[1]["efficiency"]))
for name in ("throughput", "efficiency", "breakdown"):
    with open(f"{d}/mlp-weak-{name}.png", "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", name
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (800, 500), (name, width, height)
print("sweep ok:", len(rows), "rows, 3 plots")
PY
    ;;
  scaling_bad_options)
    for args in "--mode sideways" "--sizes 0" "--mode strong --batch 10 --sizes 3" "--bogus"; do
      # shellcheck disable=SC2086
      if "$root_dir/experiments/scaling.sh" $args --out "$tmp/x" > /dev/null 2> "$tmp/err"; then
        fail "scaling.sh $args accepted"
      fi
      grep -q "^scaling.sh: error: " "$tmp/err" || fail "scaling.sh $args: $(cat "$tmp/err")"
    done
    ;;
  perf_model_smoke)
    # A one-rank trace in, a prediction per world size out, monotone in the ring's cost.
    mpirun -np 1 "$build/dptrain" train --model cnn --max-steps 4 --batch-size 16 \
      --trace "$tmp/t.json" --trace-steps 1:4 --out "$tmp/run" > /dev/null
    python3 "$root_dir/experiments/model/perf_model.py" "$tmp/t.json" --profile ib-400g \
      --ranks 1,2,8,512 --batch 16 > "$tmp/pred.csv"
    python3 - "$tmp/pred.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["ranks"] for r in rows] == ["1", "2", "8", "512"], rows
assert float(rows[0]["efficiency"]) == 1.0 and float(rows[0]["comm_seconds"]) == 0.0
steps = [float(r["step_seconds"]) for r in rows]
assert steps == sorted(steps), steps  # more ranks never make a step shorter
assert all(0 < float(r["efficiency"]) <= 1 for r in rows), rows
print("prediction ok:", [round(float(r["efficiency"]), 4) for r in rows])
PY
    # The same trace on two levels (NVLink nodes of 8, InfiniBand between), NCCL's choice of
    # ring or tree, ZeRO-1 and bf16 gradients: the same columns, 1 at one rank, never 0.
    python3 "$root_dir/experiments/model/perf_model.py" "$tmp/t.json" --network h100-ib \
      --algorithm auto --zero 1 --grad-comm bf16 --ranks 1,8,64 --batch 16 > "$tmp/zero.csv"
    python3 - "$tmp/pred.csv" "$tmp/zero.csv" <<'PY'
import csv, sys
head = [next(csv.reader(open(f))) for f in sys.argv[1:]]
assert head[0] == head[1], head
rows = list(csv.DictReader(open(sys.argv[2])))
assert [r["ranks"] for r in rows] == ["1", "8", "64"], rows
assert float(rows[0]["efficiency"]) == 1.0 and float(rows[0]["comm_seconds"]) == 0.0
assert all(float(r["comm_seconds"]) > 0 and float(r["efficiency"]) > 0 for r in rows[1:]), rows
print("zero prediction ok:", [round(float(r["efficiency"]), 4) for r in rows])
PY
    ;;
  trace_summary)
    # experiments/gpu/trace_summary.py on a gpt trace: every pass of every kind of layer, the
    # optimizer and the rest, adding up to the step.
    "$build/dptrain" prepare-text --out "$tmp/tokens" "$root_dir/README.md" > /dev/null
    "$build/dptrain" train --model "gpt(n_layer=2, n_head=2, n_embd=32, block_size=32, vocab_size=256)" \
      --train-tokens "$tmp/tokens/train_*.bin" --no-shuffle --batch-size 2 --optimizer adamw \
      --max-steps 5 --trace "$tmp/t.json" --trace-steps 2:5 --out "$tmp/run" > /dev/null
    python3 "$root_dir/experiments/gpu/trace_summary.py" "$tmp/t.json" | tee "$tmp/summary"
    grep -q "^3 traced steps, " "$tmp/summary" || fail "not 3 traced steps"
    for k in "forward Block" "backward Block" "forward Embedding" "backward Linear" optimizer \
             "rest of the step"; do
      grep -q "^  $k " "$tmp/summary" || fail "no line for $k"
    done
    awk '/^named ranges/ { exit } /%$/ { s += $(NF) } END { if (s < 99.8 || s > 100.2) exit 1 }' \
      "$tmp/summary" || fail "the shares do not add up to the step"
    # The ops lane as a tree: the phases, the blocks folded together, and their parts.
    for k in "^named ranges (ops lane)" "^  forward " "^    transformer.h.\* " "^      attn " \
             "^        attention " "^      residual " "^  loss " "^  backward " "^        c_fc " \
             "^  optimizer "; do
      grep -q "$k" "$tmp/summary" || fail "no line matching '$k' in the ranges' tree"
    done
    rc=0
    echo '{"traceEvents": []}' > "$tmp/empty.json"
    python3 "$root_dir/experiments/gpu/trace_summary.py" "$tmp/empty.json" 2> "$tmp/err" || rc=$?
    [ "$rc" -eq 2 ] && grep -q "^trace_summary.py: error: no step span" "$tmp/err" ||
      fail "a trace without steps: exit $rc, $(cat "$tmp/err")"
    ;;
  perf_model_synthetic)
    # No trace: gpt2 timed from its FLOPs, on 8 to 1,024 H100s, bf16 gradients.
    python3 "$root_dir/experiments/model/perf_model.py" --synthetic gpt2 --network h100-ib \
      --algorithm auto --grad-comm bf16 --ranks 1,8,64,512,1024 > "$tmp/gpt2.csv" 2> "$tmp/err"
    grep -q "124,439,808 parameters" "$tmp/err" || fail "parameters: $(cat "$tmp/err")"
    python3 - "$tmp/gpt2.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert [r["ranks"] for r in rows] == ["1", "8", "64", "512", "1024"], rows
eff = [float(r["efficiency"]) for r in rows]
assert eff[0] == 1.0 and all(0 < e <= 1 for e in eff), eff
assert rows[1]["algorithms"].startswith("ring"), rows[1]  # one node: the ring
assert "tree" in rows[3]["algorithms"], rows[3]           # 64 nodes: the tree's latency
tokens = [float(r["tokens_per_second"]) for r in rows]
assert tokens == sorted(tokens), tokens
print("gpt2 forecast ok:", [round(e, 4) for e in eff])
PY
    ;;
  *) fail "unknown case $case_name" ;;
esac
echo "PASS: $case_name"
