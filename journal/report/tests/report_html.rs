//! The HTML report: one self-contained page whose four charts hold drawn data, and
//! which headless Chromium renders with those charts in its DOM.
//!
//! The database is generated here (the sidecar's public schema, three leaders, 40
//! followers trading and 80 who joined after the last fill, 60 days of hourly
//! marks) from a fixed seed, so the page looks like a real one, with more followers
//! than one page of the followers table. Set `FILLCAST_REPORT_OUT=/path/report.html` to keep the page (and then
//! check it with `scripts/check-report.sh /path/report.html`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fillcast_report as report;
use fillcast_report::time::{days_from_civil, NS_PER_DAY};
use fillcast_report::Report;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;

const CHARTS: [&str; 4] = [
    "chart-equity",
    "chart-drawdown",
    "chart-pnl",
    "chart-latency",
];
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
/// Followers in the generated database: more than a page of the followers table.
const FOLLOWERS: usize = 120;
/// Rows of the followers table in view at a time (`html::FOLLOWERS_PAGE_ROWS`).
const PAGE_ROWS: usize = 50;

const SCHEMA: &str = include_str!("report_schema.sql");

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dec(x: f64, dp: u32) -> Decimal {
    Decimal::from_f64_retain(x)
        .unwrap()
        .round_dp(dp)
        .normalize()
}

/// 60 days, two symbols with hourly marks (random walks), three leaders trading
/// every few hours, 40 followers copying them with some skips, reductions and
/// rejects, and `FOLLOWERS - 40` more who subscribed after the last fill.
fn populate(c: &mut Connection) {
    let t0 = days_from_civil(2024, 9, 1) * NS_PER_DAY;
    let hour = NS_PER_DAY / 24;
    let hours = 60 * 24;
    let mut rng = Rng(42);
    let tx = c.transaction().unwrap();
    tx.execute_batch(SCHEMA).unwrap();

    let symbols = [("BTCUSDT", 60_000.0, 2u32), ("ETHUSDT", 2_500.0, 2u32)];
    let mut paths: Vec<Vec<f64>> = Vec::new();
    for (s, p0, dp) in symbols {
        let mut p = p0;
        let mut path = Vec::with_capacity(hours);
        for h in 0..hours {
            p *= 1.0 + (rng.unit() - 0.5) * 0.012;
            path.push(p);
            tx.execute(
                "INSERT INTO mark_prices VALUES (?1, ?2, ?3)",
                params![s, t0 + h as i64 * hour, dec(p, dp).to_string()],
            )
            .unwrap();
        }
        paths.push(path);
    }

    let leaders = [
        ("alpha", 250_000.0),
        ("beta", 100_000.0),
        ("gamma", 40_000.0),
    ];
    for (l, e) in leaders {
        tx.execute(
            "INSERT INTO leaders VALUES (?1, ?2)",
            params![l, e.to_string()],
        )
        .unwrap();
    }
    // Followers: id, leader index, allocation, ratio of the leader's position.
    let mut subs = Vec::new();
    for k in 0..40usize {
        let f = format!("F{:03}", k + 1);
        let li = k % 3;
        let alloc = (1_000 + rng.below(20) * 500) as f64;
        let ratio = alloc / leaders[li].1;
        tx.execute(
            "INSERT INTO followers VALUES (?1, ?2)",
            params![f, alloc.to_string()],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO subscriptions VALUES (?1, ?2, ?3, 'proportional', ?4)",
            params![
                format!("S{:03}", k + 1),
                f,
                leaders[li].0,
                alloc.to_string()
            ],
        )
        .unwrap();
        subs.push((format!("S{:03}", k + 1), f, li, ratio, [0.0f64; 2]));
    }

    let (mut lseq, mut iseq, mut oseq, mut fseq) = (0i64, 0i64, 0i64, 0i64);
    let mut pos = [[0.0f64; 2]; 3];
    for h in (3..hours).step_by(3) {
        for (li, (leader, equity)) in leaders.iter().enumerate() {
            if rng.unit() < 0.55 {
                continue;
            }
            let si = rng.below(2) as usize;
            let price = paths[si][h];
            let notional = equity * (0.05 + rng.unit() * 0.25);
            let unit = notional / price;
            let p = pos[li][si];
            let delta = if p == 0.0 {
                if rng.unit() < 0.55 {
                    unit
                } else {
                    -unit
                }
            } else if rng.unit() < 0.35 {
                -p
            } else if rng.unit() < 0.5 {
                p.signum() * unit * 0.5
            } else {
                -p * 0.5
            };
            let delta = (delta * 1000.0).round() / 1000.0;
            if delta == 0.0 {
                continue;
            }
            let after = ((p + delta) * 1000.0).round() / 1000.0;
            pos[li][si] = after;
            lseq += 1;
            let ts = t0 + h as i64 * hour + rng.below(3_000_000_000) as i64;
            let side = if delta > 0.0 { "buy" } else { "sell" };
            tx.execute(
                "INSERT INTO leader_fills VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?6, ?10, ?11, '')",
                params![
                    lseq,
                    leader,
                    format!("e{lseq}"),
                    symbols[si].0,
                    side,
                    dec(delta.abs(), 3).to_string(),
                    dec(price, 2).to_string(),
                    dec(after, 3).to_string(),
                    format!("o{lseq}"),
                    ts,
                    ts + 20_000 + rng.below(40_000) as i64
                ],
            )
            .unwrap();
            for (sub, f, sli, ratio, fpos) in subs.iter_mut() {
                let (sub, f) = (sub.as_str(), f.as_str());
                if *sli != li {
                    continue;
                }
                let target = (after * *ratio * 10_000.0).trunc() / 10_000.0;
                let want = ((target - fpos[si]) * 10_000.0).round() / 10_000.0;
                let roll = rng.unit();
                let (status, reason, sent) = if want == 0.0 {
                    ("skipped", "no_change", 0.0)
                } else if want.abs() * price < 5.0 && target != 0.0 {
                    ("skipped", "below_min", 0.0)
                } else if roll < 0.04 && want.signum() == target.signum() {
                    let cut = (want * 5_000.0).trunc() / 10_000.0;
                    ("reduced", "max_position", cut)
                } else {
                    ("sent", "", want)
                };
                iseq += 1;
                tx.execute(
                    "INSERT INTO copy_instructions VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, '')",
                    params![
                        iseq,
                        lseq,
                        format!("e{lseq}"),
                        sub,
                        f,
                        leader,
                        symbols[si].0,
                        dec(target, 4).to_string(),
                        dec(want, 4).to_string(),
                        dec(sent, 4).to_string(),
                        status,
                        reason
                    ],
                )
                .unwrap();
                if sent == 0.0 {
                    continue;
                }
                oseq += 1;
                let oside = if sent > 0.0 { "buy" } else { "sell" };
                let rejected = rng.unit() < 0.02 && target != 0.0;
                let coid = format!("fc-{oseq}");
                let qty = dec(sent.abs(), 4).to_string();
                tx.execute(
                    "INSERT INTO follower_orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'sim', ?8, ?9, ?10, ?11, 'ioc', ?12, ?13, ?14, ?15)",
                    params![
                        coid,
                        oseq,
                        iseq,
                        format!("e{lseq}"),
                        sub,
                        f,
                        leader,
                        symbols[si].0,
                        oside,
                        qty,
                        dec(price * (1.0 + 0.001 * sent.signum()), 2).to_string(),
                        i64::from(sent.abs() < fpos[si].abs() && sent.signum() != fpos[si].signum()),
                        if rejected { "rejected" } else { "filled" },
                        if rejected { "0".to_string() } else { qty.clone() },
                        if rejected { Some("insufficient_margin") } else { None }
                    ],
                )
                .unwrap();
                if rejected {
                    continue;
                }
                fseq += 1;
                let fill_price = price * (1.0 + (rng.unit() - 0.5) * 0.0004);
                tx.execute(
                    "INSERT INTO follower_fills VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        coid,
                        format!("t{fseq}"),
                        fseq,
                        f,
                        sub,
                        symbols[si].0,
                        oside,
                        qty,
                        dec(fill_price, 2).to_string(),
                        dec(sent.abs() * fill_price * 0.0004, 6).to_string(),
                        ts + 150_000
                    ],
                )
                .unwrap();
                fpos[si] = ((fpos[si] + sent) * 10_000.0).round() / 10_000.0;
            }
        }
    }
    tx.execute(
        "INSERT INTO audit_log VALUES (1, ?1, 'command', 'F007', 'pause', 'paused by ops <on call>')",
        [t0 + 10 * NS_PER_DAY],
    )
    .unwrap();

    // Never unhedged: the leaders' and the followers' positions, and the first two
    // followers of a leader that ends flat in a symbol left holding 0.01 of it,
    // one given up by the resync after two rejected catch-ups, one with no record.
    for (li, (leader, _)) in leaders.iter().enumerate() {
        for (si, (sym, _, _)) in symbols.iter().enumerate() {
            tx.execute(
                "INSERT INTO leader_positions VALUES (?1, ?2, ?3, ?4)",
                params![leader, sym, dec(pos[li][si], 3).to_string(), lseq],
            )
            .unwrap();
        }
    }
    let (fli, fsi) = (0..3)
        .flat_map(|li| (0..2).map(move |si| (li, si)))
        .find(|(li, si)| pos[*li][*si] == 0.0)
        .expect("a leader flat in a symbol at the end");
    let mut left = 0;
    for (sub, f, li, _, fpos) in &subs {
        for (si, (sym, _, _)) in symbols.iter().enumerate() {
            let mut q = fpos[si];
            if (*li, si) == (fli, fsi) && q == 0.0 && left < 2 {
                q = 0.01;
                left += 1;
                if left == 1 {
                    for _ in 0..2 {
                        iseq += 1;
                        tx.execute(
                            "INSERT INTO copy_instructions VALUES (?1, NULL, ?2, ?3, ?4, ?5, ?6, '0', '-0.01', '-0.01', 'sent', '', 1, 'reject_insufficient_margin')",
                            params![iseq, format!("r{iseq}"), sub, f, leaders[fli].0, sym],
                        )
                        .unwrap();
                        oseq += 1;
                        tx.execute(
                            "INSERT INTO follower_orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'sim', ?8, 'sell', '0.01', '1', 'market', 1, 'rejected', '0', 'insufficient_margin')",
                            params![format!("fc-{oseq}"), oseq, iseq, format!("r{iseq}"), sub, f, leaders[fli].0, sym],
                        )
                        .unwrap();
                    }
                    tx.execute(
                        "INSERT INTO audit_log VALUES (?1, ?2, 'out_of_sync', ?3, 'reject_insufficient_margin', ?4)",
                        params![iseq + 1, t0 + 59 * NS_PER_DAY, sub, sym],
                    )
                    .unwrap();
                }
            }
            tx.execute(
                "INSERT INTO positions VALUES (?1, ?2, ?3, ?4, ?5, NULL, '0', 0)",
                params![sub, sym, f, leaders[*li].0, dec(q, 4).to_string()],
            )
            .unwrap();
        }
    }
    // Joined after the last fill: nothing copied yet. Added last, so that the
    // random draws of the 40 above (and every figure of theirs) stay as they were.
    for k in subs.len()..FOLLOWERS {
        let (f, li) = (format!("F{:03}", k + 1), k % 3);
        tx.execute("INSERT INTO followers VALUES (?1, '2500')", params![f])
            .unwrap();
        tx.execute(
            "INSERT INTO subscriptions VALUES (?1, ?2, ?3, 'proportional', '2500')",
            params![format!("S{:03}", k + 1), f, leaders[li].0],
        )
        .unwrap();
    }
    tx.execute_batch(&format!(
        "INSERT INTO audit_log VALUES (2, {d}, 'venue_down', 'sim', 'venue_down', ''),
           (3, {a}, 'venue_alarm', 'sim', 'venue_down', 'down 10000 ms'),
           (4, {u}, 'venue_up', 'sim', 'reconnected', '');",
        d = t0 + 20 * NS_PER_DAY,
        a = t0 + 20 * NS_PER_DAY + 10_000_000_000,
        u = t0 + 20 * NS_PER_DAY + 42_000_000_000,
    ))
    .unwrap();
    tx.commit().unwrap();
}

fn latency() -> Vec<(u64, u64)> {
    // A log-spaced histogram with a tail, as the bench would pass it.
    let mut v = Vec::new();
    let mut ub = 4_000u64;
    let mut rng = Rng(7);
    while ub <= 200_000 {
        let x = ub as f64 / 1_000.0;
        let n = (4_000.0 * (-(x.ln() - 20f64.ln()).powi(2) / 0.3).exp()) as u64 + rng.below(3);
        v.push((ub, n));
        ub = ub * 5 / 4;
    }
    v
}

fn report() -> Report {
    let mut c = Connection::open_in_memory().unwrap();
    populate(&mut c);
    let r = report::build(&c).unwrap().with_latency(latency());
    if let Ok(out) = std::env::var("FILLCAST_REPORT_OUT") {
        std::fs::write(&out, r.to_html()).unwrap();
        std::fs::write(
            format!("{out}.json"),
            serde_json::to_string_pretty(&r.to_json()).unwrap(),
        )
        .unwrap();
        println!("wrote {out}");
    }
    r
}

/// The text of `<svg id="{id}" …>…</svg>` in `html`.
fn svg<'a>(html: &'a str, id: &str) -> Option<&'a str> {
    let start = html.find(&format!("<svg id=\"{id}\""))?;
    let len = html[start..].find("</svg>")?;
    Some(&html[start..start + len])
}

/// Data elements drawn in a chart: paths with a non-empty `d`, rects with a height.
fn drawn(svg: &str) -> usize {
    let paths = svg.matches("<path class=\"data").filter(|_| true).count();
    let rects = svg.matches("<rect class=\"data").count();
    if paths > 0 {
        assert!(svg.contains(" d=\"M"), "a data path without coordinates");
    }
    paths + rects
}

#[test]
fn the_page_is_self_contained() {
    let html = report().to_html();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for banned in [
        "http",
        "src=",
        "@import",
        "url(",
        "<link",
        "<img",
        "<iframe",
        "fetch(",
        "XMLHttpRequest",
        "WebSocket",
        "EventSource",
        "sendBeacon",
        "import(",
    ] {
        assert!(!html.contains(banned), "the page contains {banned:?}");
    }
    // One script, inline (the leaderboard's filters and sorting).
    assert_eq!(html.matches("<script").count(), 1);
    assert_eq!(html.matches("<script>").count(), 1);
    assert!(html.contains("<style>"));
    assert!(html.contains("id=\"definitions\""));
    for term in [
        "Maximum drawdown",
        "Sharpe ratio",
        "Equity",
        "high-water mark",
        "sync score",
        "Open where the leader is flat",
        "Resync, deferred, venue outages",
    ] {
        assert!(html.contains(term), "the definitions lack {term:?}");
    }
    // Text from the database is escaped.
    assert!(html.contains("paused by ops &lt;on call&gt;"));
}

#[test]
fn the_four_charts_hold_drawn_data() {
    let r = report();
    assert_eq!(r.leaders.len(), 3);
    assert_eq!(r.followers.len(), FOLLOWERS);
    assert!(r.activity.leader_fills > 100);
    let html = r.to_html();
    for id in CHARTS {
        let s = svg(&html, id).unwrap_or_else(|| panic!("no <svg id={id:?}>"));
        assert!(drawn(s) > 0, "{id} draws nothing");
    }
    let eq = svg(&html, "chart-equity").unwrap();
    // One line per leader.
    assert_eq!(eq.matches("<path class=\"data line\"").count(), 3);
    let lat = svg(&html, "chart-latency").unwrap();
    assert!(lat.matches("<rect class=\"data bar\"").count() >= 10);
    assert!(drawn(svg(&html, "chart-sync").unwrap()) > 0);
}

#[test]
fn the_page_lists_positions_open_where_the_leader_is_flat_and_the_resync_work() {
    let r = report();
    let o = &r.reconciliation.open_where_leader_flat;
    assert_eq!((o.count(), o.unexplained), (2, 1));
    assert_eq!(
        o.by_reason,
        vec![("reject_insufficient_margin".to_string(), 1)]
    );
    assert_eq!(r.activity.resync.instructions, 2);
    assert_eq!(r.activity.venues[0].downtime_ns, 42_000_000_000);
    let html = r.to_html();
    for want in [
        "<h3 id=\"open-where-leader-flat\">",
        "<b>1 with no recorded reason</b>",
        "<table id=\"open-where-leader-flat-rows\" class=\"sortable\">",
        "<td class=\"neg\">no recorded reason</td>",
        "<td>reject_insufficient_margin</td><td>out_of_sync</td>",
        "<h3 id=\"resync\">Resync and venue outages</h3><p>2 resync instruction(s) → 2 order(s)",
        "<table id=\"venue-links\" class=\"sortable\">",
        "<td>sim</td><td class=\"n\" data-v=\"1\">1</td><td class=\"n\" data-v=\"42000000000\">42s</td><td class=\"n\" data-v=\"1\">1</td>",
    ] {
        assert!(html.contains(want), "{want:?} not in the page");
    }
}

#[test]
fn an_empty_report_still_has_every_chart_and_says_why() {
    let c = Connection::open_in_memory().unwrap();
    let html = report::build(&c).unwrap().to_html();
    for id in CHARTS {
        let s = svg(&html, id).unwrap_or_else(|| panic!("no <svg id={id:?}>"));
        assert_eq!(drawn(s), 0);
        assert!(s.contains("no "), "{s}");
    }
    assert!(html.contains("nothing to measure"));
}

/// Runs chromium with `args` and a 90 s limit; returns its stdout.
pub(crate) fn chromium(args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

#[test]
fn headless_chromium_renders_the_charts() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium not installed and CI is set: run scripts/install-chromium.sh");
        }
        println!("skipped: chromium not installed (scripts/install-chromium.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, report().to_html()).unwrap();
    let dom = chromium(&["--dump-dom", &format!("file://{}", page.display())]);
    assert!(
        dom.contains("fillcast report"),
        "chromium returned no page: {dom:.200}"
    );
    for id in CHARTS {
        let s = svg(&dom, id).unwrap_or_else(|| panic!("rendered DOM has no svg {id}"));
        assert!(
            drawn(s) > 0,
            "{id} has no drawn element in the rendered DOM"
        );
    }
    for id in ["open-where-leader-flat-rows", "venue-links"] {
        assert!(
            dom.contains(&format!("<table id=\"{id}\" class=\"sortable\">")),
            "rendered DOM has no table {id}"
        );
    }
}

/// The value of attribute `name` in the tag `tag` (`<td class="n" data-v="1">`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Whether the tag has the boolean attribute `name` (`hidden`, or `hidden=""` as
/// Chromium writes it).
fn has(tag: &str, name: &str) -> bool {
    tag.trim_end_matches('>')
        .split_whitespace()
        .any(|w| w == name || w.starts_with(&format!("{name}=")))
}

/// `html` without its tags, entities of the page decoded.
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// A table of a page, as the page's script sees it: its opening tag, the key of
/// each column (from the `data-key` of the header cell over it, through rowspans
/// and colspans), and its body rows: each row's opening tag and its cells'
/// opening tags and text.
struct Table<'a> {
    open: &'a str,
    keys: Vec<Option<String>>,
    rows: Vec<(&'a str, Vec<(&'a str, String)>)>,
}

/// Every `<table>` of `html` (tables in the page are not nested).
fn tables(html: &str) -> Vec<Table<'_>> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<table") {
        let end = start + rest[start..].find("</table>").expect("a closed table");
        let t = &rest[start..end];
        let open = &t[..=t.find('>').unwrap()];
        let (head, body) = match (t.find("<thead>"), t.find("</thead>")) {
            (Some(a), Some(b)) => (&t[a..b], &t[b..]),
            _ => ("", t),
        };
        // Which cells of the grid earlier header rows already fill.
        let mut taken: Vec<Vec<bool>> = Vec::new();
        let mut keys: Vec<Option<String>> = Vec::new();
        for (r, row) in head.split("<tr").skip(1).enumerate() {
            let mut c = 0;
            for th in row.split("<th").skip(1) {
                let tag = &th[..=th.find('>').unwrap()];
                while taken
                    .get(r)
                    .and_then(|x| x.get(c))
                    .copied()
                    .unwrap_or(false)
                {
                    c += 1;
                }
                let span = |name: &str| attr(tag, name).map_or(1, |v| v.parse::<usize>().unwrap());
                let (rows, cols) = (span("rowspan"), span("colspan"));
                for i in r..r + rows {
                    taken.resize(taken.len().max(i + 1), Vec::new());
                    let width = taken[i].len().max(c + cols);
                    taken[i].resize(width, false);
                    taken[i][c..c + cols].fill(true);
                }
                if cols == 1 {
                    keys.resize(keys.len().max(c + 1), None);
                    if let Some(k) = attr(tag, "data-key") {
                        keys[c] = Some(k.to_string());
                    }
                }
                c += cols;
            }
        }
        let rows = body
            .split("<tr")
            .skip(1)
            .map(|row| {
                let tag = &row[..=row.find('>').unwrap()];
                let cells = row
                    .split("<td")
                    .skip(1)
                    .map(|td| {
                        let close = td.find('>').unwrap();
                        let inner = &td[close + 1..td.find("</td>").unwrap_or(td.len())];
                        (&td[..=close], text_of(inner))
                    })
                    .collect();
                (tag, cells)
            })
            .collect();
        out.push(Table { open, keys, rows });
        rest = &rest[end..];
    }
    out
}

fn table<'a>(html: &'a str, id: &str) -> Table<'a> {
    tables(html)
        .into_iter()
        .find(|t| attr(t.open, "id") == Some(id))
        .unwrap_or_else(|| panic!("no table {id}"))
}

fn sortable(t: &Table) -> bool {
    attr(t.open, "class").is_some_and(|c| c.split(' ').any(|c| c == "sortable"))
}

/// What a numeric cell shows when it has no value to sort by.
const NO_VALUE: [&str; 3] = ["n/a", "not recorded", ""];

/// Whether a cell showing `text` shows the number `v`: money and quantities to
/// their last shown decimal, percentages of a fraction, ∞, durations.
fn shows(text: &str, v: f64) -> bool {
    let near = |a: f64, b: f64, shown: &str| {
        let dp = shown.split('.').nth(1).map_or(0, |d| d.len()) as i32;
        (a - b).abs() <= 0.5 * 10f64.powi(-dp) + 1e-9 * b.abs().max(1.0)
    };
    if text == "∞" {
        return v == f64::INFINITY;
    }
    if let Some(p) = text.strip_suffix('%') {
        return p
            .parse::<f64>()
            .is_ok_and(|p| near(p, v * 100.0, text.trim_end_matches('%')));
    }
    if let Ok(x) = text.parse::<f64>() {
        return near(x, v, text);
    }
    v.fract() == 0.0 && report::time::format_duration(v as i64) == text
}

#[test]
fn every_number_in_a_sortable_table_carries_the_value_it_shows() {
    let html = report().to_html();
    let all = tables(&html);
    let ids: Vec<&str> = all
        .iter()
        .filter(|t| sortable(t))
        .filter_map(|t| attr(t.open, "id"))
        .collect();
    for id in [
        "leaders-table",
        "leaders-capital",
        "followers-table",
        "open-where-leader-flat-rows",
        "venue-links",
        "audit",
    ] {
        assert!(ids.contains(&id), "table {id} is not sortable: {ids:?}");
    }
    let mut checked = 0;
    for t in all.iter().filter(|t| sortable(t)) {
        let name = attr(t.open, "id").unwrap_or("(small)");
        let keys: Vec<&String> = t.keys.iter().flatten().collect();
        assert!(!keys.is_empty(), "{name}: no column to sort by");
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{name}: a column key twice");
        for (row, cells) in &t.rows {
            assert_eq!(
                cells.len(),
                t.keys.len(),
                "{name}: {row} has {} cells",
                cells.len()
            );
            for ((td, text), key) in cells.iter().zip(&t.keys) {
                if !attr(td, "class").is_some_and(|c| c == "n" || c.starts_with("n ")) {
                    assert!(attr(td, "data-v").is_none(), "{name}: {td} is not numeric");
                    continue;
                }
                let key = key
                    .as_deref()
                    .unwrap_or_else(|| panic!("{name}: a numeric column without a key"));
                let value = attr(td, "data-v").or_else(|| attr(row, &format!("data-{key}")));
                match value {
                    None => assert!(
                        NO_VALUE.contains(&text.as_str()) || text.starts_with("n/a ("),
                        "{name}: {key} {text:?} has no data-v in {row}{td}"
                    ),
                    Some(v) => {
                        let x: f64 = v.parse().unwrap_or_else(|_| {
                            panic!("{name}: {key}: data-v {v:?} is not a number")
                        });
                        assert!(!x.is_nan(), "{name}: {key}: data-v {v:?}");
                        assert!(
                            shows(text, x),
                            "{name}: {key} shows {text:?} but sorts by {v}"
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    // 120 followers × 7 figures (funding is not recorded), 12 leader windows × up
    // to 14, and the rest.
    assert!(
        checked > FOLLOWERS * 7 + 12 * 10,
        "{checked} numbers checked"
    );
}

#[test]
fn the_followers_table_holds_every_follower_with_the_first_page_in_view() {
    let r = report();
    let html = r.to_html();
    let t = table(&html, "followers-table");
    assert_eq!(attr(t.open, "data-page-rows"), Some("50"));
    assert_eq!(t.rows.len(), FOLLOWERS);
    let ids: Vec<&str> = t.rows.iter().map(|(_, c)| c[0].1.as_str()).collect();
    let want: Vec<&str> = r.followers.iter().map(|f| f.follower_id.as_str()).collect();
    assert_eq!(ids, want);
    // Without scripts the first page shows and the note says why no more does.
    for (k, (tr, _)) in t.rows.iter().enumerate() {
        assert_eq!(has(tr, "hidden"), k >= PAGE_ROWS, "row {k}: {tr}");
    }
    assert!(html.contains("<p class=\"nojs\">Without scripts this table shows rows 1–50 of 120: paging, sorting and filtering need JavaScript"));
    assert!(html.contains("All 120 followers; 50 to a page."));
    assert!(html.contains("at most 5,000, the first by id"));
    assert!(!html.contains("followers; the JSON has all"));
}

#[test]
fn a_page_holds_at_most_5000_followers_and_says_so() {
    let mut c = Connection::open_in_memory().unwrap();
    let tx = c.transaction().unwrap();
    tx.execute_batch(SCHEMA).unwrap();
    tx.execute("INSERT INTO leaders VALUES ('L', '100000')", [])
        .unwrap();
    for k in 0..5_001 {
        tx.execute(
            "INSERT INTO followers VALUES (?1, '100')",
            params![format!("F{k:05}")],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO subscriptions VALUES (?1, ?2, 'L', 'proportional', '100')",
            params![format!("S{k:05}"), format!("F{k:05}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let r = report::build(&c).unwrap();
    assert_eq!(r.followers.len(), 5_001);
    let html = r.to_html();
    let t = table(&html, "followers-table");
    assert_eq!(t.rows.len(), 5_000);
    assert_eq!(t.rows.last().unwrap().1[0].1, "F04999");
    assert_eq!(
        t.rows.iter().filter(|(tr, _)| !has(tr, "hidden")).count(),
        PAGE_ROWS
    );
    assert!(html.contains("The first 5000 of 5001 followers by id; 50 to a page."));
    assert!(
        html.contains("<p class=\"note\">showing 5000 of 5001 followers; the JSON has all.</p>")
    );
    assert!(html.contains("rows 1–50 of 5000: paging, sorting and filtering need JavaScript"));
}

#[test]
fn the_page_has_one_inline_script_that_asks_nothing_of_the_network() {
    let html = report().to_html();
    assert_eq!(html.matches("<script").count(), 1);
    let start = html.find("<script>").unwrap() + "<script>".len();
    let script = &html[start..start + html[start..].find("</script>").unwrap()];
    for banned in [
        "http",
        "src",
        "fetch",
        "XMLHttpRequest",
        "WebSocket",
        "EventSource",
        "sendBeacon",
        "import",
        "open(",
        "location.href",
        "location.assign",
        "document.write",
        "eval(",
        "Function(",
        "setTimeout",
        "setInterval",
        "postMessage",
        "localStorage",
        "cookie",
    ] {
        assert!(!script.contains(banned), "the script contains {banned:?}");
    }
    // It reads the location only for the view a link asks for.
    assert_eq!(script.matches("location").count(), 1, "{script}");
    assert!(script.contains("location.hash"));
}

/// The tick labels of the chart `id` in `html`: `(x, y, anchor, text)`.
fn tick_labels(html: &str, id: &str) -> Vec<(f64, f64, String, String)> {
    let s = svg(html, id).unwrap_or_else(|| panic!("no svg {id}"));
    s.split("<text class=\"tick\"")
        .skip(1)
        .map(|t| {
            let tag = &t[..=t.find('>').unwrap()];
            let num = |n: &str| attr(tag, n).unwrap().parse::<f64>().unwrap();
            let text = text_of(&t[tag.len()..t.find("</text>").unwrap()]);
            (
                num("x"),
                num("y"),
                attr(tag, "text-anchor").unwrap_or("start").to_string(),
                text,
            )
        })
        .collect()
}

#[test]
fn chart_labels_are_12_px_distinct_inside_their_chart_and_never_overlap() {
    let html = report().to_html();
    assert!(html.contains("svg .tick, svg .legend, svg .ytitle { font-size: 12px;"));
    const FONT_PX: f64 = 12.0;
    for id in CHARTS.iter().chain(&["chart-sync"]) {
        let labels = tick_labels(&html, id);
        assert!(labels.len() >= 4, "{id}: {labels:?}");
        // Rows of labels: the x axis' row (one y) and the y axis' column.
        let mut rows: Vec<f64> = labels.iter().map(|l| l.1).collect();
        rows.sort_by(f64::total_cmp);
        rows.dedup();
        let x_row = *rows.last().unwrap();
        let mut spans: Vec<(f64, f64, &str)> = labels
            .iter()
            .filter(|l| l.1 == x_row)
            .map(|(x, _, anchor, text)| {
                let w = report::chart::text_width(text, FONT_PX);
                let left = match anchor.as_str() {
                    "middle" => x - w / 2.0,
                    "end" => x - w,
                    _ => *x,
                };
                (left, left + w, text.as_str())
            })
            .collect();
        assert!(spans.len() >= 2, "{id}: x axis {spans:?}");
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "{id}: {:?} overlaps {:?}", w[0], w[1]);
            assert_ne!(w[0].2, w[1].2, "{id}: the label {:?} twice", w[0].2);
        }
        assert!(
            spans[0].0 >= 0.0 && spans.last().unwrap().1 <= 920.0,
            "{id}: {spans:?}"
        );
        // The y labels: a line of text apart, clear of the axis' title.
        let ys: Vec<&(f64, f64, String, String)> = labels.iter().filter(|l| l.1 != x_row).collect();
        for w in ys.windows(2) {
            assert!((w[0].1 - w[1].1).abs() >= FONT_PX * 1.2, "{id}: {w:?}");
        }
        for (x, _, anchor, text) in ys {
            assert_eq!(anchor, "end");
            let left = x - report::chart::text_width(text, FONT_PX);
            assert!(
                left >= 14.0 + FONT_PX / 2.0,
                "{id}: {text:?} reaches the axis title"
            );
        }
    }
}

/// The followers table as headless Chromium shows it after the page's script
/// applied `hash`: its row count line, and the follower ids of the rows in view,
/// in their order on screen. `None` without Chromium.
fn followers_in_chromium(html: &str, hash: &str) -> Option<(String, Vec<String>)> {
    if !Path::new(CHROMIUM).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium not installed and CI is set: run scripts/install-chromium.sh"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let dom = chromium(&["--dump-dom", &format!("file://{}{hash}", page.display())]);
    let t = table(&dom, "followers-table");
    let at = dom.find("<table id=\"followers-table\"").unwrap();
    let tools = &dom[dom[..at]
        .rfind("<div class=\"tools\">")
        .expect("no tools: the script did not run")..at];
    let status = text_of(&tools[tools.find("<span class=\"rows\"").unwrap()..]);
    let status = status
        .trim_start_matches("‹ previous")
        .trim_end_matches("next ›")
        .to_string();
    let shown = t
        .rows
        .iter()
        .filter(|(tr, _)| !has(tr, "hidden"))
        .map(|(_, cells)| cells[0].1.clone())
        .collect();
    Some((status, shown))
}

#[test]
fn headless_chromium_pages_sorts_and_filters_the_followers() {
    let r = report();
    let html = r.to_html();
    let Some((status, shown)) = followers_in_chromium(&html, "") else {
        println!("skipped: chromium not installed (scripts/install-chromium.sh)");
        return;
    };
    let ids: Vec<String> = r.followers.iter().map(|f| f.follower_id.clone()).collect();
    assert_eq!(status, "rows 1–50 of 120");
    assert_eq!(shown, ids[..PAGE_ROWS]);

    let (status, shown) = followers_in_chromium(&html, "#followers-table?page=3").unwrap();
    assert_eq!(status, "rows 101–120 of 120");
    assert_eq!(shown, ids[100..]);

    // Sorted by net P&L over every follower, not one page: ties (the 80 who have not
    // traded) in the page's order.
    let mut by_net: Vec<&report::FollowerReport> = r.followers.iter().collect();
    by_net.sort_by_key(|f| f.net_pnl);
    let up: Vec<String> = by_net.iter().map(|f| f.follower_id.clone()).collect();
    let (status, shown) =
        followers_in_chromium(&html, "#followers-table?sort=net:asc&page=2").unwrap();
    assert_eq!(status, "rows 51–100 of 120");
    assert_eq!(shown, up[50..100]);

    // Filtered (case aside) to the followers of alpha, the highest net P&L first.
    let mut down: Vec<&report::FollowerReport> = r.followers.iter().collect();
    down.sort_by_key(|f| std::cmp::Reverse(f.net_pnl));
    let alpha: Vec<String> = down
        .iter()
        .filter(|f| f.subscriptions.iter().any(|s| s.leader_id == "alpha"))
        .map(|f| f.follower_id.clone())
        .collect();
    assert_eq!(alpha.len(), 40);
    let (status, shown) =
        followers_in_chromium(&html, "#followers-table?sort=net:desc&filter=ALPHA").unwrap();
    assert_eq!(status, "rows 1–40 of 40 (filtered from 120)");
    assert_eq!(shown, alpha);
}
