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
