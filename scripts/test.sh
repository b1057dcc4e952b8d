#!/usr/bin/env bash
# Runs every test of sluice: unit and integration tests (cargo), the benches in test
# mode, and the conformance cases through the CLI (`sluice test`). Installs what the
# tests need first. Safe to run repeatedly; the cargo target folder is cached outside
# the clone.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

"$here/scripts/setup.sh"
# shellcheck source=scripts/test-servers.sh
. "$here/scripts/test-servers.sh"
install_test_servers
start_test_servers
trap stop_test_servers EXIT

conformance="${SLUICE_CONFORMANCE:-$here/../shared/conformance}"

echo "== the gate: formatting and lints"
cargo fmt --check
# Clippy as the compiler of sluice's own crate only, with its warnings as errors.
# `cargo clippy` would check every dependency again in its own mode and rerun
# RocksDB's C++ build (about 10 minutes here); this reuses the dependencies the tests
# build, and costs one more compile of sluice itself.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver || rustup which clippy-driver)" \
  CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
  cargo build --all-targets --locked 2>&1

echo "== cargo test (unit, integration, benches in test mode)"
cargo test --all-targets --locked 2>&1

echo "== conformance cases and recorded example applications (sluice test)"
cases=()
[ -d "$conformance" ] && cases+=("$conformance") || echo "note: no conformance folder at $conformance"
for d in "$here"/queries/*/cases "$here"/tests/cases; do [ -d "$d" ] && cases+=("$d"); done
# The binary `cargo test` just built (with the same dependency features: `cargo run`
# would build the dependencies a second time without the dev-dependencies' features).
"$CARGO_TARGET_DIR/debug/sluice" test "${cases[@]}"
