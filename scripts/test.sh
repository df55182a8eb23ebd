#!/usr/bin/env bash
# Runs every test of Stowaway on a fresh machine: installs the WebAssembly target and the test
# servers (moto, Azurite: scripts/servers.sh), checks formatting, lints the addons, and runs
# the host and addon test suites. With STOWAWAY_REQUIRE_SERVERS=1 (set by .ci/run) a missing
# test server fails the storage tests instead of skipping them.
#
#   bash scripts/test.sh
#
# The host workspace's clippy run is left to developers (`cargo clippy --workspace
# --all-targets -- -D warnings`): it would compile wasmtime a second time in check mode.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
rustup target add wasm32-wasip2
rustc --version
cargo --version

step "formatting"
cargo fmt --all --check
cargo fmt --manifest-path plugins/Cargo.toml --all --check

step "addons: clippy (wasm32-wasip2)"
cargo clippy --manifest-path plugins/Cargo.toml --locked --workspace --all-targets \
  --target wasm32-wasip2 -- -D warnings

step "addons: unit tests (native)"
cargo test --manifest-path plugins/Cargo.toml --locked --workspace --lib

step "test servers (moto, Azurite, PostgreSQL, MariaDB)"
bash scripts/servers.sh install
eval "$(bash scripts/servers.sh env)"

step "host: all tests"
cargo test --workspace --locked

step "chart: lint, render and check (tests/chart, with the stowaway binary just built)"
bash scripts/test-chart.sh
