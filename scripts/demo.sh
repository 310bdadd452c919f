#!/usr/bin/env bash
# Builds fillcast in release mode and runs the demo: 3 leaders, 10,000 followers,
# the simulated venue; then the journal into SQLite and an HTML report, all in
# ./fillcast-demo. Extra arguments go to `fillcast demo` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin fillcast
exec "${CARGO_TARGET_DIR:-target}/release/fillcast" demo "$@"
