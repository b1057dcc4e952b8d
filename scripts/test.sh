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

echo "== cargo test (unit, integration, benches in test mode)"
cargo test --all-targets --locked 2>&1

echo "== conformance cases and recorded example applications (sluice test)"
cases=()
[ -d "$conformance" ] && cases+=("$conformance") || echo "note: no conformance folder at $conformance"
for d in "$here"/queries/*/cases "$here"/tests/cases; do [ -d "$d" ] && cases+=("$d"); done
# The binary `cargo test` just built (with the same dependency features: `cargo run`
# would build the dependencies a second time without the dev-dependencies' features).
"$CARGO_TARGET_DIR/debug/sluice" test "${cases[@]}"
