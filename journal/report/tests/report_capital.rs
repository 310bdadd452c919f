//! Issue 16: a follower's high-water mark across a deposit, a 30% loss, a
//! withdrawal and a 30% recovery, over monthly settlements, built as a SQLite
//! database by hand and read by `fillcast_report`. Each period's fee and the
//! time-weighted return are worked out in the comments, by the rules of
//! journal/report/src/fees.rs: a deposit raises the HWM by its amount, a
//! withdrawal lowers it in the proportion of equity withdrawn.

use std::str::FromStr;

use fillcast_report as report;
use fillcast_report::fees::{FeePolicy, Settlement};
use fillcast_report::ReportOptions;
use rusqlite::Connection;
use rust_decimal::Decimal;

const SCHEMA: &str = include_str!("report_schema.sql");

const NS_PER_HOUR: i64 = 3_600_000_000_000;
const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// `hour`:00 UTC on 2025-`month`-`day`, counted from 2025-01-01 (1,735,689,600 s
/// after the epoch) with 2025's month lengths.
fn at(month: usize, day: i64, hour: i64) -> i64 {
    const DAYS_BEFORE_MONTH: [i64; 9] = [0, 0, 31, 59, 90, 120, 151, 181, 212];
    1_735_689_600_000_000_000
        + (DAYS_BEFORE_MONTH[month] + day - 1) * NS_PER_DAY
        + hour * NS_PER_HOUR
}

/// Subscription S1 (F1 copying L1) starts with 10,000 and is always fully
/// invested in X: equity = position × mark.
///
/// | when          | event                              | position | equity | allocation |
/// |---------------|------------------------------------|----------|--------|------------|
/// | Jan 1         | mark 100                           | 0        | 10,000 | 10,000     |
/// | Jan 2 10:00   | buy 100 @ 100                      | 100      | 10,000 |            |
/// | Jan 31 12:00  | mark 110 (+10%)                    | 100      | 11,000 |            |
/// | Feb 5 10:00   | deposit 5,500                      | 100      | 16,500 | 15,500     |
/// | Feb 5 11:00   | buy 50 @ 110                       | 150      | 16,500 |            |
/// | Feb 28 12:00  | mark 112                           | 150      | 16,800 |            |
/// | Mar 20 12:00  | mark 78.4 (−30%: 16,800 × 0.7)     | 150      | 11,760 |            |
/// | Apr 3 10:00   | sell 75 @ 78.4 (half)              | 75       | 11,760 |            |
/// | Apr 3 11:00   | withdraw 5,880 (the sale's cash)   | 75       | 5,880  | 9,620      |
/// | Apr 25 12:00  | mark 101.92 (+30%: 5,880 × 1.3)    | 75       | 7,644  |            |
/// | May 20 12:00  | mark 120                           | 75       | 9,000  |            |
/// | Jun 10 12:00  | mark 115                           | 75       | 8,625  |            |
/// | Jun 30 12:00  | mark 118                           | 75       | 8,850  |            |
/// | Jul 15 00:00  | mark 125 (the data's last instant) | 75       | 9,375  |            |
fn db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO symbols VALUES ('X', '1', '0.01');
         INSERT INTO leaders VALUES ('L1', '1000000');
         INSERT INTO followers VALUES ('F1', '50000');
         INSERT INTO subscriptions VALUES ('S1', 'F1', 'L1', 'fixed_ratio', '9620');",
    )
    .unwrap();
    let fills = [
        (at(1, 2, 10), "buy", "100", "100"),
        (at(2, 5, 11), "buy", "50", "110"),
        (at(4, 3, 10), "sell", "75", "78.4"),
    ];
    for (i, (ts, side, qty, price)) in fills.iter().enumerate() {
        let seq = 10 * (i as i64 + 1);
        c.execute(
            "INSERT INTO follower_fills VALUES (?1, ?2, ?3, 'F1', 'S1', 'X', ?4, ?5, ?6, '0', ?7)",
            rusqlite::params![
                format!("c{seq}"),
                format!("t{seq}"),
                seq,
                side,
                qty,
                price,
                ts
            ],
        )
        .unwrap();
    }
    let marks = [
        (at(1, 1, 0), "100"),
        (at(1, 31, 12), "110"),
        (at(2, 28, 12), "112"),
        (at(3, 20, 12), "78.4"),
        (at(4, 25, 12), "101.92"),
        (at(5, 20, 12), "120"),
        (at(6, 10, 12), "115"),
        (at(6, 30, 12), "118"),
        (at(7, 15, 0), "125"),
    ];
    for (ts, price) in marks {
        c.execute(
            "INSERT INTO mark_prices VALUES ('X', ?1, ?2)",
            rusqlite::params![ts, price],
        )
        .unwrap();
    }
    c.execute(
        "INSERT INTO allocation_changes VALUES (15, 'S1', 'F1', 'L1', ?1, '10000', '15500', 'r2'),
                                               (35, 'S1', 'F1', 'L1', ?2, '15500', '9620', 'r3')",
        [at(2, 5, 10), at(4, 3, 11)],
    )
    .unwrap();
    c
}

fn options() -> ReportOptions {
    ReportOptions {
        fee: FeePolicy {
            rate: d("0.25"),
            leader_fraction: d("0.6"),
            settlement: Settlement::Monthly,
        },
        ..ReportOptions::default()
    }
}

#[test]
fn the_hwm_follows_a_deposit_a_30pct_loss_a_withdrawal_and_a_30pct_recovery() {
    let c = db();
    let r = report::build_with(&c, &options()).unwrap();
    // The report's time is the data's last: the mark of Jul 15.
    assert_eq!(r.as_of_ns, Some(at(7, 15, 0)));
    let f1 = r.follower("F1").unwrap();
    let s1 = &f1.subscriptions[0];

    // P&L: realized 75 × 78.4 − 15,500 × 75/150 = 5,880 − 7,750 = −1,870;
    // unrealized 75 × 125 − 7,750 = 1,625; net −245. Capital: +5,500 − 5,880 = −380.
    // Equity 10,000 − 380 − 245 = 9,375 = 75 × 125.
    assert_eq!(s1.realized_pnl, d("-1870"));
    assert_eq!(s1.unrealized_pnl, d("1625"));
    assert_eq!(s1.net_pnl, d("-245"));
    assert_eq!(s1.capital_flows, d("-380"));
    assert_eq!(s1.equity, d("9375"));

    // Fees at 25%, HWM from 10,000:
    // - Jan: equity 11,000; 0.25 × 1,000 = 250; HWM 11,000.
    // - Feb: the deposit raises the HWM by 5,500 to 16,500 (not charged as profit:
    //   counted, it would owe 0.25 × 5,800); equity 16,800; 0.25 × 300 = 75; HWM 16,800.
    // - Mar: 11,760 after the 30% loss; 0.
    // - Apr: 5,880 of 11,760 withdrawn: the HWM keeps the same share, 16,800 ×
    //   5,880/11,760 = 8,400 (lowered by the amount it would be 10,920; not lowered,
    //   16,800); equity 7,644 after the 30% recovery, still below: 0.
    // - May: 9,000 passes the HWM 8,400: 0.25 × 600 = 150; HWM 9,000. (With the HWM
    //   lowered by the amount, or not at all, May would owe nothing.)
    // - Jun: 8,850, below 9,000: 0; what May charged is not charged again.
    // - Jul, running at Jul 15: 9,375; accrued 0.25 × 375 = 93.75, not charged, and
    //   the HWM stays 9,000.
    // Settled: 250 + 75 + 150 = 475 = 0.25 × (1,000 + 300 + 600), each unit of
    // profit once; leader 60% = 285, platform 190.
    let s = &s1.performance_fee;
    let got: Vec<(i64, Decimal, Decimal, Decimal, Decimal, bool)> = s
        .periods
        .iter()
        .map(|p| {
            (
                p.start_ns,
                p.equity_end,
                p.hwm_before,
                p.fee,
                p.hwm_after,
                p.settled,
            )
        })
        .collect();
    let want = |m: usize, e: &str, before: &str, fee: &str, after: &str, settled: bool| {
        (at(m, 1, 0), d(e), d(before), d(fee), d(after), settled)
    };
    assert_eq!(
        got,
        vec![
            want(1, "11000", "10000", "250", "11000", true),
            want(2, "16800", "16500", "75", "16800", true),
            want(3, "11760", "16800", "0", "16800", true),
            want(4, "7644", "8400", "0", "8400", true),
            want(5, "9000", "8400", "150", "9000", true),
            want(6, "8850", "9000", "0", "9000", true),
            want(7, "9375", "9000", "93.75", "9000", false),
        ]
    );
    assert_eq!(s.periods[6].end_ns, at(8, 1, 0));
    assert_eq!(s.initial_hwm, d("10000"));
    assert_eq!(s.fee, d("475"));
    assert_eq!(s.leader_share, d("285"));
    assert_eq!(s.platform_share, d("190"));
    assert_eq!(s.accrued, d("93.75"));
    assert_eq!(s.hwm, d("9000"));
    assert_eq!(s.flows, d("-380"));
    assert_eq!(f1.performance_fee, d("475"));
    assert_eq!(f1.performance_fee_accrued, d("93.75"));
    assert_eq!(r.fees.by_leader, vec![("L1".to_string(), d("285"))]);

    // Time-weighted return, the flows taken out: 10,000 → 11,000 before the deposit
    // (×1.1), 16,500 → 11,760 before the withdrawal (×0.712727…), 5,880 → 9,375 at
    // the end (×1.594387…): 1.1 × 11,760/16,500 × 9,375/5,880 = 1.25, +25%, the
    // price's own 100 → 125, fully invested throughout. Net P&L over the capital
    // put in says a loss (−245); the return is what the follower's money did.
    let twr = s1.time_weighted_return.expect("a time-weighted return");
    assert!((twr - d("0.25")).abs() < d("1e-20"), "{twr}");
}
