//! The HTML report: one self-contained page whose four charts hold drawn data, and
//! which headless Chromium renders with those charts in its DOM.
//!
//! The database is generated here (the sidecar's public schema, three leaders, 40
//! followers, 60 days of hourly marks) from a fixed seed, so the page looks like a
//! real one. Set `FILLCAST_REPORT_OUT=/path/report.html` to keep the page (and then
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
/// rejects.
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
        let f = format!("F{:02}", k + 1);
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
                format!("S{:02}", k + 1),
                f,
                leaders[li].0,
                alloc.to_string()
            ],
        )
        .unwrap();
        subs.push((format!("S{:02}", k + 1), f, li, ratio, [0.0f64; 2]));
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
        "INSERT INTO audit_log VALUES (1, ?1, 'command', 'F07', 'pause', 'paused by ops <on call>')",
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
    assert_eq!(r.followers.len(), 40);
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
        "<table id=\"open-where-leader-flat-rows\">",
        "<td class=\"neg\">no recorded reason</td>",
        "<td>reject_insufficient_margin</td><td>out_of_sync</td>",
        "<h3 id=\"resync\">Resync and venue outages</h3><p>2 resync instruction(s) → 2 order(s)",
        "<table id=\"venue-links\">",
        "<td>sim</td><td class=\"n\">1</td><td class=\"n\">42s</td><td class=\"n\">1</td>",
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
            dom.contains(&format!("<table id=\"{id}\">")),
            "rendered DOM has no table {id}"
        );
    }
}
