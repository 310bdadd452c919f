//! The report as one self-contained HTML page: inline CSS and inline SVG charts
//! (laid out here, drawn by `chart`), with no font, no image and no link to
//! anything outside the file, so it opens from disk in any browser and can be
//! mailed as is. One inline script (`PAGE_JS`, no `src`, no request of any kind)
//! sorts and filters every table in the page and pages through the followers;
//! without it the page still reads: the unfiltered 30-day ranking, every other
//! table in its own order, and the first page of followers with a note that
//! paging needs scripts. Numeric cells carry their value in `data-v` (the leaders
//! table, like the leaderboard, on its rows as `data-<column key>`), so that
//! sorting never parses formatted text. A follower's page (`follower_page`) has no
//! script.
//!
//! Every chart is an `<svg id="chart-…">` whose data are `<path class="data">` or
//! `<rect class="data">` elements (axes, grid and legend carry other classes), which
//! is what `scripts/check-report.sh` and the tests look for.

use std::fmt::Write;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::chart::{
    self, esc, nice_ticks, text_width, tick_label, truncate, Anchor, Key, Plot, Scale,
};
use super::leaderboard::{self, LeaderboardRow};
use super::text::{annualised, basis_label, money, pct, pf, span};
use super::time::{
    civil_from_days, format_date, format_duration, format_latency, format_ts, month_start,
    next_month_start, NS_PER_DAY,
};
use super::{FollowerView, LeaderReport, LeaderboardFilter, ProfitFactor, Report, RANKED_BY};

const COLORS: [&str; 10] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777",
    "#4b5563", "#65a30d",
];
/// Most leaders drawn on one line chart (the largest by AUM, then by fills).
const SERIES_MAX: usize = 10;
/// Rows of the followers table in view at a time; the page's script pages
/// through the rest.
const FOLLOWERS_PAGE_ROWS: usize = 50;
/// Most followers the page holds (the first by id; the JSON has every one): about
/// 0.7 kB a row, so some 3.5 MB of page at most.
const FOLLOWERS_IN_PAGE_MAX: usize = 5_000;
/// Most bars drawn in one histogram; more buckets are merged with their neighbours.
const BARS_MAX: usize = 120;

const W: f64 = 920.0;
const H: f64 = 300.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 34.0;
const MB: f64 = 46.0;
/// Tick labels end this far left of the y axis and hang this far under the x axis
/// (baseline), in px: clear of each other at the plot's bottom-left corner.
const Y_LABEL_GAP: f64 = 6.0;
const X_LABEL_DROP: f64 = 21.0;

pub(crate) fn page(r: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(
        h,
        "<title>fillcast report {}</title>",
        esc(&r.as_of_ns.map_or("(no data)".into(), format_ts))
    );
    h.push_str("<style>\n");
    h.push_str(CSS);
    h.push_str("</style>\n</head>\n<body>\n");

    let _ = writeln!(
        h,
        "<header><h1>fillcast report</h1><p>as of <b>{}</b> · {}</p>",
        esc(&r.as_of_ns.map_or("(no data)".into(), format_ts)),
        esc(&r
            .row_counts
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect::<Vec<_>>()
            .join(" · "))
    );
    for n in &r.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    h.push_str("<nav><a href=\"#leaders\">Leaders</a> <a href=\"#leaderboard\">Leaderboard</a> <a href=\"#followers\">Followers</a> <a href=\"#fees\">Fees</a> <a href=\"#reconciliation\">Reconciliation</a> <a href=\"#activity\">Activity</a> <a href=\"#latency\">Latency</a> <a href=\"#definitions\">Definitions</a></nav>\n</header>\n");

    leaders_section(&mut h, r);
    leaderboard_section(&mut h, r);
    followers_section(&mut h, r);
    fees_section(&mut h, r);
    recon_section(&mut h, r);
    activity_section(&mut h, r);
    latency_section(&mut h, r);
    h.push_str(DEFINITIONS);
    h.push_str("<script>\n");
    h.push_str(PAGE_JS);
    h.push_str("</script>\n</body>\n</html>\n");
    h
}

fn leaders_section(h: &mut String, r: &Report) {
    h.push_str("<section id=\"leaders\"><h2>Leaders</h2>\n");
    let drawn = drawn_leaders(r);
    let series: Vec<(String, Vec<(f64, f64)>)> = drawn
        .iter()
        .filter_map(|l| {
            let cap = l.capital.filter(|c| *c > Decimal::ZERO)?;
            let pts = l
                .curve
                .iter()
                .filter_map(|(t, e)| Some((*t as f64, (*e / cap * Decimal::ONE_HUNDRED).to_f64()?)))
                .collect();
            Some((l.leader_id.clone(), pts))
        })
        .collect();
    let caption = format!(
        "Equity curves, indexed: equity ÷ capital × 100 (100 = the starting capital), open positions at the mark, or at the latest trade in a symbol without one.{}",
        more(drawn.len(), r.leaders.len())
    );
    figure(
        h,
        &line_chart(
            "chart-equity",
            &series,
            "equity index",
            false,
            "no leader with fills and a known capital",
        ),
        &caption,
    );
    let dd: Vec<(String, Vec<(f64, f64)>)> = drawn
        .iter()
        .filter(|l| !l.drawdown.is_empty())
        .map(|l| {
            let pts = l
                .drawdown
                .iter()
                .filter_map(|(t, d)| Some((*t as f64, -(*d * Decimal::ONE_HUNDRED).to_f64()?)))
                .collect();
            (l.leader_id.clone(), pts)
        })
        .collect();
    figure(
        h,
        &line_chart(
            "chart-drawdown",
            &dd,
            "drawdown %",
            true,
            "no leader with fills and a known capital",
        ),
        "Drawdown: the fall from the running peak of equity, in % of that peak (0 at a new high).",
    );

    if r.leaders.is_empty() {
        h.push_str("<p>No leader in the database.</p>\n</section>\n");
        return;
    }
    h.push_str("<p>Trades, win rate, profit factor and holding time count the trades closed in the window and the trades still open, valued at the mark and held up to the report's time; the same figures over closed trades only stand beside them. Sharpe and Calmar are n/a for a window with less than ");
    h.push_str(&esc(&span(r.options.annualise_min_ns)));
    h.push_str(" of data.</p>\n");
    h.push_str("<table id=\"leaders-table\" class=\"sortable\"><thead><tr><th rowspan=\"2\" data-key=\"leader\">leader</th><th rowspan=\"2\" data-key=\"window\">window</th><th rowspan=\"2\" data-key=\"pnl\">P&amp;L</th><th rowspan=\"2\" data-key=\"roi\">ROI</th><th rowspan=\"2\" data-key=\"dd\">max DD</th><th rowspan=\"2\" data-key=\"sharpe\">Sharpe</th><th rowspan=\"2\" data-key=\"calmar\">Calmar</th><th colspan=\"5\">all trades, open ones at the mark</th><th colspan=\"4\">closed trades only</th></tr>\n<tr><th data-key=\"trades\">trades</th><th data-key=\"open\">of which open</th><th data-key=\"win\">win rate</th><th data-key=\"pf\">profit factor</th><th data-key=\"hold\">avg hold</th><th data-key=\"closed-trades\">trades</th><th data-key=\"closed-win\">win rate</th><th data-key=\"closed-pf\">profit factor</th><th data-key=\"closed-hold\">avg hold</th></tr></thead><tbody>\n");
    let min_ns = r.options.annualise_min_ns;
    let pf_v = |p: ProfitFactor| match p {
        ProfitFactor::Finite(d) => Some(d.normalize().to_string()),
        ProfitFactor::Infinite => Some("Infinity".to_string()),
        ProfitFactor::Undefined => None,
    };
    let dec_v = |d: Option<Decimal>| d.map(|d| d.normalize().to_string());
    let f64_v = |x: Option<f64>| x.filter(|x| x.is_finite()).map(|x| x.to_string());
    for l in r.leaders.iter().take(r.options.rows_max) {
        for (k, w) in l.windows.iter().enumerate() {
            let (t, c) = (&w.trades, &w.closed_only);
            let annualised_v = |x: Option<f64>| f64_v(x.filter(|_| !w.too_short_to_annualise));
            // The values go on the row (`data-<column key>`, as the leaderboard's
            // do), so that the cells keep the plain `<td class="n">` markup that
            // the report_metrics tests read.
            let values = [
                ("pnl", Some(w.pnl.normalize().to_string())),
                ("roi", dec_v(w.roi)),
                ("dd", dec_v(w.max_drawdown)),
                ("sharpe", annualised_v(w.sharpe)),
                ("calmar", annualised_v(w.calmar)),
                ("trades", Some(t.count.to_string())),
                ("open", Some(t.open.to_string())),
                ("win", dec_v(t.win_rate)),
                ("pf", pf_v(t.profit_factor)),
                ("hold", t.avg_holding_ns.map(|n| n.to_string())),
                ("closed-trades", Some(c.count.to_string())),
                ("closed-win", dec_v(c.win_rate)),
                ("closed-pf", pf_v(c.profit_factor)),
                ("closed-hold", c.avg_holding_ns.map(|n| n.to_string())),
            ];
            let attrs: String = values
                .iter()
                .filter_map(|(key, v)| Some(format!(" data-{key}=\"{}\"", esc(v.as_ref()?))))
                .collect();
            let hold = |x: Option<i64>| x.map_or("n/a".into(), format_duration);
            // Every row names its leader, so that a sorted table still says whose
            // row it is; after the first of a leader the name is greyed.
            let _ = writeln!(
                h,
                "<tr{}{attrs}><td{}>{}</td><td>{}</td><td class=\"n {}\">{}</td><td class=\"n {}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                if k == 0 { " class=\"first\"" } else { "" },
                if k == 0 { "" } else { " class=\"rep\"" },
                esc(&l.leader_id),
                esc(&w.label),
                sign_class(w.pnl),
                money(w.pnl),
                w.roi.map_or("", sign_class),
                pct(w.roi),
                pct(w.max_drawdown),
                esc(&annualised(w, w.sharpe, min_ns)),
                esc(&annualised(w, w.calmar, min_ns)),
                t.count,
                t.open,
                pct(t.win_rate),
                esc(&pf(t.profit_factor)),
                hold(t.avg_holding_ns),
                c.count,
                pct(c.win_rate),
                esc(&pf(c.profit_factor)),
                hold(c.avg_holding_ns),
            );
        }
    }
    h.push_str("</tbody></table>\n");
    truncation_note(h, r.leaders.len(), r.options.rows_max, "leaders");

    h.push_str("<h3>Capital, equity and open positions</h3><table id=\"leaders-capital\" class=\"sortable\"><thead><tr><th data-key=\"leader\">leader</th><th data-key=\"capital\">capital</th><th data-key=\"equity\">equity</th><th data-key=\"realized\">realized</th><th data-key=\"unrealized\">unrealized</th><th data-key=\"followers\">followers</th><th data-key=\"aum\">AUM</th><th data-key=\"open\">open positions (qty @ avg → mark, or latest trade without one)</th></tr></thead><tbody>\n");
    for l in r.leaders.iter().take(r.options.rows_max) {
        let open: Vec<String> = l
            .open_positions
            .iter()
            .map(|p| {
                format!(
                    "{} {} @ {} → {} {} ({})",
                    p.symbol,
                    p.qty,
                    money(p.avg_price),
                    basis_label(p.basis),
                    p.mark,
                    money(p.unrealized)
                )
            })
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td>{}{}{}{}{}{}<td>{}</td></tr>",
            esc(&l.leader_id),
            opt_money_cell(l.capital),
            opt_money_cell(l.equity),
            money_cell(l.realized_pnl, true),
            money_cell(l.unrealized_pnl, true),
            count_cell(l.followers),
            money_cell(l.aum, false),
            esc(&open.join("; ")),
        );
    }
    h.push_str("</tbody></table>\n</section>\n");
}

/// The period the leaderboard shows first.
const LEADERBOARD_PERIOD: &str = "30d";

/// The leaderboard: every period's ranking in one table (rows of the other
/// periods hidden), each row carrying its figures in `data-` attributes for
/// `PAGE_JS` to filter and sort, and the leader's equity over the period
/// as a small chart.
fn leaderboard_section(h: &mut String, r: &Report) {
    h.push_str("<section id=\"leaderboard\"><h2>Leaderboard</h2>\n");
    let labels: Vec<String> = r
        .leaders
        .first()
        .map(|l| l.windows.iter().map(|w| w.label.clone()).collect())
        .unwrap_or_default();
    if labels.is_empty() {
        h.push_str("<p>No leader in the database.</p>\n</section>\n");
        return;
    }
    let first = if labels.iter().any(|l| l == LEADERBOARD_PERIOD) {
        LEADERBOARD_PERIOD.to_string()
    } else {
        labels[0].clone()
    };
    let _ = writeln!(
        h,
        "<p>Leaders {}. Maximum drawdown is over the period. The controls filter and sort in this page (nothing is fetched); a view can be linked as <code>#leaderboard?period=7d&amp;aum=1000&amp;followers=2&amp;dd=20&amp;filter=alpha</code> (AUM and followers at least, drawdown at most, in %, rows containing the text). The other tables sort by a click on a header and filter with the box above them, linked as <code>#followers-table?sort=net:desc&amp;filter=alpha&amp;page=2</code>.</p>",
        esc(RANKED_BY)
    );
    h.push_str(
        "<form id=\"lb-controls\" class=\"controls\"><label>period <select id=\"lb-period\">",
    );
    for l in &labels {
        let _ = write!(
            h,
            "<option value=\"{0}\"{1}>{0}</option>",
            esc(l),
            if *l == first { " selected" } else { "" }
        );
    }
    h.push_str("</select></label> <label>AUM at least <input id=\"lb-aum-min\" type=\"number\" min=\"0\" step=\"any\"></label> <label>followers at least <input id=\"lb-followers-min\" type=\"number\" min=\"0\" step=\"1\"></label> <label>max drawdown at most (%) <input id=\"lb-dd-max\" type=\"number\" min=\"0\" step=\"any\"></label> <label>rows containing <input id=\"lb-filter\" type=\"search\"></label></form>\n");

    let mut body = String::new();
    let mut left_out = String::new();
    let mut first_count = 0;
    for label in &labels {
        let filter = LeaderboardFilter {
            period: label.clone(),
            ..LeaderboardFilter::default()
        };
        let Ok(lb) = leaderboard::rank(&r.leaders, r.as_of_ns, &filter) else {
            continue;
        };
        let hidden = if *label == first { "" } else { " hidden" };
        if *label == first {
            first_count = lb.rows.len();
        }
        for row in lb.rows.iter().take(r.options.rows_max) {
            leaderboard_row(&mut body, label, row, hidden);
        }
        if lb.rows.len() > r.options.rows_max {
            let _ = writeln!(
                left_out,
                "<p class=\"note lb-period\" data-period=\"{}\"{hidden}>showing the first {} of {} ranked leaders over {}; the JSON has all.</p>",
                esc(label),
                r.options.rows_max,
                lb.rows.len(),
                esc(label)
            );
        }
        if !lb.left_out.is_empty() {
            let why: Vec<String> = lb
                .left_out
                .iter()
                .take(r.options.rows_max)
                .map(|(id, why)| format!("{} ({})", esc(id), esc(why)))
                .collect();
            let _ = writeln!(
                left_out,
                "<p class=\"lb-period\" data-period=\"{}\"{hidden}>Not ranked over {}: {}.</p>",
                esc(label),
                esc(label),
                why.join(", ")
            );
        }
    }
    let _ = writeln!(
        h,
        "<p id=\"lb-count\">Ranked over {}: {first_count} leaders.</p>",
        esc(&first)
    );
    h.push_str("<table id=\"leaderboard-table\"><thead><tr>");
    for (key, title) in [
        ("rank", "#"),
        ("", "leader"),
        ("roi", "ROI"),
        ("pnl", "P&amp;L"),
        ("dd", "max DD"),
        ("followers", "followers"),
        ("aum", "AUM"),
        ("trades", "trades"),
        ("", "win rate"),
        ("", "equity over the period"),
    ] {
        if key.is_empty() {
            let _ = write!(h, "<th>{title}</th>");
        } else {
            let _ = write!(
                h,
                "<th><button type=\"button\" data-key=\"{key}\">{title}</button></th>"
            );
        }
    }
    h.push_str("</tr></thead><tbody>\n");
    h.push_str(&body);
    h.push_str("</tbody></table>\n");
    h.push_str(&left_out);
    h.push_str("</section>\n");
}

fn leaderboard_row(h: &mut String, period: &str, row: &LeaderboardRow, hidden: &str) {
    let dd_pct = (row.max_drawdown * Decimal::ONE_HUNDRED).normalize();
    let title = format!(
        "{}: equity {} → {} over {}",
        row.leader_id,
        row.curve.first().map_or("n/a".into(), |p| money(p.1)),
        row.curve.last().map_or("n/a".into(), |p| money(p.1)),
        period
    );
    let _ = writeln!(
        h,
        "<tr data-period=\"{}\" data-rank=\"{}\" data-roi=\"{}\" data-pnl=\"{}\" data-dd=\"{dd_pct}\" data-followers=\"{}\" data-aum=\"{}\" data-trades=\"{}\"{hidden}><td class=\"n\">{}</td><td>{}</td><td class=\"n {}\">{}</td><td class=\"n {}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
        esc(period),
        row.rank,
        row.roi.normalize(),
        row.pnl.normalize(),
        row.followers,
        row.aum.normalize(),
        row.trades,
        row.rank,
        esc(&row.leader_id),
        sign_class(row.roi),
        pct(Some(row.roi)),
        sign_class(row.pnl),
        money(row.pnl),
        pct(Some(row.max_drawdown)),
        row.followers,
        money(row.aum),
        row.trades,
        pct(row.win_rate),
        sparkline(&row.curve, row.roi >= Decimal::ZERO, &title),
    );
}

/// A small line chart of an equity curve, no axes: green if the period gained.
fn sparkline(curve: &[(i64, Decimal)], gained: bool, title: &str) -> String {
    const SW: f64 = 120.0;
    const SH: f64 = 28.0;
    let pts: Vec<(f64, f64)> = curve
        .iter()
        .filter_map(|(t, e)| Some((*t as f64, e.to_f64()?)))
        .collect();
    if pts.len() < 2 {
        return "n/a".into();
    }
    let fold = |f: fn(f64, f64) -> f64, k: fn(&(f64, f64)) -> f64, init: f64| {
        pts.iter().map(k).fold(init, f)
    };
    let (x0, x1) = (
        fold(f64::min, |p| p.0, f64::INFINITY),
        fold(f64::max, |p| p.0, f64::NEG_INFINITY),
    );
    let (y0, y1) = (
        fold(f64::min, |p| p.1, f64::INFINITY),
        fold(f64::max, |p| p.1, f64::NEG_INFINITY),
    );
    let x1 = if x1 > x0 { x1 } else { x0 + 1.0 };
    // A flat curve sits in the middle.
    let pad = if y1 > y0 {
        0.0
    } else {
        y0.abs().max(1.0) * 0.01
    };
    let plot = Plot::new(
        2.0,
        2.0,
        SW - 4.0,
        SH - 4.0,
        Scale::Linear { lo: x0, hi: x1 },
        Scale::Linear {
            lo: y0 - pad,
            hi: y1 + pad,
        },
    );
    let mut s = chart::svg_open(
        &format!(
            " class=\"spark\" role=\"img\" aria-label=\"{}\"",
            esc(title)
        ),
        SW,
        SH,
    );
    let colour = if gained { "#16a34a" } else { "#dc2626" };
    plot.line(&mut s, &pts, colour, None, Some(title));
    s.push_str("</svg>");
    s
}

/// The page's one script, inline: it fetches nothing, loads nothing and writes
/// nothing but the page's own elements.
///
/// Tables with the class `sortable` sort by any column whose header has a
/// `data-key` (a click orders numbers highest first and text A to Z, a second
/// click reverses; `aria-sort` and an arrow show the order): by the numbers in the cells' `data-v` (or, for a table that keeps
/// them on its rows, the row's `data-<column key>`) where the column has them,
/// else by the text, numbers in it compared as numbers. Cells without a value sort
/// last either way; ties keep the page's order. Above each (but the `small` ones) a
/// text box keeps the rows whose text holds what is typed, ignoring case; a table
/// with `data-page-rows` shows that many at a time, with previous/next and "rows
/// a–b of N", and sorting and filtering work over all its rows, not one page. A
/// link can ask for a view: `#followers-table?sort=net:desc&filter=alpha&page=2`.
///
/// `#leaderboard-table` has its own controls: it shows the rows of the chosen
/// period that pass the filters, numbers them by rank among those, and orders them
/// by the clicked column (ties by rank), from
/// `#leaderboard?period=…&aum=…&followers=…&dd=…&filter=…`.
const PAGE_JS: &str = r##"(function () {
  "use strict";
  var get = function (id) { return document.getElementById(id); };
  var each = function (list, f) { Array.prototype.forEach.call(list, f); };
  var collator = typeof Intl === "object" ?
    new Intl.Collator(undefined, { numeric: true, sensitivity: "base" }) : null;
  function compareText(a, b) {
    return collator ? collator.compare(a, b) : (a < b ? -1 : a > b ? 1 : 0);
  }
  // The view a link asks of element `id`: `#id?key=value&...` as { key: value }.
  function linked(id) {
    var hash = location.hash, q = hash.indexOf("?"), out = {};
    if (q < 0 || hash.slice(1, q) !== id) { return out; }
    hash.slice(q + 1).split("&").forEach(function (kv) {
      var i = kv.indexOf("="), k = i < 0 ? kv : kv.slice(0, i), v = i < 0 ? "" : kv.slice(i + 1);
      try { out[k] = decodeURIComponent(v.replace(/\+/g, " ")); } catch (e) { out[k] = v; }
    });
    return out;
  }
  function marks(th, dir) {
    if (dir) { th.setAttribute("aria-sort", dir < 0 ? "descending" : "ascending"); }
    else { th.removeAttribute("aria-sort"); }
  }
  // A cell's number: its `data-v`, else its row's `data-<column key>`; null if none.
  function value(tr, col) {
    var c = tr.cells[col.index], v = c ? c.getAttribute("data-v") : null;
    return v === null ? tr.getAttribute("data-" + col.key) : v;
  }
  // The column each keyed header cell heads, through rowspans and colspans.
  function columns(table) {
    var taken = [], cols = [];
    each(table.tHead.rows, function (row, r) {
      var c = 0;
      each(row.cells, function (th) {
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
  function sortable(table) {
    var body = table.tBodies[0];
    if (!body || !table.tHead) { return; }
    var rows = Array.prototype.map.call(body.rows, function (tr, i) {
      return { tr: tr, i: i, text: tr.textContent.toLowerCase(), k: null };
    });
    var per = parseInt(table.getAttribute("data-page-rows"), 10) || 0;
    var state = { col: null, dir: 1, filter: "", page: 0 };
    var cols = columns(table);
    var tools = document.createElement("div"), input = null, status = null, prev = null, next = null;
    function sortBy(col, dir) {
      state.col = col;
      state.dir = dir;
      rows.forEach(function (r) {
        var v = value(r.tr, col), c = r.tr.cells[col.index];
        r.k = col.numeric ? (v === null ? NaN : Number(v)) : (c ? c.textContent.trim() : "");
      });
      rows.sort(function (a, b) {
        var x = a.k, y = b.k, d;
        if (col.numeric) {
          var xm = x !== x, ym = y !== y;
          d = xm || ym ? (xm === ym ? 0 : xm ? 1 : -1) : (x < y ? -dir : x > y ? dir : 0);
        } else {
          d = x === "" || y === "" ? (x === y ? 0 : x === "" ? 1 : -1) : compareText(x, y) * dir;
        }
        return d || a.i - b.i;
      });
      var frag = document.createDocumentFragment();
      rows.forEach(function (r) { frag.appendChild(r.tr); });
      body.appendChild(frag);
      cols.forEach(function (c) { marks(c.th, c === col ? dir : 0); });
      table.classList.add("sorted");
      state.page = 0;
    }
    function apply() {
      var f = state.filter;
      var shown = f ? rows.filter(function (r) { return r.text.indexOf(f) >= 0; }) : rows;
      var n = shown.length, size = per || n || 1;
      var pages = Math.max(1, Math.ceil(n / size));
      state.page = Math.max(0, Math.min(state.page, pages - 1));
      var from = state.page * size, to = Math.min(n, from + size);
      rows.forEach(function (r) { r.tr.hidden = true; });
      for (var i = from; i < to; i++) { shown[i].tr.hidden = false; }
      if (status) {
        var of = f ? " (filtered from " + rows.length + ")" : "";
        status.textContent = n === 0 ? "no row matches" + of :
          per ? "rows " + (from + 1) + "\u2013" + to + " of " + n + of :
          f ? n + " of " + rows.length + " rows" : n + " rows";
      }
      if (prev) { prev.disabled = state.page === 0; next.disabled = state.page >= pages - 1; }
    }
    cols.forEach(function (col) {
      col.numeric = rows.some(function (r) { return value(r.tr, col) !== null; });
      var b = document.createElement("button");
      b.type = "button";
      while (col.th.firstChild) { b.appendChild(col.th.firstChild); }
      col.th.appendChild(b);
      b.addEventListener("click", function () {
        sortBy(col, state.col === col ? -state.dir : col.numeric ? -1 : 1);
        apply();
      });
    });
    function pager(text, step) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.addEventListener("click", function () { state.page += step; apply(); });
      tools.appendChild(b);
      return b;
    }
    if (!table.classList.contains("small")) {
      tools.className = "tools";
      input = document.createElement("input");
      input.type = "search";
      input.placeholder = "filter rows";
      input.setAttribute("aria-label", "filter the rows of " + table.id);
      input.addEventListener("input", function () {
        state.filter = input.value.toLowerCase();
        state.page = 0;
        apply();
      });
      tools.appendChild(input);
      if (per) { prev = pager("\u2039 previous", -1); }
      status = document.createElement("span");
      status.className = "rows";
      status.setAttribute("aria-live", "polite");
      tools.appendChild(status);
      if (per) { next = pager("next \u203a", 1); }
      table.parentNode.insertBefore(tools, table);
    }
    var view = linked(table.id);
    if (view.filter && input) {
      input.value = view.filter;
      state.filter = view.filter.toLowerCase();
    }
    if (view.sort) {
      var want = view.sort.split(":");
      cols.forEach(function (col) {
        if (col.key === want[0]) {
          sortBy(col, want[1] === "desc" ? -1 : want[1] === "asc" ? 1 : col.numeric ? -1 : 1);
        }
      });
    }
    if (view.page) { state.page = (parseInt(view.page, 10) || 1) - 1; }
    apply();
    if (view.sort || view.filter || view.page) { table.scrollIntoView(); }
  }
  each(document.querySelectorAll("table.sortable"), sortable);
  each(document.querySelectorAll(".nojs"), function (p) { p.hidden = true; });

  var table = get("leaderboard-table");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var notes = Array.prototype.slice.call(document.querySelectorAll(".lb-period"));
  var state = { key: "rank", dir: 1 };
  var firstDir = { rank: 1, roi: -1, pnl: -1, dd: 1, followers: -1, aum: -1, trades: -1 };
  var buttons = table.tHead.querySelectorAll("button[data-key]");
  function num(r, k) { return parseFloat(r.getAttribute("data-" + k)); }
  function limit(id) { var v = parseFloat(get(id).value); return isNaN(v) ? null : v; }
  function apply() {
    var period = get("lb-period").value;
    var aum = limit("lb-aum-min"), fol = limit("lb-followers-min"), dd = limit("lb-dd-max");
    var text = get("lb-filter").value.toLowerCase();
    var total = 0;
    var shown = rows.filter(function (r) {
      if (r.getAttribute("data-period") !== period) { r.hidden = true; return false; }
      total += 1;
      var ok = (aum === null || num(r, "aum") >= aum) &&
        (fol === null || num(r, "followers") >= fol) &&
        (dd === null || num(r, "dd") <= dd) &&
        (text === "" || r.textContent.toLowerCase().indexOf(text) >= 0);
      r.hidden = !ok;
      return ok;
    });
    notes.forEach(function (n) { n.hidden = n.getAttribute("data-period") !== period; });
    shown.sort(function (a, b) { return num(a, "rank") - num(b, "rank"); });
    shown.forEach(function (r, i) { r.cells[0].textContent = String(i + 1); });
    shown.sort(function (a, b) {
      return (num(a, state.key) - num(b, state.key)) * state.dir || num(a, "rank") - num(b, "rank");
    });
    shown.forEach(function (r) { body.appendChild(r); });
    each(buttons, function (b) {
      marks(b.parentNode, b.getAttribute("data-key") === state.key ? state.dir : 0);
    });
    get("lb-count").textContent = "Showing " + shown.length + " of " + total +
      " ranked leaders over " + period + ", sorted by " + state.key +
      (state.dir < 0 ? " (highest first)." : " (lowest first).");
    table.setAttribute("data-live", period);
  }
  each(buttons, function (b) {
    b.addEventListener("click", function () {
      var k = b.getAttribute("data-key");
      state.dir = state.key === k ? -state.dir : firstDir[k];
      state.key = k;
      apply();
    });
  });
  ["lb-period", "lb-aum-min", "lb-followers-min", "lb-dd-max", "lb-filter"].forEach(function (id) {
    get(id).addEventListener("input", apply);
    get(id).addEventListener("change", apply);
  });
  var view = linked("leaderboard");
  var ids = { period: "lb-period", aum: "lb-aum-min", followers: "lb-followers-min", dd: "lb-dd-max", filter: "lb-filter" };
  Object.keys(ids).forEach(function (k) {
    if (view[k] !== undefined) { get(ids[k]).value = view[k]; }
  });
  apply();
})();
"##;

/// One follower's own page: its totals, subscriptions, open positions, fee
/// periods, the sync of its positions and its orders. Nothing of any other
/// follower, and no script.
pub(crate) fn follower_page(v: &FollowerView) -> String {
    let f = &v.follower;
    let rows_max = v.options.rows_max;
    let mut h = String::with_capacity(16 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let when = esc(&v.as_of_ns.map_or("(no data)".into(), format_ts));
    let _ = writeln!(
        h,
        "<title>fillcast follower report {} {when}</title>\n<style>\n{CSS}</style>\n</head>\n<body>",
        esc(&f.follower_id)
    );
    let _ = writeln!(
        h,
        "<header><h1>fillcast follower report: {}</h1><p>as of <b>{when}</b></p>",
        esc(&f.follower_id)
    );
    for n in &v.notes {
        let _ = writeln!(h, "<p class=\"note\">{}</p>", esc(n));
    }
    h.push_str("</header>\n<section id=\"summary\"><h2>Summary</h2><table><tbody>\n");
    let p = &v.options.fee;
    for (k, val) in [
        (
            "account equity",
            f.account_equity.map_or("n/a".into(), money),
        ),
        ("net P&amp;L", money(f.net_pnl)),
        ("realized", money(f.realized_pnl)),
        ("unrealized (at the mark)", money(f.unrealized_pnl)),
        ("trading fees paid", money(f.fees_paid)),
        ("funding", f.funding.map_or("not recorded".into(), money)),
        ("capital added", money(f.capital_flows)),
        ("performance fee settled", money(f.performance_fee)),
        ("of which to the leader", money(f.leader_share)),
        ("of which to the platform", money(f.platform_share)),
        ("performance fee accrued", money(f.performance_fee_accrued)),
    ] {
        let _ = writeln!(h, "<tr><th>{k}</th><td class=\"n\">{}</td></tr>", esc(&val));
    }
    let _ = writeln!(
        h,
        "</tbody></table><p>Performance fee: {} of each new high of a subscription's equity, settled {}.</p></section>",
        pct(Some(p.rate)),
        p.settlement.as_str()
    );

    h.push_str("<section id=\"subscriptions\"><h2>Subscriptions</h2><table><thead><tr><th>subscription</th><th>leader</th><th>mode</th><th>allocation</th><th>equity</th><th>net P&amp;L</th><th>realized</th><th>unrealized</th><th>fees</th><th>return</th><th>fills</th><th>fee settled</th><th>accrued</th><th>high-water mark</th></tr></thead><tbody>\n");
    for sub in &f.subscriptions {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n {}\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&sub.subscription_id),
            esc(&sub.leader_id),
            esc(sub.mode.as_deref().unwrap_or("n/a")),
            sub.allocation.map_or("n/a".into(), money),
            money(sub.equity),
            sign_class(sub.net_pnl),
            money(sub.net_pnl),
            money(sub.realized_pnl),
            money(sub.unrealized_pnl),
            money(sub.fees_paid),
            pct(sub.time_weighted_return),
            sub.fills,
            money(sub.performance_fee.fee),
            money(sub.performance_fee.accrued),
            money(sub.performance_fee.hwm),
        );
    }
    h.push_str("</tbody></table>\n<h3>Open positions</h3><table id=\"follower-positions\"><thead><tr><th>subscription</th><th>symbol</th><th>qty</th><th>avg price</th><th>priced at</th><th>price</th><th>unrealized</th></tr></thead><tbody>\n");
    for sub in &f.subscriptions {
        for p in &sub.open_positions {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n {}\">{}</td></tr>",
                esc(&sub.subscription_id),
                esc(&p.symbol),
                p.qty,
                money(p.avg_price),
                basis_label(p.basis),
                p.mark,
                sign_class(p.unrealized),
                money(p.unrealized),
            );
        }
    }
    h.push_str("</tbody></table>\n<h3>Settlement periods</h3><table><thead><tr><th>subscription</th><th>period start</th><th>period end</th><th>settled</th><th>equity</th><th>HWM before</th><th>fee</th><th>HWM after</th></tr></thead><tbody>\n");
    let periods: Vec<_> = f
        .subscriptions
        .iter()
        .flat_map(|s| s.performance_fee.periods.iter().map(move |p| (s, p)))
        .collect();
    // The latest periods matter most: show the last `rows_max`.
    for (sub, p) in periods.iter().skip(periods.len().saturating_sub(rows_max)) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&sub.subscription_id),
            esc(&format_ts(p.start_ns)),
            esc(&format_ts(p.end_ns)),
            if p.settled { "yes" } else { "running" },
            money(p.equity_end),
            money(p.hwm_before),
            money(p.fee),
            money(p.hwm_after),
        );
    }
    h.push_str("</tbody></table>\n");
    truncation_note(&mut h, periods.len(), rows_max, "periods");
    h.push_str("</section>\n");

    let on = v.sync.iter().filter(|p| p.in_sync).count();
    let _ = writeln!(
        h,
        "<section id=\"sync\"><h2>Positions against their targets</h2><p>{on} of {} (subscription, symbol) pairs on target.</p><table><thead><tr><th>subscription</th><th>symbol</th><th>target</th><th>venue</th><th>deviation</th><th>why</th></tr></thead><tbody>",
        v.sync.len()
    );
    for p in v.sync.iter().take(rows_max) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n{}\">{}</td><td>{}</td></tr>",
            esc(&p.subscription_id),
            esc(&p.symbol),
            p.target,
            p.venue,
            if p.in_sync { "" } else { " neg" },
            p.deviation,
            esc(&p.reasons.join("; ")),
        );
    }
    h.push_str("</tbody></table>\n");
    truncation_note(&mut h, v.sync.len(), rows_max, "pairs");
    h.push_str("</section>\n");

    let a = &v.activity;
    let _ = writeln!(
        h,
        "<section id=\"orders\"><h2>Orders and fills</h2><p>{} instructions → {} orders → {} fills (notional {}).</p>",
        a.instructions,
        a.orders,
        a.fills,
        money(a.filled_notional)
    );
    for (title, rows) in [
        ("instruction status (reason)", &a.instructions_by_status),
        ("order status", &a.orders_by_status),
        ("reject reason", &a.reject_reasons),
    ] {
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<table class=\"small\"><thead><tr><th>{title}</th><th>count</th></tr></thead><tbody>"
        );
        for (k, n) in rows {
            let _ = writeln!(h, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", esc(k));
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("<h3>Orders, latest first</h3><table id=\"follower-orders\"><thead><tr><th>client order id</th><th>subscription</th><th>symbol</th><th>side</th><th>qty</th><th>type</th><th>status</th><th>filled</th><th>reject reason</th></tr></thead><tbody>\n");
    for o in a.orders_list.iter().take(rows_max) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&o.client_order_id),
            esc(&o.subscription_id),
            esc(&o.symbol),
            esc(&o.side),
            o.qty,
            esc(&o.order_type),
            esc(&o.status),
            o.filled_qty,
            esc(o.reject_reason.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</tbody></table>\n");
    truncation_note(&mut h, a.orders_list.len(), rows_max, "orders");
    h.push_str("</section>\n</body>\n</html>\n");
    h
}

fn drawn_leaders(r: &Report) -> Vec<&LeaderReport> {
    let mut v: Vec<&LeaderReport> = r.leaders.iter().filter(|l| !l.curve.is_empty()).collect();
    v.sort_by(|a, b| b.aum.cmp(&a.aum).then(b.fills.cmp(&a.fills)));
    v.truncate(SERIES_MAX);
    v.sort_by(|a, b| super::id_cmp(&a.leader_id, &b.leader_id));
    v
}

fn more(shown: usize, total: usize) -> String {
    if total > shown && shown > 0 {
        format!(" Showing {shown} of {total} leaders (largest AUM first).")
    } else {
        String::new()
    }
}

fn followers_section(h: &mut String, r: &Report) {
    h.push_str("<section id=\"followers\"><h2>Followers</h2>\n");
    let bars: Vec<(String, u64)> = r
        .pnl_distribution
        .iter()
        .map(|b| (format!("{} … {}", compact(b.lo), compact(b.hi)), b.count))
        .collect();
    figure(
        h,
        &bar_chart("chart-pnl", &bars, "followers", "no follower with fills"),
        "Distribution of followers' net P&L (realized + unrealized at the mark or, without one, the latest trade − trading fees), summed over each follower's subscriptions.",
    );
    if r.followers.is_empty() {
        h.push_str("<p>No follower in the database.</p>\n</section>\n");
        return;
    }
    attribution_table(h, &r.pnl_attribution);
    let total = r.followers.len();
    let held = total.min(FOLLOWERS_IN_PAGE_MAX);
    let _ = writeln!(
        h,
        "<p>{}; {FOLLOWERS_PAGE_ROWS} to a page. Sorting, filtering and paging work on every follower the page holds (at most {}, the first by id), not only on the rows in view.</p>",
        if held == total {
            format!("All {total} followers")
        } else {
            format!("The first {held} of {total} followers by id")
        },
        thousands(FOLLOWERS_IN_PAGE_MAX),
    );
    if held > FOLLOWERS_PAGE_ROWS {
        let _ = writeln!(
            h,
            "<p class=\"nojs\">Without scripts this table shows rows 1–{FOLLOWERS_PAGE_ROWS} of {held}: paging, sorting and filtering need JavaScript (the JSON has every follower).</p>"
        );
    }
    let _ = writeln!(
        h,
        "<table id=\"followers-table\" class=\"sortable\" data-page-rows=\"{FOLLOWERS_PAGE_ROWS}\"><thead><tr><th data-key=\"follower\">follower</th><th data-key=\"subscriptions\">subscriptions</th><th data-key=\"realized\">realized</th><th data-key=\"unrealized\">unrealized</th><th data-key=\"fees\">fees paid</th><th data-key=\"funding\">funding</th><th data-key=\"net\">net P&amp;L</th><th data-key=\"added\">capital added</th><th data-key=\"fee\">perf. fee settled</th><th data-key=\"accrued\">accrued</th></tr></thead><tbody>"
    );
    for (k, f) in r.followers.iter().take(held).enumerate() {
        let subs: Vec<String> = f
            .subscriptions
            .iter()
            .map(|s| format!("{} → {}", s.subscription_id, s.leader_id))
            .collect();
        // Past the first page, rows wait for the script to page to them.
        let _ = writeln!(
            h,
            "<tr{}><td>{}</td><td>{}</td>{}{}{}{}{}{}{}{}</tr>",
            if k < FOLLOWERS_PAGE_ROWS {
                ""
            } else {
                " hidden"
            },
            esc(&f.follower_id),
            esc(&subs.join(", ")),
            money_cell(f.realized_pnl, true),
            money_cell(f.unrealized_pnl, true),
            money_cell(f.fees_paid, false),
            f.funding.map_or_else(
                || num_cell("", None, "not recorded"),
                |x| money_cell(x, true)
            ),
            money_cell(f.net_pnl, true),
            money_cell(f.capital_flows, false),
            money_cell(f.performance_fee, false),
            money_cell(f.performance_fee_accrued, false),
        );
    }
    h.push_str("</tbody></table>\n");
    truncation_note(h, total, held, "followers");
    h.push_str("</section>\n");
}

/// The followers' net P&L by where it came from (`PnlAttribution`).
fn attribution_table(h: &mut String, a: &crate::PnlAttribution) {
    h.push_str("<h3>Where the followers' P&amp;L came from</h3><table class=\"small\" id=\"pnl-attribution\"><tbody>\n");
    for (k, v) in [
        (
            "the leaders' trading (each fill at the price it copied)",
            Some(a.leaders_trading),
        ),
        (
            "spread and impact (each fill against that price)",
            Some(a.spread_and_impact),
        ),
        ("trading fees", Some(a.fees)),
        ("funding", a.funding),
    ] {
        let _ = writeln!(
            h,
            "<tr><th>{k}</th>{}</tr>",
            v.map_or_else(
                || num_cell("", None, "not recorded"),
                |x| money_cell(x, true)
            )
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>net P&amp;L</th>{}</tr></tbody></table>",
        money_cell(a.total, true)
    );
    if !a.residual.is_zero() {
        let _ = writeln!(
            h,
            "<p class=\"note\">The parts differ from the net P&amp;L by {} (inconsistent data).</p>",
            esc(&money(a.residual))
        );
    }
    let _ = writeln!(
        h,
        "<p>{} fill(s) copied a leader fill's price; {} (resyncs, stops, closes) are set against the symbol's last known price before them, a mark or a leader fill.</p>",
        a.fills_at_leader_price, a.fills_at_last_price
    );
}

/// `5000` as `5,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Says so when a table shows only the first `shown` of `total` rows.
fn truncation_note(h: &mut String, total: usize, shown: usize, what: &str) {
    if total > shown {
        let _ = writeln!(
            h,
            "<p class=\"note\">showing {shown} of {total} {what}; the JSON has all.</p>"
        );
    }
}

/// A small table of `(what, count)` rows the page's script sorts (no filter box:
/// a few rows).
fn count_table(h: &mut String, title: &str, count: &str, rows: &[(String, u64)]) {
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        h,
        "<table class=\"small sortable\"><thead><tr><th data-key=\"what\">{}</th><th data-key=\"count\">{}</th></tr></thead><tbody>",
        esc(title),
        esc(count)
    );
    for (k, n) in rows {
        let _ = writeln!(
            h,
            "<tr><td>{}</td>{}</tr>",
            esc(if k.is_empty() { "(none)" } else { k }),
            count_cell(n)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn fees_section(h: &mut String, r: &Report) {
    let p = &r.options.fee;
    let _ = writeln!(
        h,
        "<section id=\"fees\"><h2>Performance fees</h2><p>{} of each new high of a subscription's equity, settled {}; {} to the leader, the rest to the platform.</p>",
        pct(Some(p.rate)),
        p.settlement.as_str(),
        pct(Some(p.leader_fraction))
    );
    let _ = writeln!(
        h,
        "<table><tbody><tr><th>settled</th><td class=\"n\">{}</td></tr><tr><th>leader share</th><td class=\"n\">{}</td></tr><tr><th>platform share</th><td class=\"n\">{}</td></tr><tr><th>accrued (running period)</th><td class=\"n\">{}</td></tr></tbody></table>",
        money(r.fees.fee),
        money(r.fees.leader_share),
        money(r.fees.platform_share),
        money(r.fees.accrued)
    );
    if !r.fees.by_leader.is_empty() {
        h.push_str("<h3>Leader share by leader</h3><table id=\"fees-by-leader\" class=\"sortable\"><thead><tr><th data-key=\"leader\">leader</th><th data-key=\"share\">leader share</th></tr></thead><tbody>\n");
        for (l, v) in r.fees.by_leader.iter().take(r.options.rows_max) {
            let _ = writeln!(h, "<tr><td>{}</td>{}</tr>", esc(l), money_cell(*v, false));
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn recon_section(h: &mut String, r: &Report) {
    let rc = &r.reconciliation;
    let _ = writeln!(
        h,
        "<section id=\"reconciliation\"><h2>Reconciliation</h2><p>{} of {} (subscription, symbol) pairs on target; {} follower(s) out of sync (tolerance {} notional).</p>",
        rc.pairs_in_sync(),
        rc.pairs.len(),
        rc.out_of_sync.len(),
        money(rc.tolerance_notional)
    );
    let bars: Vec<(String, u64)> = rc
        .distribution
        .iter()
        .map(|b| (b.label.clone(), b.count))
        .collect();
    let bars = if bars.iter().all(|b| b.1 == 0) {
        Vec::new()
    } else {
        bars
    };
    figure(
        h,
        &bar_chart("chart-sync", &bars, "followers", "no follower positions to reconcile"),
        "Sync score per follower: mean |venue position − target| × mark over its (subscription, symbol) pairs, in quote currency.",
    );
    if !rc.out_of_sync.is_empty() {
        h.push_str("<h3>Out of sync</h3><table id=\"out-of-sync\" class=\"sortable\"><thead><tr><th data-key=\"follower\">follower</th><th data-key=\"score\">score</th><th data-key=\"subscription\">subscription</th><th data-key=\"symbol\">symbol</th><th data-key=\"target\">target</th><th data-key=\"sent\">sent</th><th data-key=\"venue\">venue</th><th data-key=\"deviation\">deviation</th><th data-key=\"why\">why</th></tr></thead><tbody>\n");
        for f in rc.out_of_sync.iter().take(r.options.rows_max) {
            for p in rc.pairs_of(&f.follower_id) {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td>{}<td>{}</td><td>{}</td>{}{}{}{}<td>{}</td></tr>",
                    esc(&f.follower_id),
                    money_cell(f.score, false),
                    esc(&p.subscription_id),
                    esc(&p.symbol),
                    qty_cell(p.target, false),
                    qty_cell(p.expected, false),
                    qty_cell(p.venue, false),
                    qty_cell(p.deviation, true),
                    esc(&p.reasons.join("; ")),
                );
            }
        }
        h.push_str("</tbody></table>\n");
        truncation_note(
            h,
            rc.out_of_sync.len(),
            r.options.rows_max,
            "followers out of sync",
        );
    }
    open_where_flat(h, r);
    h.push_str("</section>\n");
}

fn open_where_flat(h: &mut String, r: &Report) {
    let o = &r.reconciliation.open_where_leader_flat;
    let _ = writeln!(
        h,
        "<h3 id=\"open-where-leader-flat\">Open where the leader is flat</h3><p>{} (subscription, symbol) position(s) open while the leader is flat in the symbol; <b>{} with no recorded reason</b>. Leader flat read from <code>{}</code>.</p>",
        o.count(),
        o.unexplained,
        esc(o.leader_flat_from)
    );
    if o.rows.is_empty() {
        return;
    }
    let mut by_reason = o.by_reason.clone();
    if o.unexplained > 0 {
        by_reason.insert(0, ("no recorded reason".into(), o.unexplained as u64));
    }
    count_table(h, "reason", "pairs", &by_reason);
    h.push_str("<table id=\"open-where-leader-flat-rows\" class=\"sortable\"><thead><tr><th data-key=\"subscription\">subscription</th><th data-key=\"follower\">follower</th><th data-key=\"leader\">leader</th><th data-key=\"symbol\">symbol</th><th data-key=\"qty\">qty</th><th data-key=\"reason\">reason</th><th data-key=\"source\">recorded in</th><th data-key=\"since\">since seq</th></tr></thead><tbody>\n");
    for p in o.rows.iter().take(r.options.rows_max) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td{}>{}</td><td>{}</td>{}</tr>",
            esc(&p.subscription_id),
            esc(&p.follower_id),
            esc(&p.leader_id),
            esc(&p.symbol),
            qty_cell(p.qty, false),
            if p.reason.is_none() {
                " class=\"neg\""
            } else {
                ""
            },
            esc(p.reason.as_deref().unwrap_or("no recorded reason")),
            esc(p.source.unwrap_or("")),
            match p.since_seq {
                Some(seq) => count_cell(seq),
                None => num_cell("", None, ""),
            },
        );
    }
    h.push_str("</tbody></table>\n");
    truncation_note(h, o.rows.len(), r.options.rows_max, "positions");
}

fn activity_section(h: &mut String, r: &Report) {
    let a = &r.activity;
    let _ = writeln!(
        h,
        "<section id=\"activity\"><h2>Activity</h2><p>{} leader fills → {} instructions → {} orders → {} venue fills.</p>",
        a.leader_fills, a.instructions, a.orders, a.follower_fills
    );
    let table = |h: &mut String, title: &str, rows: &[(String, u64)]| {
        count_table(h, title, "count", rows);
    };
    h.push_str("<div class=\"row\">");
    table(h, "instruction status", &a.instructions_by_status);
    table(h, "not plainly sent, by reason", &a.limited_by_reason);
    table(h, "order status", &a.orders_by_status);
    table(h, "reject reason", &a.reject_reasons);
    table(h, "audit log by kind", &r.audit.by_kind);
    h.push_str("</div>\n");
    let rs = &a.resync;
    let _ = writeln!(
        h,
        "<h3 id=\"resync\">Resync and venue outages</h3><p>{} resync instruction(s) → {} order(s); {} decision(s) deferred; {} sent smaller (<code>venue_limit</code>); {} (subscription, symbol) pair(s) given up (<code>out_of_sync</code>).</p>",
        rs.instructions, rs.orders, a.deferred, rs.venue_limit, rs.gave_up
    );
    h.push_str("<div class=\"row\">");
    table(h, "resync cause", &rs.by_cause);
    table(h, "resync status", &rs.by_status);
    table(h, "given up, by reason", &rs.gave_up_by_reason);
    h.push_str("</div>\n");
    if !a.venues.is_empty() {
        h.push_str("<table id=\"venue-links\" class=\"sortable\"><thead><tr><th data-key=\"venue\">venue</th><th data-key=\"outages\">outages</th><th data-key=\"downtime\">downtime (ended outages)</th><th data-key=\"alarms\">alarms</th><th data-key=\"stops\">engine stopped</th><th data-key=\"down\">down when the data ends</th></tr></thead><tbody>\n");
        for v in &a.venues {
            let _ = writeln!(
                h,
                "<tr><td>{}</td>{}{}{}{}<td{}>{}</td></tr>",
                esc(&v.venue),
                count_cell(v.outages),
                duration_cell(v.downtime_ns),
                count_cell(v.alarms),
                count_cell(v.stops),
                if v.down_at_end { " class=\"neg\"" } else { "" },
                if v.down_at_end { "yes" } else { "no" },
            );
        }
        h.push_str("</tbody></table>\n");
    }
    if !r.audit.recent.is_empty() {
        h.push_str("<h3>Latest audit entries</h3><table id=\"audit\" class=\"sortable\"><thead><tr><th data-key=\"seq\">seq</th><th data-key=\"time\">time</th><th data-key=\"kind\">kind</th><th data-key=\"subject\">subject</th><th data-key=\"reason\">reason</th><th data-key=\"detail\">detail</th></tr></thead><tbody>\n");
        for e in r.audit.recent.iter().rev().take(r.options.rows_max) {
            let _ = writeln!(
                h,
                "<tr>{}<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                count_cell(e.seq),
                esc(&format_ts(e.ts)),
                esc(&e.kind),
                esc(&e.subject),
                esc(&e.reason),
                esc(&e.detail)
            );
        }
        h.push_str("</tbody></table>\n");
    }
    h.push_str("</section>\n");
}

fn latency_section(h: &mut String, r: &Report) {
    h.push_str("<section id=\"latency\"><h2>Fan-out latency</h2>\n");
    let (bars, caption) = match &r.latency {
        Some(l) => {
            let f = |x: Option<u64>| x.map_or("n/a".into(), format_latency);
            (
                latency_bars(&l.buckets),
                format!(
                    "From one leader fill to its follower orders in the gateway rings; {} samples, p50 ≤ {}, p99 ≤ {}, p99.9 ≤ {} (bucket upper bounds).",
                    l.count,
                    f(l.p50_ns),
                    f(l.p99_ns),
                    f(l.p999_ns)
                ),
            )
        }
        None => (
            Vec::new(),
            "No latency histogram was passed to this report.".to_string(),
        ),
    };
    figure(
        h,
        &bar_chart("chart-latency", &bars, "samples", "no latency data"),
        &caption,
    );
    h.push_str("</section>\n");
}

fn latency_bars(buckets: &[(u64, u64)]) -> Vec<(String, u64)> {
    let group = buckets.len().div_ceil(BARS_MAX).max(1);
    buckets
        .chunks(group)
        .map(|c| {
            let ub = c.last().map_or(0, |b| b.0);
            (
                format!("≤{}", format_latency(ub)),
                c.iter().map(|b| b.1).sum(),
            )
        })
        .collect()
}

fn figure(h: &mut String, svg: &str, caption: &str) {
    let _ = writeln!(
        h,
        "<figure>{svg}<figcaption>{}</figcaption></figure>",
        esc(caption)
    );
}

/// A line chart of `(x = ts ns, y)` series; `y_zero_top` draws a 0 baseline at the
/// top for series that only go down (drawdown) and shades the area under 0.
fn line_chart(
    id: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_title: &str,
    y_zero_top: bool,
    empty: &str,
) -> String {
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if series.iter().all(|s| s.1.is_empty()) {
        return empty_chart(id, empty);
    }
    if y_zero_top {
        y1 = 0.0;
    }
    if x1 <= x0 {
        // One second either side: at nanosecond stamps (~1.7e18) an f64 cannot
        // tell x0 + 1 from x0, and a range of zero width puts every point at NaN.
        x1 = x0 + 1e9;
    }
    let (ticks, lo, hi) = nice_ticks(y0, y1, 5);
    let y_labels: Vec<(f64, String)> = ticks.iter().map(|t| (*t, tick_label(*t, &ticks))).collect();
    let plot = plot_area(
        &y_labels,
        Scale::Linear { lo: x0, hi: x1 },
        Scale::Linear { lo, hi },
    );
    let mut s = svg_open(id, y_title, &plot);
    plot.y_ticks(&mut s, &y_labels);
    // Round instants, each label centred under its grid line; when fewer than two
    // of them fit, the two ends of the axis instead.
    let round: Vec<(f64, String)> = time_ticks(x0 as i64, x1 as i64)
        .into_iter()
        .filter(|(x, label)| {
            let (px, half) = (plot.px(*x), text_width(label, TICK_FONT_PX) / 2.0);
            px - half >= 0.0 && px + half <= W
        })
        .collect();
    if round.len() >= 2 {
        plot.x_ticks(&mut s, &round, true, Anchor::Middle);
    } else {
        plot.x_ticks(&mut s, &end_labels(x0, x1), false, Anchor::EndsInside);
    }
    plot.left_axis(&mut s);
    plot.bottom_axis(&mut s);
    for (i, (name, p)) in series.iter().enumerate() {
        if p.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        // Shading overlapping areas of several series only muddies them.
        if y_zero_top && series.len() == 1 {
            plot.area(&mut s, p, color);
        }
        plot.line(&mut s, p, color, None, Some(name));
        // The legend sits above the plot, up to 10 series in two rows of 5.
        let lx = plot.left + (i % 5) as f64 * LEGEND_STEP;
        let ly = 2.0 + (i / 5) as f64 * 14.0;
        plot.legend(
            &mut s,
            Key::Swatch,
            lx,
            ly + 10.0,
            color,
            None,
            &fit(name, LEGEND_STEP - 14.0 - TICK_FONT_PX),
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal room of one legend entry (its key and label), in px.
const LEGEND_STEP: f64 = 160.0;

/// `text` cut (with an ellipsis) to fit in `px` pixels of tick font.
fn fit(text: &str, px: f64) -> String {
    let mut n = text.chars().count();
    let mut t = text.to_string();
    // Bounded by the length of `text`.
    while n > 1 && text_width(&t, TICK_FONT_PX) > px {
        n -= 1;
        t = truncate(text, n);
    }
    t
}

/// Steps between the instants labelled on a time axis, in ns; longer spans step by
/// calendar months (`MONTH_STEPS`).
const TIME_STEPS_NS: [i64; 30] = [
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    NS_PER_SEC,
    2 * NS_PER_SEC,
    5 * NS_PER_SEC,
    10 * NS_PER_SEC,
    15 * NS_PER_SEC,
    30 * NS_PER_SEC,
    60 * NS_PER_SEC,
    120 * NS_PER_SEC,
    300 * NS_PER_SEC,
    600 * NS_PER_SEC,
    900 * NS_PER_SEC,
    1_800 * NS_PER_SEC,
    3_600 * NS_PER_SEC,
    7_200 * NS_PER_SEC,
    10_800 * NS_PER_SEC,
    21_600 * NS_PER_SEC,
    43_200 * NS_PER_SEC,
    NS_PER_DAY,
    2 * NS_PER_DAY,
    7 * NS_PER_DAY,
    14 * NS_PER_DAY,
];
const MONTH_STEPS: [i64; 5] = [1, 2, 3, 6, 12];
/// Most labels on a time axis.
const TIME_TICKS_MAX: usize = 10;
const NS_PER_SEC: i64 = 1_000_000_000;

/// Round instants from `x0` to `x1` (ns, UTC) to label a time axis with, at most
/// `TIME_TICKS_MAX`, each labelled no finer than its step needs: milliseconds, then
/// seconds, then `MM-DD HH:MM` (the date only where the day changes), then dates,
/// then months. Steps of 7 and 14 days fall on Thursdays (the epoch's weekday).
fn time_ticks(x0: i64, x1: i64) -> Vec<(f64, String)> {
    debug_assert!(x1 >= x0);
    let span = x1.saturating_sub(x0);
    if let Some(step) = TIME_STEPS_NS
        .iter()
        .copied()
        .find(|s| span / s < TIME_TICKS_MAX as i64)
    {
        let first = x0.div_euclid(step) * step + if x0.rem_euclid(step) == 0 { 0 } else { step };
        let mut out: Vec<(f64, String)> = Vec::with_capacity(TIME_TICKS_MAX);
        let mut day_before = None;
        let mut t = first;
        while t <= x1 && out.len() < TIME_TICKS_MAX {
            let ts = format_ts(t);
            let day = t.div_euclid(NS_PER_DAY);
            let label = if step < NS_PER_SEC {
                format!(
                    "{}.{:03}",
                    &ts[11..19],
                    t.rem_euclid(NS_PER_SEC) / 1_000_000
                )
            } else if step < 60 * NS_PER_SEC {
                ts[11..19].to_string()
            } else if step < NS_PER_DAY && day_before == Some(day) {
                ts[11..16].to_string()
            } else if step < NS_PER_DAY {
                ts[5..16].to_string()
            } else {
                format_date(t)
            };
            day_before = Some(day);
            out.push((t as f64, label));
            t = match t.checked_add(step) {
                Some(next) => next,
                None => break,
            };
        }
        return out;
    }
    // Months: the first of a month, every `months`.
    let months = span / (30 * NS_PER_DAY);
    let every = MONTH_STEPS
        .iter()
        .copied()
        .find(|m| months / m < TIME_TICKS_MAX as i64)
        .unwrap_or(12 * (months / (12 * TIME_TICKS_MAX as i64) + 1));
    let mut out = Vec::with_capacity(TIME_TICKS_MAX);
    let mut t = month_start(x0);
    // Bounded: one turn a month of the span, and at most `TIME_TICKS_MAX` labels.
    while t <= x1 && out.len() < TIME_TICKS_MAX {
        let (y, m, _) = civil_from_days(t.div_euclid(NS_PER_DAY));
        if t >= x0 && (y * 12 + i64::from(m) - 1).rem_euclid(every) == 0 {
            out.push((t as f64, format!("{y:04}-{m:02}")));
        }
        t = next_month_start(t);
    }
    out
}

/// The two ends of a time axis, as fine as its span needs: milliseconds under 10 s,
/// seconds under 2 h, minutes under 3 days, else dates.
fn end_labels(x0: f64, x1: f64) -> Vec<(f64, String)> {
    let span_ns = x1 - x0;
    [x0, x1]
        .iter()
        .map(|&x| {
            let ts = format_ts(x as i64);
            let label = if span_ns < 10e9 {
                format!(
                    "{}.{:03}",
                    &ts[11..19],
                    (x as i64).rem_euclid(NS_PER_SEC) / 1_000_000
                )
            } else if span_ns < 7_200e9 {
                ts[11..19].to_string()
            } else if span_ns < 3.0 * NS_PER_DAY as f64 {
                ts[5..16].to_string()
            } else {
                format_date(x as i64)
            };
            (x, label)
        })
        .collect()
}

/// A histogram: one bar per `(label, count)`; zero counts draw no bar.
fn bar_chart(id: &str, bars: &[(String, u64)], y_title: &str, empty: &str) -> String {
    if bars.is_empty() || bars.iter().all(|b| b.1 == 0) {
        return empty_chart(id, empty);
    }
    let max = bars.iter().map(|b| b.1).max().unwrap_or(1) as f64;
    let (ticks, _, hi) = nice_ticks(0.0, max, 5);
    let y_labels: Vec<(f64, String)> = ticks.iter().map(|t| (*t, chart::compact(*t))).collect();
    let plot = plot_area(
        &y_labels,
        Scale::Linear {
            lo: 0.0,
            hi: bars.len() as f64,
        },
        Scale::Linear { lo: 0.0, hi },
    );
    let mut s = svg_open(id, y_title, &plot);
    plot.y_ticks(&mut s, &y_labels);
    plot.bars(&mut s, bars);
    plot.bottom_axis(&mut s);
    s.push_str("</svg>");
    s
}

/// The font size of the charts' tick labels, legend and axis titles, in px: the
/// stylesheet's `svg .tick` (a test holds the two together).
const TICK_FONT_PX: f64 = 12.0;
/// Where the y axis' title is centred, from the figure's left edge, in px; it
/// takes one line of tick font either side.
const Y_TITLE_X: f64 = 14.0;

/// The plot area of a `W`×`H` chart, its left margin wide enough for the widest of
/// `y_labels` right of the y axis' title.
fn plot_area(y_labels: &[(f64, String)], x: Scale, y: Scale) -> Plot {
    let widest = y_labels
        .iter()
        .map(|(_, l)| text_width(l, TICK_FONT_PX))
        .fold(0.0, f64::max);
    let ml = ML.max(Y_TITLE_X + TICK_FONT_PX + widest + Y_LABEL_GAP);
    Plot::new(ml, MT, W - ml - MR, H - MT - MB, x, y)
        .labels(Y_LABEL_GAP, X_LABEL_DROP)
        .tick_font(TICK_FONT_PX)
}

/// A chart's `<svg>` (found by its id) and the title of its y axis.
fn svg_open(id: &str, y_title: &str, plot: &Plot) -> String {
    let mut s = chart::svg_open(
        &format!(
            " id=\"{id}\" class=\"chart\" role=\"img\" aria-label=\"{}\"",
            esc(id)
        ),
        W,
        H,
    );
    plot.y_title(&mut s, Y_TITLE_X, y_title);
    s
}

fn empty_chart(id: &str, why: &str) -> String {
    let mut s = chart::svg_open(&format!(" id=\"{id}\" class=\"chart empty\""), W, 60.0);
    let _ = write!(
        s,
        "<text class=\"tick\" x=\"{ML}\" y=\"34\">{}</text></svg>",
        esc(why)
    );
    s
}

fn compact(d: Decimal) -> String {
    chart::compact(d.to_f64().unwrap_or(0.0))
}

/// A numeric cell of a sortable table: `text` shown, `v` the value the page's
/// script sorts by, in `data-v`, written so that JavaScript's `Number` and Rust's
/// `f64` both parse it. Without a value (n/a) the cell has no `data-v` and sorts
/// last whichever the direction.
fn num_cell(class: &str, v: Option<String>, text: &str) -> String {
    let sep = if class.is_empty() { "" } else { " " };
    match v {
        Some(v) => {
            debug_assert!(v.parse::<f64>().is_ok_and(|x| !x.is_nan()), "data-v {v:?}");
            format!(
                "<td class=\"n{sep}{class}\" data-v=\"{}\">{}</td>",
                esc(&v),
                esc(text)
            )
        }
        None => format!("<td class=\"n{sep}{class}\">{}</td>", esc(text)),
    }
}

/// A sum of money, green or red by its sign when `signed`.
fn money_cell(d: Decimal, signed: bool) -> String {
    let class = if signed { sign_class(d) } else { "" };
    num_cell(class, Some(d.normalize().to_string()), &money(d))
}

fn opt_money_cell(d: Option<Decimal>) -> String {
    match d {
        Some(d) => money_cell(d, false),
        None => num_cell("", None, "n/a"),
    }
}

fn count_cell(n: impl std::fmt::Display) -> String {
    let n = n.to_string();
    num_cell("", Some(n.clone()), &n)
}

/// A quantity as the data write it, red when `bad`.
fn qty_cell(q: Decimal, bad: bool) -> String {
    num_cell(
        if bad { "neg" } else { "" },
        Some(q.normalize().to_string()),
        &q.to_string(),
    )
}

/// A duration, sorted by its nanoseconds.
fn duration_cell(ns: i64) -> String {
    num_cell("", Some(ns.to_string()), &format_duration(ns))
}

fn sign_class(d: Decimal) -> &'static str {
    if d > Decimal::ZERO {
        "pos"
    } else if d < Decimal::ZERO {
        "neg"
    } else {
        ""
    }
}

const CSS: &str = r#"
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #111827; background: #f9fafb; margin: 0 auto; max-width: 1000px; padding: 16px 24px 48px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 2px solid #e5e7eb; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
nav a { margin-right: 12px; color: #2563eb; text-decoration: none; }
p.note { color: #92400e; background: #fffbeb; border-left: 3px solid #f59e0b; padding: 4px 8px; margin: 4px 0; }
figure { overflow-x: auto; margin: 12px 0 20px; background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px; }
figcaption { color: #4b5563; font-size: 12.5px; margin-top: 4px; }
svg.chart { display: block; max-width: 100%; min-width: 640px; height: auto; }
svg .grid { stroke: #e5e7eb; stroke-width: 1; }
svg .axis { stroke: #6b7280; stroke-width: 1; }
svg .tick, svg .legend, svg .ytitle { font-size: 12px; fill: #4b5563; }
svg path.line { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
svg path.area { fill-opacity: 0.12; stroke: none; }
svg rect.bar { fill: #2563eb; }
svg rect.bar:hover { fill: #1d4ed8; }
table { border-collapse: collapse; margin: 8px 0 12px; background: #fff; font-size: 13px; }
table.small { display: inline-table; margin-right: 16px; vertical-align: top; }
th, td { border: 1px solid #e5e7eb; padding: 3px 8px; text-align: left; }
th { background: #f3f4f6; font-weight: 600; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.pos { color: #15803d; }
td.neg { color: #b91c1c; }
tr.first td { border-top: 2px solid #d1d5db; }
form.controls { margin: 8px 0; display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 13px; }
form.controls input { width: 90px; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: #1d4ed8; text-align: inherit; }
th[aria-sort="ascending"] button::after { content: " \25B2"; }
th[aria-sort="descending"] button::after { content: " \25BC"; }
div.tools { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 12px; margin: 8px 0 -4px; font-size: 13px; }
div.tools input { width: 220px; }
td.rep { color: #9ca3af; }
table.sorted tr.first td { border-top: 1px solid #e5e7eb; }
p.nojs { color: #4b5563; font-size: 12.5px; }
svg.spark { display: block; }
svg.spark path.line { fill: none; stroke-width: 1.4; }
dl dt { font-weight: 600; margin-top: 10px; }
dl dd { margin: 2px 0 0 16px; color: #374151; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
"#;

const DEFINITIONS: &str = r#"<section id="definitions"><h2>Definitions</h2>
<dl>
<dt>Equity</dt>
<dd>Capital + realized P&amp;L + unrealized P&amp;L − trading fees. Open positions are valued at the latest market price known at the instant: the latest <code>mark_prices</code> row of the symbol at or before it; without one (a symbol with no mark, or before its first), the latest trade in the symbol by anyone at or before it: any leader fill (<code>leader_fills</code>, except those the engine ignored) or follower fill (<code>follower_fills</code>), whichever is latest (by its time, then by journal <code>seq</code>), never the account's own older fill when someone traded since. Only with no trade known at all is it the account's own latest fill. Each open position says which price it is at, and the notes name the symbols without a mark. A held loss therefore lowers equity at once; it cannot hide in an open position. A leader's capital is its earliest <code>leader_equity</code> row, else <code>leaders.equity</code>; a subscription's is its allocation. Positions and realized P&amp;L are rebuilt from fills with average-cost accounting (the engine's rule), assuming linear contracts (P&amp;L = quantity × price change).</dd>
<dt>Trade</dt>
<dd>A position in one symbol from flat to flat (an episode). A fill that flips the side closes one trade and opens the next. A trade still open at the report's time is valued at the price equity uses (the mark, else the latest trade): its P&amp;L is what it realized by partial closes plus its unrealized P&amp;L, and it is counted in win rate, profit factor and holding time as well as in equity, ROI and drawdown, so a held loss cannot hide.</dd>
<dt>Window</dt>
<dd>The last 7, 30 or 90 days up to the report's time, or all time. A window opens at the equity in force at its start (or at the leader's first fill, if later) and closes at the equity at the report's time.</dd>
<dt>P&amp;L and ROI</dt>
<dd>P&amp;L = closing equity − opening equity. ROI = P&amp;L ÷ opening equity (n/a without a capital).</dd>
<dt>Maximum drawdown</dt>
<dd>The largest fall from a running peak of equity to a later point, as a fraction of that peak: max over t of (peak<sub>t</sub> − equity<sub>t</sub>) ÷ peak<sub>t</sub>, over every point of the equity curve in the window (each fill, each mark change, and before a symbol's first mark each change of its latest trade price).</dd>
<dt>Sharpe ratio</dt>
<dd>mean(r) ÷ sd(r) × √(periods per year), with r the simple return of equity over each complete day of the window (equity sampled every 24 h counting back from the window's close; a leading partial day is left out), sd the sample standard deviation (n − 1), a risk-free rate of 0 and 365 periods a year. n/a with fewer than two daily returns or zero variance.</dd>
<dt>Annualised return and Calmar ratio</dt>
<dd>Annualised return = (closing ÷ opening equity)<sup>365 days ÷ window length</sup> − 1. Calmar = annualised return ÷ maximum drawdown (n/a with no drawdown).</dd>
<dt>Short windows</dt>
<dd>Annualised figures (Sharpe, annualised return, Calmar) need at least 30 days of data in the window by default (from its start, or the leader's first fill if later, to the report's time): a shorter window shows them as “n/a (window under 30 days)”, since compounding a few days to a year ranks luck, not skill. The 7-day window therefore never shows them, and a leader with less than 30 days of history shows none.</dd>
<dt>Win rate, profit factor, holding time</dt>
<dd>Over the trades closed in the window and the trades still open at the report's time (each open trade at its P&amp;L at the mark, held from its opening to the report's time, whenever it opened): win rate = trades with P&amp;L &gt; 0 ÷ all trades counted (break-even is not a win); profit factor = sum of winning trades ÷ |sum of losing trades| (∞ with no loss); average holding time = mean of close (or the report's time) − open. The columns “closed trades only” give the same figures over the closed trades alone; where they differ from the headline, an open position is moving them.</dd>
<dt>Percentages</dt>
<dd>Shown rounded half away from zero to two decimals (−5.935% shows as −5.94%); the JSON has them unrounded (to 12 places).</dd>
<dt>Followers and AUM</dt>
<dd>Followers = distinct followers subscribed to the leader. AUM = the sum of those subscriptions' allocations.</dd>
<dt>Follower P&amp;L</dt>
<dd>From the venue's fills (<code>follower_fills</code>), never from instructions: realized (average cost) + unrealized at the mark (else the latest trade, as for equity) − trading fees (a negative fee is a rebate). Funding is not in the schema and is not included.</dd>
<dt>Performance fee (high-water mark)</dt>
<dd>At the end of each settlement period, fee = rate × max(0, equity − HWM), and the HWM rises to that equity when a fee is charged. The HWM starts at the allocation, so a follower who loses and recovers pays nothing until equity passes its previous high: each unit of profit is charged once. A change of the allocation (a reload, <code>allocation_changes</code>) is capital added or withdrawn, not profit: an addition raises the HWM by its amount, a withdrawal lowers it in proportion to the equity withdrawn (the loss not yet recovered leaves with the capital that bore it). The equity is trading equity before performance fees. Each fee is split into the leader's share (fee × leader fraction) and the platform's (the rest). The running period's fee is shown as accrued, not charged.</dd>
<dt>Reconciliation and sync score</dt>
<dd>Per (subscription, symbol): target = the leader-derived target of the latest instruction; sent = the sum of what instructions sent; venue = the signed sum of the venue's fills; deviation = venue − target. A pair is in sync when |deviation| × mark is within the tolerance. A follower's sync score is the mean |deviation| × mark over its pairs, in quote currency (0 = every position on target). Reasons for an out-of-sync pair come from its instructions' status and reason codes (any status other than <code>sent</code>: <code>reduced</code>, <code>skipped</code>, <code>deferred</code>), whether the resync made the latest one, its orders' reject reasons and unfilled remainders, working orders, and the engine's own position.</dd>
<dt>Open where the leader is flat</dt>
<dd>A <code>positions</code> row with qty ≠ 0 whose leader is flat in the symbol (<code>leader_positions</code> qty 0, or no row). The count is exact: both tables are the engine's own position arithmetic replayed from the journal. The reason is rebuilt from recorded rows, since the engine's resync queue is not in SQL; the first rule that finds one gives it: (1) the pair's latest <code>out_of_sync</code> audit row, unless an instruction for the pair came after it (the leader's next fill or a person's resync); (2) else the pair's latest instruction, unless a later venue fill brought the pair to its target: an order of the pair still working (<code>order_working</code>), else its latest order that ended with a remainder (<code>reject_&lt;venue reason&gt;</code>, <code>venue_down</code>, <code>unfilled</code>: what the resync retries), else a <code>deferred</code> instruction's reason, else a resync instruction's cause; (3) else the latest <code>venue_alarm</code> or <code>venue_down</code> audit row of the venue of the pair's latest order after the pair's last fill. None found: <em>no recorded reason</em>, which the never-unhedged promise forbids. On a quiet engine the reasons are those <code>fillcast run</code> prints; while it runs, closes still on their way show as <code>order_working</code>. <em>Since seq</em> is the row that gave the reason, or for an unexplained pair the later of the leader's last fill in the symbol and the pair's last fill.</dd>
<dt>Resync, deferred, venue outages</dt>
<dd>A resync instruction is a decision the engine made by itself to bring a pair back to its target (<code>copy_instructions.resync</code> says why: <code>unfilled</code>, <code>reject_&lt;venue reason&gt;</code>, <code>order_table_full</code>, <code>venue_down</code>, <code>command</code>); it has no leader fill. A <code>deferred</code> decision was not sent yet (its venue down, or no order place) and the resync sends it later. <code>venue_limit</code>: a resync sent less after the venue refused the size. Given up: the resync stopped trying a pair (<code>out_of_sync</code> audit row); it stays off target until the leader's next fill or a person. Outages and alarms count the <code>venue_down</code> and <code>venue_alarm</code> audit rows; downtime sums the ended outages (down to the next <code>venue_up</code>) in the engine's journaled time.</dd>
<dt>Fan-out latency</dt>
<dd>The time from a leader fill entering the engine to its follower orders being handed to the gateway rings, as measured by the caller (the benchmark or the engine's histogram) and passed to the report. Percentiles are the upper bounds of the buckets that hold them.</dd>
</dl>
</section>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::days_from_civil;

    /// 2024-09-01 05:00:00 UTC and 123 ns.
    const T0: i64 = 19_967 * NS_PER_DAY + 5 * 3_600 * NS_PER_SEC + 123;

    fn labels(span_ns: i64) -> Vec<String> {
        time_ticks(T0, T0 + span_ns)
            .into_iter()
            .map(|t| t.1)
            .collect()
    }

    #[test]
    fn time_axes_label_round_instants_no_finer_than_their_step() {
        assert_eq!(T0 / NS_PER_DAY, days_from_civil(2024, 9, 1));
        let hour = 3_600 * NS_PER_SEC;
        // Weeks fall on Thursdays, the epoch's weekday.
        assert_eq!(
            labels(60 * NS_PER_DAY),
            [
                "2024-09-05",
                "2024-09-12",
                "2024-09-19",
                "2024-09-26",
                "2024-10-03",
                "2024-10-10",
                "2024-10-17",
                "2024-10-24",
                "2024-10-31"
            ]
        );
        // The date where the day changes, and only there.
        assert_eq!(
            labels(2 * NS_PER_DAY),
            [
                "09-01 06:00",
                "12:00",
                "18:00",
                "09-02 00:00",
                "06:00",
                "12:00",
                "18:00",
                "09-03 00:00"
            ]
        );
        assert_eq!(
            labels(2 * hour),
            [
                "09-01 05:15",
                "05:30",
                "05:45",
                "06:00",
                "06:15",
                "06:30",
                "06:45",
                "07:00"
            ]
        );
        assert_eq!(
            labels(5 * NS_PER_SEC),
            ["05:00:01", "05:00:02", "05:00:03", "05:00:04", "05:00:05"]
        );
        assert_eq!(
            labels(300_000_000),
            [
                "05:00:00.050",
                "05:00:00.100",
                "05:00:00.150",
                "05:00:00.200",
                "05:00:00.250",
                "05:00:00.300"
            ]
        );
        assert_eq!(
            labels(3 * 365 * NS_PER_DAY),
            ["2025-01", "2025-07", "2026-01", "2026-07", "2027-01", "2027-07"]
        );
    }

    #[test]
    fn time_axes_never_repeat_a_label_or_leave_their_span() {
        // From 1 ns to 200 years (the last instant an i64 of ns holds is in 2262).
        let mut span = 1i64;
        // Bounded: the span triples each turn.
        while span < 200 * 365 * NS_PER_DAY / 3 {
            let ticks = time_ticks(T0, T0 + span);
            assert!(ticks.len() <= TIME_TICKS_MAX, "{span} ns: {ticks:?}");
            if span >= 10_000_000 {
                assert!(ticks.len() >= 2, "{span} ns: {ticks:?}");
            }
            for w in ticks.windows(2) {
                assert!(w[0].0 < w[1].0, "{span} ns: {ticks:?}");
                assert_ne!(w[0].1, w[1].1, "{span} ns: {ticks:?}");
            }
            for (x, _) in &ticks {
                assert!(
                    *x >= T0 as f64 && *x <= (T0 + span) as f64,
                    "{span} ns: {ticks:?}"
                );
            }
            span = span * 3 + 7;
        }
    }

    /// The x axis labels of a line chart over `span_ns`: `(left, right)` in px, as
    /// wide as `text_width` says.
    fn x_label_spans(span_ns: i64) -> Vec<(f64, f64, String)> {
        let t = T0 as f64;
        let series = vec![("a".to_string(), vec![(t, 1.0), (t + span_ns as f64, 2.0)])];
        let svg = line_chart("c", &series, "y", false, "none");
        let drop = format!("y=\"{:.1}\"", H - MB + X_LABEL_DROP);
        svg.split("<text class=\"tick\" ")
            .skip(1)
            .filter(|t| t.contains(&drop))
            .map(|t| {
                let x: f64 = t[3..t[3..].find('"').unwrap() + 3].parse().unwrap();
                let label = &t[t.find('>').unwrap() + 1..t.find("</text>").unwrap()];
                let w = text_width(label, TICK_FONT_PX);
                let left = if t.contains("\"start\"") {
                    x
                } else if t.contains("\"end\"") {
                    x - w
                } else {
                    x - w / 2.0
                };
                (left, left + w, label.to_string())
            })
            .collect()
    }

    #[test]
    fn line_chart_time_labels_stay_apart_and_inside_the_figure() {
        for span in [
            1,
            40_000_000,
            3 * NS_PER_SEC,
            90 * NS_PER_SEC,
            7_000 * NS_PER_SEC,
            NS_PER_DAY + 1,
            5 * NS_PER_DAY,
            60 * NS_PER_DAY,
            400 * NS_PER_DAY,
            40 * 365 * NS_PER_DAY,
        ] {
            let spans = x_label_spans(span);
            assert!(spans.len() >= 2, "{span} ns: {spans:?}");
            for w in spans.windows(2) {
                assert!(
                    w[0].1 + TICK_FONT_PX * 0.5 <= w[1].0,
                    "{span} ns: {:?} and {:?} overlap",
                    w[0],
                    w[1]
                );
            }
            assert!(
                spans[0].0 >= 0.0 && spans[spans.len() - 1].1 <= W,
                "{span} ns: {spans:?}"
            );
        }
    }

    #[test]
    fn the_stylesheet_sets_the_tick_font_the_layout_measures_with() {
        assert!(CSS.contains(&format!(
            "svg .tick, svg .legend, svg .ytitle {{ font-size: {TICK_FONT_PX}px;"
        )));
    }

    #[test]
    fn wide_y_labels_widen_the_left_margin() {
        let narrow = plot_area(
            &[(0.0, "10".into())],
            Scale::Linear { lo: 0.0, hi: 1.0 },
            Scale::Linear { lo: 0.0, hi: 1.0 },
        );
        assert_eq!(narrow.left, ML);
        let wide = "-100.0000001".to_string();
        let p = plot_area(
            &[(0.0, wide.clone())],
            Scale::Linear { lo: 0.0, hi: 1.0 },
            Scale::Linear { lo: 0.0, hi: 1.0 },
        );
        assert!(
            p.left - p.y_label_gap - text_width(&wide, TICK_FONT_PX)
                >= Y_TITLE_X + TICK_FONT_PX / 2.0
        );
        assert!((p.left + p.width + MR - W).abs() < 1e-9);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(5_000), "5,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn regression_a_line_whose_points_share_one_nanosecond_stamp_drew_nan() {
        let t = 1_733_443_200_000_000_000.0;
        let series = vec![("equity".to_string(), vec![(t, 100.0), (t, 101.0)])];
        let svg = line_chart("c", &series, "equity", false, "no data");
        assert!(svg.contains("<path"), "{svg}");
        assert!(!svg.contains("NaN"), "{svg}");
    }
}
