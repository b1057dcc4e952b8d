#!/usr/bin/env bash
# The demo: the cancellation-spike alert on the built-in ride-events generator.
# Alerts print as they fire (the first within about two minutes). Ctrl-C stops it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
"$here/scripts/setup.sh"
# The build scripts/test.sh makes too (every target, so the dependencies are compiled once
# with one set of features for both), then the binary it leaves.
cargo build --all-targets --locked --quiet
exec "$CARGO_TARGET_DIR/debug/sluice" run queries/cancellation-spike "$@"
