#!/usr/bin/env bash
# Run the seeded whole-system simulator over many seeds, in parallel.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/simulate.sh [--seeds N] [--start S] [--jobs J]

Builds fillcast in release mode and runs `fillcast simulate` over seeds S .. S+N-1
(default: 1000 seeds from 1), split over J processes (default: the number of CPUs).
Each seed drives the real core, a real journal and the simulated venue through
faults, crashes and restarts, and checks the engine's invariants at every step
(see `fillcast simulate --help`).

Shows a progress bar (seeds done/total, failures, rate, ETA) and a final line.
Exits non-zero if any seed fails, listing the failing seeds and the command that
replays each one (with its whole trace):

    cargo run --release -- simulate --seed SEED --verbose

Options:
  --seeds N   how many seeds (default 1000)
  --start S   the first seed (default 1)
  --jobs J    parallel processes (default: nproc)
  -h, --help  this text
EOF
}

seeds=1000
start=1
jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) seeds="$2"; shift 2 ;;
        --start) start="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "simulate.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
for v in "$seeds" "$start" "$jobs"; do
    case "$v" in ''|*[!0-9]*) echo "simulate.sh: not a number: $v" >&2; exit 2 ;; esac
done
[ "$seeds" -gt 0 ] && [ "$jobs" -gt 0 ] || { echo "simulate.sh: --seeds and --jobs must be positive" >&2; exit 2; }
[ "$jobs" -gt "$seeds" ] && jobs=$seeds

cd "$(dirname "$0")/.."
echo "simulate.sh: building (release)..."
cargo build --release --quiet --bin fillcast
bin=${CARGO_TARGET_DIR:-target}/release/fillcast

work=$(mktemp -d "${TMPDIR:-/tmp}/fillcast-simulate.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Contiguous ranges, one per job.
per=$(( (seeds + jobs - 1) / jobs ))
for ((j = 0; j < jobs; j++)); do
    from=$(( start + j * per ))
    n=$(( seeds - j * per ))
    [ "$n" -gt "$per" ] && n=$per
    [ "$n" -le 0 ] && break
    "$bin" simulate --seeds "$n" --start "$from" --lines >"$work/out.$j" 2>"$work/err.$j" &
    pids+=($!)
done

began=$(date +%s)
bar() {
    local done failed now elapsed rate eta width filled
    done=$(cat "$work"/out.* 2>/dev/null | wc -l)
    failed=$(cat "$work"/out.* 2>/dev/null | grep -c '^FAIL' || true)
    now=$(date +%s)
    elapsed=$(( now - began ))
    if [ "$elapsed" -gt 0 ]; then rate=$(( done / elapsed )); else rate=0; fi
    if [ "$done" -gt 0 ]; then eta=$(( elapsed * (seeds - done) / done )); else eta=0; fi
    width=30
    filled=$(( done * width / seeds ))
    printf '\r[%-*s] %d/%d seeds, %d failed, %d/s, ETA %dm%02ds ' \
        "$width" "$(printf '%*s' "$filled" '' | tr ' ' '#')" \
        "$done" "$seeds" "$failed" "$rate" $(( eta / 60 )) $(( eta % 60 )) >&2
}

status=0
while :; do
    running=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
    bar
    [ "$running" -eq 0 ] && break
    sleep 1
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
pids=()
echo >&2

elapsed=$(( $(date +%s) - began ))
done=$(cat "$work"/out.* | wc -l)
failing=$(cat "$work"/out.* | awk '$1 == "FAIL" { print $2 }' | sort -n)
open=$(cat "$work"/out.* | awk '$1 == "ok" { for (i = 3; i <= NF; i++) if ($i ~ /^open=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }')
open_after=$(cat "$work"/out.* | awk '$1 == "ok" { for (i = 3; i <= NF; i++) if ($i ~ /^open_after_resync=/) { split($i, a, "="); s += a[2] } } END { print s + 0 }')
if [ -n "$failing" ] || [ "$done" -ne "$seeds" ] || [ "$status" -ne 0 ]; then
    echo "simulate.sh: FAILED: $(echo "$failing" | grep -c . || true) of $seeds seeds failed ($done finished) in ${elapsed}s" >&2
    for s in $failing; do
        echo "  seed $s: $(grep -h "^seed $s FAILED" "$work"/err.* | head -1)" >&2
        echo "    replay: cargo run --release -- simulate --seed $s --verbose" >&2
    done
    if [ "$done" -ne "$seeds" ]; then
        echo "  some runs ended early:" >&2
        grep -h -v '^ \|^seed .* FAILED\|^simulate:' "$work"/err.* | head -20 >&2 || true
    fi
    exit 1
fi
echo "simulate.sh: $seeds seeds from $start passed in ${elapsed}s on $jobs jobs; $open positions open where the leader is flat at the end (each with its reason), $open_after after a resync command"
# Seeds whose reload changed the symbols, from each seed's line.
cat "$work"/out.* | awk '$1 == "ok" {
    for (i = 3; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
    if (v["symbol_removed"] == "close") close_++
    if (v["symbol_removed"] == "keep") keep++
    if (v["symbol_removed"] != "no" && v["held_at_reload"] > 0) held++
    if (v["skipped_removed"] > 0) skipped++
    kept += v["kept_open"]
    if (v["symbol_added"] == 1) added++
    if (v["added_orders"] > 0) traded++
} END {
    printf "simulate.sh: reloads that changed the symbols: %d seeds removed one under on_remove = close, %d under keep (%d with subscriptions holding it at the reload, %d with leader fills in it skipped after; %d positions kept open at the end, each removed_kept); %d added one (%d with orders in it)\n", close_, keep, held, skipped, kept, added, traded
}'
