#!/usr/bin/env bash
# Tests the Helm chart (charts/stowaway) offline: installs the pinned Python packages of
# tests/chart/requirements.txt into a virtualenv under the cargo target directory (reused while
# the requirements do not change) and runs tests/chart with pytest.
#
#   bash scripts/test-chart.sh [pytest arguments]
#
# The operator's rendered arguments are run through the `stowaway` binary: $STOWAWAY_BIN, else
# the target directory's debug build (`cargo test --workspace` or `cargo build -p stowaway`
# makes it). Without one the tests read the flags from the source and skip the run, except
# under CI=true, where a missing binary is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

target="${CARGO_TARGET_DIR:-target}"
venv="${STOWAWAY_CHART_VENV:-$target/chart-venv}"
requirements=tests/chart/requirements.txt

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv/requirements.txt"; then
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi

bin="${STOWAWAY_BIN:-$target/debug/stowaway}"
if [ -x "$bin" ]; then
  STOWAWAY_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
  export STOWAWAY_BIN
elif [ "${CI:-}" = true ]; then
  echo "test-chart: no stowaway binary at $bin (build it with cargo build -p stowaway)" >&2
  exit 1
else
  unset STOWAWAY_BIN
  echo "test-chart: no stowaway binary at $bin: flags come from the source, the run is skipped"
fi

"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/chart "$@"
