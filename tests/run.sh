#!/usr/bin/env bash
# The whole test suite: installs what is missing (launch/setup.sh), builds, then runs every test
# with ctest (unit tests, multi-rank tests under mpirun, end-to-end runs of the CLI, fuzzers),
# after the unit tests in a build with AddressSanitizer and UndefinedBehaviorSanitizer.
#   tests/run.sh              everything
#   tests/run.sh -L unit      only tests with a label (unit, mpi, e2e, fuzz), as ctest takes it;
#                             the sanitizer pass runs only when no arguments are given
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root_dir/launch/setup.sh"
source "$root_dir/launch/mpi_env.sh"
cd "$root_dir"
if [ $# -eq 0 ]; then
  # The sanitizer build of the unit tests (not the slow multi-rank and end-to-end runs).
  [ -f build-sanitize/CMakeCache.txt ] || cmake --preset sanitize > /dev/null
  cmake --build build-sanitize --target dptrain_unit_tests -j "$(nproc 2>/dev/null || echo 2)"
  echo "== unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
  (cd build-sanitize && ctest --output-on-failure -L unit)
fi
echo "== all tests"
cd build
ctest --output-on-failure --timeout 900 "$@"
