#!/usr/bin/env bash
# One case of tests/data/bad_inputs/expected.tsv through the real CLI under mpirun -np 2: exit
# code 2, exactly one "dptrain: error:" line that contains the expected message and names the
# bad file, no run directory, and an end within 60 s. The other data options get the folder's
# good fixtures, so the bad file is the only thing wrong.
#
# Usage: bad_inputs_folder.sh CASE BUILD_DIR
set -u
case_name=${1:?usage: bad_inputs_folder.sh CASE BUILD_DIR}
build=$(realpath "${2:?usage: bad_inputs_folder.sh CASE BUILD_DIR}")
data=$(realpath "$(dirname "$(realpath "$0")")/../data/bad_inputs")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
source "$(dirname "$(realpath "$0")")/../../launch/mpi_env.sh"

# Fields are tab-separated; the message may hold anything else, so compare the case exactly.
IFS=$'\t' read -r _ role file expected < <(awk -F'\t' -v c="$case_name" '$1 == c' "$data/expected.tsv")
if [[ -z ${role:-} || -z ${expected:-} ]]; then
  echo "bad_inputs_folder.sh: no case '$case_name' in $data/expected.tsv" >&2
  exit 2
fi

train_images=good_images.idx.gz train_labels=good_labels.idx extra=()
case $role in
  train-images) train_images=${file%%+*}; [[ $file == *+* ]] && train_labels=${file#*+} ;;
  train-labels) train_labels=$file ;;
  init-weights) extra=(--init-weights "$file") ;;
  *) echo "bad_inputs_folder.sh: unknown role '$role'" >&2; exit 2 ;;
esac
bad=${file%%+*}  # the file the message must name (for a pair, the images file it leads with)

# Run from the folder with bare names: the path in the message is then exactly the one in
# expected.tsv, wherever the checkout lives.
cd "$data" || exit 2
args=(train --model mlp --max-steps 1 --batch-size 4
      --train-images "$train_images" --train-labels "$train_labels"
      --test-images good_test_images.idx.gz --test-labels good_test_labels.idx
      "${extra[@]}" --out "$tmp/run")
# 50 s (under ctest's TIMEOUT 60) so that a hang is reported here, with its output.
rc=0
timeout -k 5 50 mpirun -np 2 "$build/dptrain" "${args[@]}" </dev/null >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?

problems=()
if ((rc == 124 || rc == 137)); then
  problems+=("no exit within 50 s (hang)")
elif ((rc != 2)); then
  problems+=("exit code $rc, expected 2")
fi
# mpirun adds its own banner about ranks that exited non-zero; only our lines count.
n=$(grep -c '^dptrain: error: ' "$tmp/stderr")
line=$(grep '^dptrain: error: ' "$tmp/stderr")
if ((n != 1)); then
  problems+=("$n 'dptrain: error: ' lines, expected 1")
else
  grep -qF -- "$expected" <<<"$line" || problems+=("error line does not contain: $expected")
  grep -qF -- "$bad" <<<"$line" || problems+=("error line does not name $bad")
fi
[[ -e $tmp/run ]] && problems+=("run directory was created")

if ((${#problems[@]})); then
  echo "FAIL $case_name: (cd $data && mpirun -np 2 $build/dptrain ${args[*]})"
  printf '  - %s\n' "${problems[@]}"
  echo "  --- stderr:"
  sed 's/^/  | /' "$tmp/stderr"
  echo "  --- stdout (tail):"
  tail -n 5 "$tmp/stdout" | sed 's/^/  | /'
  exit 1
fi
echo "ok $case_name: $line"
