//! Issue 16 end to end at the real binary: a 120-day history from 2025 replayed
//! today is reported in its own time. `fillcast run` copies it through a
//! simulated venue without costs or randomness, `fillcast sidecar` writes it to
//! SQLite, and `fillcast report --json` (without `--as-of`) must say: as of the
//! history's last venue time, follower fills stamped in 2025, 7/30/90-day windows
//! over the history's last days, annualised figures only for windows of 30 days
//! or more, and monthly high-water-mark fees per calendar month of the history.
//!
//! Every expectation is computed here from the history itself, with
//! cash accounting (`equity = capital − Σ qty × price + position × mark`), not
//! with the report's average-cost ledger, and checked against the month-end
//! figures worked out by hand in `month_end_equities_and_fees_by_hand`.

use crate::support::{fillcast_output, text, tmp};
use fillcast_sql::sidecar::rusqlite;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;

const DAY_NS: i64 = 86_400_000_000_000;
const HOUR_NS: i64 = 3_600_000_000_000;
/// 2025-01-01T00:00:00Z (`date -u -d @1735689600`).
const T0_NS: i64 = 1_735_689_600_000_000_000;
/// Days from 2025-01-01 to the 1st of each month, January to June 2025.
const MONTH_STARTS_DAYS: [i64; 6] = [0, 31, 59, 90, 120, 151];
/// Daily marks at 00:00 UTC on days 0..=120 (2025-01-01 to 2025-05-01).
const MARK_DAYS_MAX: i64 = 120;
/// The last line of the history: a mark at 2025-05-01T12:00:00Z.
const LAST_TS_NS: i64 = T0_NS + MARK_DAYS_MAX * DAY_NS + 12 * HOUR_NS;
const LAST_MARK: &str = "57000";
const FOLLOWER_RATIO: &str = "0.1";
const LEADER_CAPITAL: &str = "100000";
const FOLLOWER_ALLOCATION: &str = "10000";
const FEE_RATE: &str = "0.2";
const FEE_LEADER_SHARE: &str = "0.75";

/// The leader's trades, at 06:00 UTC of their day, at that day's mark plus an
/// offset (a trade off the mark moves equity at once): (day, signed BTC, offset).
/// Position: 1.0, 1.5, 0.8, 0 (closed), −0.5 (a short), 0, 2.0 (reopened), 1.0,
/// 1.2 (open at the end).
const TRADES: [(i64, &str, i64); 9] = [
    (2, "1.0", 25),    // open long
    (10, "0.5", -15),  // add
    (25, "-0.7", 40),  // partial close
    (45, "-0.8", -30), // close, in the drawdown
    (50, "-0.5", 10),  // open short
    (70, "0.5", -20),  // close the short at the bottom
    (75, "2.0", 5),    // reopen
    (105, "-1.0", 60), // partial close
    (115, "0.2", -45), // add, left open
];

/// One simulated venue that fills every order at once, in full, at the price it
/// copied: no spread, impact, fee, partial fill, reject or transient failure.
const CONFIG: &str = r#"
[engine]
feed_ring_slots = 1024
exec_ring_slots = 1024
egress_ring_slots = 256
max_working_orders = 4096
dedup_window = 4096

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[venues]]
name = "sim"
kind = "sim"
[venues.sim]
latency_us = 0
partial_fill_ppm = 0
reject_ppm = 0
transient_failure_ppm = 0
spread_ppm = 0
impact_ppm = 0
taker_fee_ppm = 0
seed = 1

[[sources]]
kind = "file"
path = "history.jsonl"

# The history's own equity line (100,000 at its start) is the leader's capital.
[[leaders]]
id = "L1"
equity = "250000"

[[followers]]
id = "F1"
equity = "10000"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "10000"
mode = "fixed_ratio"
ratio = "0.1"

[journal]
dir = "journal"
segment_mib = 1
"#;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_else(|_| panic!("{s:?} is not a decimal"))
}

/// The mark of day `k`: up 200 a day to day 30, down 150 a day to day 70 (the
/// drawdown), up 250 a day to day 100, down 50 a day to day 120, plus a weekly
/// wiggle so that daily returns vary.
fn mark_of_day(k: i64) -> Decimal {
    let trend = match k {
        0..=30 => 50_000 + 200 * k,
        31..=70 => 56_000 - 150 * (k - 30),
        71..=100 => 50_000 + 250 * (k - 70),
        _ => 57_500 - 50 * (k - 100),
    };
    const WIGGLE: [i64; 7] = [0, 300, -200, 100, -100, 250, -150];
    Decimal::from(trend + WIGGLE[k.rem_euclid(7) as usize])
}

/// The history as the test knows it: leader fills `(ts, signed qty, price)` and
/// marks `(ts, price)`, both in time order.
struct History {
    fills: Vec<(i64, Decimal, Decimal)>,
    marks: Vec<(i64, Decimal)>,
}

impl History {
    fn new() -> History {
        let fills = TRADES
            .iter()
            .map(|&(k, q, off)| {
                (
                    T0_NS + k * DAY_NS + 6 * HOUR_NS,
                    d(q),
                    mark_of_day(k) + Decimal::from(off),
                )
            })
            .collect();
        let mut marks: Vec<(i64, Decimal)> = (0..=MARK_DAYS_MAX)
            .map(|k| (T0_NS + k * DAY_NS, mark_of_day(k)))
            .collect();
        marks.push((LAST_TS_NS, d(LAST_MARK)));
        History { fills, marks }
    }

    /// The file source's lines in time order: the leader's equity at the start,
    /// then marks and fills.
    fn jsonl(&self) -> String {
        let mut lines: Vec<(i64, String)> = vec![(
            T0_NS,
            format!(
                r#"{{"type":"equity","leader":"L1","equity":"{LEADER_CAPITAL}","ts":{T0_NS}}}"#
            ),
        )];
        lines.extend(self.marks.iter().map(|(ts, p)| {
            (
                *ts,
                format!(r#"{{"type":"mark","symbol":"BTCUSDT","price":"{p}","ts":{ts}}}"#),
            )
        }));
        lines.extend(self.fills.iter().enumerate().map(|(i, (ts, q, p))| {
            let side = if q.is_sign_negative() { "sell" } else { "buy" };
            (
                *ts,
                format!(
                    r#"{{"leader":"L1","event_id":"h{i}","symbol":"BTCUSDT","side":"{side}","qty":"{}","price":"{p}","ts":{ts},"order_id":"o{i}","order_qty":"{}"}}"#,
                    q.abs(),
                    q.abs()
                ),
            )
        }));
        // Stable: the equity line stays before the first mark at the same instant.
        lines.sort_by_key(|l| l.0);
        lines.into_iter().map(|l| l.1 + "\n").collect()
    }

    /// The latest mark at or before `ts`.
    fn mark_at(&self, ts: i64) -> Decimal {
        self.marks
            .iter()
            .take_while(|m| m.0 <= ts)
            .last()
            .expect("a mark before every instant asked about")
            .1
    }

    /// Equity at `ts` of an account that made the leader's fills scaled by
    /// `ratio`, by cash accounting: `capital − Σ qty × price + position × mark`.
    fn equity(&self, capital: Decimal, ratio: Decimal, ts: i64) -> Decimal {
        let (cash, position) = self
            .fills
            .iter()
            .filter(|f| f.0 <= ts)
            .fold((Decimal::ZERO, Decimal::ZERO), |(c, p), f| {
                (c - f.1 * ratio * f.2, p + f.1 * ratio)
            });
        capital + cash + position * self.mark_at(ts)
    }

    fn leader_equity(&self, ts: i64) -> Decimal {
        self.equity(d(LEADER_CAPITAL), Decimal::ONE, ts)
    }

    fn follower_equity(&self, ts: i64) -> Decimal {
        self.equity(d(FOLLOWER_ALLOCATION), d(FOLLOWER_RATIO), ts)
    }

    /// The instants where the leader's equity can change: marks and fills.
    fn event_times(&self) -> Vec<i64> {
        let mut t: Vec<i64> = self
            .marks
            .iter()
            .map(|m| m.0)
            .chain(self.fills.iter().map(|f| f.0))
            .collect();
        t.sort_unstable();
        t
    }
}

/// What a window must hold, worked out from the history by the definitions of
/// README "SQL and reports" and journal/report/src/{leaders,metrics}.rs.
struct ExpectedWindow {
    label: String,
    start_ns: i64,
    end_ns: i64,
    start_equity: Decimal,
    end_equity: Decimal,
    /// Whole days in the window: Sharpe's returns.
    periods: usize,
    /// `None` for a window under 30 days.
    sharpe: Option<f64>,
    annualised: Option<f64>,
    max_drawdown: Decimal,
}

fn expected_window(h: &History, label: &str, start_ns: i64, as_of_ns: i64) -> ExpectedWindow {
    // Daily samples counted back from the end: as_of − n days, …, as_of.
    let n = (as_of_ns - start_ns) / DAY_NS;
    let samples: Vec<f64> = (0..=n)
        .rev()
        .map(|k| h.leader_equity(as_of_ns - k * DAY_NS).to_f64().unwrap())
        .collect();
    // Sharpe = mean(r) / sd(r) × √365, sd with divisor n − 1, r_i = e_i / e_{i−1} − 1.
    let returns: Vec<f64> = samples.windows(2).map(|w| w[1] / w[0] - 1.0).collect();
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (returns.len() - 1) as f64;
    let sharpe = mean / var.sqrt() * 365f64.sqrt();
    let (e0, e1) = (h.leader_equity(start_ns), h.leader_equity(as_of_ns));
    // Compound over the window's length in days (not whole days).
    let days = (as_of_ns - start_ns) as f64 / DAY_NS as f64;
    let annualised = (e1.to_f64().unwrap() / e0.to_f64().unwrap()).powf(365.0 / days) - 1.0;
    // The largest fall from a running peak over every instant of the window.
    let mut peak = e0;
    let mut max_drawdown = Decimal::ZERO;
    for t in h
        .event_times()
        .into_iter()
        .filter(|t| *t > start_ns && *t <= as_of_ns)
    {
        let e = h.leader_equity(t);
        peak = peak.max(e);
        max_drawdown = max_drawdown.max((peak - e) / peak);
    }
    let annualise = as_of_ns - start_ns >= 30 * DAY_NS;
    ExpectedWindow {
        label: label.to_string(),
        start_ns,
        end_ns: as_of_ns,
        start_equity: e0,
        end_equity: e1,
        periods: n as usize,
        sharpe: annualise.then_some(sharpe),
        annualised: annualise.then_some(annualised),
        max_drawdown,
    }
}

/// The 7/30/90-day windows and `all` of a report as of `as_of_ns`: each starts
/// N days back, or at the leader's first fill (1 ns before it) if later.
fn expected_windows(h: &History, as_of_ns: i64) -> Vec<ExpectedWindow> {
    let first = h.fills[0].0 - 1;
    let mut out: Vec<ExpectedWindow> = [7, 30, 90]
        .iter()
        .map(|n| {
            let start = (as_of_ns - n * DAY_NS).max(first);
            expected_window(h, &format!("{n}d"), start, as_of_ns)
        })
        .collect();
    out.push(expected_window(h, "all", first, as_of_ns));
    out
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: report {got}, computed {want}"
    );
}

fn json_dec(v: &Value, what: &str) -> Decimal {
    d(v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a decimal string: {v}")))
}

/// The leader's windows in the report match the history's, figure by figure.
fn check_windows(report: &Value, h: &History, as_of_ns: i64) {
    let leader = &report["leaders"][0];
    assert_eq!(leader["leader_id"], "L1");
    let windows = leader["windows"].as_array().expect("windows");
    let expected = expected_windows(h, as_of_ns);
    assert_eq!(
        windows
            .iter()
            .map(|w| w["window"].as_str().unwrap())
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|w| w.label.as_str())
            .collect::<Vec<_>>()
    );
    for (w, x) in windows.iter().zip(&expected) {
        let l = &x.label;
        assert_eq!(w["start_ns"], x.start_ns, "{l} start");
        assert_eq!(w["end_ns"], x.end_ns, "{l} end");
        assert_eq!(
            json_dec(&w["start_equity"], l),
            x.start_equity,
            "{l} start equity"
        );
        assert_eq!(
            json_dec(&w["end_equity"], l),
            x.end_equity,
            "{l} end equity"
        );
        // P&L is the mark-to-market change over the window, exactly.
        assert_eq!(
            json_dec(&w["pnl"], l),
            x.end_equity - x.start_equity,
            "{l} P&L"
        );
        let roi = (x.end_equity - x.start_equity) / x.start_equity;
        assert!(
            (json_dec(&w["roi"], l) - roi).abs() < d("1e-11"),
            "{l} ROI {} vs {roi}",
            w["roi"]
        );
        assert!(
            (json_dec(&w["max_drawdown"], l) - x.max_drawdown).abs() < d("1e-11"),
            "{l} max drawdown {} vs {}",
            w["max_drawdown"],
            x.max_drawdown
        );
        assert_eq!(w["sharpe_periods"], x.periods, "{l} Sharpe periods");
        assert_eq!(w["too_short_to_annualise"], x.sharpe.is_none(), "{l}");
        match (x.sharpe, x.annualised) {
            (Some(sharpe), Some(annualised)) => {
                close(
                    w["sharpe"].as_f64().expect("a Sharpe"),
                    sharpe,
                    &format!("{l} Sharpe"),
                );
                close(
                    w["annualised_return"]
                        .as_f64()
                        .expect("an annualised return"),
                    annualised,
                    &format!("{l} annualised return"),
                );
                let calmar = annualised / x.max_drawdown.to_f64().unwrap();
                close(
                    w["calmar"].as_f64().expect("a Calmar"),
                    calmar,
                    &format!("{l} Calmar"),
                );
            }
            _ => {
                for k in ["sharpe", "annualised_return", "calmar"] {
                    assert!(w[k].is_null(), "{l} {k} should be null: {}", w[k]);
                }
            }
        }
    }
}

/// A settlement period's (equity at its end, fee).
type PeriodFee = (Decimal, Decimal);

/// The follower's monthly fees by the high-water mark, from its equity at each
/// month's last instant (the running month: at the report's time). Returns the
/// settled periods' and the running one's, whose fee is accrued.
fn expected_fees(h: &History, as_of_ns: i64) -> (Vec<PeriodFee>, Option<PeriodFee>) {
    let rate = d(FEE_RATE);
    let mut hwm = d(FOLLOWER_ALLOCATION);
    let mut settled = Vec::new();
    for m in MONTH_STARTS_DAYS.windows(2) {
        let (start, end) = (T0_NS + m[0] * DAY_NS, T0_NS + m[1] * DAY_NS);
        if start > as_of_ns {
            break;
        }
        if end > as_of_ns {
            let e = h.follower_equity(as_of_ns);
            return (settled, Some((e, rate * (e - hwm).max(Decimal::ZERO))));
        }
        let e = h.follower_equity(end - 1);
        let fee = rate * (e - hwm).max(Decimal::ZERO);
        if fee > Decimal::ZERO {
            hwm = e;
        }
        settled.push((e, fee));
    }
    (settled, None)
}

fn check_fees(report: &Value, h: &History, as_of_ns: i64) {
    let sub = &report["followers"][0]["subscriptions"][0];
    assert_eq!(report["followers"][0]["follower_id"], "F1");
    let schedule = &sub["performance_fee"];
    let periods = schedule["periods"].as_array().expect("fee periods");
    let (settled, running) = expected_fees(h, as_of_ns);
    assert_eq!(
        periods.len(),
        settled.len() + usize::from(running.is_some()),
        "one period per calendar month: {schedule}"
    );
    for (i, p) in periods.iter().enumerate() {
        let (start, end) = (
            T0_NS + MONTH_STARTS_DAYS[i] * DAY_NS,
            T0_NS + MONTH_STARTS_DAYS[i + 1] * DAY_NS,
        );
        assert_eq!(
            (p["start_ns"].as_i64(), p["end_ns"].as_i64()),
            (Some(start), Some(end)),
            "period {i}"
        );
        let ((equity, fee), is_settled) = match settled.get(i) {
            Some(s) => (*s, true),
            None => (running.expect("the running period"), false),
        };
        assert_eq!(p["settled"], is_settled, "period {i}: {p}");
        assert_eq!(
            json_dec(&p["equity_end"], "equity_end"),
            equity,
            "period {i}: {p}"
        );
        assert_eq!(json_dec(&p["fee"], "fee"), fee, "period {i}: {p}");
    }
    let total: Decimal = settled.iter().map(|s| s.1).sum();
    assert_eq!(json_dec(&schedule["fee"], "fee"), total);
    assert_eq!(
        json_dec(&schedule["leader_share"], "leader_share"),
        total * d(FEE_LEADER_SHARE)
    );
    assert_eq!(
        json_dec(&schedule["accrued"], "accrued"),
        running.map_or(Decimal::ZERO, |r| r.1)
    );
    // The follower's P&L is the copy's, at the report's time.
    let equity = h.follower_equity(as_of_ns);
    assert_eq!(json_dec(&sub["equity"], "equity"), equity);
    assert_eq!(
        json_dec(&sub["net_pnl"], "net_pnl"),
        equity - d(FOLLOWER_ALLOCATION)
    );
}

#[test]
fn month_end_equities_and_fees_by_hand() {
    // The follower holds a tenth of the leader's position; its equity at each
    // month's last instant (the mark of the month's last day):
    //   Jan 31 (mark 55,800, hold 0.08): 10,000 − 0.1×50,225 − 0.05×52,085
    //     + 0.07×54,940 + 0.08×55,800 = 10,683.05
    //   Feb 28 (mark 51,600, short 0.05 from day 50 at 53,310): 10,610.15;
    //   Mar 31 (mark 55,000, long 0.2 from day 75 at 51,505): 11,390.15;
    //   Apr 30 (mark 56,550, long 0.12): 11,771.05;  May 1 12:00 (57,000): 11,825.05.
    // Fees at 20% over the high-water mark from 10,000:
    //   Jan 0.2 × 683.05 = 136.61 (HWM 10,683.05); Feb below it: 0;
    //   Mar 0.2 × (11,390.15 − 10,683.05) = 141.42 (HWM 11,390.15);
    //   Apr 0.2 × 380.90 = 76.18 (HWM 11,771.05); May, running: 0.2 × 54 = 10.80 accrued.
    let h = History::new();
    let (settled, running) = expected_fees(&h, LAST_TS_NS);
    let by_hand = |v: [(&str, &str); 4]| v.map(|(e, f)| (d(e), d(f))).to_vec();
    assert_eq!(
        settled,
        by_hand([
            ("10683.05", "136.61"),
            ("10610.15", "0"),
            ("11390.15", "141.42"),
            ("11771.05", "76.18"),
        ])
    );
    assert_eq!(running, Some((d("11825.05"), d("10.8"))));
    // The leader's last 7/30/90 days: 118,361.5 → 118,250.5 (−111),
    // 113,601.5 → 118,250.5 (+4,649), 106,830.5 → 118,250.5 (+11,420).
    let w = expected_windows(&h, LAST_TS_NS);
    let pnl: Vec<Decimal> = w.iter().map(|w| w.end_equity - w.start_equity).collect();
    assert_eq!(pnl[..3], [d("-111"), d("4649"), d("11420")]);
}

fn run_ok(args: &[&str]) -> String {
    let o = fillcast_output(args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "fillcast {args:?}:\n{out}\n{err}");
    out
}

fn report(db: &str, json: &Path, as_of: Option<&str>) -> (Value, String) {
    let mut args = vec![
        "report",
        "--db",
        db,
        "--json",
        json.to_str().unwrap(),
        "--fee-rate",
        FEE_RATE,
        "--fee-leader-share",
        FEE_LEADER_SHARE,
        "--settlement",
        "monthly",
    ];
    if let Some(t) = as_of {
        args.extend(["--as-of", t]);
    }
    let out = run_ok(&args);
    let v = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (v, out)
}

#[test]
fn a_replayed_120_day_history_is_reported_in_its_own_time() {
    let h = History::new();
    let dir = tmp();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    std::fs::write(dir.path().join("history.jsonl"), h.jsonl()).unwrap();
    run_ok(&["run", "--progress", "0", "--config", cfg.to_str().unwrap()]);
    let journal = dir.path().join("journal");
    let db_path = dir.path().join("fc.db");
    let db = format!("sqlite:{}", db_path.display());
    run_ok(&[
        "sidecar",
        "--progress",
        "0",
        "--journal",
        journal.to_str().unwrap(),
        "--db",
        &db,
    ]);

    // Every copy filled at the leader's own price, stamped at the leader fill's
    // venue time (latency 0): the history's 2025, not today.
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let mut q = conn
        .prepare("SELECT ts, side, CAST(qty AS TEXT), CAST(price AS TEXT), CAST(fee AS TEXT) FROM follower_fills ORDER BY seq")
        .unwrap();
    let fills: Vec<(i64, String, String, String, String)> = q
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(fills.len(), h.fills.len(), "{fills:?}");
    for ((ts, side, qty, price, fee), (lts, lq, lp)) in fills.iter().zip(&h.fills) {
        assert_eq!(ts, lts, "follower fill stamped {ts}, its leader fill {lts}");
        assert_eq!(side, if lq.is_sign_negative() { "sell" } else { "buy" });
        assert_eq!(d(qty), lq.abs() * d(FOLLOWER_RATIO));
        assert_eq!(d(price), *lp);
        assert_eq!(d(fee), Decimal::ZERO);
    }
    drop(q);

    let (r, out) = report(&db, &dir.path().join("report.json"), None);
    // As of the last venue time in the history, not the wall clock of the replay.
    assert_eq!(r["as_of_ns"], LAST_TS_NS, "{}", r["as_of_ns"]);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert!(
        now_ns - LAST_TS_NS > DAY_NS,
        "the test's history must lie in the past"
    );
    assert!(out.contains("as of 2025-05-01 12:00:00 UTC"), "{out}");
    assert!(out.contains("n/a (window under 30 days)"), "{out}");
    assert_eq!(r["options"]["fee_settlement"], "monthly");
    assert_eq!(r["leaders"][0]["capital"], LEADER_CAPITAL);
    assert_eq!(r["leaders"][0]["capital_source"], "leader_equity");
    assert_eq!(r["activity"]["follower_fills"], h.fills.len());
    check_windows(&r, &h, LAST_TS_NS);
    check_fees(&r, &h, LAST_TS_NS);

    // As of 2025-03-15 00:00 UTC (day 73): the windows end there, the 90-day one
    // starts at the leader's first fill (day 2), January and February are settled
    // and March accrues.
    let as_of = T0_NS + 73 * DAY_NS;
    let (r, out) = report(&db, &dir.path().join("mid.json"), Some("2025-03-15"));
    assert_eq!(r["as_of_ns"], as_of);
    assert!(out.contains("as of 2025-03-15 00:00:00 UTC"), "{out}");
    check_windows(&r, &h, as_of);
    check_fees(&r, &h, as_of);
}
