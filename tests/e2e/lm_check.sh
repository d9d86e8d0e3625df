#!/usr/bin/env bash
# A language model through the CLI, on text every Debian system has (the licences in
# /usr/share/common-licenses, from base-files): prepare-text, train a small gpt at 2 ranks with
# step-counted logging, generate; and a killed gpt run resumed bit for bit.
#   lm_check.sh CASE BUILD_DIR
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

text=/usr/share/common-licenses
"$build/dptrain" prepare-text "$text" --out "$tmp/data" > "$tmp/prepare.log" ||
  fail "prepare-text: $(cat "$tmp/prepare.log")"

gpt="gpt(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=256)"
train() {  # out-dir steps extra-args...
  local dir=$1 steps=$2
  shift 2
  mpirun -np 2 "$build/dptrain" train --model "$gpt" --threads 1 \
    --train-tokens "$tmp/data/train_*.bin" --val-tokens "$tmp/data/val_*.bin" --val-steps 10 \
    --batch-size 8 --optimizer adamw --lr 3e-3 --beta2 0.95 --weight-decay 0.1 \
    --warmup-steps 20 --lr-decay-steps "$steps" --min-lr 3e-4 --grad-clip 1.0 \
    --max-steps "$steps" --out "$dir" "$@"
}
json() {  # file python-expression-over-r (each line r), printed one per line
  python3 -c "import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    v = $2
    if v is not None: print(v)" "$1"
}

case $case_name in
  train_and_generate)
    train "$tmp/run" 400 --log-every 100 --eval-every 200 > "$tmp/train.log" 2>&1 ||
      fail "training failed: $(tail -n 5 "$tmp/train.log")"
    grep -q "^model  $gpt, 120576 parameters" "$tmp/train.log" || fail "no parameter count"
    # The start table counts the passes over the data that 400 steps take, as the epoch lines do.
    planned=$(sed -n 's/^train  .*, \([0-9]*\) epochs\{0,1\}, at most 400 steps.*/\1/p' "$tmp/train.log")
    ran=$(sed -n 's/^epoch [0-9]*\/\([0-9]*\) .*/\1/p' "$tmp/train.log" | sort -u)
    [ -n "$planned" ] && [ "$planned" = "$ran" ] && [ "$planned" -gt 1 ] ||
      fail "start table plans '$planned' epochs, epoch lines count '$ran'"
    grep -q "^step 400 | train_loss .* | lr .* | .* tokens/s | grad_norm " "$tmp/train.log" ||
      fail "no train line at step 400: $(tail -n 5 "$tmp/train.log")"
    grep -q "^step 400 | val_loss " "$tmp/train.log" || fail "no val line at step 400"
    m=$tmp/run/metrics.jsonl
    [ "$(json "$m" 'r["step"] if "tokens_per_second" in r and "lr" in r and r.get("grad_norm") else None' | tr '\n' ' ')" = "100 200 300 400 " ] ||
      fail "train lines in metrics.jsonl: $(cat "$m")"
    [ "$(json "$m" 'r["step"] if "val_loss" in r else None' | tr '\n' ' ')" = "200 400 " ] ||
      fail "validation lines in metrics.jsonl: $(cat "$m")"
    # Bytes of this text carry 3.21 nats each by their frequencies alone; a model below 3.0 has
    # learned context. Measured after 400 steps: 2.437, 2.438, 2.739, 2.480 for seeds 0 to 3.
    val=$(json "$m" 'r.get("val_loss")' | tail -n 1)
    python3 -c "import sys; v = float(sys.argv[1]); print(f'measure: gpt val loss {v:.4f} < 3.0'); sys.exit(0 if v < 3.0 else 1)" "$val" ||
      fail "val loss $val not below 3.0"
    [ -f "$tmp/run/model.safetensors" ] || fail "no model.safetensors"
    # No step: the final line gives the val loss of the initial model and no train figures.
    mpirun -np 2 "$build/dptrain" train --model "$gpt" --threads 1 --max-steps 0 \
      --train-tokens "$tmp/data/train_*.bin" --val-tokens "$tmp/data/val_*.bin" --val-steps 2 \
      --out "$tmp/none" > "$tmp/none.log" 2>&1 || fail "--max-steps 0 failed: $(tail -n 3 "$tmp/none.log")"
    grep -q "^final train_loss=none val_loss=5\.[0-9]* tokens_per_second=none$" "$tmp/none.log" ||
      fail "final line without a step: $(grep '^final' "$tmp/none.log")"
    gen() { "$build/dptrain" generate --weights "$tmp/run/model.safetensors" --prompt "The " \
      --max-new-tokens 80 "$@"; }
    a=$(gen --seed 3 --temperature 0.8) || fail "generate failed"
    b=$(gen --seed 3 --temperature 0.8)
    c=$(gen --seed 4 --temperature 0.8)
    [ "$a" = "$b" ] || fail "the same seed generated different text"
    [ "$a" != "$c" ] || fail "two seeds generated the same text"
    [ "${a:0:4}" = "The " ] || fail "the output does not start with the prompt: $a"
    [ "${#a}" -ge 84 ] || fail "short output (${#a} characters): $a"
    # The same prompt as token ids (T h e space): the same draws, printed as ids. (Compared as
    # bytes in Python: a shell variable would drop trailing newlines.)
    python3 - "$build/dptrain" "$tmp/run/model.safetensors" <<'EOF' || fail "--prompt-tokens differs from --prompt"
import subprocess, sys
exe, weights = sys.argv[1:3]
common = [exe, "generate", "--weights", weights, "--max-new-tokens", "80", "--seed", "3",
          "--temperature", "0.8"]
text = subprocess.run(common + ["--prompt", "The "], check=True, capture_output=True).stdout
ids = subprocess.run(common + ["--prompt-tokens", "84, 104 101 32"], check=True,
                     capture_output=True).stdout
want = " ".join(str(b) for b in text[:-1]) + "\n"  # generate ends its output with a newline
if ids.decode() != want:
    sys.exit(f"--prompt-tokens printed {ids!r}; --prompt's bytes are {want!r}")
EOF
    # A SIGTERM ends a long generation at once (143: killed by it), as any program: only train
    # waits for the end of a step. Were it ignored, the SIGKILL 20 s later would give 137.
    rc=0
    timeout -k 20 --preserve-status -s TERM 2 "$build/dptrain" generate \
      --weights "$tmp/run/model.safetensors" --prompt "The " --max-new-tokens 100000000 \
      > /dev/null || rc=$?
    [ "$rc" -eq 143 ] || fail "generate after a SIGTERM exited with $rc, not 143"
    ;;
  memory_report)
    # The start table's memory estimate: ZeRO-1 halves the optimizer's state at 2 ranks and
    # leaves the rest; and each run's resident set grows after its first step by about what was
    # estimated (measured 1.03 and 1.04 for this model: OpenBLAS's buffers are not counted).
    big="gpt(n_layer=4, n_head=8, n_embd=512, block_size=128, vocab_size=256)"
    for z in 0 1; do
      mpirun -np 2 "$build/dptrain" train --model "$big" --threads 1 \
        --train-tokens "$tmp/data/train_*.bin" --val-tokens "$tmp/data/val_*.bin" --val-steps 1 \
        --batch-size 4 --optimizer adamw --max-steps 2 --zero $z --out "$tmp/m$z" \
        > "$tmp/m$z.log" 2>&1 || fail "training failed: $(tail -n 5 "$tmp/m$z.log")"
    done
    python3 - "$tmp/m0.log" "$tmp/m1.log" <<'PY' || fail "memory report: $(grep memory "$tmp"/m?.log)"
import re, sys
def report(path):
    text = open(path).read()
    est = re.search(r"^memory per rank, estimated: params ([\d.]+) MiB, grads ([\d.]+) MiB, "
                    r"optimizer ([\d.]+) MiB, activations ([\d.]+) MiB: total ([\d.]+) MiB$",
                    text, re.M)
    held = re.search(r"^memory after the first step: ([\d.]+) MiB more in use .*"
                     r"([\d.]+) MiB estimated: ([\d.]+) of the estimate$", text, re.M)
    assert est and held, text
    return [float(x) for x in est.groups()], float(held.group(3))
(plain, plain_ratio), (zero, zero_ratio) = report(sys.argv[1]), report(sys.argv[2])
print("plain", plain, plain_ratio, "zero", zero, zero_ratio)
assert plain[0] == zero[0] and plain[1] == zero[1] and plain[3] == zero[3]
assert abs(zero[2] - plain[2] / 2) <= 0.1, (zero[2], plain[2])
for ratio in (plain_ratio, zero_ratio):
    assert 0.9 <= ratio <= 1.2, ratio
PY
    ;;
  kill_and_resume | bf16_kill_and_resume)
    # In bf16 with stochastic rounding too: the working weights' rounding follows the step, so a
    # resumed run draws the same roundings.
    extra=()
    [ "$case_name" = kill_and_resume ] || extra=(--precision bf16 --stochastic-rounding)
    train "$tmp/a" 120 "${extra[@]}" > "$tmp/a.log" 2>&1 || fail "the uninterrupted run failed"
    if [ ${#extra[@]} -gt 0 ]; then
      grep -q "^precision bf16 activations and working weights .*rounded stochastically" \
        "$tmp/a.log" || fail "no precision line: $(head -n 20 "$tmp/a.log")"
      grep -q "^step 120 | val_loss" "$tmp/a.log" || grep -q "test_loss" "$tmp/a.log" ||
        fail "no validation: $(tail -n 5 "$tmp/a.log")"
    fi
    train "$tmp/b" 120 --checkpoint-every 40 "${extra[@]}" > "$tmp/b.log" 2>&1 &
    job=$!
    target=$(printf '%s/b/checkpoints/step-%09d.safetensors' "$tmp" 80)
    wait_for_file "$target" 1200 0.05 || fail "no checkpoint of step 80 appeared"
    pid=$(rank_pids "$tmp/b" | tail -n 1)
    [ -n "$pid" ] || fail "no rank to kill"
    kill -9 "$pid"
    if wait "$job"; then fail "the job survived a killed rank"; fi
    [ ! -f "$tmp/b/model.safetensors" ] || fail "a killed run wrote its final model"
    train "$tmp/b" 120 --checkpoint-every 40 --resume auto "${extra[@]}" > "$tmp/resumed.log" 2>&1 ||
      fail "resume failed: $(tail -n 5 "$tmp/resumed.log")"
    grep -q "^resume: from step" "$tmp/resumed.log" || fail "did not resume"
    cmp "$tmp/a/model.safetensors" "$tmp/b/model.safetensors" || fail "resumed parameters differ"
    ;;
  *)
    fail "unknown case $case_name"
    ;;
esac
echo "PASS: $case_name"
