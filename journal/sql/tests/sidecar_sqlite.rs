//! The SQL sidecar against a real SQLite file, on journals written by the real
//! engine core (`sidecar::synth`): row counts against the journal, positions
//! against the core's own, restarts at every record and after SIGKILL against an
//! uninterrupted replay, following a live journal, exact decimals, and hostile
//! records.

use fillcast_engine::event::{FeedEvent, LeaderFill};
use fillcast_engine::model::{LeaderIdx, Side, SubIdx, SymbolIdx};
use fillcast_engine::outputs::Decision;
use fillcast_engine::port::JournalEntry;
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{Encoder, Kind, SCHEMA};
use fillcast_sql::sidecar::rusqlite::{types::ValueRef, Connection};
use fillcast_sql::sidecar::schema::{SECONDARY_INDEXES, TABLES};
use fillcast_sql::sidecar::synth::{config_toml, Synth, SynthCounts, SynthSpec};
use fillcast_sql::sidecar::{run, SidecarError, SidecarOptions, SidecarStats};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{assert_same, journal, sigkill_repeatedly, stop_after};

type Tables = crate::common::Tables<Vec<String>>;

fn db_url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

fn replay(dir: &Path, db: &Path, opts: SidecarOptions) -> SidecarStats {
    run(dir, &db_url(db), opts).expect("sidecar run")
}

fn with_batch(batch_rows: usize) -> SidecarOptions {
    SidecarOptions {
        batch_rows,
        ..SidecarOptions::default()
    }
}

fn cell(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("real {f}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(_) => "blob".into(),
    }
}

/// Every table, every row, sorted: what two replays must agree on.
fn dump(db: &Path) -> Tables {
    let c = Connection::open(db).expect("open db");
    let mut out = Tables::new();
    for t in TABLES {
        let mut st = c.prepare(&format!("SELECT * FROM {t}")).expect("select");
        let n = st.column_count();
        let mut rows: Vec<Vec<String>> = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get_ref(i).map(cell))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        rows.sort();
        out.insert(t.to_string(), rows);
    }
    out
}

fn count(c: &Connection, sql: &str) -> u64 {
    c.query_row(sql, [], |r| r.get::<_, i64>(0)).expect(sql) as u64
}

fn by_kind(dir: &Path) -> BTreeMap<u16, u64> {
    JournalReader::open(dir)
        .expect("reader")
        .summary()
        .expect("summary")
        .by_kind
}

#[test]
fn row_counts_match_the_journal_and_positions_match_the_core() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let spec = SynthSpec {
        followers: 16,
        paused_pct: 20,
        seed: 11,
    };
    let s = journal(&dir, &spec, 400);
    let sc: &SynthCounts = s.counts();
    let db = tmp.path().join("a.db");
    let stats = replay(&dir, &db, with_batch(500));
    let k = by_kind(&dir);
    let total: u64 = k.values().sum();
    assert_eq!(stats.records, total);
    assert_eq!(stats.next_seq, total + 1);
    assert!(stats.batches > 1, "{stats:?}");

    let c = Connection::open(&db).expect("db");
    let n = |t: &str| count(&c, &format!("SELECT COUNT(*) FROM {t}"));
    assert_eq!(n("leader_fills"), k[&(Kind::LeaderFill as u16)]);
    assert_eq!(n("leader_fills"), sc.leader_fills);
    assert_eq!(
        (n("copy_instructions"), n("follower_orders")),
        crate::common::instruction_and_order_rows(&k)
    );
    assert_eq!(n("follower_fills"), sc.distinct_fills);
    // The resync's catch-ups: instructions of their own, whose orders link to them.
    let resyncs = count(
        &c,
        "SELECT COUNT(*) FROM copy_instructions WHERE resync <> '' AND leader_fill_seq IS NULL",
    );
    assert!(
        sc.ticks > 0 && resyncs > 0,
        "ticks {} resyncs {resyncs}",
        sc.ticks
    );
    assert_eq!(resyncs, k[&(Kind::ResyncDecision as u16)]);
    let linked = count(
        &c,
        "SELECT COUNT(*) FROM follower_orders o JOIN copy_instructions i ON i.seq = o.instruction_seq WHERE i.resync <> ''",
    );
    let sent = count(
        &c,
        "SELECT COUNT(*) FROM copy_instructions WHERE resync <> '' AND sent <> '0'",
    );
    assert!(linked >= sent && sent > 0, "linked {linked} sent {sent}");
    assert!(
        count(
            &c,
            "SELECT COUNT(*) FROM audit_log WHERE kind = 'venue_down'"
        ) > 0
    );
    assert!(count(&c, "SELECT COUNT(*) FROM copy_instructions WHERE status = 'deferred' AND reason = 'venue_down'") > 0);
    assert_eq!(n("mark_prices"), k[&(Kind::MarkPrice as u16)]);
    assert_eq!(n("leader_equity"), k[&(Kind::LeaderEquity as u16)]);
    assert_eq!(n("config_revisions"), 1);
    assert_eq!(n("symbols"), 2);
    assert_eq!(n("subscriptions"), 16);
    let audit = |kind: &str| {
        count(
            &c,
            &format!("SELECT COUNT(*) FROM audit_log WHERE kind = '{kind}'"),
        )
    };
    assert_eq!(audit("config"), 1);
    assert_eq!(audit("command"), k[&(Kind::Command as u16)]);
    let dup = count(
        &c,
        "SELECT COUNT(*) FROM audit_log WHERE reason = 'duplicate_fill'",
    );
    assert_eq!(dup, sc.repeated_fills);
    assert!(dup > 0, "the scripted venue repeats some fills");
    assert_eq!(
        audit("stop")
            + audit("reject")
            + audit("oddity")
            + audit("out_of_sync")
            + audit("venue_alarm")
            + audit("venue_down")
            + audit("venue_up")
            - dup,
        k[&(Kind::Notice as u16)]
    );
    assert!(
        audit("venue_alarm") > 0,
        "the synthetic venue stays down past its alarm"
    );
    assert!(audit("reject") > 0 && audit("out_of_sync") > 0 && audit("oddity") > dup);
    let skipped = count(&c, "SELECT COUNT(*) FROM copy_instructions WHERE status = 'skipped' AND reason = 'follower_paused'");
    assert!(skipped > 0);
    assert!(
        count(
            &c,
            "SELECT COUNT(*) FROM leader_fills WHERE ignored = 'duplicate'"
        ) > 0
    );

    // Positions, realized P&L and leader positions equal the engine's own.
    let u = s.universe();
    let core = s.core();
    for (si, sub) in u.subs.iter().enumerate() {
        let mut realized = Decimal::ZERO;
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want = sym.qty_decimal(core.position(SubIdx(si as u32), SymbolIdx(yi as u16)));
            let got: Option<(String, String)> = c
                .query_row(
                    "SELECT qty, realized_pnl FROM positions WHERE subscription_id = ?1 AND symbol = ?2",
                    [&sub.id, &sym.name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .ok();
            let (qty, pnl) = got.unwrap_or(("0".into(), "0".into()));
            assert_eq!(
                Decimal::from_str(&qty).expect("qty"),
                want,
                "{} {}",
                sub.id,
                sym.name
            );
            realized += Decimal::from_str(&pnl).expect("pnl");
        }
        assert_eq!(
            realized,
            core.realized(SubIdx(si as u32)).to_decimal(),
            "{}",
            sub.id
        );
    }
    for (li, l) in u.leaders.iter().enumerate() {
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want =
                sym.qty_decimal(core.leader_position(LeaderIdx(li as u32), SymbolIdx(yi as u16)));
            let got: String = c
                .query_row(
                    "SELECT position_after FROM leader_fills WHERE leader_id = ?1 AND symbol = ?2 ORDER BY seq DESC LIMIT 1",
                    [&l.id, &sym.name],
                    |r| r.get(0),
                )
                .expect("last leader fill");
            assert_eq!(Decimal::from_str(&got).expect("dec"), want);
            let stored: String = c
                .query_row(
                    "SELECT qty FROM leader_positions WHERE leader_id = ?1 AND symbol = ?2",
                    [&l.id, &sym.name],
                    |r| r.get(0),
                )
                .expect("leader position");
            assert_eq!(Decimal::from_str(&stored).expect("dec"), want);
        }
    }

    // Lineage: leader fill → instruction → order → fill holds together (a resync's
    // instruction comes from a tick, not a leader fill).
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM copy_instructions ci LEFT JOIN leader_fills lf ON lf.seq = ci.leader_fill_seq \
                   WHERE ci.resync = '' AND (lf.seq IS NULL OR lf.event_id <> ci.event_id)"),
        0
    );
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM follower_orders fo LEFT JOIN copy_instructions ci ON ci.seq = fo.instruction_seq \
                   WHERE fo.event_id IS NOT NULL AND (ci.seq IS NULL OR ci.event_id <> fo.event_id \
                   OR ci.subscription_id <> fo.subscription_id)"),
        0
    );
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM follower_fills ff LEFT JOIN follower_orders fo USING (client_order_id) WHERE fo.seq IS NULL"),
        0
    );
    // Order status follows the reports; filled quantity is the sum of the fills.
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM follower_orders WHERE status NOT IN ('filled', 'canceled', 'rejected')"),
        0
    );
    let mismatched = count(
        &c,
        "SELECT COUNT(*) FROM follower_orders fo WHERE CAST(fo.filled_qty AS REAL) <> \
         (SELECT COALESCE(SUM(CAST(qty AS REAL)), 0) FROM follower_fills ff WHERE ff.client_order_id = fo.client_order_id)",
    );
    assert_eq!(mismatched, 0);
    assert!(
        count(
            &c,
            "SELECT COUNT(*) FROM follower_orders WHERE reject_reason = 'transient'"
        ) > 0
    );

    // A second run finds nothing new.
    let again = replay(&dir, &db, SidecarOptions::default());
    assert_eq!((again.records, again.rows), (0, 0));
}

#[test]
fn decimals_are_exact_text() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 120);
    let db = tmp.path().join("d.db");
    replay(&dir, &db, SidecarOptions::default());
    let c = Connection::open(&db).expect("db");
    for (t, cols) in [
        ("leader_fills", "qty, price, position_after"),
        ("copy_instructions", "target, delta, sent"),
        ("follower_orders", "qty, limit_price, filled_qty"),
        ("follower_fills", "qty, price, fee"),
        ("positions", "qty, realized_pnl, cost_basis"),
    ] {
        for col in cols.split(", ") {
            let not_text = count(
                &c,
                &format!("SELECT COUNT(*) FROM {t} WHERE typeof({col}) <> 'text'"),
            );
            assert_eq!(not_text, 0, "{t}.{col}");
        }
    }
    // Quantities are whole lots and prices whole ticks, written in their
    // shortest exact form ("0.5", not "0.500" or 0.49999).
    let mut st = c
        .prepare("SELECT symbol, qty, price FROM leader_fills")
        .expect("select");
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!rows.is_empty());
    for (sym, qty, price) in rows {
        let (lot, tick) = if sym == "BTCUSDT" {
            ("0.001", "0.1")
        } else {
            ("0.01", "0.01")
        };
        for (text, step) in [(&qty, lot), (&price, tick)] {
            let v = Decimal::from_str(text).expect("decimal");
            let step = Decimal::from_str(step).expect("step");
            assert!(
                (v / step).fract().is_zero(),
                "{text} is not a multiple of {step}"
            );
            assert!(v.scale() <= step.scale(), "{text}");
            assert_eq!(v.normalize().to_string(), *text);
        }
    }
    // The cost basis is exact: qty × average price, to the last digit.
    let mut st = c
        .prepare("SELECT qty, cost_basis, avg_price FROM positions WHERE CAST(qty AS REAL) <> 0")
        .expect("select");
    let rows: Vec<(String, String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(!rows.is_empty());
    for (qty, cost, avg) in rows {
        let (qty, cost, avg) = (
            Decimal::from_str(&qty).expect("qty"),
            Decimal::from_str(&cost).expect("cost"),
            Decimal::from_str(&avg).expect("avg"),
        );
        assert!(
            ((cost / qty) - avg).abs() < Decimal::new(1, 6),
            "{cost} / {qty} vs {avg}"
        );
    }
}

#[test]
fn a_restart_after_every_record_gives_the_same_tables() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 40);
    let whole = tmp.path().join("whole.db");
    replay(&dir, &whole, SidecarOptions::default());
    let reference = dump(&whole);

    // batch_rows = 1: every record is its own batch, so this restarts between
    // every input and its outputs, and between an order and its decision where
    // they are separate records (a flip's legs, retries).
    let db = tmp.path().join("pieces.db");
    let mut runs = 0;
    loop {
        let s = replay(&dir, &db, stop_after(1, 1));
        runs += 1;
        if s.records == 0 {
            break;
        }
        assert!(runs < 100_000, "no progress");
    }
    assert!(runs > 100, "{runs} runs");
    assert_same(&reference, &dump(&db), "restart after every record");
}

#[test]
fn stopping_after_n_batches_and_restarting_gives_the_same_tables() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(
        &dir,
        &SynthSpec {
            followers: 30,
            paused_pct: 33,
            seed: 99,
        },
        300,
    );
    let whole = tmp.path().join("whole.db");
    replay(&dir, &whole, SidecarOptions::default());
    let reference = dump(&whole);
    for (i, (batches, rows)) in [(1, 13), (2, 97), (5, 250), (3, 1000), (7, 61)]
        .into_iter()
        .enumerate()
    {
        let db = tmp.path().join(format!("r{i}.db"));
        let first = replay(&dir, &db, stop_after(batches, rows));
        assert_eq!(first.batches, batches);
        let rest = replay(&dir, &db, with_batch(rows * 3));
        assert_eq!(rest.start_seq, first.next_seq);
        assert_same(
            &reference,
            &dump(&db),
            &format!("stop after {batches} batches of {rows}"),
        );
    }
}

fn next_seq(db: &Path) -> u64 {
    Connection::open(db)
        .ok()
        .and_then(|c| {
            c.query_row("SELECT next_seq FROM sidecar_state", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        })
        .unwrap_or(0) as u64
}

#[test]
fn a_sigkill_midway_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(
        &dir,
        &SynthSpec {
            followers: 40,
            paused_pct: 25,
            seed: 5,
        },
        1_500,
    );
    let total = s.records();
    let whole = tmp.path().join("whole.db");
    replay(&dir, &whole, SidecarOptions::default());
    let reference = dump(&whole);

    let db = tmp.path().join("killed.db");
    let kills = sigkill_repeatedly(tmp.path(), &dir, &db_url(&db), total, 200, &|| {
        next_seq(&db)
    });
    replay(&dir, &db, SidecarOptions::default());
    assert_eq!(next_seq(&db), total + 1);
    assert_same(&reference, &dump(&db), &format!("{kills} SIGKILLs"));
    // The first run was killed before it could build them: a later one did.
    assert_eq!(secondary_indexes(&db), SECONDARY_INDEXES.len());
}

/// How many of the schema's secondary indexes `db` has.
fn secondary_indexes(db: &Path) -> usize {
    let c = Connection::open(db).expect("db");
    SECONDARY_INDEXES
        .iter()
        .map(|(name, _)| {
            count(
                &c,
                &format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{name}'"
                ),
            ) as usize
        })
        .sum()
}

#[test]
fn a_fresh_database_is_indexed_once_caught_up() {
    /// Replays in batches of 100 rows; how many secondary indexes the database
    /// had after each batch.
    fn indexes_per_batch(dir: &Path, db: &Path) -> (SidecarStats, Vec<usize>) {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        let path = db.to_path_buf();
        let opts = SidecarOptions {
            batch_rows: 100,
            progress: Some(Box::new(move |_: &SidecarStats| {
                seen.lock().expect("lock").push(secondary_indexes(&path));
            })),
            ..SidecarOptions::default()
        };
        let stats = replay(dir, db, opts);
        let log = log.lock().expect("lock").clone();
        (stats, log)
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 200);
    s.flush().expect("flush");
    let db = tmp.path().join("i.db");
    let (stats, during) = indexes_per_batch(&dir, &db);
    assert_eq!(during.len() as u64, stats.batches);
    assert!(stats.batches > 2, "{stats:?}");
    assert!(during.iter().all(|n| *n == 0), "{during:?}");
    assert_eq!(secondary_indexes(&db), SECONDARY_INDEXES.len());

    // A database that is not fresh keeps its indexes while it catches up.
    s.leader_fills(50).expect("more fills");
    s.flush().expect("flush");
    let (stats, during) = indexes_per_batch(&dir, &db);
    assert!(stats.batches > 0, "{stats:?}");
    assert!(
        during.iter().all(|n| *n == SECONDARY_INDEXES.len()),
        "{during:?}"
    );
}

#[test]
fn follow_picks_up_records_written_after_it_started() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 10);
    let db = tmp.path().join("f.db");
    let stop = Arc::new(AtomicBool::new(false));
    let opts = SidecarOptions {
        follow: true,
        batch_rows: 64,
        flush_every: Duration::from_millis(5),
        stop: Some(Arc::clone(&stop)),
        ..SidecarOptions::default()
    };
    let (d, u) = (dir.clone(), db_url(&db));
    let follower = std::thread::spawn(move || run(&d, &u, opts));
    // Each chunk is written after the follower started; wait until it is in SQL
    // before writing the next, so every chunk is picked up by following.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = Vec::new();
    for _ in 0..8 {
        s.leader_fills(25).expect("more fills");
        let total = s.records();
        while next_seq(&db) != total + 1 {
            assert!(
                Instant::now() < deadline,
                "follower stuck at {} of {total}",
                next_seq(&db)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        caught_up.push(total);
    }
    let total = s.records();
    stop.store(true, Ordering::Relaxed);
    let stats = follower.join().expect("thread").expect("follow run");
    assert_eq!(stats.records, total);
    assert!(caught_up.windows(2).all(|w| w[0] < w[1]), "{caught_up:?}");
    let fresh = tmp.path().join("fresh.db");
    replay(&dir, &fresh, SidecarOptions::default());
    assert_same(&dump(&fresh), &dump(&db), "follow vs one replay");
}

/// Appends one bad record to a journal and returns its sequence.
type Damage = Box<dyn FnOnce(&mut Synth) -> u64>;

fn damaged_journal(dir: &Path, bad: impl FnOnce(&mut Synth) -> u64) -> u64 {
    let mut s = journal(dir, &SynthSpec::default(), 5);
    let seq = bad(&mut s);
    s.leader_fills(2).expect("more");
    seq
}

fn run_err(dir: &Path, db: &Path) -> SidecarError {
    match run(dir, &db_url(db), with_batch(7)) {
        Err(e) => e,
        Ok(s) => panic!("a damaged journal replayed: {s:?}"),
    }
}

fn entry(e: JournalEntry) -> (u16, Vec<u8>) {
    let mut enc = Encoder::default();
    let (kind, _, bytes) = enc.entry(&e).expect("encode").expect("a record");
    (kind as u16, bytes.to_vec())
}

#[test]
fn hostile_records_give_an_error_naming_their_seq() {
    let cases: Vec<(&str, Damage)> = vec![
        (
            "unknown record kind 77",
            Box::new(|s: &mut Synth| s.append_raw(77, SCHEMA, b"\0\0\0\0").expect("append")),
        ),
        (
            "record schema 9",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Decision(Decision::default()));
                s.append_raw(k, 9, &b).expect("append")
            }),
        ),
        (
            "damaged decision payload",
            Box::new(|s: &mut Synth| {
                s.append_raw(Kind::Decision as u16, SCHEMA, &[0xff; 8])
                    .expect("append")
            }),
        ),
        (
            "leader index 99 is not in the config",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
                    leader: LeaderIdx(99),
                    symbol: SymbolIdx(0),
                    side: Side::Buy,
                    qty: Lots(1),
                    price: Ticks(1),
                    event_key: 5,
                    venue_ts: Nanos(1),
                    recv_ts: Nanos(1),
                    ..LeaderFill::default()
                })));
                s.append_raw(k, SCHEMA, &b).expect("append")
            }),
        ),
        (
            "subscription index 4000000000 is not in the config",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Decision(Decision {
                    sub: SubIdx(4_000_000_000),
                    ..Decision::default()
                }));
                s.append_raw(k, SCHEMA, &b).expect("append")
            }),
        ),
        (
            "timestamp 18446744073709551615 is out of range",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Feed(FeedEvent::MarkPrice {
                    symbol: SymbolIdx(1),
                    price: Ticks(5),
                    ts: Nanos(u64::MAX),
                }));
                s.append_raw(k, SCHEMA, &b).expect("append")
            }),
        ),
        (
            "config revision 0000000000000001 does not load",
            Box::new(|s: &mut Synth| {
                let mut enc = Encoder::default();
                let b = enc
                    .config(1, 0, 1, "[[symbols]]\nname = 3\n")
                    .expect("encode")
                    .to_vec();
                s.append_raw(Kind::Config as u16, SCHEMA, &b)
                    .expect("append")
            }),
        ),
    ];
    for (i, (want, bad)) in cases.into_iter().enumerate() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("j");
        let seq = damaged_journal(&dir, bad);
        let db = tmp.path().join("h.db");
        let msg = run_err(&dir, &db).to_string();
        assert!(
            msg.contains(&format!("journal record {seq}:")) && msg.contains(want),
            "case {i}: `{msg}` should name record {seq} and say `{want}`"
        );
        // Everything before the batch holding the bad record is committed, and
        // a restart stops at the same record.
        assert!(next_seq(&db) > 1 && next_seq(&db) <= seq, "case {i}");
        assert_eq!(run_err(&dir, &db).to_string(), msg, "case {i}");
    }
}

#[test]
fn a_journal_that_does_not_start_with_its_config_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let (mut w, _) =
        fillcast_journal::JournalWriter::open(&dir, Default::default()).expect("writer");
    let (k, b) = entry(JournalEntry::Decision(Decision::default()));
    w.append(k, SCHEMA, 0, &b).expect("append");
    let msg = run_err(&dir, &tmp.path().join("n.db")).to_string();
    assert!(
        msg.contains("journal record 1:") && msg.contains("config"),
        "{msg}"
    );
}

#[test]
fn a_newer_schema_and_another_journal_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 3);
    let db = tmp.path().join("v.db");
    replay(&dir, &db, SidecarOptions::default());

    let other = tmp.path().join("other");
    journal(&other, &SynthSpec::default(), 3);
    let e = run(&other, &db_url(&db), SidecarOptions::default()).expect_err("other journal");
    assert!(matches!(e, SidecarError::OtherJournal { .. }), "{e}");

    Connection::open(&db)
        .expect("db")
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')",
            [],
        )
        .expect("bump");
    let e = run(&dir, &db_url(&db), SidecarOptions::default()).expect_err("newer schema");
    assert!(
        matches!(e, SidecarError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("newer"), "{e}");

    let e = run(&dir, "mysql://x", SidecarOptions::default()).expect_err("address");
    assert!(matches!(e, SidecarError::Address(_)), "{e}");
    let e = run(
        &tmp.path().join("none"),
        &db_url(&db),
        SidecarOptions::default(),
    )
    .expect_err("no journal");
    assert!(matches!(e, SidecarError::NoJournal(_)), "{e}");
}

#[test]
fn the_schema_is_versioned_in_schema_migrations() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 2);
    let db: PathBuf = tmp.path().join("m.db");
    replay(&dir, &db, SidecarOptions::default());
    let c = Connection::open(&db).expect("db");
    let (v, at, n): (i64, String, i64) = c
        .query_row(
            "SELECT MAX(version), MAX(applied_at), COUNT(*) FROM schema_migrations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("the migrations");
    assert_eq!(v, fillcast_sql::sidecar::schema::SCHEMA_VERSION);
    assert_eq!(n, v, "one row per migration");
    assert!(at.ends_with('Z') && at.contains('T'), "{at}");
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
    drop(c);
    assert_eq!(secondary_indexes(&db), SECONDARY_INDEXES.len());
}

#[test]
fn a_config_change_midway_is_applied_and_restarts_across_it_agree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let spec = SynthSpec::default();
    let mut s = journal(&dir, &spec, 30);
    let first = s.universe().revision;
    let toml = config_toml(&spec).replace("equity = \"1000000\"", "equity = \"1200000\"");
    let second = s.append_config(&toml).expect("reload");
    assert_ne!(first, second);
    s.leader_fills(30).expect("more fills");
    let whole = tmp.path().join("whole.db");
    replay(&dir, &whole, with_batch(50));
    let c = Connection::open(&whole).expect("db");
    assert_eq!(count(&c, "SELECT COUNT(*) FROM config_revisions"), 2);
    let detail: String = c
        .query_row(
            "SELECT detail FROM audit_log WHERE kind = 'config' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("audit");
    assert!(
        detail.contains(&format!("previous revision {first:016x}")),
        "{detail}"
    );
    let equity: String = c
        .query_row(
            "SELECT equity FROM leaders WHERE leader_id = 'L1'",
            [],
            |r| r.get(0),
        )
        .expect("leader");
    assert_eq!(equity, "1200000");
    let rev: String = c
        .query_row("SELECT config_revision FROM sidecar_state", [], |r| {
            r.get(0)
        })
        .expect("state");
    assert_eq!(rev, format!("{second:016x}"));
    // Positions were read back under the new config and kept on counting.
    let u = s.universe();
    for (si, sub) in u.subs.iter().enumerate() {
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want = sym.qty_decimal(s.core().position(SubIdx(si as u32), SymbolIdx(yi as u16)));
            let got: String = c
                .query_row(
                    "SELECT qty FROM positions WHERE subscription_id = ?1 AND symbol = ?2",
                    [&sub.id, &sym.name],
                    |r| r.get(0),
                )
                .unwrap_or_else(|_| "0".into());
            assert_eq!(
                Decimal::from_str(&got).expect("qty"),
                want,
                "{} {}",
                sub.id,
                sym.name
            );
        }
    }
    let db = tmp.path().join("pieces.db");
    while replay(&dir, &db, stop_after(1, 3)).records > 0 {}
    assert_same(&dump(&whole), &dump(&db), "restarts across a config change");
}

#[test]
fn a_database_ahead_of_its_journal_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 20);
    let db = tmp.path().join("a.db");
    replay(&dir, &db, SidecarOptions::default());
    std::fs::remove_dir_all(&dir).expect("wipe");
    journal(&dir, &SynthSpec::default(), 2);
    let e = run(&dir, &db_url(&db), SidecarOptions::default()).expect_err("ahead");
    assert!(matches!(e, SidecarError::JournalBehind { .. }), "{e}");
}

#[test]
fn a_damaged_segment_gives_an_error_naming_the_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 20);
    let summary = JournalReader::open(&dir)
        .expect("reader")
        .summary()
        .expect("summary");
    let seg = dir.join(&summary.segments[0].name);
    let mut bytes = std::fs::read(&seg).expect("segment");
    let at = summary.segments[0].bytes_used as usize / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&seg, &bytes).expect("damage");
    let db = tmp.path().join("c.db");
    let e = run(&dir, &db_url(&db), with_batch(10)).expect_err("damaged");
    let SidecarError::JournalAt { seq, .. } = &e else {
        panic!("{e}");
    };
    assert!(
        e.to_string().contains(&format!("reading record {seq}")),
        "{e}"
    );
    // Everything before the damage is in SQL, and nothing after it.
    assert!(next_seq(&db) > 1 && next_seq(&db) <= *seq, "{e}");
}

/// The first record at which two journals differ.
fn first_difference(a: &[crate::common::Owned], b: &[crate::common::Owned]) -> Option<u64> {
    a.iter().zip(b).find(|(x, y)| x != y).map(|(x, _)| x.seq)
}

/// Issue 10, finding 5: a sidecar resumed on a journal whose history changed
/// under it (one record rewritten with other valid content, or another journal
/// of the same length in its place) used to go on past it without a word,
/// its tables silently different from a fresh replay. It must refuse, naming
/// the first record that differs, and leave its tables as they were.
#[test]
fn regression_a_journal_rewritten_under_the_sidecar_is_refused_naming_the_record() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 80);
    let total = s.records();
    drop(s);
    let db = tmp.path().join("r.db");
    let stats = replay(&dir, &db, with_batch(60));
    assert!(stats.batches > 3, "{stats:?}");
    let before = dump(&db);

    let seq = crate::common::rewrite_one_record(&dir, total);
    let e = run(&dir, &db_url(&db), SidecarOptions::default()).expect_err("rewritten journal");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq: s, located: true, .. } if s == seq),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("record {seq} ")) && msg.contains("Rebuild the database"),
        "{msg}"
    );
    assert_same(&before, &dump(&db), "a refused run");
    // Refused again, the same way, at every start.
    assert_eq!(
        run(&dir, &db_url(&db), SidecarOptions::default())
            .expect_err("again")
            .to_string(),
        msg
    );

    // Another journal of the same length (another seed) in the same place.
    let db2 = tmp.path().join("r2.db");
    std::fs::remove_dir_all(&dir).expect("wipe");
    drop(journal(&dir, &SynthSpec::default(), 80));
    replay(&dir, &db2, with_batch(60));
    let first = crate::common::records(&dir);
    let mut other = journal(
        &tmp.path().join("other"),
        &SynthSpec {
            seed: 99,
            ..SynthSpec::default()
        },
        120,
    );
    assert!(other.records() >= first.len() as u64);
    drop(other);
    let second = crate::common::records(&tmp.path().join("other"));
    let want = first_difference(&first, &second).expect("the journals differ");
    crate::common::rewrite_journal(&dir, &second);
    let e = run(&dir, &db_url(&db2), SidecarOptions::default()).expect_err("replaced journal");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq, located: true, .. } if seq == want),
        "{e} (want record {want})"
    );

    // A fresh database follows the rewritten journal.
    let fresh = tmp.path().join("fresh.db");
    replay(&dir, &fresh, SidecarOptions::default());
}

/// A database written before the continuity check (schema version 2, no chain)
/// still works: its first run adopts the journal's history as it is, says so,
/// and from then on a rewritten journal is refused.
#[test]
fn a_database_from_before_the_continuity_check_adopts_the_chain_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 40);
    let first_part = s.records();
    let db = tmp.path().join("old.db");
    replay(&dir, &db, with_batch(50));
    // Back to schema version 2, as an older fillcast left it.
    Connection::open(&db)
        .expect("db")
        .execute_batch(
            "ALTER TABLE sidecar_state DROP COLUMN chain; DROP TABLE sidecar_chain; \
             DELETE FROM schema_migrations WHERE version = 3;",
        )
        .expect("downgrade");
    s.leader_fills(20).expect("more fills");
    let total = s.records();
    drop(s);
    let stats = replay(&dir, &db, with_batch(50));
    assert_eq!(
        stats.continuity,
        fillcast_sql::sidecar::Continuity::Adopted {
            through: first_part
        }
    );
    assert_eq!(stats.next_seq, total + 1);
    // The same tables, and the same chain, as a database that always had it.
    let fresh = tmp.path().join("fresh.db");
    replay(&dir, &fresh, with_batch(50));
    assert_same(&dump(&fresh), &dump(&db), "adopted vs fresh");
    let again = replay(&dir, &db, SidecarOptions::default());
    assert_eq!(
        again.continuity,
        fillcast_sql::sidecar::Continuity::Verified { through: total }
    );
    let seq = crate::common::rewrite_one_record(&dir, first_part);
    let e = run(&dir, &db_url(&db), SidecarOptions::default()).expect_err("rewritten");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq: s, located: true, .. } if s == seq),
        "{e}"
    );
}
