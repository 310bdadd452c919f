#!/usr/bin/env bash
# Builds fillcast-bench in release mode and runs every scenario, each beside its
# baseline, writing target/bench/bench.json and target/bench/bench.html (the chart).
#
#   scripts/bench.sh             the full run (under 10 minutes on 2 cores)
#   scripts/bench.sh --quick     smaller sizes (under a minute once built)
#   scripts/bench.sh fanout --followers 10000 --samples 500    any fillcast-bench arguments
#
# The sidecar scenario also writes into PostgreSQL at $FILLCAST_TEST_PG (default: the
# test suite's local server); when that cannot be reached it says so and goes on.
set -euo pipefail
cd "$(dirname "$0")/.."

export FILLCAST_TEST_PG="${FILLCAST_TEST_PG:-postgres://postgres@127.0.0.1:5432/test}"

cargo build --release --quiet -p fillcast-bench
exec "${CARGO_TARGET_DIR:-target}/release/fillcast-bench" "$@"
