//! Report metrics: hand-computed cases for the pure functions, then a small SQLite
//! database built here (the sidecar's public schema) whose report figures are
//! worked out by hand in the comments.

use std::str::FromStr;

use fillcast_report as report;
use fillcast_report::fees::{
    hwm_after_flow, hwm_fees, hwm_fees_with_flows, CapitalFlow, FeePolicy, PeriodEquity, Settlement,
};
use fillcast_report::metrics::{
    self, annualised_return, average_holding_ns, calmar_of_curve, max_drawdown, profit_factor,
    sharpe, sharpe_of_curve, win_rate, ProfitFactor,
};
use fillcast_report::time::{days_from_civil, NS_PER_DAY};
use fillcast_report::ReportOptions;
use rusqlite::Connection;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn known_curve_drawdown_sharpe_calmar() {
    // Equity 100 → 110 → 99 → 108.9, one point per period, 3 periods a year.
    let curve = [d("100"), d("110"), d("99"), d("108.9")];
    // Peak 110, trough 99: (110 − 99) / 110 = 0.1.
    assert_eq!(max_drawdown(&curve), d("0.1"));
    // Returns: +10%, −10%, +10%. mean = 1/30; sample variance =
    // ((1/10 − 1/30)² + (−1/10 − 1/30)² + (1/10 − 1/30)²) / 2 = (4/900 + 16/900 + 4/900) / 2
    // = 1/75; sd = 1/(5√3). mean/sd = (1/30)·5√3 = √3/6; × √3 = 0.5.
    let s = sharpe_of_curve(&curve, 3.0).unwrap();
    assert!(close(s, 0.5), "sharpe {s}");
    // Daily: the same per-period ratio √3/6 × √365 = 5.5151...
    let s365 = sharpe_of_curve(&curve, 365.0).unwrap();
    assert!(
        close(s365, 3f64.sqrt() / 6.0 * 365f64.sqrt()),
        "sharpe {s365}"
    );
    // 3 periods at 3 a year is one year: annualised = 108.9/100 − 1 = 0.089;
    // Calmar = 0.089 / 0.1 = 0.89.
    let a = annualised_return(d("100"), d("108.9"), 3.0, 3.0).unwrap();
    assert!(close(a, 0.089), "annualised {a}");
    let c = calmar_of_curve(&curve, 3.0).unwrap();
    assert!(close(c, 0.89), "calmar {c}");
}

#[test]
fn drawdown_uses_the_running_peak_not_the_first_point() {
    // 100 → 80 (20%) → 200 → 150 (25%) → 190: the second fall is the larger.
    let curve = [d("100"), d("80"), d("200"), d("150"), d("190")];
    assert_eq!(max_drawdown(&curve), d("0.25"));
}

#[test]
fn sharpe_is_undefined_below_two_periods_or_without_variance() {
    assert_eq!(sharpe(&[], 365.0), None);
    assert_eq!(sharpe(&[0.05], 365.0), None);
    // Two identical returns: zero variance.
    assert_eq!(
        sharpe_of_curve(&[d("100"), d("110"), d("121")], 365.0),
        None
    );
    // Calmar without a drawdown is unbounded: None.
    assert_eq!(
        calmar_of_curve(&[d("100"), d("110"), d("121")], 365.0),
        None
    );
}

/// Settled period `i` (`[10i, 10i + 10)`) ending at equity `e`.
fn eq(i: i64, e: &str) -> PeriodEquity {
    PeriodEquity {
        start_ns: i * 10,
        end_ns: i * 10 + 10,
        equity: d(e),
        settled: true,
    }
}

#[test]
fn hwm_fee_charges_only_new_highs_after_a_loss_and_recovery() {
    let policy = FeePolicy {
        rate: d("0.2"),
        leader_fraction: d("0.75"),
        settlement: Settlement::Monthly,
    };
    // Start 1000.
    //  1100: 0.2 × (1100 − 1000) = 20, HWM → 1100
    //   900: loss, 0
    //  1050: recovering but below the HWM 1100, 0
    //  1200: 0.2 × (1200 − 1100) = 20, HWM → 1200
    //  1150: 0
    // Total 40 = 0.2 × (1200 − 1000): no profit charged twice. Leader 75% = 30.
    let periods = [
        eq(0, "1100"),
        eq(1, "900"),
        eq(2, "1050"),
        eq(3, "1200"),
        eq(4, "1150"),
    ];
    let s = hwm_fees(d("1000"), &periods, &policy);
    let fees: Vec<Decimal> = s.periods.iter().map(|p| p.fee).collect();
    assert_eq!(fees, vec![d("20"), d("0"), d("0"), d("20"), d("0")]);
    assert_eq!(s.fee, d("40"));
    assert_eq!(s.leader_share, d("30"));
    assert_eq!(s.platform_share, d("10"));
    assert_eq!(s.hwm, d("1200"));
    assert_eq!(s.accrued, Decimal::ZERO);

    // A running (unsettled) period accrues but does not charge or raise the HWM.
    let mut open = eq(5, "1300");
    open.settled = false;
    let s = hwm_fees(d("1000"), &[eq(0, "1100"), open], &policy);
    assert_eq!(s.fee, d("20"));
    assert_eq!(s.accrued, d("40"));
    assert_eq!(s.hwm, d("1100"));
}

fn flow(ts_ns: i64, amount: &str, equity_before: &str) -> CapitalFlow {
    CapitalFlow {
        ts_ns,
        amount: d(amount),
        equity_before: d(equity_before),
    }
}

#[test]
fn a_deposit_raises_the_hwm_and_a_withdrawal_lowers_it_in_proportion() {
    assert_eq!(
        hwm_after_flow(d("1100"), &flow(0, "1000", "1050")),
        d("2100")
    );
    // 12000 HWM, equity 9000 (3000 lost), 4000 withdrawn: 5/9 of the capital stays,
    // and 5/9 of the HWM: the 33.3% still needed to recover is what it was.
    // Rounded up to the engine's money unit (1e-8), never charging a rounding.
    let h = hwm_after_flow(d("12000"), &flow(0, "-4000", "9000"));
    assert_eq!(h, d("6666.66666667"));
    // Everything withdrawn: nothing left to recover.
    assert_eq!(
        hwm_after_flow(d("12000"), &flow(0, "-9000", "9000")),
        d("0")
    );
    // No positive equity to take a share of: by the amount, never below zero.
    assert_eq!(hwm_after_flow(d("100"), &flow(0, "-30", "-5")), d("70"));
    assert_eq!(hwm_after_flow(d("100"), &flow(0, "-200", "0")), d("0"));
}

#[test]
fn a_deposit_is_never_charged_as_profit() {
    let policy = FeePolicy {
        rate: d("0.1"),
        leader_fraction: d("0.5"),
        settlement: Settlement::Daily,
    };
    // From 1000: +100 in period 0 (fee 10, HWM 1100); 1000 deposited in period 1
    // (HWM 2100), which ends at 2150 (+50 of profit: fee 5); 500 withdrawn in
    // period 2 at equity 2150 (HWM × 1650/2150 = 1611.627…), which ends at 1600.
    let periods = [eq(0, "1100"), eq(1, "2150"), eq(2, "1600")];
    let flows = [flow(12, "1000", "1100"), flow(25, "-500", "2150")];
    let s = hwm_fees_with_flows(d("1000"), &periods, &flows, &policy);
    let fees: Vec<Decimal> = s.periods.iter().map(|p| p.fee).collect();
    assert_eq!(fees, vec![d("10"), d("5"), d("0")]);
    assert_eq!(s.periods[1].hwm_before, d("2100"));
    assert_eq!(s.flows, d("500"));
    assert_eq!(s.hwm, d("1650"));
    // Without the flows, the deposit would have been charged as profit.
    assert_eq!(hwm_fees(d("1000"), &periods, &policy).fee, d("115"));
}

proptest::proptest! {
    /// Capital moving in and out with no trading profit is never charged: whatever
    /// the deposits and withdrawals, an equity that only follows them owes nothing.
    #[test]
    fn capital_flows_alone_never_owe_a_fee(
        start in 1u32..1_000_000,
        moves in proptest::collection::vec(-500_000i64..1_000_000, 0..12),
    ) {
        let policy = FeePolicy {
            rate: d("0.25"),
            leader_fraction: d("0.5"),
            settlement: Settlement::Daily,
        };
        let mut equity = Decimal::from(start);
        let mut periods = Vec::new();
        let mut flows = Vec::new();
        for (i, m) in moves.iter().enumerate() {
            let i = i as i64;
            // A withdrawal takes at most what is there.
            let amount = Decimal::from(*m).max(-equity);
            flows.push(CapitalFlow { ts_ns: i * 10 + 5, amount, equity_before: equity });
            equity += amount;
            periods.push(PeriodEquity { start_ns: i * 10, end_ns: i * 10 + 10, equity, settled: true });
        }
        let s = hwm_fees_with_flows(Decimal::from(start), &periods, &flows, &policy);
        proptest::prop_assert_eq!(s.fee, Decimal::ZERO, "{:?}", s.periods);
    }
}

#[test]
fn fee_policy_is_validated() {
    let mut p = FeePolicy::default();
    assert!(p.validate().is_ok());
    p.rate = d("1.5");
    assert!(p.validate().is_err());
    p.rate = d("0.1");
    p.leader_fraction = d("-0.1");
    assert!(p.validate().is_err());
}

#[test]
fn win_rate_profit_factor_and_holding_time_on_a_trade_list() {
    // +30, −10, +45, 0 (break-even), −20.
    let pnls = [d("30"), d("-10"), d("45"), d("0"), d("-20")];
    // Wins: 30 and 45 → 2 of 5 = 0.4 (break-even is not a win).
    assert_eq!(win_rate(&pnls), Some(d("0.4")));
    // Gross profit 75, gross loss 30: 75 / 30 = 2.5.
    assert_eq!(profit_factor(&pnls), ProfitFactor::Finite(d("2.5")));
    assert_eq!(profit_factor(&[d("5")]), ProfitFactor::Infinite);
    assert_eq!(profit_factor(&[]), ProfitFactor::Undefined);
    assert_eq!(win_rate(&[]), None);
    // Held 1 h and 3 h: mean 2 h.
    let h = 3_600 * 1_000_000_000i64;
    assert_eq!(average_holding_ns(&[(0, h), (10, 10 + 3 * h)]), Some(2 * h));
    assert_eq!(metrics::roi(d("1000"), d("970")), Some(d("-0.03")));
    assert_eq!(metrics::roi(d("0"), d("970")), None);
}

// --- a small database -------------------------------------------------------

const SCHEMA: &str = include_str!("report_schema.sql");

fn t0() -> i64 {
    // 2024-11-01 00:00:00 UTC.
    days_from_civil(2024, 11, 1) * NS_PER_DAY
}

fn day(n: i64) -> i64 {
    t0() + n * NS_PER_DAY
}

/// One decision of a subscription on a leader fill: (target, delta, sent, status,
/// reason, what became of its order).
type Decision = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// Leader L1 (capital 1000) trades BTC once a day:
///
/// | day | fill          | position | realized | equity |
/// |-----|---------------|----------|----------|--------|
/// | 0   | buy 1 @ 100   | 1        |          | 1000   |
/// | 1   | sell 1 @ 120  | 0        | +20      | 1020   |
/// | 2   | buy 2 @ 120   | 2        |          | 1020   |
/// | 3   | sell 2 @ 110  | 0        | −20      | 1000   |
/// | 4   | buy 1 @ 110   | 1 (open) |          | 1000   |
/// | 5   | mark 80       | 1        |          | 970    |
///
/// Subscription S1 (F1, allocation 100) copies at 0.1 and fills everything, with a
/// fee of 0.01 per fill; S2 (F2, allocation 50) copies at 0.05, is reduced by
/// `max_position` on day 2 and its day-4 order is rejected (`insufficient_margin`).
/// L2 (capital 500) has no fill.
fn populate(c: &Connection) {
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO symbols VALUES ('BTC', '0.01', '0.1');
         INSERT INTO leaders VALUES ('L1', '1000'), ('L2', '500');
         INSERT INTO followers VALUES ('F1', '100'), ('F2', '50');
         INSERT INTO subscriptions VALUES ('S1', 'F1', 'L1', 'proportional', '100'),
                                          ('S2', 'F2', 'L1', 'proportional', '50');
         INSERT INTO audit_log VALUES (1, 0, 'command', 'F2', 'pause', 'by ops');",
    )
    .unwrap();
    let lf = [
        ("buy", "1", "100", "1"),
        ("sell", "1", "120", "0"),
        ("buy", "2", "120", "2"),
        ("sell", "2", "110", "0"),
        ("buy", "1", "110", "1"),
    ];
    for (i, (side, q, p, pos)) in lf.iter().enumerate() {
        let seq = i as i64 + 1;
        c.execute(
            "INSERT INTO leader_fills (seq, leader_id, event_id, symbol, side, qty, price,
               position_after, order_id, order_qty, venue_ts, recv_ts)
             VALUES (?1, 'L1', ?2, 'BTC', ?3, ?4, ?5, ?6, ?7, ?4, ?8, ?9)",
            rusqlite::params![
                seq,
                format!("e{seq}"),
                side,
                q,
                p,
                pos,
                format!("o{seq}"),
                day(i as i64),
                day(i as i64) + 35_000
            ],
        )
        .unwrap();
    }
    // A feed reconnect replays fill 2: the engine ignores the duplicate event, and so
    // must the metrics (counted, it would add a second close of a flat position).
    c.execute(
        "INSERT INTO leader_fills VALUES (6, 'L1', 'e2', 'BTC', 'sell', '1', '120', '0', 'o2', '1', ?1, ?1, 'duplicate')",
        [day(1) + 1_000_000],
    )
    .unwrap();
    c.execute("INSERT INTO mark_prices VALUES ('BTC', ?1, '80')", [day(5)])
        .unwrap();

    let mut iseq = 0i64;
    let mut fseq = 0i64;
    let subs: [(&str, &str, [Decision; 5]); 2] = [
        (
            "S1",
            "F1",
            [
                ("0.1", "0.1", "0.1", "sent", "", "filled"),
                ("0", "-0.1", "-0.1", "sent", "", "filled"),
                ("0.2", "0.2", "0.2", "sent", "", "filled"),
                ("0", "-0.2", "-0.2", "sent", "", "filled"),
                ("0.1", "0.1", "0.1", "sent", "", "filled"),
            ],
        ),
        (
            "S2",
            "F2",
            [
                ("0.05", "0.05", "0.05", "sent", "", "filled"),
                ("0", "-0.05", "-0.05", "sent", "", "filled"),
                ("0.1", "0.1", "0.05", "reduced", "max_position", "filled"),
                ("0", "-0.05", "-0.05", "sent", "", "filled"),
                ("0.05", "0.05", "0.05", "sent", "", "rejected"),
            ],
        ),
    ];
    for (sub, follower, rows) in subs {
        for (k, (target, delta, sent, status, reason, outcome)) in rows.iter().enumerate() {
            iseq += 1;
            let lseq = k as i64 + 1;
            c.execute(
                "INSERT INTO copy_instructions VALUES (?1, ?2, ?3, ?4, ?5, 'L1', 'BTC', ?6, ?7, ?8, ?9, ?10, 1, '')",
                rusqlite::params![iseq, lseq, format!("e{lseq}"), sub, follower, target, delta, sent, status, reason],
            )
            .unwrap();
            let qty = Decimal::from_str(sent).unwrap();
            let side = if qty.is_sign_negative() {
                "sell"
            } else {
                "buy"
            };
            let qty = qty.abs().to_string();
            let price = lf[k].2;
            let coid = format!("c-{sub}-{lseq}");
            let (filled, reject) = if *outcome == "filled" {
                (qty.clone(), None)
            } else {
                ("0".to_string(), Some("insufficient_margin"))
            };
            c.execute(
                "INSERT INTO follower_orders VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'L1', 'sim', 'BTC', ?7, ?8, ?9, 'ioc', ?10, ?11, ?12, ?13)",
                rusqlite::params![
                    coid, iseq, iseq, format!("e{lseq}"), sub, follower, side, qty, price,
                    i64::from(side == "sell"), outcome, filled, reject
                ],
            )
            .unwrap();
            if *outcome == "filled" {
                fseq += 1;
                let fee = if sub == "S1" { "0.01" } else { "0" };
                c.execute(
                    "INSERT INTO follower_fills VALUES (?1, ?2, ?3, ?4, ?5, 'BTC', ?6, ?7, ?8, ?9, ?10)",
                    rusqlite::params![coid, format!("t{fseq}"), fseq, follower, sub, side, qty, price, fee, day(k as i64) + 1_000_000],
                )
                .unwrap();
            }
        }
    }
    c.execute_batch(
        "INSERT INTO positions VALUES ('S1', 'BTC', 'F1', 'L1', '0.1', '110', '0', 10),
                                      ('S2', 'BTC', 'F2', 'L1', '0', '0', '0.5', 9);
         INSERT INTO leader_positions VALUES ('L1', 'BTC', '1', 5);",
    )
    .unwrap();
}

fn options() -> ReportOptions {
    ReportOptions {
        fee: FeePolicy {
            rate: d("0.2"),
            leader_fraction: d("0.5"),
            settlement: Settlement::Daily,
        },
        ..ReportOptions::default()
    }
}

fn db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    populate(&c);
    c
}

#[test]
fn an_open_losing_position_lowers_the_leader_roi() {
    let c = db();
    let r = report::build_with(&c, &options()).unwrap();
    let l1 = r.leader("L1").unwrap();
    let all = l1.windows.iter().find(|w| w.label == "all").unwrap();
    // Realized: +20 − 20 = 0, so realized-only ROI would be 0. The open long of 1
    // bought at 110 and marked at 80 loses 30: equity 970, ROI = −30 / 1000 = −3%.
    assert_eq!(l1.realized_pnl, Decimal::ZERO);
    assert_eq!(l1.unrealized_pnl, d("-30"));
    assert_eq!(l1.equity, Some(d("970")));
    assert_eq!(all.pnl, d("-30"));
    assert_eq!(all.roi, Some(d("-0.03")));
    assert_eq!(l1.open_positions.len(), 1);
    assert_eq!(l1.open_positions[0].avg_price, d("110"));

    assert!(
        !r.notes.iter().any(|n| n.contains("no mark")),
        "{:?}",
        r.notes
    );

    // A mark for another symbol only: the report names the one without a price.
    c.execute("UPDATE mark_prices SET symbol = 'ETH'", [])
        .unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("no mark price for BTC:")),
        "{:?}",
        r.notes
    );

    // Without the mark the loss is invisible: the latest trade in BTC is S1's fill
    // at 110 on day 4 (the leader's own price too), so the position values at 110,
    // ROI 0.
    c.execute("DELETE FROM mark_prices", []).unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    let all = r.leader("L1").unwrap().windows.last().unwrap().clone();
    assert_eq!(all.roi, Some(Decimal::ZERO));
    assert!(r.notes.iter().any(|n| n.starts_with("no mark prices:")));
}

/// SOL has no mark (BTC has one, so the report has marks, just none for SOL):
///
/// | day | trade                          |
/// |-----|--------------------------------|
/// | 0   | L1 buys 2 SOL @ 100 (its last) |
/// | 1   | L2 buys 1 SOL @ 80             |
/// | 2   | S1 (F1, copying L2) buys 0.1 SOL @ 70 |
/// | 3   | an L2 fill @ 1 the engine ignored (`invalid`): not a trade |
fn db_unmarked() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO leaders VALUES ('L1', '1000'), ('L2', '1000');
         INSERT INTO followers VALUES ('F1', '100');
         INSERT INTO subscriptions VALUES ('S1', 'F1', 'L2', 'proportional', '100');",
    )
    .unwrap();
    let leader_fills = [
        (1, "L1", "buy", "2", "100", "2", day(0), ""),
        (2, "L2", "buy", "1", "80", "1", day(1), ""),
        (4, "L2", "buy", "1", "1", "1", day(3), "invalid"),
    ];
    for (seq, leader, side, q, p, pos, ts, ignored) in leader_fills {
        c.execute(
            "INSERT INTO leader_fills VALUES (?1, ?2, ?3, 'SOL', ?4, ?5, ?6, ?7, NULL, ?5, ?8, ?8, ?9)",
            rusqlite::params![seq, leader, format!("e{seq}"), side, q, p, pos, ts, ignored],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO follower_fills VALUES ('c-S1-2', 't3', 3, 'F1', 'S1', 'SOL', 'buy', '0.1', '70', '0', ?1)",
        [day(2)],
    )
    .unwrap();
    c.execute(
        "INSERT INTO mark_prices VALUES ('BTC', ?1, '50000')",
        [day(0)],
    )
    .unwrap();
    c
}

#[test]
fn an_open_position_without_a_mark_is_valued_at_the_latest_trade_by_anyone() {
    let c = db_unmarked();
    let r = report::build_with(&c, &options()).unwrap();
    assert_eq!(r.as_of_ns, Some(day(3)));
    let l1 = r.leader("L1").unwrap();
    // L1's own last fill was 100 on day 0; the latest trade in SOL is S1's 70 on day
    // 2 (not the ignored fill at 1): 2 × (70 − 100) = −60, equity 940, ROI −6%.
    // At its own fill's price it would read 1000 and ROI 0.
    assert_eq!(l1.unrealized_pnl, d("-60"));
    assert_eq!(l1.equity, Some(d("940")));
    let all = l1.windows.last().unwrap();
    assert_eq!(all.pnl, d("-60"));
    assert_eq!(all.roi, Some(d("-0.06")));
    // The curve follows each later trade: 1000, 960 (L2's 80 on day 1), 940 (day 2):
    // peak 1000, trough 940.
    assert_eq!(
        l1.curve,
        vec![
            (day(0) - 1, d("1000")),
            (day(1), d("960")),
            (day(2), d("940"))
        ]
    );
    assert_eq!(all.max_drawdown, Some(d("0.06")));
    let p = &l1.open_positions[0];
    assert_eq!(
        (p.symbol.as_str(), p.qty, p.avg_price),
        ("SOL", d("2"), d("100"))
    );
    assert_eq!(
        (p.mark, p.basis),
        (d("70"), report::PriceBasis::LatestTrade)
    );
    // L2 (1 @ 80) and S1 (0.1 @ 70, its own fill is the latest trade) alike.
    assert_eq!(r.leader("L2").unwrap().unrealized_pnl, d("-10"));
    let s1 = &r.follower("F1").unwrap().subscriptions[0];
    assert_eq!(
        (s1.unrealized_pnl, s1.open_positions[0].mark),
        (d("0"), d("70"))
    );

    // The report says which: the note names SOL and the basis, in every output.
    let note = "no mark price for SOL: open positions in them are valued at the latest trade in the symbol by anyone (a leader or follower fill, whichever is latest) instead of a mark";
    assert!(r.notes.iter().any(|n| n == note), "{:?}", r.notes);
    let j = r.to_json();
    assert!(j["notes"].as_array().unwrap().iter().any(|n| n == note));
    let open = &j["leaders"][0]["open_positions"][0];
    assert_eq!(open["mark"], "70");
    assert_eq!(open["price_basis"], "latest_trade");
    assert_eq!(open["unrealized_pnl"], "-60");
    let s = r.summary_text();
    assert!(s.contains(&format!("note: {note}")), "{s}");
    assert!(
        s.contains("open SOL 2 @ 100.00 latest trade 70 unrealized -60.00"),
        "{s}"
    );
    let html = r.to_html();
    assert!(html.contains(note), "the page lacks the note");
    assert!(html.contains("SOL 2 @ 100.00 → latest trade 70 (-60.00)"));
    assert!(html.contains("the latest trade in the symbol by anyone"));

    // Only trades known at the valuation time count: as of day 1, S1's day-2 fill
    // is in the future and L2's 80 is the latest (2 × −20); a SOL mark after that
    // time does not count either, and SOL is still named.
    c.execute(
        "INSERT INTO mark_prices VALUES ('SOL', ?1, '500')",
        [day(2)],
    )
    .unwrap();
    let day1 = ReportOptions {
        as_of_ns: Some(day(1)),
        ..options()
    };
    let r = report::build_with(&c, &day1).unwrap();
    let l1 = r.leader("L1").unwrap();
    assert_eq!(l1.equity, Some(d("960")));
    assert_eq!(l1.open_positions[0].mark, d("80"));
    assert!(r.notes.iter().any(|n| n == note), "{:?}", r.notes);

    // With no mark at all, the note for the whole run says the same.
    c.execute("DELETE FROM mark_prices", []).unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    assert_eq!(r.leader("L1").unwrap().equity, Some(d("940")));
    assert!(
        r.notes.iter().any(|n| n
            == "no mark prices: open positions are valued at the latest trade in the symbol by anyone (a leader or follower fill, whichever is latest) instead of a mark"),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_mark_still_wins_over_a_later_trade() {
    let c = db_unmarked();
    // A SOL mark of 90 just after L2's trade on day 1, before S1's 70 on day 2.
    c.execute(
        "INSERT INTO mark_prices VALUES ('SOL', ?1, '90')",
        [day(1) + 1],
    )
    .unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    let l1 = r.leader("L1").unwrap();
    // Valued at the mark, not at the later trade: 2 × (90 − 100) = −20, equity 980.
    assert_eq!(l1.unrealized_pnl, d("-20"));
    assert_eq!(l1.equity, Some(d("980")));
    let p = &l1.open_positions[0];
    assert_eq!((p.mark, p.basis), (d("90"), report::PriceBasis::Mark));
    // Before the first mark the latest trade counted (960 on day 1); from the mark
    // on, trades no longer move the curve.
    assert_eq!(
        l1.curve,
        vec![
            (day(0) - 1, d("1000")),
            (day(1), d("960")),
            (day(1) + 1, d("980"))
        ]
    );
    let all = l1.windows.last().unwrap();
    assert_eq!(all.roi, Some(d("-0.02")));
    assert_eq!(all.max_drawdown, Some(d("0.04")));
    // S1 bought at 70 and is marked at 90: +2.
    assert_eq!(r.follower("F1").unwrap().unrealized_pnl, d("2"));
    assert!(
        !r.notes.iter().any(|n| n.contains("no mark")),
        "{:?}",
        r.notes
    );
    let j = r.to_json();
    assert_eq!(j["leaders"][0]["open_positions"][0]["price_basis"], "mark");
    assert!(r
        .summary_text()
        .contains("open SOL 2 @ 100.00 mark 90 unrealized -20.00"));
}

#[test]
fn leader_metrics_from_the_database() {
    let c = db();
    let r = report::build_with(&c, &options()).unwrap();
    assert_eq!(r.as_of_ns, Some(day(5)));
    assert!(!r.is_empty());
    let l1 = r.leader("L1").unwrap();
    assert_eq!(l1.capital, Some(d("1000")));
    assert_eq!(l1.capital_source, "leaders");
    assert_eq!(l1.followers, 2);
    assert_eq!(l1.aum, d("150"));
    assert_eq!(l1.trades_closed, 2);
    assert_eq!(l1.position_gaps, 0);
    assert_eq!((l1.fills, l1.ignored_fills), (5, 1));
    assert!(r
        .notes
        .iter()
        .any(|n| n.contains("1 leader fill(s) the engine ignored")));
    let labels: Vec<&str> = l1.windows.iter().map(|w| w.label.as_str()).collect();
    assert_eq!(labels, ["7d", "30d", "90d", "all"]);
    let all = &l1.windows[3];
    // Peak 1020 (day 1), lowest later point 970 (day 5): 50 / 1020.
    assert_eq!(all.max_drawdown, Some(d("50") / d("1020")));
    // Closed trades +20 and −20, and the long still open (bought at 110 on day 4,
    // marked at 80 on day 5: −30, held 1 day so far). Counted with the open trade:
    // win rate 1/3, profit factor 20 / (20 + 30) = 0.4, each held 1 day.
    assert_eq!((all.trades.count, all.trades.open), (3, 1));
    assert_eq!((all.trades.wins, all.trades.losses), (1, 2));
    assert_eq!(all.trades.win_rate, Some(d("1") / d("3")));
    assert_eq!(all.trades.profit_factor, ProfitFactor::Finite(d("0.4")));
    assert_eq!(all.trades.avg_holding_ns, Some(NS_PER_DAY));
    // Closed trades only: win rate 1/2, profit factor 20/20 = 1, each held 1 day.
    assert_eq!((all.closed_only.count, all.closed_only.open), (2, 0));
    assert_eq!(all.closed_only.win_rate, Some(d("0.5")));
    assert_eq!(all.closed_only.profit_factor, ProfitFactor::Finite(d("1")));
    assert_eq!(all.closed_only.avg_holding_ns, Some(NS_PER_DAY));
    // Five days of data are too few to annualise (the minimum is 30 days).
    assert!(all.too_short_to_annualise);
    assert_eq!(
        (all.sharpe, all.annualised_return, all.calmar),
        (None, None, None)
    );
    // With the minimum lifted, the arithmetic of the annualised figures.
    let unlimited = ReportOptions {
        annualise_min_ns: 0,
        ..options()
    };
    let r0 = report::build_with(&c, &unlimited).unwrap();
    let all = &r0.leader("L1").unwrap().windows[3];
    assert!(!all.too_short_to_annualise);
    // Daily equity counting back from day 5: 1000, 1020, 1020, 1000, 1000, 970.
    // Returns 0.02, 0, −20/1020, 0, −0.03; Sharpe = mean / sample sd × √365.
    let rets = [0.02, 0.0, -20.0 / 1020.0, 0.0, -0.03];
    let mean = rets.iter().sum::<f64>() / 5.0;
    let sd = (rets.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 4.0).sqrt();
    let expected = mean / sd * 365f64.sqrt();
    assert_eq!(all.periods, 5);
    assert!(
        close(all.sharpe.unwrap(), expected),
        "{:?} vs {expected}",
        all.sharpe
    );
    // 5 days (and the 1 ns before the first fill) from 1000 to 970, compounded to a
    // year: 0.97^(365/5) − 1; Calmar divides it by the drawdown 50/1020.
    let periods = 5.0 + 1.0 / NS_PER_DAY as f64;
    let ann = 0.97f64.powf(365.0 / periods) - 1.0;
    assert!(close(all.annualised_return.unwrap(), ann));
    assert!(close(all.calmar.unwrap(), ann / (50.0 / 1020.0)));
    // The 7-day window reaches back before the first fill: same figures as all time.
    assert_eq!(l1.windows[0].roi, all.roi);
    assert_eq!(l1.windows[0].trades.count, 3);
    assert_eq!(l1.windows[0].closed_only.count, 2);

    // L2 has a capital and no fill: zeros and n/a, no panic.
    let l2 = r.leader("L2").unwrap();
    assert_eq!(l2.windows[3].pnl, Decimal::ZERO);
    assert_eq!(l2.windows[3].trades.count, 0);
    assert_eq!(l2.windows[3].sharpe, None);
}

#[test]
fn follower_pnl_fees_and_reconciliation_from_the_database() {
    let c = db();
    let r = report::build_with(&c, &options()).unwrap();

    // F1 (S1, 0.1 of L1): +2 on day 1, −2 on day 3, open 0.1 bought at 110 marked at 80
    // (−3), five fills at 0.01 fee: net = 0 − 3 − 0.05 = −3.05.
    let f1 = r.follower("F1").unwrap();
    assert_eq!(f1.realized_pnl, d("0"));
    assert_eq!(f1.unrealized_pnl, d("-3"));
    assert_eq!(f1.fees_paid, d("0.05"));
    assert_eq!(f1.net_pnl, d("-3.05"));
    // The database records funding (`funding_payments`), and none was paid.
    assert_eq!(f1.funding, Some(d("0")));
    // Daily HWM fee at 20% from the allocation 100: day 0 ends at 99.99 (fee 0.01),
    // day 1 at 101.98 (+2, fees 0.02): 0.2 × 1.98 = 0.396, HWM 101.98; days 2-4 end
    // below it (101.97, 99.96, 99.95): nothing. Split 50/50.
    assert_eq!(f1.performance_fee, d("0.396"));
    assert_eq!(f1.leader_share, d("0.198"));
    assert_eq!(f1.platform_share, d("0.198"));
    let sched = &f1.subscriptions[0].performance_fee;
    assert_eq!(sched.periods.len(), 5);
    assert_eq!(sched.hwm, d("101.98"));

    // F2 (S2, 0.05): +1 on day 1, −0.5 on day 3 (0.05 bought at 120 sold at 110), the
    // day-4 order was rejected: flat, net +0.5. Fee: day 1 ends at 51: 0.2 × 1 = 0.2.
    let f2 = r.follower("F2").unwrap();
    assert_eq!(f2.realized_pnl, d("0.5"));
    assert_eq!(f2.unrealized_pnl, d("0"));
    assert_eq!(f2.net_pnl, d("0.5"));
    assert_eq!(f2.performance_fee, d("0.2"));
    assert_eq!(r.fees.fee, d("0.596"));
    assert_eq!(r.fees.leader_share, d("0.298"));
    assert_eq!(r.fees.by_leader, vec![("L1".to_string(), d("0.298"))]);

    // Reconciliation: S1 holds its target 0.1; S2's target is 0.05 but the venue
    // says 0 (rejected): deviation −0.05 × mark 80 = 4 notional.
    let rc = &r.reconciliation;
    assert_eq!(rc.pairs.len(), 2);
    assert_eq!(rc.pairs_in_sync(), 1);
    let s2 = rc.pairs.iter().find(|p| p.subscription_id == "S2").unwrap();
    assert_eq!(s2.target, d("0.05"));
    assert_eq!(s2.expected, d("0.05"));
    assert_eq!(s2.venue, d("0"));
    assert_eq!(s2.deviation, d("-0.05"));
    assert_eq!(s2.deviation_notional, Some(d("4")));
    // In lots of 0.01: −5.
    assert_eq!(s2.deviation_lots, Some(d("-5")));
    let why = s2.reasons.join("; ");
    assert!(why.contains("insufficient_margin"), "{why}");
    assert!(why.contains("reduced (max_position)"), "{why}");
    assert_eq!(rc.out_of_sync.len(), 1);
    assert_eq!(rc.out_of_sync[0].follower_id, "F2");
    assert_eq!(rc.out_of_sync[0].score, d("4"));
    let counts: Vec<u64> = rc.distribution.iter().map(|b| b.count).collect();
    // F1 exactly on target (score 0), F2 in (1, 10].
    assert_eq!(counts, vec![1, 0, 1, 0, 0, 0]);

    // Activity counts.
    assert_eq!(r.activity.instructions, 10);
    assert!(r
        .activity
        .limited_by_reason
        .contains(&("reduced (max_position)".to_string(), 1)));
    assert_eq!(
        r.activity.reject_reasons,
        vec![("insufficient_margin".to_string(), 1)]
    );
}

/// Issue 16: `populate`'s database with funding at 08:00 of day 0 (rate 1% at
/// mark 100: longs pay) and of day 4 (rate −0.5% at mark 110: longs receive),
/// as the sidecar writes it: one row per position open then.
fn db_with_funding() -> Connection {
    let c = db();
    c.execute(
        "INSERT INTO funding_payments VALUES
           (200, 0, ?1, 'BTC', 'L1', NULL, NULL, '1', '100', '0.01', '-1'),
           (200, 1, ?1, 'BTC', 'L1', 'F1', 'S1', '0.1', '100', '0.01', '-0.1'),
           (200, 2, ?1, 'BTC', 'L1', 'F2', 'S2', '0.05', '100', '0.01', '-0.05'),
           (201, 0, ?2, 'BTC', 'L1', NULL, NULL, '1', '110', '-0.005', '0.55'),
           (201, 1, ?2, 'BTC', 'L1', 'F1', 'S1', '0.1', '110', '-0.005', '0.055')",
        [
            day(0) + 8 * 3_600_000_000_000,
            day(4) + 8 * 3_600_000_000_000,
        ],
    )
    .unwrap();
    c
}

/// Funding is in net P&L, in equity at its time and so in the high-water-mark
/// fee, for followers and for the leader; worked out by hand from
/// `follower_pnl_fees_and_reconciliation_from_the_database` and
/// `leader_metrics_from_the_database`.
#[test]
fn funding_is_in_net_pnl_equity_and_the_hwm_fee() {
    let c = db_with_funding();
    let r = report::build_with(&c, &options()).unwrap();
    assert!(r.missing_tables.is_empty());
    assert_eq!(r.as_of_ns, Some(day(5)));

    // F1 (S1): −0.1 on day 0, +0.055 on day 4: −0.045. Net −3.05 − 0.045.
    let f1 = r.follower("F1").unwrap();
    let s1 = &f1.subscriptions[0];
    assert_eq!(s1.funding, Some(d("-0.045")));
    assert_eq!(f1.funding, Some(d("-0.045")));
    assert_eq!(s1.net_pnl, d("-3.095"));
    assert_eq!(f1.net_pnl, d("-3.095"));
    assert_eq!(
        (f1.realized_pnl, f1.unrealized_pnl, f1.fees_paid),
        (d("0"), d("-3"), d("0.05"))
    );
    assert_eq!(s1.equity, d("96.905"));
    // Daily HWM fee at 20%: day 0 ends at 100 − 0.01 − 0.1 = 99.89; day 1 at
    // 101.88 (+2, fees 0.02): 0.2 × 1.88 = 0.376 (0.396 without funding), HWM
    // 101.88; days 2-4 end below it (101.87, 99.86, 99.905).
    let sched = &s1.performance_fee;
    let ends: Vec<Decimal> = sched.periods.iter().map(|p| p.equity_end).collect();
    assert_eq!(
        ends,
        vec![
            d("99.89"),
            d("101.88"),
            d("101.87"),
            d("99.86"),
            d("99.905")
        ]
    );
    assert_eq!(f1.performance_fee, d("0.376"));
    assert_eq!(sched.hwm, d("101.88"));
    assert_eq!(
        (f1.leader_share, f1.platform_share),
        (d("0.188"), d("0.188"))
    );
    // Time-weighted, with no capital flow: net ÷ allocation.
    assert_eq!(s1.time_weighted_return, Some(d("-0.03095")));

    // F2 (S2): −0.05 on day 0 (its day-4 order was rejected: flat then). Net
    // 0.5 − 0.05; day 1 ends at 50.95: fee 0.2 × 0.95 = 0.19.
    let f2 = r.follower("F2").unwrap();
    assert_eq!(f2.funding, Some(d("-0.05")));
    assert_eq!(f2.net_pnl, d("0.45"));
    assert_eq!(f2.performance_fee, d("0.19"));
    assert_eq!(r.fees.fee, d("0.566"));
    assert_eq!(r.fees.leader_share, d("0.283"));

    // L1: −1 on day 0, +0.55 on day 4: −0.45 in its equity and every window.
    // Curve: 1000 → 999 (day 0, 08:00) → 1019 (day 1) → 999 (day 3) → 999.55
    // (day 4, 08:00) → 969.55 (mark 80 on day 5): drawdown 49.45 / 1019.
    let l1 = r.leader("L1").unwrap();
    assert_eq!(l1.funding, Some(d("-0.45")));
    assert_eq!(l1.equity, Some(d("969.55")));
    assert_eq!((l1.realized_pnl, l1.unrealized_pnl), (d("0"), d("-30")));
    let all = l1.windows.iter().find(|w| w.label == "all").unwrap();
    assert_eq!(all.pnl, d("-30.45"));
    assert_eq!(all.roi, Some(d("-0.03045")));
    assert_eq!(all.max_drawdown, Some(d("49.45") / d("1019")));
    // The trades are the same trades: funding is not a trade's P&L.
    assert_eq!(all.trades.count, 3);
    assert_eq!(all.trades.gross_loss, d("50"));
    // L2 holds nothing: it paid none, and says so with a zero, not "n/a".
    assert_eq!(r.leader("L2").unwrap().funding, Some(d("0")));

    let j = r.to_json();
    assert_eq!(j["leaders"][0]["funding"], "-0.45");
    assert_eq!(j["leaders"][0]["equity"], "969.55");
    assert_eq!(j["followers"][0]["funding"], "-0.045");
    assert_eq!(j["followers"][0]["net_pnl"], "-3.095");
    assert_eq!(j["followers"][0]["subscriptions"][0]["funding"], "-0.045");
    assert_eq!(j["fees"]["fee"], "0.566");
    assert_eq!(j["row_counts"]["funding_payments"], 5);

    let text = r.summary_text();
    assert!(text.contains("funding -0.45"), "{text}");
    // Followers: −0.045 − 0.05 = −0.095, shown to the cent.
    assert!(text.contains("fees 0.05, funding -0.10)"), "{text}");
    assert!(
        text.contains("definitions:\n  funding: At each funding input"),
        "{text}"
    );
    assert!(!text.contains("funding not recorded"), "{text}");
    let view = report::build_follower(&c, &options(), "F1").unwrap();
    assert_eq!(view.follower.funding, Some(d("-0.045")));
    let text = view.to_text();
    assert!(text.contains("trading fees 0.05, funding -0.05)"), "{text}");
}

/// A database from before schema version 7 has no `funding_payments`: funding
/// is "not recorded" (`None`, JSON null), never zero, net P&L is what it was,
/// and the report says why.
#[test]
fn funding_in_an_older_database_is_not_recorded_not_zero() {
    let c = db();
    c.execute_batch("DROP TABLE funding_payments").unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    assert_eq!(r.missing_tables, vec!["funding_payments"]);
    let f1 = r.follower("F1").unwrap();
    assert_eq!(f1.funding, None);
    assert_eq!(f1.subscriptions[0].funding, None);
    assert_eq!(f1.net_pnl, d("-3.05"));
    assert_eq!(f1.performance_fee, d("0.396"));
    assert_eq!(r.leader("L1").unwrap().funding, None);
    assert!(
        r.notes
            .iter()
            .any(|n| n.starts_with("funding not recorded")),
        "{:?}",
        r.notes
    );
    let j = r.to_json();
    assert_eq!(j["followers"][0]["funding"], serde_json::Value::Null);
    assert_eq!(j["leaders"][0]["funding"], serde_json::Value::Null);
    let text = r.summary_text();
    assert!(text.contains("fees 0.05, funding not recorded)"), "{text}");
    assert!(!text.contains("definitions:"), "{text}");
}

/// S1's follower adds 1000 on day 2 (a reload raising its allocation from 100 to
/// 1100, after that day's fill) and takes 600 out on day 4: neither is profit.
#[test]
fn capital_added_and_withdrawn_is_not_profit_for_fees_or_returns() {
    let c = db();
    c.execute(
        "INSERT INTO allocation_changes VALUES (100, 'S1', 'F1', 'L1', ?1, '100', '1100', 'r2'),
                                               (101, 'S1', 'F1', 'L1', ?2, '1100', '500', 'r3')",
        [
            day(2) + 5 * 3_600_000_000_000,
            day(4) + 5 * 3_600_000_000_000,
        ],
    )
    .unwrap();
    c.execute(
        "UPDATE subscriptions SET allocation = '500' WHERE subscription_id = 'S1'",
        [],
    )
    .unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    let f1 = r.follower("F1").unwrap();
    let s1 = &f1.subscriptions[0];
    // P&L is what it was without the flows (follower_pnl_fees_… above).
    assert_eq!(s1.net_pnl, d("-3.05"));
    assert_eq!(s1.capital_flows, d("400"));
    assert_eq!(f1.capital_flows, d("400"));
    assert_eq!(s1.equity, d("496.95"));
    // Fees: 0.396 on day 1 (HWM 101.98) as before. Day 2: +1000 at equity 101.97
    // (the 0.2 bought at 120, at 120), HWM 1101.98; the day ends at 1101.97, below
    // it. Day 3 ends at 1099.96. Day 4: 600 out at equity 1099.95 (the 0.1 bought
    // at 110, at 110), HWM × 499.95/1099.95; the day ends at 499.95, below it.
    // Counted as profit, the 1000 would have owed 0.2 × 999.99 on day 2.
    assert_eq!(f1.performance_fee, d("0.396"));
    let sched = &s1.performance_fee;
    assert_eq!(sched.periods[2].hwm_before, d("1101.98"));
    // 1101.98 × 499.95 / 1099.95 = 500.872676935…, rounded up to 1e-8.
    assert_eq!(sched.hwm, d("500.87267694"));
    // Time-weighted: 100 → 101.97 before the deposit, 1101.97 → 1099.95 before the
    // withdrawal, 499.95 → 496.95 at the mark.
    let twr = d("101.97") / d("100") * (d("1099.95") / d("1101.97")) * (d("496.95") / d("499.95"))
        - Decimal::ONE;
    let got = s1.time_weighted_return.expect("a return");
    assert!((got - twr).abs() < d("1e-20"), "{got} vs {twr}");
    // +1.97% on the first 100, −0.18% on 1101.97, −0.60% on 499.95: +1.17%, where
    // net P&L over the first allocation would say −3.05%, and over the last −0.61%.
    assert!(got > d("0.0117") && got < d("0.0118"), "{got}");
    // Without changes the return is net ÷ allocation.
    let s2 = &r.follower("F2").unwrap().subscriptions[0];
    assert_eq!(s2.time_weighted_return, Some(d("0.01")));
    let j = r.to_json();
    assert_eq!(j["followers"][0]["capital_flows"], "400");
    assert_eq!(
        j["followers"][0]["subscriptions"][0]["capital_flows"],
        "400"
    );
    assert!(j["followers"][0]["subscriptions"][0]["time_weighted_return"].is_string());
}

/// A follower's account equity is what its source reported last (up to the
/// report's time), else the config's; the report says which.
#[test]
fn account_equity_comes_from_the_latest_report_up_to_the_report_time() {
    let c = db();
    c.execute(
        "INSERT INTO follower_equity VALUES (300, 'F1', ?1, '140'), (301, 'F1', ?2, '95.5')",
        [day(1), day(3)],
    )
    .unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    let f1 = r.follower("F1").unwrap();
    assert_eq!(f1.account_equity, Some(d("95.5")));
    assert_eq!(f1.account_equity_source, Some("follower_equity"));
    let f2 = r.follower("F2").unwrap();
    assert_eq!(f2.account_equity, Some(d("50")));
    assert_eq!(f2.account_equity_source, Some("followers"));
    let j = r.to_json();
    assert_eq!(j["followers"][0]["account_equity"], "95.5");
    assert_eq!(
        j["followers"][0]["account_equity_source"],
        "follower_equity"
    );
    // A row after the report's time is not yet known.
    c.execute(
        "INSERT INTO follower_equity VALUES (302, 'F1', ?1, '1')",
        [day(30)],
    )
    .unwrap();
    let opts = ReportOptions {
        as_of_ns: Some(day(5)),
        ..options()
    };
    let r = report::build_with(&c, &opts).unwrap();
    assert_eq!(r.follower("F1").unwrap().account_equity, Some(d("95.5")));
}

#[test]
fn json_carries_every_figure_as_a_decimal_string() {
    let c = db();
    let j = report::build_with(&c, &options()).unwrap().to_json();
    assert_eq!(j["schema"], "fillcast.report.v2");
    assert_eq!(j["empty"], false);
    assert_eq!(j["as_of_ns"], day(5));
    let all = &j["leaders"][0]["windows"][3];
    assert_eq!(j["leaders"][0]["leader_id"], "L1");
    assert_eq!(all["window"], "all");
    assert_eq!(all["roi"], "-0.03");
    assert_eq!(all["pnl"], "-30");
    // Headline trade figures count the open −30 (see leader_metrics_from_the_database);
    // `closed_only` has the closed trades alone.
    assert_eq!(all["trades"], 3);
    assert_eq!(all["open_trades"], 1);
    assert_eq!(all["win_rate"], "0.333333333333");
    assert_eq!(all["profit_factor"], "0.4");
    assert_eq!(all["gross_loss"], "50");
    assert_eq!(all["avg_holding_ns"], NS_PER_DAY);
    assert_eq!(all["closed_only"]["trades"], 2);
    assert_eq!(all["closed_only"]["win_rate"], "0.5");
    assert_eq!(all["closed_only"]["profit_factor"], "1");
    // A quotient (0.0490196078431372…), rounded to 12 places.
    assert_eq!(all["max_drawdown"], "0.049019607843");
    // Five days of data: no annualised figure (30 days at least), and it says why.
    assert_eq!(all["too_short_to_annualise"], true);
    assert_eq!(all["sharpe"], serde_json::Value::Null);
    assert_eq!(all["calmar"], serde_json::Value::Null);
    assert_eq!(j["options"]["annualise_min_ns"], 30 * NS_PER_DAY);
    assert_eq!(j["leaders"][0]["equity"], "970");
    assert_eq!(
        j["leaders"][0]["open_positions"][0]["unrealized_pnl"],
        "-30"
    );
    assert_eq!(
        j["leaders"][1]["windows"][3]["sharpe"],
        serde_json::Value::Null
    );
    assert_eq!(j["followers"][0]["net_pnl"], "-3.05");
    assert_eq!(j["followers"][0]["funding"], "0");
    assert_eq!(j["followers"][0]["subscriptions"][0]["funding"], "0");
    assert_eq!(j["leaders"][0]["funding"], "0");
    assert_eq!(j["fees"]["fee"], "0.596");
    assert_eq!(j["fees"]["platform_share"], "0.298");
    assert_eq!(
        j["followers"][0]["subscriptions"][0]["performance_fee"]["periods"][1]["fee"],
        "0.396"
    );
    assert_eq!(j["reconciliation"]["out_of_sync"][0]["follower_id"], "F2");
    assert_eq!(
        j["reconciliation"]["out_of_sync"][0]["pairs"][0]["deviation_notional"],
        "4"
    );
    assert_eq!(j["activity"]["instructions_by_status"]["reduced"], 1);
    assert_eq!(j["audit"]["by_kind"]["command"], 1);
    assert_eq!(j["row_counts"]["follower_fills"], 9);
    assert_eq!(j["latency"], serde_json::Value::Null);
    let with = report::build(&c)
        .unwrap()
        .with_latency(vec![(1_000, 5), (10_000, 90), (50_000, 5)]);
    let j = with.to_json();
    assert_eq!(j["latency"]["count"], 100);
    // The 50th sample falls in the 10 µs bucket, the 99th in the 50 µs one.
    assert_eq!(j["latency"]["p50_ns"], 10_000);
    assert_eq!(j["latency"]["p99_ns"], 50_000);
}

#[test]
fn lineage_explains_skips_reductions_and_rejects() {
    let c = db();
    let l = report::lineage(&c, "c-S2-5").unwrap().unwrap();
    assert_eq!(l.leader_fill.as_ref().unwrap().seq, 5);
    assert_eq!(l.instructions.len(), 1);
    assert_eq!(l.instructions[0].orders[0].order.status, "rejected");
    assert!(l.instructions[0].orders[0].fills.is_empty());
    assert!(l.reasons.iter().any(|r| r.contains("insufficient_margin")));
    let text = l.to_text();
    assert!(text.contains("leader fill #5 L1"), "{text}");
    assert!(text.contains("order c-S2-5"), "{text}");
    assert_eq!(
        l.to_json()["instructions"][0]["orders"][0]["reject_reason"],
        "insufficient_margin"
    );

    // The day-2 leader fill: S1 sent in full, S2 was reduced by max_position.
    let l = report::leader_fill_lineage(&c, 3).unwrap().unwrap();
    assert_eq!(l.instructions.len(), 2);
    assert_eq!(l.instructions[1].orders[0].fills.len(), 1);
    assert!(
        l.reasons
            .iter()
            .any(|r| r.contains("reduced: max_position (delta 0.1, sent 0.05)")),
        "{:?}",
        l.reasons
    );

    let dup = report::leader_fill_lineage(&c, 6).unwrap().unwrap();
    assert!(dup.instructions.is_empty());
    assert_eq!(
        dup.reasons,
        ["leader fill #6 ignored by the engine: duplicate"]
    );
    assert!(dup.to_text().contains("ignored by the engine: duplicate"));

    assert!(report::lineage(&c, "no-such-order").unwrap().is_none());
    assert!(report::leader_fill_lineage(&c, 999).unwrap().is_none());
}

/// Issue 15: a leader fill the venue made (a liquidation, ...) says so in its
/// lineage, from `leader_fills.kind` (schema version 6); an ordinary trade, and
/// every fill of a database without the column, is a `trade` and says nothing.
#[test]
fn lineage_names_the_kind_of_a_fill_that_is_not_the_leaders_own_trade() {
    let c = db();
    let plain = report::leader_fill_lineage(&c, 4).unwrap().unwrap();
    let f = plain.leader_fill.as_ref().unwrap();
    assert_eq!((f.kind.as_str(), f.is_trade()), ("trade", true));
    assert!(
        plain
            .to_text()
            .contains("leader fill #4 L1 event e4: sell 2 BTC @ 110"),
        "{}",
        plain.to_text()
    );
    assert_eq!(plain.to_json()["leader_fill"]["kind"], "trade");

    c.execute_batch(
        "ALTER TABLE leader_fills ADD COLUMN kind TEXT NOT NULL DEFAULT 'trade';
         UPDATE leader_fills SET kind = 'liquidation' WHERE seq = 4;",
    )
    .unwrap();
    let l = report::leader_fill_lineage(&c, 4).unwrap().unwrap();
    let f = l.leader_fill.as_ref().unwrap();
    assert_eq!((f.kind.as_str(), f.is_trade()), ("liquidation", false));
    let text = l.to_text();
    assert!(
        text.contains("leader fill #4 L1 event e4: liquidation sell 2 BTC @ 110"),
        "{text}"
    );
    assert_eq!(l.to_json()["leader_fill"]["kind"], "liquidation");
    // Copied like any fill: the same instructions and orders.
    assert_eq!(l.instructions, plain.instructions);
    assert_eq!(l.reasons, plain.reasons);
    // From a follower's order up, too.
    let order = report::lineage(&c, "c-S1-4").unwrap().unwrap();
    assert!(
        order.to_text().contains(": liquidation sell 2 BTC"),
        "{}",
        order.to_text()
    );
    let other = report::leader_fill_lineage(&c, 3).unwrap().unwrap();
    assert_eq!(other.leader_fill.unwrap().kind, "trade");
}

#[test]
fn empty_and_tableless_databases_give_valid_reports() {
    let c = Connection::open_in_memory().unwrap();
    let r = report::build(&c).unwrap();
    assert!(r.is_empty());
    assert_eq!(r.as_of_ns, None);
    assert_eq!(r.missing_tables.len(), 16);
    assert!(r.summary_text().contains("nothing to report"));
    assert_eq!(r.to_json()["empty"], true);

    c.execute_batch(SCHEMA).unwrap();
    let r = report::build(&c).unwrap().with_latency(Vec::new());
    assert!(r.is_empty());
    assert!(r.missing_tables.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("empty database")));
    assert!(r.leaders.is_empty() && r.followers.is_empty());
    let html = r.to_html();
    assert!(html.contains("nothing to measure"));
    assert!(report::lineage(&c, "x").unwrap().is_none());
}

#[test]
fn bad_values_are_errors_that_name_the_row_and_column() {
    // Each hostile value gives an error naming the table, the row and the column,
    // never a panic or a silently wrong figure.
    let cases: [(&str, &[&str]); 5] = [
        (
            "UPDATE leader_fills SET qty = 'abc' WHERE seq = 2",
            &["leader_fills", "seq=2", "qty"],
        ),
        (
            "UPDATE leader_fills SET side = 'hold' WHERE seq = 3",
            &["seq=3", "side", "buy or sell"],
        ),
        (
            "UPDATE follower_fills SET ts = -5 WHERE seq = 1",
            &["follower_fills", "ts", "timestamp"],
        ),
        (
            "UPDATE mark_prices SET ts = 9223372036854775807",
            &["mark_prices", "ts"],
        ),
        // 1e20 × 1e15 does not fit in a Decimal's 28 digits.
        (
            "UPDATE leader_fills SET qty = '100000000000000000000', price = '1000000000000000' WHERE seq = 1",
            &["overflow", "leader L1"],
        ),
    ];
    for (sql, words) in cases {
        let c = db();
        c.execute(sql, []).unwrap();
        let e = report::build(&c).unwrap_err().to_string();
        for w in words {
            assert!(e.contains(w), "{sql}: {e}");
        }
    }
    let bad_as_of = ReportOptions {
        as_of_ns: Some(-1),
        ..ReportOptions::default()
    };
    assert!(report::build_with(&db(), &bad_as_of).is_err());
}

#[test]
fn leader_capital_comes_from_leader_equity_first() {
    let c = db();
    c.execute(
        "INSERT INTO leader_equity VALUES ('L1', ?1, '2000'), ('L1', ?2, '1500')",
        [day(-1), day(3)],
    )
    .unwrap();
    let r = report::build_with(&c, &options()).unwrap();
    let l1 = r.leader("L1").unwrap();
    // The earliest row (2000) is the capital: ROI = −30 / 2000 = −1.5%.
    assert_eq!(l1.capital_source, "leader_equity");
    assert_eq!(l1.windows[3].roi, Some(d("-0.015")));
}

#[test]
fn summary_text_names_the_figures() {
    let c = db();
    let s = report::build_with(&c, &options())
        .unwrap()
        .with_latency(vec![(2_000, 10)])
        .summary_text();
    assert!(
        s.contains("fillcast report as of 2024-11-06 00:00:00 UTC"),
        "{s}"
    );
    assert!(s.contains("L1"));
    assert!(s.contains("-3.00%"), "{s}");
    assert!(s.contains("1 follower(s) out of sync"), "{s}");
    assert!(s.contains("insufficient_margin"), "{s}");
    assert!(s.contains("p50 ≤ 2µs"), "{s}");
}

// --- never unhedged: positions open where the leader is flat ----------------

/// Leader L3 (ETH, venue `simx`, except S6's orders on `simy`) opens 1 at seq 100
/// and closes at 120; S3..S6 copy it 1:1. Journal seqs are shared by every table.
///
/// | pair | after the close at 120 | held | reason |
/// |------|------------------------|------|--------|
/// | S3 | close rejected, resyncs 130 and 140 rejected (`insufficient_margin`), given up at 150 | 1 | `reject_insufficient_margin` (out_of_sync #150) |
/// | S4 | deferred: `venue_down` (simx down since 119) | 1 | `venue_down` (deferred #122) |
/// | S5 | opened 0.5 + resync 115 (`unfilled`, `venue_limit`) 0.25, closed at 126 | 0 | not listed |
/// | S6 | skipped (hand-made: no order, no record) | 1 | none: unexplained since #120 |
///
/// simx: down at 90, up at 95 (5 s later), down at 119, alarm at 155, still down.
const UNHEDGED: &str = "
INSERT INTO symbols VALUES ('ETH', '0.01', '0.01');
INSERT INTO leaders VALUES ('L3', '10000');
INSERT INTO followers VALUES ('F3', '1000'), ('F4', '1000'), ('F5', '1000'), ('F6', '1000');
INSERT INTO subscriptions VALUES ('S3', 'F3', 'L3', 'fixed_ratio', '1000'),
  ('S4', 'F4', 'L3', 'fixed_ratio', '1000'), ('S5', 'F5', 'L3', 'fixed_ratio', '1000'),
  ('S6', 'F6', 'L3', 'fixed_ratio', '1000');
INSERT INTO leader_fills VALUES
  (100, 'L3', 'e100', 'ETH', 'buy', '1', '2000', '1', 'o100', '1', 1730851200000000000, 1730851200000000000, ''),
  (120, 'L3', 'e120', 'ETH', 'sell', '1', '2100', '0', 'o120', '1', 1730851260000000000, 1730851260000000000, '');
INSERT INTO leader_positions VALUES ('L3', 'ETH', '0', 120);
INSERT INTO copy_instructions VALUES
  (101, 100, 'e100', 'S3', 'F3', 'L3', 'ETH', '1', '1', '1', 'sent', '', 1, ''),
  (102, 100, 'e100', 'S4', 'F4', 'L3', 'ETH', '1', '1', '1', 'sent', '', 1, ''),
  (103, 100, 'e100', 'S5', 'F5', 'L3', 'ETH', '1', '1', '1', 'sent', '', 1, ''),
  (104, 100, 'e100', 'S6', 'F6', 'L3', 'ETH', '1', '1', '1', 'sent', '', 1, ''),
  (115, NULL, 'r115', 'S5', 'F5', 'L3', 'ETH', '1', '0.5', '0.25', 'reduced', 'venue_limit', 1, 'unfilled'),
  (121, 120, 'e120', 'S3', 'F3', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, ''),
  (122, 120, 'e120', 'S4', 'F4', 'L3', 'ETH', '0', '-1', '0', 'deferred', 'venue_down', 1, ''),
  (123, 120, 'e120', 'S5', 'F5', 'L3', 'ETH', '0', '-0.75', '-0.75', 'sent', '', 1, ''),
  (124, 120, 'e120', 'S6', 'F6', 'L3', 'ETH', '0', '-1', '0', 'skipped', 'no_change', 1, ''),
  (130, NULL, 'r130', 'S3', 'F3', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, 'reject_insufficient_margin'),
  (140, NULL, 'r140', 'S3', 'F3', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, 'reject_insufficient_margin');
INSERT INTO follower_orders VALUES
  ('c-S3-100', 101, 101, 'e100', 'S3', 'F3', 'L3', 'simx', 'ETH', 'buy', '1', '2002', 'limit_ioc', 0, 'filled', '1', NULL),
  ('c-S4-100', 102, 102, 'e100', 'S4', 'F4', 'L3', 'simx', 'ETH', 'buy', '1', '2002', 'limit_ioc', 0, 'filled', '1', NULL),
  ('c-S5-100', 103, 103, 'e100', 'S5', 'F5', 'L3', 'simx', 'ETH', 'buy', '1', '2002', 'limit_ioc', 0, 'canceled', '0.5', NULL),
  ('c-S6-100', 104, 104, 'e100', 'S6', 'F6', 'L3', 'simy', 'ETH', 'buy', '1', '2002', 'limit_ioc', 0, 'filled', '1', NULL),
  ('c-S5-r115', 115, 115, 'r115', 'S5', 'F5', 'L3', 'simx', 'ETH', 'buy', '0.25', '2002', 'limit_ioc', 0, 'filled', '0.25', NULL),
  ('c-S3-120', 121, 121, 'e120', 'S3', 'F3', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'rejected', '0', 'insufficient_margin'),
  ('c-S5-120', 123, 123, 'e120', 'S5', 'F5', 'L3', 'simx', 'ETH', 'sell', '0.75', '2100', 'market', 1, 'filled', '0.75', NULL),
  ('c-S3-r130', 130, 130, 'r130', 'S3', 'F3', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'rejected', '0', 'insufficient_margin'),
  ('c-S3-r140', 140, 140, 'r140', 'S3', 'F3', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'rejected', '0', 'insufficient_margin');
INSERT INTO follower_fills VALUES
  ('c-S3-100', 't105', 105, 'F3', 'S3', 'ETH', 'buy', '1', '2000', '0', 1730851201000000000),
  ('c-S4-100', 't106', 106, 'F4', 'S4', 'ETH', 'buy', '1', '2000', '0', 1730851201000000000),
  ('c-S5-100', 't107', 107, 'F5', 'S5', 'ETH', 'buy', '0.5', '2000', '0', 1730851201000000000),
  ('c-S6-100', 't109', 109, 'F6', 'S6', 'ETH', 'buy', '1', '2000', '0', 1730851201000000000),
  ('c-S5-r115', 't116', 116, 'F5', 'S5', 'ETH', 'buy', '0.25', '2000', '0', 1730851202000000000),
  ('c-S5-120', 't126', 126, 'F5', 'S5', 'ETH', 'sell', '0.75', '2100', '0', 1730851261000000000);
INSERT INTO positions VALUES ('S3', 'ETH', 'F3', 'L3', '1', '2000', '0', 105),
  ('S4', 'ETH', 'F4', 'L3', '1', '2000', '0', 106), ('S5', 'ETH', 'F5', 'L3', '0', NULL, '75', 126),
  ('S6', 'ETH', 'F6', 'L3', '1', '2000', '0', 109);
INSERT INTO audit_log VALUES
  (90, 1730851100000000000, 'venue_down', 'simx', 'venue_down', ''),
  (95, 1730851105000000000, 'venue_up', 'simx', 'reconnected', ''),
  (119, 1730851250000000000, 'venue_down', 'simx', 'venue_down', ''),
  (125, 1730851260000000000, 'reject', 'c-S3-120', 'insufficient_margin', 'retried'),
  (150, 1730851290000000000, 'out_of_sync', 'S3', 'reject_insufficient_margin', 'ETH'),
  (155, 1730851260000000000, 'venue_alarm', 'simx', 'venue_down', 'down 10000 ms');
";

/// The small database plus `UNHEDGED`.
fn db_unhedged() -> Connection {
    let c = db();
    c.execute_batch(UNHEDGED).unwrap();
    c
}

/// `(subscription, reason, source, since seq)` of each open pair.
type Open = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    i64,
);

fn open_pairs(c: &Connection) -> Vec<Open> {
    let r = report::build_with(c, &options()).unwrap();
    let o = &r.reconciliation.open_where_leader_flat;
    assert_eq!(o.count(), o.rows.len());
    assert_eq!(
        o.unexplained,
        o.rows.iter().filter(|p| p.reason.is_none()).count()
    );
    o.rows
        .iter()
        .map(|p| {
            let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
            (
                leak(&p.subscription_id),
                p.reason.as_deref().map(leak),
                p.source,
                p.since_seq.unwrap(),
            )
        })
        .collect()
}

#[test]
fn open_where_leader_flat_lists_each_pair_with_its_recorded_reason() {
    let base: Vec<Open> = vec![
        ("S6", None, None, 120),
        (
            "S3",
            Some("reject_insufficient_margin"),
            Some("out_of_sync"),
            150,
        ),
        ("S4", Some("venue_down"), Some("deferred"), 122),
    ];
    // Each case: rows added to `UNHEDGED`, and the pairs the report then lists.
    let cases: [(&str, &str, Vec<Open>); 6] = [
        ("as built", "", base.clone()),
        (
            "a person's resync after the give-up supersedes it; its order still working",
            "INSERT INTO copy_instructions VALUES (160, NULL, 'r160', 'S3', 'F3', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, 'command');
             INSERT INTO follower_orders VALUES ('c-S3-r160', 160, 160, 'r160', 'S3', 'F3', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'acked', '0', NULL);",
            vec![base[0], ("S3", Some("order_working"), Some("order"), 160), base[2]],
        ),
        (
            "that resync's order rejected: what the resync retries next",
            "INSERT INTO copy_instructions VALUES (160, NULL, 'r160', 'S3', 'F3', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, 'command');
             INSERT INTO follower_orders VALUES ('c-S3-r160', 160, 160, 'r160', 'S3', 'F3', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'rejected', '0', 'transient');",
            vec![base[0], ("S3", Some("reject_transient"), Some("order"), 160), base[2]],
        ),
        (
            "a resync for the deferred pair fills in part: unfilled",
            "INSERT INTO copy_instructions VALUES (160, NULL, 'r160', 'S4', 'F4', 'L3', 'ETH', '0', '-1', '-1', 'sent', '', 1, 'venue_down');
             INSERT INTO follower_orders VALUES ('c-S4-r160', 160, 160, 'r160', 'S4', 'F4', 'L3', 'simx', 'ETH', 'sell', '1', '2100', 'market', 1, 'canceled', '0.4', NULL);
             INSERT INTO follower_fills VALUES ('c-S4-r160', 't161', 161, 'F4', 'S4', 'ETH', 'sell', '0.4', '2100', '0', 1730851300000000000);
             UPDATE positions SET qty = '0.6' WHERE subscription_id = 'S4';",
            vec![base[0], base[1], ("S4", Some("unfilled"), Some("order"), 160)],
        ),
        (
            "an alarm on the unexplained pair's venue after its last fill",
            "INSERT INTO audit_log VALUES (170, 1730851400000000000, 'venue_alarm', 'simy', 'engine_stopped', 'down 10000 ms');",
            vec![
                base[1],
                base[2],
                ("S6", Some("engine_stopped"), Some("venue_alarm"), 170),
            ],
        ),
        (
            "the leader reopens: nothing is open where it is flat",
            "UPDATE leader_positions SET qty = '2', updated_seq = 180 WHERE leader_id = 'L3';",
            vec![],
        ),
    ];
    for (what, sql, want) in cases {
        let c = db_unhedged();
        c.execute_batch(sql).unwrap();
        assert_eq!(open_pairs(&c), want, "{what}");
    }

    // A reload removed S6 (or ETH) under `on_remove = "keep"`: the engine keeps
    // its position on purpose, and the revision in force says so. Under `close`
    // it would be closing, so that is no reason.
    let model = |on_remove: &str, sub_removed: bool, eth_removed: bool| {
        format!(
            "[engine]\non_remove = \"{on_remove}\"\n\n\
             [[symbols]]\nname = \"ETH\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"simx\"\nremoved = {eth_removed}\n\n\
             [[symbols]]\nname = \"BTC\"\nlot_size = \"0.01\"\ntick_size = \"0.1\"\nvenue = \"simx\"\n\n\
             [[venues]]\nname = \"simx\"\nkind = \"sim\"\n\n\
             [[leaders]]\nid = \"L3\"\nequity = \"10000\"\n\n\
             [[followers]]\nid = \"F6\"\nequity = \"1000\"\n\n\
             [[subscriptions]]\nid = \"S6\"\nfollower = \"F6\"\nleader = \"L3\"\nallocation = \"1000\"\nmode = \"fixed_ratio\"\nratio = \"1\"\nremoved = {sub_removed}\n"
        )
    };
    for (what, toml, want_s6) in [
        (
            "S6 removed, kept",
            model("keep", true, false),
            Some(("removed_kept", "config", 175)),
        ),
        (
            "ETH removed, kept",
            model("keep", false, true),
            Some(("removed_kept", "config", 175)),
        ),
        ("S6 removed, closing", model("close", true, false), None),
    ] {
        fillcast_engine::config::load_model(&toml).unwrap_or_else(|e| panic!("{what}: {e}"));
        let c = db_unhedged();
        c.execute_batch("CREATE TABLE config_revisions (revision TEXT, seq INTEGER, toml TEXT)")
            .unwrap();
        c.execute(
            "INSERT INTO config_revisions VALUES ('a', 1, ''), ('b', 175, ?1)",
            [&toml],
        )
        .unwrap();
        let s6 = match want_s6 {
            Some((reason, source, seq)) => ("S6", Some(reason), Some(source), seq),
            None => base[0],
        };
        let mut want: Vec<Open> = vec![base[1], base[2], s6];
        if want_s6.is_none() {
            want = base.clone();
        }
        assert_eq!(open_pairs(&c), want, "{what}");
    }

    // Without `leader_positions`, flat is read from the latest acted-on leader fill:
    // L1 still holds 1 BTC (S1's 0.1 is not listed), L3 is flat.
    let c = db_unhedged();
    c.execute_batch("DROP TABLE leader_positions").unwrap();
    assert_eq!(open_pairs(&c), base);
    let r = report::build_with(&c, &options()).unwrap();
    assert_eq!(
        r.reconciliation.open_where_leader_flat.leader_flat_from,
        "leader_fills"
    );

    // The small database alone: S1 holds 0.1 BTC while L1 holds 1: not listed.
    assert_eq!(open_pairs(&db()), vec![]);
}

#[test]
fn resync_work_and_open_positions_in_json_and_summary() {
    let c = db_unhedged();
    let r = report::build_with(&c, &options()).unwrap();
    let a = &r.activity;
    assert_eq!(a.deferred, 1);
    assert_eq!(a.resync.instructions, 3);
    assert_eq!(
        a.resync.by_cause,
        vec![
            ("reject_insufficient_margin".to_string(), 2),
            ("unfilled".to_string(), 1)
        ]
    );
    assert_eq!(a.resync.orders, 3);
    assert_eq!(a.resync.venue_limit, 1);
    assert_eq!(a.resync.gave_up, 1);
    assert!(a
        .limited_by_reason
        .contains(&("deferred (venue_down)".to_string(), 1)));
    assert!(a
        .instructions_by_status
        .contains(&("deferred".to_string(), 1)));
    // simx: down 90 → up 95 (5 s), down again at 119 with an alarm, never back.
    assert_eq!(a.venues.len(), 1);
    let v = &a.venues[0];
    assert_eq!(
        (v.venue.as_str(), v.outages, v.alarms, v.stops),
        ("simx", 2, 1, 0)
    );
    assert_eq!(v.downtime_ns, 5_000_000_000);
    assert!(v.down_at_end);
    // Reconciliation names the deferral and the resync on the pairs' last decisions.
    let s4 = r
        .reconciliation
        .pairs
        .iter()
        .find(|p| p.subscription_id == "S4")
        .unwrap();
    assert!(
        s4.reasons[0].contains("deferred (venue_down)"),
        "{:?}",
        s4.reasons
    );
    let s3 = r
        .reconciliation
        .pairs
        .iter()
        .find(|p| p.subscription_id == "S3")
        .unwrap();
    assert!(
        s3.reasons[0].contains("(resync: reject_insufficient_margin)"),
        "{:?}",
        s3.reasons
    );

    let j = r.to_json();
    let o = &j["reconciliation"]["open_where_leader_flat"];
    assert_eq!(o["count"], 3);
    assert_eq!(o["unexplained"], 1);
    assert_eq!(o["by_reason"]["reject_insufficient_margin"], 1);
    assert_eq!(o["by_reason"]["venue_down"], 1);
    assert_eq!(o["leader_flat_from"], "leader_positions");
    assert_eq!(
        o["rows"][0],
        serde_json::json!({
            "subscription_id": "S6", "follower_id": "F6", "leader_id": "L3", "symbol": "ETH",
            "qty": "1", "reason": null, "source": null, "since_seq": 120,
        })
    );
    assert_eq!(o["rows"][1]["reason"], "reject_insufficient_margin");
    assert_eq!(o["rows"][1]["source"], "out_of_sync");
    assert_eq!(o["rows"][1]["since_seq"], 150);
    let rs = &j["activity"]["resync"];
    assert_eq!(rs["instructions"], 3);
    assert_eq!(rs["by_cause"]["unfilled"], 1);
    assert_eq!(rs["venue_limit"], 1);
    assert_eq!(rs["gave_up_by_reason"]["reject_insufficient_margin"], 1);
    assert_eq!(j["activity"]["deferred"], 1);
    assert_eq!(j["activity"]["venues"][0]["downtime_ns"], 5_000_000_000i64);
    assert_eq!(j["activity"]["venues"][0]["down_at_end"], true);
    // The JSON lists at most `open_rows_max` rows, unexplained first; counts cover all.
    let one = ReportOptions {
        open_rows_max: 1,
        ..options()
    };
    let j = report::build_with(&c, &one).unwrap().to_json();
    let o = &j["reconciliation"]["open_where_leader_flat"];
    assert_eq!(o["rows"].as_array().unwrap().len(), 1);
    assert_eq!(o["rows"][0]["subscription_id"], "S6");
    assert_eq!(o["count"], 3);

    let s = r.summary_text();
    for want in [
        "open where leader flat 3 (subscription, symbol) pairs; unexplained 1",
        "S6 F6 ETH holds 1 — NO RECORDED REASON (since #120)",
        "S3 F3 ETH holds 1 (reject_insufficient_margin: out_of_sync #150)",
        "S4 F4 ETH holds 1 (venue_down: deferred #122)",
        "resync: 3 instructions (reject_insufficient_margin 2, unfilled 1), 3 orders; deferred 1, venue_limit 1; pairs given up (out of sync) 1",
        "venue simx: 2 outage(s), down 5s in all (ended outages), 1 alarm(s); DOWN when the data ends",
    ] {
        assert!(s.contains(want), "{want:?} not in\n{s}");
    }
    let reason_lines: Vec<&str> = s
        .lines()
        .skip_while(|l| !l.contains("open where leader flat"))
        .skip(1)
        .take(2)
        .collect();
    assert!(
        reason_lines[0]
            .trim_start()
            .starts_with("reject_insufficient_margin"),
        "{s}"
    );
    assert!(
        reason_lines[1].trim_start().starts_with("venue_down"),
        "{s}"
    );
}

#[test]
fn lineage_of_a_resync_order_shows_its_cause_target_and_earlier_failures() {
    let c = db_unhedged();
    let l = report::lineage(&c, "c-S3-r140").unwrap().unwrap();
    assert_eq!(l.leader_fill, None);
    let origin = l.resync.as_ref().unwrap();
    assert_eq!(origin.cause, "reject_insufficient_margin");
    // The close at 120 is the target it catches up with (not the open at 100).
    assert_eq!(origin.catching_up_with.as_ref().unwrap().seq, 120);
    let failed: Vec<&str> = origin
        .failed_before
        .iter()
        .map(|o| o.order.client_order_id.as_str())
        .collect();
    assert_eq!(failed, ["c-S3-120", "c-S3-r130"]);
    assert_eq!(l.instructions.len(), 1);
    assert_eq!(l.instructions[0].instruction.seq, 140);
    assert_eq!(l.instructions[0].orders[0].order.status, "rejected");
    let text = l.to_text();
    for want in [
        "made by the resync (cause reject_insufficient_margin), not by a leader fill",
        "catching up with leader fill #120 L3 event e120: sell 1 ETH @ 2100, position after 0",
        "order c-S3-120 simx: sell 1 ETH",
        "instruction #140 (resync: reject_insufficient_margin) subscription S3",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert_eq!(
        l.reasons[0],
        "made by the resync (reject_insufficient_margin), catching up with leader fill #120"
    );
    let j = l.to_json();
    assert_eq!(j["resync"]["catching_up_with"]["seq"], 120);
    assert_eq!(
        j["resync"]["failed_before"][1]["client_order_id"],
        "c-S3-r130"
    );
    assert_eq!(j["instructions"][0]["resync"], "reject_insufficient_margin");

    // A resync that found a partial fill: its leader fill is the open at 100, and
    // the order that left the remainder (canceled, half filled) led to it.
    let l = report::lineage(&c, "c-S5-r115").unwrap().unwrap();
    let origin = l.resync.as_ref().unwrap();
    assert_eq!(origin.cause, "unfilled");
    assert_eq!(origin.catching_up_with.as_ref().unwrap().seq, 100);
    assert_eq!(origin.failed_before.len(), 1);
    assert_eq!(origin.failed_before[0].order.client_order_id, "c-S5-100");
    assert!(l
        .reasons
        .iter()
        .any(|r| r.contains("reduced: venue_limit (delta 0.5, sent 0.25)")));

    // The close at 120: its four decisions (one deferred), then S3's two resyncs.
    let l = report::leader_fill_lineage(&c, 120).unwrap().unwrap();
    assert_eq!(l.instructions.len(), 4);
    let resyncs: Vec<i64> = l.resyncs.iter().map(|i| i.instruction.seq).collect();
    assert_eq!(resyncs, [130, 140]);
    assert_eq!(l.next_leader_fill_seq, None);
    assert!(l.reasons.iter().any(|r| r.contains(
        "instruction #122 (subscription S4, follower F4) deferred: venue_down (delta -1 not sent yet; the resync sends it)"
    )), "{:?}", l.reasons);
    let text = l.to_text();
    assert!(
        text.contains(
            "└─ resync instructions for these pairs that followed (no later leader fill):"
        ),
        "{text}"
    );
    // The open at 100: S5's resync at 115 came before the next fill (120); S3's
    // later ones belong to the close.
    let l = report::leader_fill_lineage(&c, 100).unwrap().unwrap();
    let resyncs: Vec<i64> = l.resyncs.iter().map(|i| i.instruction.seq).collect();
    assert_eq!(resyncs, [115]);
    assert_eq!(l.next_leader_fill_seq, Some(120));
    assert!(l.to_text().contains("before leader fill #120"));
}

// --- the same database in PostgreSQL ---------------------------------------

/// The schema with PostgreSQL's types: NUMERIC decimals, BIGINT timestamps.
const PG_SCHEMA: &[(&str, &str)] = &[
    ("leader_positions", "leader_id TEXT, symbol TEXT, qty NUMERIC, updated_seq BIGINT"),
    ("leader_fills", "seq BIGINT, leader_id TEXT, event_id TEXT, symbol TEXT, side TEXT, qty NUMERIC, price NUMERIC, position_after NUMERIC, order_id TEXT, order_qty NUMERIC, venue_ts BIGINT, recv_ts BIGINT, ignored TEXT"),
    ("copy_instructions", "seq BIGINT, leader_fill_seq BIGINT, event_id TEXT, subscription_id TEXT, follower_id TEXT, leader_id TEXT, symbol TEXT, target NUMERIC, delta NUMERIC, sent NUMERIC, status TEXT, reason TEXT, config_revision BIGINT, resync TEXT"),
    ("follower_orders", "client_order_id TEXT, seq BIGINT, instruction_seq BIGINT, event_id TEXT, subscription_id TEXT, follower_id TEXT, leader_id TEXT, venue TEXT, symbol TEXT, side TEXT, qty NUMERIC, limit_price NUMERIC, order_type TEXT, reduce_only BOOLEAN, status TEXT, filled_qty NUMERIC, reject_reason TEXT"),
    ("follower_fills", "client_order_id TEXT, venue_trade_id TEXT, seq BIGINT, follower_id TEXT, subscription_id TEXT, symbol TEXT, side TEXT, qty NUMERIC, price NUMERIC, fee NUMERIC, ts BIGINT"),
    ("positions", "subscription_id TEXT, symbol TEXT, follower_id TEXT, leader_id TEXT, qty NUMERIC, avg_price NUMERIC, realized_pnl NUMERIC, updated_seq BIGINT"),
    ("mark_prices", "symbol TEXT, ts BIGINT, price NUMERIC"),
    ("leader_equity", "leader_id TEXT, ts BIGINT, equity NUMERIC"),
    ("subscriptions", "subscription_id TEXT, follower_id TEXT, leader_id TEXT, mode TEXT, allocation NUMERIC"),
    ("leaders", "leader_id TEXT, equity NUMERIC"),
    ("followers", "follower_id TEXT, equity NUMERIC"),
    ("audit_log", "seq BIGINT, ts BIGINT, kind TEXT, subject TEXT, reason TEXT, detail TEXT"),
    ("symbols", "name TEXT, lot_size NUMERIC, tick_size NUMERIC"),
    ("follower_equity", "seq BIGINT, follower_id TEXT, ts BIGINT, equity NUMERIC"),
    ("allocation_changes", "seq BIGINT, subscription_id TEXT, follower_id TEXT, leader_id TEXT, ts BIGINT, allocation_before NUMERIC, allocation_after NUMERIC, config_revision TEXT"),
    ("funding_payments", "seq BIGINT, line INTEGER, ts BIGINT, symbol TEXT, leader_id TEXT, follower_id TEXT, subscription_id TEXT, position_qty NUMERIC, mark_price NUMERIC, rate NUMERIC, amount NUMERIC"),
];

#[test]
fn postgres_gives_the_same_report_as_sqlite() {
    let url = std::env::var("FILLCAST_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut pg = match postgres::Client::connect(&url, postgres::NoTls) {
        Ok(c) => c,
        Err(e) => {
            println!("skipped: no PostgreSQL at {url} ({e})");
            return;
        }
    };
    let schema = format!("report_test_{}", std::process::id());
    // The small database with the never-unhedged rows: resync lineage too.
    pg.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema};"
    ))
    .unwrap();
    let lite = db_unhedged();
    lite.execute(
        "INSERT INTO follower_equity VALUES (210, 'F1', ?1, '101.25')",
        [day(3)],
    )
    .unwrap();
    // Capital in and out, so that NUMERIC allocations are read back too.
    lite.execute(
        "INSERT INTO allocation_changes VALUES (200, 'S1', 'F1', 'L1', ?1, '100', '1100.5', 'r2'),
                                               (201, 'S1', 'F1', 'L1', ?2, '1100.5', '700', 'r3')",
        [day(2) + 1_000_000_000, day(4) + 1_000_000_000],
    )
    .unwrap();
    // Funding, so that NUMERIC amounts (and NULL subscriptions) are read back too.
    lite.execute(
        "INSERT INTO funding_payments VALUES
           (205, 0, ?1, 'BTC', 'L1', NULL, NULL, '2', '120', '0.0001', '-0.024'),
           (205, 1, ?1, 'BTC', 'L1', 'F1', 'S1', '0.2', '120', '0.0001', '-0.0024')",
        [day(2) + 8 * 3_600_000_000_000],
    )
    .unwrap();
    for (table, cols) in PG_SCHEMA {
        pg.batch_execute(&format!("CREATE TABLE {table} ({cols})"))
            .unwrap();
        // Copy every row as text, cast to the column's type on insert.
        let types: Vec<&str> = cols
            .split(", ")
            .map(|c| c.split(' ').nth(1).unwrap())
            .collect();
        let names: Vec<&str> = cols
            .split(", ")
            .map(|c| c.split(' ').next().unwrap())
            .collect();
        let select = names
            .iter()
            .map(|n| format!("CAST({n} AS TEXT)"))
            .collect::<Vec<_>>()
            .join(", ");
        let insert = format!(
            "INSERT INTO {table} VALUES ({})",
            types
                .iter()
                .enumerate()
                .map(|(i, t)| format!("${}::text::{t}", i + 1))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = lite
            .prepare(&format!("SELECT {select} FROM {table}"))
            .unwrap();
        let rows: Vec<Vec<Option<String>>> = stmt
            .query_map([], |r| (0..names.len()).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for row in rows {
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = row
                .iter()
                .map(|v| v as &(dyn postgres::types::ToSql + Sync))
                .collect();
            pg.execute(insert.as_str(), &params).unwrap();
        }
    }
    let from_pg = report::build_postgres(&mut pg, &options());
    let orders = ["c-S2-5", "c-S3-r140", "c-S5-r115", "c-S3-120"];
    let fills = [3, 100, 120];
    let lineages_pg: Vec<_> = orders
        .iter()
        .map(|id| report::lineage_postgres(&mut pg, id))
        .collect();
    let fills_pg: Vec<_> = fills
        .iter()
        .map(|seq| report::leader_fill_lineage_postgres(&mut pg, *seq))
        .collect();
    pg.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();

    let from_lite = report::build_with(&lite, &options()).unwrap();
    let from_pg = from_pg.unwrap();
    assert_eq!(from_pg.to_json(), from_lite.to_json());
    assert_eq!(
        from_pg.follower("F1").and_then(|f| f.funding),
        Some(d("-0.0024"))
    );
    assert_eq!(
        from_pg.leader("L1").and_then(|l| l.funding),
        Some(d("-0.024"))
    );
    assert_eq!(from_pg.reconciliation.open_where_leader_flat.count(), 3);
    for (id, pg) in orders.iter().zip(lineages_pg) {
        let lite = report::lineage(&lite, id).unwrap().unwrap();
        assert_eq!(pg.unwrap().unwrap().to_json(), lite.to_json(), "{id}");
    }
    for (seq, pg) in fills.iter().zip(fills_pg) {
        let lite = report::leader_fill_lineage(&lite, *seq).unwrap().unwrap();
        assert_eq!(pg.unwrap().unwrap().to_json(), lite.to_json(), "fill {seq}");
    }
}

// --- a leader cannot game its metrics by holding a loss open ----------------

const HOUR_NS: i64 = 3_600_000_000_000;

/// Leader G (capital 10,000) makes 60 small closed wins and holds one large loss:
///
/// - BTC, day i for i in 0..60: buy 1 @ 100 at day(i), sell 1 @ 101 at day(i) + 2 h:
///   +1 each, held 2 h. No BTC mark: flat at the end, it needs none.
/// - ETH: buy 10 @ 1000 at day(1) + 1 h, never sold; the only ETH mark is 900 at
///   day(60), the report's time: unrealized 10 × (900 − 1000) = −1000.
///
/// Equity rises by 1 a day from 10,000 to 10,060 (day 59 + 2 h) and falls to 9,060
/// at the mark.
fn gaming_db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch("INSERT INTO leaders VALUES ('G', '10000');")
        .unwrap();
    let mut seq = 0i64;
    let mut fill = |symbol: &str, side: &str, qty: &str, price: &str, pos: &str, ts: i64| {
        seq += 1;
        c.execute(
            "INSERT INTO leader_fills (seq, leader_id, event_id, symbol, side, qty, price,
               position_after, order_id, order_qty, venue_ts, recv_ts)
             VALUES (?1, 'G', ?2, ?3, ?4, ?5, ?6, ?7, ?2, ?5, ?8, ?8)",
            rusqlite::params![seq, format!("g{seq}"), symbol, side, qty, price, pos, ts],
        )
        .unwrap();
    };
    for i in 0..60 {
        fill("BTC", "buy", "1", "100", "1", day(i));
        if i == 1 {
            fill("ETH", "buy", "10", "1000", "10", day(1) + HOUR_NS);
        }
        fill("BTC", "sell", "1", "101", "0", day(i) + 2 * HOUR_NS);
    }
    c.execute(
        "INSERT INTO mark_prices VALUES ('ETH', ?1, '900')",
        [day(60)],
    )
    .unwrap();
    c
}

#[test]
fn a_held_open_loss_shows_in_every_leader_metric() {
    let c = gaming_db();
    let r = report::build_with(&c, &ReportOptions::default()).unwrap();
    assert_eq!(r.as_of_ns, Some(day(60)));
    let g = r.leader("G").unwrap();
    assert_eq!(g.realized_pnl, d("60"));
    assert_eq!(g.unrealized_pnl, d("-1000"));
    assert_eq!(g.equity, Some(d("9060")));
    let eth = &g.open_positions[0];
    // Valued at the `mark_prices` row, not at the leader's own fill.
    assert_eq!(
        (eth.symbol.as_str(), eth.mark, eth.basis),
        ("ETH", d("900"), report::PriceBasis::Mark)
    );
    assert_eq!(eth.realized, Decimal::ZERO);

    let all = g.windows.iter().find(|w| w.label == "all").unwrap();
    // 60 closed wins of +1 and the open −1000: 61 trades, 60 winners.
    assert_eq!((all.trades.count, all.trades.open), (61, 1));
    assert_eq!((all.trades.wins, all.trades.losses), (60, 1));
    assert_eq!(all.trades.win_rate, Some(d("60") / d("61")));
    // Profit factor 60 / 1000 = 0.06, not ∞.
    assert_eq!(
        (all.trades.gross_profit, all.trades.gross_loss),
        (d("60"), d("1000"))
    );
    assert_eq!(all.trades.profit_factor, ProfitFactor::Finite(d("0.06")));
    // Holding: 60 × 2 h, plus the open ETH from day 1 + 1 h to day 60 (59 d − 1 h =
    // 1,415 h): 1,535 h / 61 = 25.16 h = 90,590,163,934,426 ns (toward zero), not 2 h.
    assert_eq!(
        all.trades.avg_holding_ns,
        Some((120 * HOUR_NS + 59 * NS_PER_DAY - HOUR_NS) / 61)
    );
    assert_eq!(all.trades.avg_holding_ns, Some(90_590_163_934_426));
    // ROI: 10,000 → 9,060 = −9.4% (realized alone would say +0.6%).
    assert_eq!(all.pnl, d("-940"));
    assert_eq!(all.roi, Some(d("-0.094")));
    // Drawdown: from the peak 10,060 to 9,060 = 1000 / 10,060 (realized alone: 0).
    assert_eq!(all.max_drawdown, Some(d("1000") / d("10060")));

    // Closed trades only: the flawless-looking figures, kept beside the headline.
    assert_eq!((all.closed_only.count, all.closed_only.open), (60, 0));
    assert_eq!(all.closed_only.win_rate, Some(Decimal::ONE));
    assert_eq!(all.closed_only.profit_factor, ProfitFactor::Infinite);
    assert_eq!(all.closed_only.avg_holding_ns, Some(2 * HOUR_NS));

    // 30 days: from day 30 (equity 10,030, day 29's trip closed) to 9,060; the trips
    // of days 30..59 closed inside it, and the open ETH (opened before it) counts.
    let w30 = g.windows.iter().find(|w| w.label == "30d").unwrap();
    assert_eq!(w30.start_equity, d("10030"));
    assert_eq!(w30.roi, Some(d("-970") / d("10030")));
    assert_eq!((w30.trades.count, w30.closed_only.count), (31, 30));
    assert_eq!(w30.trades.win_rate, Some(d("30") / d("31")));
    assert_eq!(w30.trades.profit_factor, ProfitFactor::Finite(d("0.03")));
    assert_eq!(w30.closed_only.profit_factor, ProfitFactor::Infinite);

    // Terminal: the headline, then the closed-only figures, labelled.
    let s = r.summary_text();
    assert!(
        s.contains(" all: P&L      -940.00  ROI   -9.40%  maxDD   9.94%  Sharpe "),
        "{s}"
    );
    assert!(
        s.contains(
            "trades 61 (1 open) win 98.36% PF 0.06 hold 1d 1h; closed trades only: 60 win 100.00% PF ∞ hold 2h 00m"
        ),
        "{s}"
    );
    // JSON: the headline at the window's level, `closed_only` beside it.
    let j = r.to_json();
    let jall = &j["leaders"][0]["windows"][3];
    assert_eq!(jall["window"], "all");
    assert_eq!(jall["trades"], 61);
    assert_eq!(jall["open_trades"], 1);
    assert_eq!(jall["profit_factor"], "0.06");
    assert_eq!(jall["roi"], "-0.094");
    assert_eq!(jall["closed_only"]["trades"], 60);
    assert_eq!(jall["closed_only"]["win_rate"], "1");
    assert_eq!(jall["closed_only"]["profit_factor"], "inf");
    assert_eq!(j["leaders"][0]["open_positions"][0]["price_basis"], "mark");
    // HTML: both column groups, and the figures.
    let h = r.to_html();
    assert!(h.contains("all trades, open ones at the mark"), "{h}");
    assert!(h.contains("closed trades only"), "{h}");
    assert!(h.contains("<td class=\"n\">98.36%</td><td class=\"n\">0.06</td>"));
    assert!(h.contains("<td class=\"n\">100.00%</td><td class=\"n\">∞</td>"));
}

#[test]
fn windows_under_thirty_days_show_no_annualised_figure() {
    let c = gaming_db();
    let r = report::build_with(&c, &ReportOptions::default()).unwrap();
    let g = r.leader("G").unwrap();
    let w = |label: &str| g.windows.iter().find(|w| w.label == label).unwrap();
    // 7 days: too short. 30 days: exactly the minimum (30 d of data), annualised.
    // All time: 60 days (and 1 ns).
    assert!(w("7d").too_short_to_annualise);
    assert_eq!(
        (w("7d").sharpe, w("7d").annualised_return, w("7d").calmar),
        (None, None, None)
    );
    assert!(w("7d").roi.is_some() && w("7d").max_drawdown.is_some());
    for label in ["30d", "90d", "all"] {
        assert!(!w(label).too_short_to_annualise, "{label}");
        assert!(w(label).sharpe.is_some(), "{label}");
        assert!(w(label).calmar.is_some(), "{label}");
    }
    let s = r.summary_text();
    assert!(
        s.contains("Sharpe n/a (window under 30 days)  Calmar n/a (window under 30 days)"),
        "{s}"
    );
    let h = r.to_html();
    assert!(h.contains("<td class=\"n\">n/a (window under 30 days)</td>"));
    assert_eq!(
        r.to_json()["leaders"][0]["windows"][0]["too_short_to_annualise"],
        true
    );

    // The same leader seen at day 20: all time is 20 days, too short as well.
    let day20 = ReportOptions {
        as_of_ns: Some(day(20)),
        ..ReportOptions::default()
    };
    let r = report::build_with(&c, &day20).unwrap();
    let all = r.leader("G").unwrap().windows.last().unwrap().clone();
    assert!(all.too_short_to_annualise);
    assert_eq!((all.sharpe, all.calmar), (None, None));
    // A stated minimum of 10 days annualises it again; a negative one is refused.
    let ten = ReportOptions {
        annualise_min_ns: 10 * NS_PER_DAY,
        ..day20.clone()
    };
    let r = report::build_with(&c, &ten).unwrap();
    let all = r.leader("G").unwrap().windows.last().unwrap().clone();
    assert!(!all.too_short_to_annualise && all.sharpe.is_some());
    assert!(r.summary_text().contains("n/a (window under 10 days)"));
    let bad = ReportOptions {
        annualise_min_ns: -1,
        ..ReportOptions::default()
    };
    assert!(report::build_with(&c, &bad).is_err());
}
