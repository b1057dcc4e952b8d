#!/usr/bin/env bash
# Installs what building and testing sluice needs on a fresh machine that has only the
# Rust toolchain. Idempotent.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v c++ >/dev/null 2>&1 || need+=(g++)
# RocksDB's Rust bindings run bindgen, which needs libclang.
command -v clang >/dev/null 2>&1 || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need[@]}"
  else
    echo "please install: ${need[*]}" >&2
    exit 1
  fi
fi
# The gate in scripts/test.sh formats and lints: rustfmt and clippy, from the toolchain.
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup component list --installed 2>/dev/null)"
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$installed" || rustup component add "$c"
  done
fi
