# Sourced by the end-to-end test scripts (SCRIPT CASE BUILD_DIR): the arguments, a scratch folder
# removed on exit together with any process still using it, and helpers.
set -euo pipefail
case_name=$1
build=$2
tmp=$(mktemp -d)
trap 'pkill -9 -f "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Process ids of the dptrain ranks (not mpirun, whose command line holds the same words after
# "mpirun") of the run writing to the given folder.
rank_pids() { pgrep -f "^$build/dptrain train .*--out $1"; }
# wait_for_file FILE TRIES PAUSE: returns once FILE exists, checking at most TRIES times PAUSE
# seconds apart; fails (status 1) if it never appeared.
wait_for_file() {
  local i
  for ((i = 0; i < $2; i++)); do
    [ -f "$1" ] && return 0
    sleep "$3"
  done
  [ -f "$1" ]
}
