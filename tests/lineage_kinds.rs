//! Issue 15, end to end at the real binary: a leader's liquidation and ADL
//! closes (the file source's `kind`) are copied like any fill, journaled with
//! their kind (`journal inspect --json`), replayed by a restart, written by
//! `fillcast sidecar` into `leader_fills.kind`, and named by the lineage report.

use crate::support::{fillcast_output, text, tmp};
use fillcast_sql::sidecar::rusqlite;
use std::path::Path;

/// One leader copied one for one by one follower, on a simulated venue that
/// fills every order at once and in full.
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
seed = 1

[[sources]]
kind = "file"
path = "fills.jsonl"

[[leaders]]
id = "L1"
equity = "1000000"

[[followers]]
id = "F1"
equity = "100000"

[[subscriptions]]
follower = "F1"
leader = "L1"
allocation = "50000"
mode = "fixed_ratio"
ratio = "1"
slippage_bps = 50

[journal]
dir = "journal"
segment_mib = 1
"#;

/// The leader opens 0.5 BTC; the venue liquidates 0.2 of it, then its ADL
/// closes the rest.
const FILLS: &str = r#"{"leader":"L1","event_id":"e1","symbol":"BTCUSDT","side":"buy","qty":"0.5","price":"65000.0","ts":1732060800000000000}
{"leader":"L1","event_id":"e2","symbol":"BTCUSDT","side":"sell","qty":"0.2","price":"60000.0","ts":1732060801000000000,"kind":"liquidation"}
{"leader":"L1","event_id":"e3","symbol":"BTCUSDT","side":"sell","qty":"0.3","price":"59000.0","ts":1732060802000000000,"kind":"adl"}
"#;

fn run(cfg: &Path) {
    let o = fillcast_output(&["run", "--progress", "0", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
}

/// Every row of `sql`, each value as text (SQLite keeps decimals as text).
fn rows(conn: &rusqlite::Connection, sql: &str) -> Vec<Vec<String>> {
    use rusqlite::types::Value;
    let mut q = conn.prepare(sql).unwrap();
    let n = q.column_count();
    q.query_map([], |r| {
        (0..n)
            .map(|i| {
                r.get::<_, Value>(i).map(|v| match v {
                    Value::Integer(i) => i.to_string(),
                    Value::Text(t) => t,
                    Value::Null => "NULL".into(),
                    other => format!("{other:?}"),
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[test]
fn a_liquidation_and_an_adl_close_are_copied_like_any_fill_and_named_in_lineage() {
    let dir = tmp();
    let cfg = dir.path().join("run.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    std::fs::write(dir.path().join("fills.jsonl"), FILLS).unwrap();
    run(&cfg);
    // A restart replays the journal, kinds and all, and sends nothing again.
    run(&cfg);

    let journal = dir.path().join("journal");
    let o = fillcast_output(&["journal", "inspect", journal.to_str().unwrap(), "--json"]);
    let (json, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let kinds: Vec<String> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "leader_fill")
        .map(|v| v["fill_kind"].as_str().unwrap_or("trade").to_string())
        .collect();
    assert_eq!(kinds, ["trade", "liquidation", "adl"], "{json}");

    let db = format!("sqlite:{}", dir.path().join("fc.db").display());
    let o = fillcast_output(&[
        "sidecar",
        "--journal",
        journal.to_str().unwrap(),
        "--db",
        &db,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let conn = rusqlite::Connection::open(dir.path().join("fc.db")).unwrap();
    assert_eq!(
        rows(
            &conn,
            "SELECT event_id <> '', side, qty, position_after, kind, ignored = '' FROM leader_fills ORDER BY seq"
        ),
        [
            ["1", "buy", "0.5", "0.5", "trade", "1"],
            ["1", "sell", "0.2", "0.3", "liquidation", "1"],
            ["1", "sell", "0.3", "0", "adl", "1"],
        ]
    );
    // The follower followed the leader's position down to flat, reduce-only,
    // as for any fill.
    assert_eq!(
        rows(
            &conn,
            "SELECT o.side, o.qty, o.reduce_only, o.status, l.kind \
             FROM follower_orders o \
             JOIN copy_instructions i ON i.seq = o.instruction_seq \
             JOIN leader_fills l ON l.seq = i.leader_fill_seq ORDER BY o.seq"
        ),
        [
            ["buy", "0.5", "0", "filled", "trade"],
            ["sell", "0.2", "1", "filled", "liquidation"],
            ["sell", "0.3", "1", "filled", "adl"],
        ]
    );
    assert_eq!(
        rows(&conn, "SELECT follower_id, qty FROM positions"),
        [["F1", "0"]]
    );

    // The lineage of the liquidation names it, from the fill and from the order.
    let seq: i64 = conn
        .query_row(
            "SELECT seq FROM leader_fills WHERE kind = 'liquidation'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let o = fillcast_output(&["report", "--db", &db, "--leader-fill", &seq.to_string()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!("leader fill #{seq} L1 event "))
            && out.contains(": liquidation sell 0.2 BTCUSDT @ 60000"),
        "{out}"
    );
    let order: String = conn
        .query_row(
            "SELECT o.client_order_id FROM follower_orders o \
             JOIN copy_instructions i ON i.seq = o.instruction_seq \
             WHERE i.leader_fill_seq = ?1",
            [seq],
            |r| r.get(0),
        )
        .unwrap();
    let o = fillcast_output(&["report", "--db", &db, "--lineage", &order]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(": liquidation sell 0.2 BTCUSDT"), "{out}");
    // An ordinary trade's lineage says no kind.
    let trade: i64 = conn
        .query_row(
            "SELECT seq FROM leader_fills WHERE kind = 'trade'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let o = fillcast_output(&["report", "--db", &db, "--leader-fill", &trade.to_string()]);
    let (out, _) = text(&o);
    assert!(
        !out.contains("liquidation") && !out.contains(" trade "),
        "{out}"
    );
}
