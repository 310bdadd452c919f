//! Issue 16: where follower P&L came from. A database built by hand: the
//! leader's trades, the follower's copies of them at worse prices (the
//! market's spread and impact), one resync order, fees, and a position left
//! open at a mark. Each part is worked out in the comments.

use std::str::FromStr;

use fillcast_report as report;
use fillcast_report::ReportOptions;
use rusqlite::{params, Connection};
use rust_decimal::Decimal;

const SCHEMA: &str = include_str!("report_schema.sql");

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// L1 buys 10 X at 100 (e1), sells 10 at 110 (e2), buys 5 at 120 (e3).
/// F1 (S1, ratio 0.1) copies: buys 1 at 100.5 (fee 0.05), sells 1 at 109.4
/// (fee 0.05), buys 0.5 at 120.3 (fee 0.03); then a resync order (no leader
/// fill) buys 0.1 at 121 after a mark of 120.8; the data ends at a mark of 125.
fn db() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c.execute_batch(
        "INSERT INTO symbols VALUES ('X', '0.1', '0.1');
         INSERT INTO leaders VALUES ('L1', '100000');
         INSERT INTO followers VALUES ('F1', '10000');
         INSERT INTO subscriptions VALUES ('S1', 'F1', 'L1', 'fixed_ratio', '10000');",
    )
    .unwrap();
    let leader = [
        (1, "e1", "buy", "10", "100", "10", 1_000),
        (3, "e2", "sell", "10", "110", "0", 3_000),
        (5, "e3", "buy", "5", "120", "5", 5_000),
    ];
    for (seq, ev, side, qty, price, after, ts) in leader {
        c.execute(
            "INSERT INTO leader_fills VALUES (?1, 'L1', ?2, 'X', ?3, ?4, ?5, ?6, NULL, NULL, ?7, ?7, '')",
            params![seq, ev, side, qty, price, after, ts],
        )
        .unwrap();
    }
    let orders = [
        ("c1", 2, "e1", "buy", "1"),
        ("c2", 4, "e2", "sell", "1"),
        ("c3", 6, "e3", "buy", "0.5"),
        ("c4", 8, "", "buy", "0.1"),
    ];
    for (id, seq, ev, side, qty) in orders {
        c.execute(
            "INSERT INTO follower_orders VALUES (?1, ?2, NULL, ?3, 'S1', 'F1', 'L1', 'sim', 'X', ?4, ?5, NULL, 'market', 0, 'filled', ?5, NULL)",
            params![id, seq, ev, side, qty],
        )
        .unwrap();
    }
    let fills = [
        ("c1", 2, "buy", "1", "100.5", "0.05", 1_100),
        ("c2", 4, "sell", "1", "109.4", "0.05", 3_100),
        ("c3", 6, "buy", "0.5", "120.3", "0.03", 5_100),
        ("c4", 8, "buy", "0.1", "121", "0.01", 7_100),
    ];
    for (id, seq, side, qty, price, fee, ts) in fills {
        c.execute(
            "INSERT INTO follower_fills VALUES (?1, ?2, ?3, 'F1', 'S1', 'X', ?4, ?5, ?6, ?7, ?8)",
            params![id, format!("t{seq}"), seq, side, qty, price, fee, ts],
        )
        .unwrap();
    }
    for (ts, price) in [(7_000, "120.8"), (9_000, "125")] {
        c.execute(
            "INSERT INTO mark_prices VALUES ('X', ?1, ?2)",
            params![ts, price],
        )
        .unwrap();
    }
    c
}

#[test]
fn follower_pnl_splits_into_the_leaders_trading_the_markets_costs_and_fees() {
    let r = report::build_with(&db(), &ReportOptions::default()).unwrap();
    let a = &r.pnl_attribution;
    // Net P&L: realized 109.4 − 100.5 = 8.9; open 0.6 at average
    // (60.15 + 12.1) / 0.6 = 120.41666…, marked at 125: 0.6 × 125 − 72.25 = 2.75;
    // fees 0.14: net 8.9 + 2.75 − 0.14 = 11.51.
    assert_eq!(a.total, d("11.51"));
    // Spread and impact, each fill against the price it copied:
    // c1 1 × (100 − 100.5) = −0.5; c2 −1 × (110 − 109.4) = −0.6;
    // c3 0.5 × (120 − 120.3) = −0.15; c4 (a resync: the last known price is the
    // mark 120.8) 0.1 × (120.8 − 121) = −0.02. Sum −1.27.
    assert_eq!(a.spread_and_impact, d("-1.27"));
    // The leaders' trading at those prices, the open 0.6 valued at 125:
    // 1 × (125 − 100) − 1 × (125 − 110) + 0.5 × (125 − 120) + 0.1 × (125 − 120.8)
    // = 25 − 15 + 2.5 + 0.42 = 12.92.
    assert_eq!(a.leaders_trading, d("12.92"));
    assert_eq!(a.fees, d("-0.14"));
    // The funding table is there and empty: recorded, none paid.
    assert_eq!(a.funding, Some(Decimal::ZERO));
    // 12.92 − 1.27 − 0.14 = 11.51: the parts add up to the total.
    assert_eq!(a.residual, Decimal::ZERO);
    assert_eq!((a.fills_at_leader_price, a.fills_at_last_price), (3, 1));
    assert_eq!(r.followers[0].net_pnl, a.total);
    let text = r.summary_text();
    assert!(
        text.contains(
            "where it came from: leaders' trading 12.92 + spread and impact -1.27 + fees -0.14"
        ),
        "{text}"
    );
    assert!(!text.contains("warning: the parts differ"), "{text}");
    let html = r.to_html();
    let table = &html[html
        .find("id=\"pnl-attribution\"")
        .expect("the split in the page")..];
    let table = &table[..table.find("</table>").unwrap()];
    for v in ["12.92", "-1.27", "-0.14", "11.51"] {
        assert!(table.contains(&format!("data-v=\"{v}\"")), "{v} in {table}");
    }
    let json = r.to_json();
    assert_eq!(json["pnl_attribution"]["spread_and_impact"], "-1.27");
}
