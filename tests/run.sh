#!/usr/bin/env bash
# The whole test suite: installs what is missing (launch/setup.sh), builds, then runs every test
# with ctest: unit tests, multi-rank tests under mpirun, end-to-end runs of the CLI.
#   tests/run.sh              everything
#   tests/run.sh -L unit      only tests with a label (unit, mpi, e2e), as ctest takes it
set -euo pipefail
root_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root_dir/launch/setup.sh"
source "$root_dir/launch/mpi_env.sh"
cd "$root_dir/build"
ctest --output-on-failure --timeout 900 "$@"
