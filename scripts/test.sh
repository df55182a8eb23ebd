#!/usr/bin/env bash
# Runs every test of Stowaway on a fresh machine: installs the WebAssembly target, checks
# formatting, lints the addons, and runs the host and addon test suites.
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

step "host: all tests"
cargo test --workspace --locked
