#!/usr/bin/env bash
# Renders a report page (from `fillcast report`, or FILLCAST_REPORT_OUT of the
# the report crate's report_html test) in headless Chromium and checks that the rendered DOM
# holds every chart's <svg> with drawn data elements (<path class="data"> with
# coordinates, or <rect class="data">) and that the leaderboard's inline script
# ran. Exits non-zero when Chromium is missing,
# fails, or a chart is absent or empty.
#
#   scripts/check-report.sh REPORT.html [--screenshot OUT.png] [--allow-empty]
#
# --screenshot also saves a full-page PNG; --allow-empty accepts charts that draw
# nothing (the report of an empty database). Chromium runs with no network
# features, a throw-away profile, and a 90 s limit. Install it with
# scripts/install-chromium.sh.
set -euo pipefail

usage() { echo "usage: $0 REPORT.html [--screenshot OUT.png] [--allow-empty]" >&2; exit 2; }

[[ $# -ge 1 ]] || usage
report="$1"; shift
screenshot=""
allow_empty=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --screenshot) [[ $# -ge 2 ]] || usage; screenshot="$2"; shift 2 ;;
        --allow-empty) allow_empty=1; shift ;;
        *) usage ;;
    esac
done

[[ -f "$report" ]] || { echo "check-report: $report: no such file" >&2; exit 2; }
chromium="${CHROMIUM:-/usr/bin/chromium}"
[[ -x "$chromium" ]] || { echo "check-report: $chromium not found; run scripts/install-chromium.sh" >&2; exit 3; }

abs="$(cd "$(dirname "$report")" && pwd)/$(basename "$report")"
profile="$(mktemp -d)"
dom="$(mktemp)"
trap 'rm -rf "$profile" "$dom"' EXIT

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --disable-dev-shm-usage --user-data-dir="$profile")

echo "check-report: rendering $abs"
if ! timeout 90 "$chromium" "${flags[@]}" --dump-dom "file://$abs" >"$dom" 2>/dev/null; then
    echo "check-report: chromium failed to render $abs" >&2
    exit 1
fi
grep -q "fillcast report" "$dom" || { echo "check-report: the rendered DOM is not a fillcast report" >&2; exit 1; }

# Self-contained: nothing that would fetch from elsewhere. The one script allowed
# is inline (the leaderboard's filters and sorting) and calls no network API.
for banned in 'http' 'src=' '@import' 'url(' 'fetch(' 'XMLHttpRequest' 'WebSocket' \
              'EventSource' 'sendBeacon' 'import('; do
    if grep -qF -- "$banned" "$abs"; then
        echo "check-report: the page contains '$banned': it must be self-contained" >&2
        exit 1
    fi
done
if grep -o '<script[^>]*>' "$abs" | grep -qv '^<script>$'; then
    echo "check-report: a <script> with attributes: only inline scripts are allowed" >&2
    exit 1
fi

status=0
for id in chart-equity chart-drawdown chart-pnl chart-latency; do
    # The svg element of this chart, from its opening tag to its first </svg>.
    svg="$(awk -v id="$id" '
        BEGIN { RS = "</svg>" }
        { i = index($0, "<svg id=\"" id "\""); if (i) { print substr($0, i); exit } }' "$dom")"
    if [[ -z "$svg" ]]; then
        echo "check-report: $id: missing from the rendered DOM" >&2
        status=1
        continue
    fi
    paths="$( (grep -o '<path class="data[^>]* d="M[^"]' <<<"$svg" || true) | wc -l)"
    rects="$( (grep -o '<rect class="data[^>]*height="[0-9.]*"' <<<"$svg" || true) | wc -l)"
    drawn=$((paths + rects))
    if [[ $drawn -eq 0 && $allow_empty -eq 0 ]]; then
        echo "check-report: $id: rendered but draws nothing" >&2
        status=1
    else
        echo "check-report: $id: ok ($paths paths, $rects bars)"
    fi
done

# The leaderboard's script ran: it marks the table with the period it shows.
if grep -qF 'id="leaderboard-table"' "$abs"; then
    if grep -qE '<table id="leaderboard-table" data-live="[^"]+"' "$dom"; then
        echo "check-report: leaderboard: ok (script ran)"
    else
        echo "check-report: leaderboard: its script did not run in the rendered DOM" >&2
        status=1
    fi
fi

if [[ -n "$screenshot" ]]; then
    out="$(cd "$(dirname "$screenshot")" && pwd)/$(basename "$screenshot")"
    if timeout 90 "$chromium" "${flags[@]}" --hide-scrollbars --window-size=1100,5200 \
        --screenshot="$out" "file://$abs" >/dev/null 2>&1 && [[ -s "$out" ]]; then
        echo "check-report: screenshot $out"
    else
        echo "check-report: screenshot failed" >&2
        status=1
    fi
fi

[[ $status -eq 0 ]] && echo "check-report: $report passes"
exit $status
