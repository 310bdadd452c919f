#!/usr/bin/env bash
# Renders a report page (from `fillcast report`, or FILLCAST_REPORT_OUT of the
# report crate's report_html test) in headless Chromium and checks:
#
# - the page is self-contained: one inline <script>, nothing that fetches;
# - the rendered DOM holds every chart's <svg> with drawn data elements (<path
#   class="data"> with coordinates, or <rect class="data">), and the leaderboard's
#   script ran;
# - in a second run, a harness page (written to a temporary directory, never into
#   the report) loads the report in frames and uses it as a person would: the
#   charts' labels overlap nowhere, stay inside their chart and are at least 11 px;
#   every sortable table sorts by a click on each header (numbers by their data-v,
#   missing values last, ties in page order; a second click reverses; aria-sort
#   says which); the follower pager shows "rows 1–50 of N" and pages; typing in the
#   follower filter narrows the rows across all pages; and links such as
#   #followers-table?sort=net:asc&page=2 and ?filter=... give that view.
#
# Exits non-zero when Chromium is missing, fails, or any check fails.
#
#   scripts/check-report.sh REPORT.html [--screenshot OUT.png] [--allow-empty]
#
# --screenshot also saves a full-page PNG; --allow-empty accepts charts that draw
# nothing (the report of an empty database). Chromium runs with no network
# features, a throw-away profile, and a 90 s limit on each run; the harness run
# alone may read local files (--allow-file-access-from-files), to reach into its
# frames.
# Install Chromium with scripts/install-chromium.sh.
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
harness="$(mktemp -d)"
trap 'rm -rf "$profile" "$dom" "$harness"' EXIT

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
# is inline (sorting, filtering and paging the tables) and calls no network API.
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
scripts="$(grep -o '<script' "$abs" | wc -l)"
if [[ $scripts -ne 1 ]]; then
    echo "check-report: $scripts <script> elements: the page has exactly one" >&2
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

# The page in use. The harness reports one line per check, "ok" or "FAIL", then
# "done"; a harness that stops early (a script error) fails for want of "done".
cp "$abs" "$harness/report.html"
cat >"$harness/check.html" <<'HARNESS'
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>check-report harness</title></head>
<body><pre id="results"></pre>
<script>
(function () {
  "use strict";
  var out = document.getElementById("results");
  function say(ok, what) { out.textContent += (ok ? "ok   " : "FAIL ") + what + "\n"; }
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
  var slice = function (list) { return Array.prototype.slice.call(list); };
  // Loads the report (with `hash`) in a new frame and runs `then` on it; frames
  // added before this page's load event delay it, so --dump-dom waits for them.
  function frame(hash, then) {
    var f = document.createElement("iframe");
    f.width = 1100;
    f.height = 900;
    f.addEventListener("load", function () {
      try { then(f.contentDocument); } catch (e) { say(false, "harness: " + e); }
    });
    f.src = "report.html" + hash;
    document.body.appendChild(f);
  }
  function rows(t) { return slice(t.tBodies[0].rows); }
  function shown(t) { return rows(t).filter(function (r) { return !r.hidden; }); }
  function status(t) {
    var tools = t.previousElementSibling, s = tools && tools.querySelector("span.rows");
    return s ? s.textContent : "(no row count above #" + t.id + ")";
  }
  function same(a, b) {
    return a.length === b.length && a.every(function (x, i) { return x === b[i]; });
  }
  // The keyed columns of a table, worked out here apart from the page's script.
  function columns(t) {
    var taken = [], cols = [];
    slice(t.tHead.rows).forEach(function (row, r) {
      var c = 0;
      slice(row.cells).forEach(function (th) {
        while (taken[r] && taken[r][c]) { c += 1; }
        for (var i = r; i < r + Math.max(1, th.rowSpan); i++) {
          taken[i] = taken[i] || [];
          for (var j = c; j < c + th.colSpan; j++) { taken[i][j] = true; }
        }
        if (th.colSpan === 1 && th.getAttribute("data-key")) {
          cols.push({ th: th, index: c, key: th.getAttribute("data-key") });
        }
        c += th.colSpan;
      });
    });
    return cols;
  }
  function number(tr, col) {
    var c = tr.cells[col.index], v = c ? c.getAttribute("data-v") : null;
    if (v === null) { v = tr.getAttribute("data-" + col.key); }
    return v === null ? null : Number(v);
  }
  function text(tr, col) { var c = tr.cells[col.index]; return c ? c.textContent.trim() : ""; }
  // Whether `list` is in `dir` order (1 ascending, -1 descending) by `col`, values
  // missing last, ties in page order (`place`); else the first pair out of order.
  function outOfOrder(list, col, dir, place) {
    for (var i = 1; i < list.length; i++) {
      var a = list[i - 1], b = list[i], d;
      if (col.numeric) {
        var x = number(a, col), y = number(b, col);
        if (x === null || y === null) { d = x === null ? (y === null ? 0 : 1) : -1; }
        else { d = x < y ? -dir : x > y ? dir : 0; }
      } else {
        var s = text(a, col), u = text(b, col);
        d = s === "" || u === "" ? (s === u ? 0 : s === "" ? 1 : -1) : collator.compare(s, u) * dir;
      }
      if (d > 0 || (d === 0 && place.get(a) > place.get(b))) {
        return "rows " + i + " and " + (i + 1) + ": " + JSON.stringify(a.textContent.slice(0, 60)) +
          " before " + JSON.stringify(b.textContent.slice(0, 60));
      }
    }
    return null;
  }
  function press(b) { b.dispatchEvent(new MouseEvent("click", { bubbles: true })); }
  function type(input, value) { input.value = value; input.dispatchEvent(new Event("input", { bubbles: true })); }

  // Every chart's labels: inside the chart, at least 11 px, none over another.
  function charts(d) {
    slice(d.querySelectorAll("svg.chart")).forEach(function (svg) {
      var box = svg.getBoundingClientRect(), scale = box.width / svg.viewBox.baseVal.width;
      var texts = slice(svg.querySelectorAll("text")), boxes = texts.map(function (t) { return t.getBoundingClientRect(); });
      var bad = [];
      texts.forEach(function (t, i) {
        var r = boxes[i], px = parseFloat(getComputedStyle(t).fontSize) * scale;
        if (px < 11) { bad.push(JSON.stringify(t.textContent) + " is " + px.toFixed(1) + " px"); }
        if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
          bad.push(JSON.stringify(t.textContent) + " sticks out of the chart");
        }
        for (var j = 0; j < i; j++) {
          var o = boxes[j];
          var w = Math.min(r.right, o.right) - Math.max(r.left, o.left);
          var h = Math.min(r.bottom, o.bottom) - Math.max(r.top, o.top);
          if (w > 1 && h > 1) {
            bad.push(JSON.stringify(t.textContent) + " overlaps " + JSON.stringify(texts[j].textContent));
          }
        }
      });
      say(bad.length === 0, svg.id + ": " + texts.length + " labels" +
        (bad.length ? ": " + bad.slice(0, 5).join("; ") : ", readable and apart"));
    });
  }

  // The follower pager: the first page in view, then the next, then back.
  function pager(d) {
    var t = d.getElementById("followers-table");
    if (!t) { say(true, "followers-table: none (no follower)"); return; }
    var all = rows(t), n = all.length, per = Number(t.getAttribute("data-page-rows"));
    var first = Math.min(per, n);
    var want = "rows 1\u2013" + first + " of " + n;
    say(status(t) === want, "followers-table pager: \"" + status(t) + "\" (want \"" + want + "\")");
    say(same(shown(t), all.slice(0, first)), "followers-table: rows 1\u2013" + first + " in view, the rest hidden");
    var note = d.querySelector("p.nojs");
    say(!note || note.hidden, "followers-table: the no-script note is hidden");
    if (n <= per) { return; }
    var buttons = slice(t.previousElementSibling.querySelectorAll("button"));
    var prev = buttons[0], next = buttons[buttons.length - 1];
    press(next);
    var last = Math.min(2 * per, n);
    want = "rows " + (per + 1) + "\u2013" + last + " of " + n;
    say(status(t) === want && same(shown(t), all.slice(per, last)),
      "followers-table next page: \"" + status(t) + "\" (want \"" + want + "\")");
    press(prev);
    say(status(t) === "rows 1\u2013" + first + " of " + n, "followers-table previous page: \"" + status(t) + "\"");
  }

  // The follower filter: the id of the last follower (on the last page) narrows
  // the rows to those holding it, across pages.
  function filter(d) {
    var t = d.getElementById("followers-table");
    if (!t) { return null; }
    var all = rows(t), n = all.length, target = all[n - 1], id = target.cells[0].textContent;
    var input = t.previousElementSibling.querySelector("input");
    type(input, id.toUpperCase());
    var vis = shown(t), holds = function (r) { return r.textContent.toLowerCase().indexOf(id.toLowerCase()) >= 0; };
    var k = all.filter(holds).length;
    say(vis.indexOf(target) >= 0 && vis.every(holds) && vis.length === Math.min(k, 50) && k < n &&
        status(t) === "rows 1\u2013" + vis.length + " of " + k + " (filtered from " + n + ")",
      "followers-table filter " + JSON.stringify(id.toUpperCase()) + ": " + n + " rows narrowed to " + vis.length +
        " (\"" + status(t) + "\")");
    type(input, "");
    say(shown(t).length === Math.min(n, 50), "followers-table filter cleared: \"" + status(t) + "\"");
    return id;
  }

  // Each keyed column of each sortable table: a click sorts, a second reverses.
  function sorting(d) {
    slice(d.querySelectorAll("table.sortable")).forEach(function (t) {
      var cols = columns(t), place = new Map(), clicks = 0, changed = 0, bad = [];
      rows(t).forEach(function (r, i) { place.set(r, i); });
      cols.forEach(function (col) {
        var b = col.th.querySelector("button");
        if (!b) { bad.push(col.key + ": no button in its header"); return; }
        col.numeric = rows(t).some(function (r) { return number(r, col) !== null; });
        [0, 1].forEach(function () {
          var before = rows(t);
          press(b);
          clicks += 1;
          var sort = col.th.getAttribute("aria-sort");
          var dir = sort === "ascending" ? 1 : sort === "descending" ? -1 : 0;
          var others = cols.filter(function (c) { return c !== col && c.th.hasAttribute("aria-sort"); });
          if (!dir || others.length) { bad.push(col.key + ": aria-sort " + sort); return; }
          var wrong = outOfOrder(rows(t), col, dir, place);
          if (wrong) { bad.push(col.key + " " + sort + ": " + wrong); }
          if (!same(before, rows(t))) { changed += 1; }
        });
      });
      var per = Number(t.getAttribute("data-page-rows")) || 0;
      if (per && !same(shown(t), rows(t).slice(0, per))) { bad.push("after sorting, the page in view is not rows 1\u2013" + per); }
      say(bad.length === 0 && (rows(t).length < 2 || changed > 0),
        (t.id || "table \"" + t.tHead.rows[0].cells[0].textContent + "\"") + ": " + cols.length + " columns, " + clicks + " clicks, " +
          changed + " changed the order" + (bad.length ? ": " + bad.slice(0, 4).join("; ") : ""));
    });
  }

  // The leaderboard's own sort: ROI, highest first.
  function leaderboard(d) {
    var t = d.getElementById("leaderboard-table");
    if (!t) { return; }
    var b = t.tHead.querySelector("button[data-key=roi]");
    press(b);
    var roi = shown(t).map(function (r) { return Number(r.getAttribute("data-roi")); });
    var ok = roi.every(function (x, i) { return i === 0 || roi[i - 1] >= x; });
    say(ok && b.parentNode.getAttribute("aria-sort") === "descending",
      "leaderboard-table: sorted by ROI, highest first (" + roi.length + " rows)");
  }

  // Linked views: sorted ascending by net P&L on page 2; filtered to one id.
  function linkedSort(d) {
    var t = d.getElementById("followers-table");
    if (!t) { return; }
    var col = columns(t).filter(function (c) { return c.key === "net"; })[0];
    col.numeric = true;
    var place = new Map();
    rows(t).forEach(function (r, i) { place.set(r, i); });
    var n = rows(t).length, per = Number(t.getAttribute("data-page-rows"));
    var from = n > per ? per : 0, to = Math.min(from + per, n);
    var want = "rows " + (from + 1) + "\u2013" + to + " of " + n;
    // Ties: the rows are in sorted order now, so check the values alone.
    var values = rows(t).map(function (r) { return number(r, col); });
    var up = values.every(function (x, i) { return i === 0 || values[i - 1] <= x; });
    say(up && col.th.getAttribute("aria-sort") === "ascending" && status(t) === want &&
        same(shown(t), rows(t).slice(from, to)),
      "#followers-table?sort=net:asc&page=2: \"" + status(t) + "\" (want \"" + want + "\"), ascending by net P&L");
  }

  frame("", function (d) {
    charts(d);
    pager(d);
    var id = filter(d);
    sorting(d);
    leaderboard(d);
    frame("#followers-table?sort=net:asc&page=2", function (d2) {
      linkedSort(d2);
      if (id === null) { say(true, "done"); return; }
      frame("#followers-table?filter=" + encodeURIComponent(id), function (d3) {
        var t = d3.getElementById("followers-table");
        var vis = shown(t);
        say(vis.length > 0 && vis.every(function (r) { return r.textContent.indexOf(id) >= 0; }) &&
            / \(filtered from \d+\)$/.test(status(t)),
          "#followers-table?filter=" + id + ": \"" + status(t) + "\"");
        say(true, "done");
      });
    });
  });
})();
</script>
</body></html>
HARNESS

results="$(mktemp -p "$harness")"
if ! timeout 90 "$chromium" "${flags[@]}" --allow-file-access-from-files --window-size=1100,900 \
    --dump-dom "file://$harness/check.html" >"$results" 2>/dev/null; then
    echo "check-report: chromium failed to run the harness" >&2
    exit 1
fi
lines="$(sed -n '/<pre id="results">/,/<\/pre>/p' "$results" | sed -e 's/.*<pre id="results">//' -e 's/<\/pre>.*//' \
    -e 's/&quot;/"/g' -e 's/&lt;/</g' -e 's/&gt;/>/g' -e 's/&amp;/\&/g')"
while IFS= read -r line; do
    [[ -n "$line" ]] && echo "check-report: $line"
done <<<"$lines"
if grep -q '^FAIL' <<<"$lines"; then
    status=1
elif ! grep -q '^ok   done$' <<<"$lines"; then
    echo "check-report: the harness did not finish (a script error in the page?)" >&2
    status=1
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
