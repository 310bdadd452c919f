#!/usr/bin/env bash
# The Binance demo: fillcast copies a leader's Binance USD-M trades to followers
# through the real Binance adapter (leader fills from the user data stream,
# follower orders over the WebSocket API, each signed with its own key from the
# encrypted vault), against `fillcast binance-test-venue`: a local stand-in that
# speaks Binance's documented protocol, never an exchange. Then the journal into
# SQLite, a report, and the reconciliation: every account's position at the venue
# equals the engine's, and no client order id reached the venue twice (the demo
# fails loudly if not). Builds in release mode first. See --help.
set -euo pipefail
cd "$(dirname "$0")/.."

followers=20
leaders=1
trades=30
rate=2
seed=1
leave_open=()
out=fillcast-demo-binance

usage() {
    cat <<'EOF'
usage: scripts/demo-binance.sh [options]

Runs fillcast against the Binance USD-M test venue (a local stand-in speaking
Binance's documented protocol, never an exchange): the venue's leader trades,
fillcast copies each trade to every follower over the Binance adapter, and at the
end the venue's books are reconciled with the engine's (the demo fails if they
differ, or if any client order id reached the venue twice).

  --followers N   follower accounts, each with its own key (default 20)
  --leaders N     leader accounts; followers copy them in turn (default 1)
  --trades N      the leaders' trades (fills) in all, at least 2; the last ones
                  close what is open, so everyone ends flat (default 30)
  --rate R        leader trades per second (default 2): the run takes about N/R s
  --seed S        seeds the demo keys and the leaders' schedule (default 1)
  --leave-open    the leaders do not close at the end: the books reconciled are
                  open positions, not flat ones
  --out DIR       where every file goes; replaced on each run
                  (default ./fillcast-demo-binance)
  -h, --help      this text

The venue limits each account to 300 orders per 10 s, as Binance does; the engine
paces itself under it. Keep it to tens of followers and a few trades a second.
EOF
}

die() { echo "demo-binance: $*" >&2; exit 2; }
need_int() { [[ "$2" =~ ^[0-9]+$ && "$2" -ge "$3" ]] || die "$1 $2: expected a whole number, at least $3"; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --leave-open) leave_open=(--leave-open); shift ;;
        --followers|--leaders|--trades|--rate|--seed|--out)
            [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
            case "$1" in
                --followers) need_int "$1" "$2" 1; followers="$2" ;;
                --leaders) need_int "$1" "$2" 1; leaders="$2" ;;
                --trades) need_int "$1" "$2" 2; trades="$2" ;;
                --rate) [[ "$2" =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v r="$2" 'BEGIN{exit !(r > 0)}' \
                            || die "--rate $2: expected trades per second above 0"
                        rate="$2" ;;
                --seed) need_int "$1" "$2" 0; seed="$2" ;;
                --out) [[ -n "$2" ]] || die "--out: expected a directory"; out="$2" ;;
            esac
            shift 2 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

# Replace only a previous run's directory (or an empty one), never anything else.
if [[ -e "$out" && ! -e "$out/.fillcast-demo-binance" && -n "$(ls -A "$out" 2>/dev/null)" ]]; then
    die "--out $out exists and is not a previous run's directory: choose another"
fi

cargo build --release --quiet --bin fillcast
bin="$(cd "${CARGO_TARGET_DIR:-target}/release" && pwd)/fillcast"

rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
umask 077
: >"$out/.fillcast-demo-binance"

# The symbols, their Binance USD-M filters and starting prices: one list for the
# venue's --symbol and the config's [[symbols]] (the engine refuses to start on
# filters that differ from the venue's exchangeInfo).
symbols=(
    # name    tick  step  min_qty min_notional price
    "BTCUSDT  0.1   0.001 0.001   100          65000"
    "ETHUSDT  0.01  0.001 0.001   20           3200"
)

pids=()
cleanup() {
    for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
    rm -f "$out/.key-patterns"
}
trap cleanup EXIT
fail() { echo "demo-binance: FAILED: $*" >&2; exit 1; }
limit_s=$(awk -v t="$trades" -v r="$rate" 'BEGIN { printf "%d", t / r + 120 }')

echo "== the test venue: $leaders leader(s), $followers followers, $trades trades at $rate/s (seed $seed)"
venue_args=(--leaders "$leaders" --followers "$followers" --trades "$trades" --rate "$rate"
    --seed "$seed" --keys-out "$out/demo-keys.txt" --urls-file "$out/venue-urls.txt"
    --positions-file "$out/venue-positions.txt" --check-db "sqlite:$out/fillcast.db" --until-stopped
    ${leave_open[@]+"${leave_open[@]}"})
for s in "${symbols[@]}"; do
    read -r name tick step min_qty min_notional price <<<"$s"
    venue_args+=(--symbol "$name:tick=$tick,step=$step,min_qty=$min_qty,min_notional=$min_notional,price=$price")
done
"$bin" binance-test-venue "${venue_args[@]}" >"$out/venue.out" 2>"$out/venue.log" &
venue_pid=$!
pids+=("$venue_pid")
until [[ -s "$out/venue-urls.txt" ]]; do
    kill -0 "$venue_pid" 2>/dev/null || fail "the venue did not start: $(tail -3 "$out/venue.log")"
    sleep 0.1
done
url() { sed -n "s/^$1=//p" "$out/venue-urls.txt"; }
rest_url="$(url rest_url)"; stream_url="$(url stream_url)"; ws_api_url="$(url ws_api_url)"
echo "   REST $rest_url, user data stream $stream_url, WebSocket API $ws_api_url"

echo "== a master key and the key vault: $((leaders + followers)) keys, each asked at the venue"
export FILLCAST_VAULT_KEY_FILE="$out/master.key"
unset FILLCAST_VAULT_KEY
"$bin" keys init-master "$out/master.key" >"$out/keys.log"
while read -r role name key secret; do
    [[ -z "$role" || "$role" == \#* ]] && continue
    # printf is a shell builtin: the key never reaches a process list.
    printf '%s\n%s\n' "$key" "$secret" \
        | "$bin" keys --vault "$out/keys.vault" add "$name" --api-url "$rest_url" >>"$out/keys.log" 2>&1 \
        || fail "keys add $name ($role): see $out/keys.log"
done <"$out/demo-keys.txt"
unset key secret

cfg="$out/fillcast.toml"
{
    cat <<EOF
# The Binance demo's config, written by scripts/demo-binance.sh: leaders' fills
# from the binance source, follower orders to the binance venue, every key by its
# name in keys.vault. URLs of the local test venue; docs/CONFIG.md and README.md
# ("Binance USD-M futures") say what to put for Binance's testnet or production.
[journal]
dir = "journal"
segment_mib = 16

[[venues]]
name = "binance"
kind = "binance"
[venues.binance]
vault = "keys.vault"
ws_api_url = "$ws_api_url"
rest_url = "$rest_url"
api_url = "$rest_url"
[venues.binance.accounts]
EOF
    for ((i = 1; i <= followers; i++)); do echo "F$i = \"F$i\""; done
    for s in "${symbols[@]}"; do
        read -r name tick step min_qty min_notional price <<<"$s"
        printf '\n[[symbols]]\nname = "%s"\nlot_size = "%s"\ntick_size = "%s"\nmin_qty = "%s"\nmin_notional = "%s"\nvenue = "binance"\n' \
            "$name" "$step" "$tick" "$min_qty" "$min_notional"
    done
    for ((l = 1; l <= leaders; l++)); do printf '\n[[leaders]]\nid = "L%d"\nequity = "100000"\n' "$l"; done
    cat <<EOF

[[sources]]
kind = "binance"
vault = "keys.vault"
rest_url = "$rest_url"
stream_url = "$stream_url"
api_url = "$rest_url"
[sources.leaders]
EOF
    for ((l = 1; l <= leaders; l++)); do echo "L$l = \"L$l\""; done
    modes=('mode = "fixed_ratio"\nratio = "0.1"' 'mode = "proportional"\nmultiplier = "2"'
           'mode = "fixed_amount"\namount = "1000"' 'mode = "fixed_ratio"\nratio = "0.5"')
    for ((i = 1; i <= followers; i++)); do
        printf '\n[[followers]]\nid = "F%d"\nequity = "50000"\n\n[[subscriptions]]\nfollower = "F%d"\nleader = "L%d"\nallocation = "10000"\nslippage_bps = 50\n'"${modes[$(( (i - 1) % 4 ))]}"'\n' \
            "$i" "$i" $(( (i - 1) % leaders + 1 ))
    done
} >"$cfg"
"$bin" check-config "$cfg" >"$out/check-config.txt" 2>&1 || fail "the config: $(cat "$out/check-config.txt")"

echo "== fillcast run (until the leaders' trades are done and copied)"
"$bin" run --until-stopped --progress 0 --config "$cfg" --latency-out "$out/latency.json" \
    >"$out/engine.out" 2>"$out/engine.log" &
engine_pid=$!
pids+=("$engine_pid")
deadline=$((SECONDS + limit_s))
alive() {
    kill -0 "$venue_pid" 2>/dev/null || fail "the venue stopped: see $out/venue.log"
    kill -0 "$engine_pid" 2>/dev/null || fail "the engine stopped: see $out/engine.log"
    ((SECONDS < deadline)) || fail "not done after ${limit_s}s: see $out/venue.log and $out/engine.log"
}
until grep -q '^leader trades done' "$out/venue.out"; do alive; sleep 0.2; done
made="$(sed -n 's/^leader trades done: \([0-9]*\) trades.*/\1/p' "$out/venue.out")"
status_of() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$status" | head -1; }
while :; do
    alive
    status="$("$bin" ctl -c "$cfg" --json status 2>/dev/null || true)"
    # Every leader trade taken, no order at the venue unanswered, no catch-up waiting.
    taken="$(status_of leader_fills)"
    if ((${taken:-0} >= made)) && [[ "$(status_of live_orders)" == 0 && "$(status_of pairs_waiting)" == 0 ]]; then
        break
    fi
    sleep 0.2
done
"$bin" ctl -c "$cfg" shutdown >>"$out/engine.log" 2>&1 || fail "ctl shutdown: see $out/engine.log"
if wait "$engine_pid"; then engine_rc=0; else engine_rc=$?; fi
pids=("$venue_pid")
cat "$out/engine.out"
((engine_rc == 0)) || fail "fillcast run exited $engine_rc: see $out/engine.log"

echo "== the journal into SQLite, and the report"
"$bin" sidecar --journal "$out/journal" --db "sqlite:$out/fillcast.db" --progress 0 >"$out/sidecar.txt" 2>&1 \
    || fail "sidecar: see $out/sidecar.txt"
"$bin" report --db "sqlite:$out/fillcast.db" --json "$out/report.json" --html "$out/report.html" \
    --latency "$out/latency.json" >"$out/report.txt" 2>&1 || fail "report: see $out/report.txt"

echo "== the venue stops: its books against the engine's database"
kill -TERM "$venue_pid"
if wait "$venue_pid"; then venue_rc=0; else venue_rc=$?; fi
pids=()
sed -n '/^reconciliation with/,$p' "$out/venue.out"
((venue_rc == 0)) || fail "the venue's books differ from the engine's (above; $out/venue.out)"

# Secrets: no demo key or secret in anything the run wrote, but the key file itself.
awk '!/^#/ && NF == 4 { print $3; print $4 }' "$out/demo-keys.txt" >"$out/.key-patterns"
leaks="$(grep -rlF -f "$out/.key-patterns" "$out" --exclude=demo-keys.txt --exclude=.key-patterns || true)"
rm -f "$out/.key-patterns"
[[ -z "$leaks" ]] || fail "key material found in: $leaks"
echo "secrets: no API key or secret in any output, log, journal, database or report"

cat <<EOF

demo-binance: ok. Files in $out:
  fillcast.toml          the engine's config (binance source and venue, keys by name)
  demo-keys.txt          the demo accounts' keys (0600; for this local venue only)
  keys.vault, master.key the encrypted key vault and its master key
  venue.out, venue.log   the venue: URLs, trades, positions, reconciliation
  venue-positions.txt    the venue's positions (account symbol position)
  engine.out, engine.log fillcast run: summary and log
  journal/               the journal
  fillcast.db            SQLite (the sidecar's tables)
  report.txt, report.json, report.html   the report (open report.html in a browser)
  venue-urls.txt, keys.log, check-config.txt, sidecar.txt, latency.json   the steps' own files
EOF
