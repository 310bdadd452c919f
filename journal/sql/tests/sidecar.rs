//! The sidecar's scenarios, written once over a `Backend` and run on SQLite and on
//! PostgreSQL: each backend's file implements `Backend` and says
//! `crate::sidecar::scenarios!(ItsBackend);`, which makes every scenario a `#[test]`
//! of that file's module (`sidecar_sqlite::…`, `sidecar_postgres::…`). What only
//! one database has (SQLite's file, PostgreSQL's index builds) stays in its file.
//!
//! On journals written by the real engine core (`sidecar::synth`): row counts
//! against the journal, positions against the core's own, restarts at every
//! record and after SIGKILL against an uninterrupted replay, following a live
//! journal, exact decimals, and hostile records.

use fillcast_engine::codes::Coded;
use fillcast_engine::event::{ExecKind, ExecReport, FeedEvent, FillKind, LeaderFill};
use fillcast_engine::model::{LeaderIdx, Side, SubIdx, SymbolIdx};
use fillcast_engine::outputs::Decision;
use fillcast_engine::port::JournalEntry;
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{Encoder, Kind, SCHEMA};
use fillcast_sql::sidecar::schema::SECONDARY_INDEXES;
use fillcast_sql::sidecar::synth::{config_toml, Synth, SynthCounts, SynthSpec};
use fillcast_sql::sidecar::{run, SidecarError, SidecarOptions, SidecarStats};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{assert_same, journal, sigkill_repeatedly, stop_after, Tables};

/// A database the sidecar writes, one per use in a test: a SQLite file, or a
/// PostgreSQL schema of its own. Cheap to clone (a clone names the same database),
/// so that a progress callback or a thread can look at it.
pub trait Backend: Clone + Send + 'static {
    /// The SQL type a stored decimal is cast to for arithmetic.
    const NUMBER: &'static str;
    /// Leader fills of the SIGKILL scenario, and how many records a child may
    /// move on before it is killed: enough that it is killed at least 3 times
    /// midway, on a database as fast as this one.
    const KILL_FILLS: usize;
    const KILL_STEP: u64;

    /// A fresh, empty database called `name` (its file, if any, in `tmp`); `None`,
    /// after saying why, when this backend cannot be tested here.
    fn fresh(tmp: &Path, name: &str) -> Option<Self>;
    /// The sidecar's `--db`.
    fn url(&self) -> String;
    /// The rows `sql` returns, each cell as text (`None` for NULL).
    fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String>;
    fn execute(&self, sql: &str);
    /// Every table, every row, sorted: what two replays must agree on.
    fn dump(&self) -> Tables<Vec<String>>;
    /// How many of the schema's secondary indexes exist (and are usable).
    fn secondary_indexes(&self) -> usize;

    fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first cell of the first row, if there is one.
    fn text(&self, sql: &str) -> Option<String> {
        self.query(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next()?)
    }

    fn count(&self, sql: &str) -> u64 {
        let n = self.text(sql).unwrap_or_else(|| panic!("{sql}: no value"));
        n.parse().unwrap_or_else(|e| panic!("{sql}: {n}: {e}"))
    }

    /// The sidecar's read position, 0 before it has one.
    fn next_seq(&self) -> u64 {
        self.try_query("SELECT next_seq FROM sidecar_state")
            .ok()
            .and_then(|rows| rows.into_iter().next()?.into_iter().next()?)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn run(&self, dir: &Path, opts: SidecarOptions) -> Result<SidecarStats, SidecarError> {
        run(dir, &self.url(), opts)
    }

    fn replay(&self, dir: &Path, opts: SidecarOptions) -> SidecarStats {
        self.run(dir, opts).expect("sidecar run")
    }
}

/// Makes every scenario below a `#[test]` of the calling module on backend `$db`.
macro_rules! scenarios {
    ($db:ty) => {
        $crate::sidecar::scenarios!(@each $db;
            row_counts_match_the_journal_and_positions_match_the_core,
            decimals_are_exact_text,
            a_restart_after_every_record_gives_the_same_tables,
            stopping_after_n_batches_and_restarting_gives_the_same_tables,
            a_sigkill_midway_loses_and_duplicates_nothing,
            a_fresh_database_is_indexed_once_caught_up,
            follow_picks_up_records_written_after_it_started,
            hostile_records_give_an_error_naming_their_seq,
            a_journal_that_does_not_start_with_its_config_is_refused,
            a_newer_schema_and_another_journal_are_refused,
            the_schema_is_versioned_in_schema_migrations,
            a_config_change_midway_is_applied_and_restarts_across_it_agree,
            regression_a_reload_removing_a_follower_with_working_orders_stopped_the_sidecar,
            an_allocation_change_is_a_row_at_its_revision,
            a_funding_input_pays_every_open_position,
            a_database_ahead_of_its_journal_is_refused,
            a_damaged_segment_gives_an_error_naming_the_record,
            regression_a_journal_rewritten_under_the_sidecar_is_refused_naming_the_record,
            a_database_from_before_the_continuity_check_adopts_the_chain_once,
            regression_a_fill_of_i64_max_lots_on_a_partly_filled_order_stopped_the_sidecar,
            stopping_inside_row_records_applies_each_row_once,
        );
    };
    (@each $db:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::sidecar::$name::<$db>();
            }
        )*
    };
}
pub(crate) use scenarios;

/// Fresh databases of these names, or `None` when the backend cannot be tested
/// here (said once).
fn fresh_dbs<B: Backend, const N: usize>(tmp: &Path, names: [&str; N]) -> Option<[B; N]> {
    let mut dbs = Vec::with_capacity(N);
    for name in names {
        dbs.push(B::fresh(tmp, name)?);
    }
    dbs.try_into().ok()
}

fn with_batch(batch_rows: usize) -> SidecarOptions {
    SidecarOptions {
        batch_rows,
        ..SidecarOptions::default()
    }
}

/// `s` as an SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn by_kind(dir: &Path) -> BTreeMap<u16, u64> {
    JournalReader::open(dir)
        .expect("reader")
        .summary()
        .expect("summary")
        .by_kind
}

pub fn row_counts_match_the_journal_and_positions_match_the_core<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["a"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec {
        followers: 16,
        paused_pct: 20,
        seed: 11,
    };
    let s = journal(&dir, &spec, 400);
    let sc: &SynthCounts = s.counts();
    let stats = db.replay(&dir, with_batch(500));
    let k = by_kind(&dir);
    let total: u64 = k.values().sum();
    assert_eq!(stats.records, total);
    assert_eq!(stats.next_seq, total + 1);
    assert!(stats.batches > 1, "{stats:?}");

    let n = |t: &str| db.count(&format!("SELECT COUNT(*) FROM {t}"));
    // Ordinary trades and the rest (liquidations, ...) each in their own records.
    let kinded = k[&(Kind::LeaderFillKind as u16)];
    assert!(kinded > 0, "{k:?}");
    assert_eq!(n("leader_fills"), k[&(Kind::LeaderFill as u16)] + kinded);
    assert_eq!(n("leader_fills WHERE kind <> 'trade'"), kinded);
    // Each kind by its name (`FillKind::name`), the synthetic journal has them all.
    for kind in FillKind::ALL {
        let rows = n(&format!("leader_fills WHERE kind = '{}'", kind.name()));
        assert!(rows > 0, "{kind:?}");
    }
    assert_eq!(n("leader_fills"), sc.leader_fills);
    assert_eq!(
        (n("copy_instructions"), n("follower_orders")),
        crate::common::instruction_and_order_rows(&k)
    );
    assert_eq!(n("follower_fills"), sc.distinct_fills);
    // The resync's catch-ups: instructions of their own, whose orders link to them.
    let resyncs = db.count(
        "SELECT COUNT(*) FROM copy_instructions WHERE resync <> '' AND leader_fill_seq IS NULL",
    );
    assert!(
        sc.ticks > 0 && resyncs > 0,
        "ticks {} resyncs {resyncs}",
        sc.ticks
    );
    assert_eq!(resyncs, k[&(Kind::ResyncDecision as u16)]);
    let linked = db.count(
        "SELECT COUNT(*) FROM follower_orders o JOIN copy_instructions i ON i.seq = o.instruction_seq WHERE i.resync <> ''",
    );
    let sent =
        db.count("SELECT COUNT(*) FROM copy_instructions WHERE resync <> '' AND sent <> '0'");
    assert!(linked >= sent && sent > 0, "linked {linked} sent {sent}");
    assert!(db.count("SELECT COUNT(*) FROM audit_log WHERE kind = 'venue_down'") > 0);
    assert!(db.count("SELECT COUNT(*) FROM copy_instructions WHERE status = 'deferred' AND reason = 'venue_down'") > 0);
    assert_eq!(n("mark_prices"), k[&(Kind::MarkPrice as u16)]);
    // Funding: a rate row per input; a payment per position open then, each
    // `−qty × mark × rate` rounded half away from zero to 8 places.
    assert!(sc.fundings > 0);
    assert_eq!(n("funding_rates"), k[&(Kind::Funding as u16)]);
    assert_eq!(n("funding_rates"), sc.fundings);
    let payments = db.query(
        "SELECT position_qty, mark_price, rate, amount, subscription_id FROM funding_payments",
    );
    assert!(payments.iter().any(|p| p[4].is_some()) && payments.iter().any(|p| p[4].is_none()));
    for p in &payments {
        let c = |i: usize| dec(p[i].as_deref().expect("not NULL"));
        assert_ne!(c(0), Decimal::ZERO, "{p:?}");
        let exact = -c(0) * c(1) * c(2);
        let want =
            exact.round_dp_with_strategy(8, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        assert_eq!(c(3), want, "{p:?}");
    }
    assert_eq!(n("config_revisions"), 1);
    assert_eq!(n("symbols"), 2);
    assert_eq!(n("subscriptions"), 16);
    let audit = |kind: &str| {
        db.count(&format!(
            "SELECT COUNT(*) FROM audit_log WHERE kind = '{kind}'"
        ))
    };
    assert_eq!(audit("config"), 1);
    assert_eq!(audit("command"), k[&(Kind::Command as u16)]);
    let dup = db.count("SELECT COUNT(*) FROM audit_log WHERE reason = 'duplicate_fill'");
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
    let skipped = db.count("SELECT COUNT(*) FROM copy_instructions WHERE status = 'skipped' AND reason = 'follower_paused'");
    assert!(skipped > 0);
    assert!(db.count("SELECT COUNT(*) FROM leader_fills WHERE ignored = 'duplicate'") > 0);

    // Positions, realized P&L and leader positions equal the engine's own.
    let u = s.universe();
    let core = s.core();
    for (si, sub) in u.subs.iter().enumerate() {
        let mut realized = Decimal::ZERO;
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want = sym.qty_decimal(core.position(SubIdx(si as u32), SymbolIdx(yi as u16)));
            let got = db
                .query(&format!(
                    "SELECT qty, realized_pnl FROM positions WHERE subscription_id = {} AND symbol = {}",
                    lit(&sub.id),
                    lit(&sym.name)
                ))
                .into_iter()
                .next();
            let (qty, pnl) = got.map_or(("0".into(), "0".into()), |r| {
                (r[0].clone().expect("qty"), r[1].clone().expect("pnl"))
            });
            assert_eq!(dec(&qty), want, "{} {}", sub.id, sym.name);
            realized += dec(&pnl);
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
            let got = db
                .text(&format!(
                    "SELECT position_after FROM leader_fills WHERE leader_id = {} AND symbol = {} ORDER BY seq DESC LIMIT 1",
                    lit(&l.id),
                    lit(&sym.name)
                ))
                .expect("last leader fill");
            assert_eq!(dec(&got), want);
            let stored = db
                .text(&format!(
                    "SELECT qty FROM leader_positions WHERE leader_id = {} AND symbol = {}",
                    lit(&l.id),
                    lit(&sym.name)
                ))
                .expect("leader position");
            assert_eq!(dec(&stored), want);
        }
    }

    // Lineage: leader fill → instruction → order → fill holds together (a resync's
    // instruction comes from a tick, not a leader fill).
    assert_eq!(
        db.count("SELECT COUNT(*) FROM copy_instructions ci LEFT JOIN leader_fills lf ON lf.seq = ci.leader_fill_seq \
                  WHERE ci.resync = '' AND (lf.seq IS NULL OR lf.event_id <> ci.event_id)"),
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM follower_orders fo LEFT JOIN copy_instructions ci ON ci.seq = fo.instruction_seq \
                  WHERE fo.event_id IS NOT NULL AND (ci.seq IS NULL OR ci.event_id <> fo.event_id \
                  OR ci.subscription_id <> fo.subscription_id)"),
        0
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM follower_fills ff LEFT JOIN follower_orders fo USING (client_order_id) WHERE fo.seq IS NULL"),
        0
    );
    // Order status follows the reports; filled quantity is the sum of the fills.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM follower_orders WHERE status NOT IN ('filled', 'canceled', 'rejected')"),
        0
    );
    let mismatched = db.count(&format!(
        "SELECT COUNT(*) FROM follower_orders fo WHERE CAST(fo.filled_qty AS {num}) <> \
         (SELECT COALESCE(SUM(CAST(qty AS {num})), 0) FROM follower_fills ff WHERE ff.client_order_id = fo.client_order_id)",
        num = B::NUMBER
    ));
    assert_eq!(mismatched, 0);
    assert!(db.count("SELECT COUNT(*) FROM follower_orders WHERE reject_reason = 'transient'") > 0);

    // A second run finds nothing new.
    let again = db.replay(&dir, SidecarOptions::default());
    assert_eq!((again.records, again.rows), (0, 0));
}

pub fn decimals_are_exact_text<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["d"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 120);
    db.replay(&dir, SidecarOptions::default());
    // Quantities are whole lots and prices whole ticks, written in their
    // shortest exact form ("0.5", not "0.500" or 0.49999).
    let rows = db.query("SELECT symbol, qty, price FROM leader_fills");
    assert!(!rows.is_empty());
    for row in rows {
        let [Some(sym), Some(qty), Some(price)] = &row[..] else {
            panic!("{row:?}");
        };
        let (lot, tick) = if sym == "BTCUSDT" {
            ("0.001", "0.1")
        } else {
            ("0.01", "0.01")
        };
        for (text, step) in [(qty, lot), (price, tick)] {
            let v = dec(text);
            let step = dec(step);
            assert!(
                (v / step).fract().is_zero(),
                "{text} is not a multiple of {step}"
            );
            assert!(v.scale() <= step.scale(), "{text}");
            assert_eq!(v.normalize().to_string(), *text);
        }
    }
    // The cost basis is exact: qty × average price, to the last digit.
    let rows = db.query(&format!(
        "SELECT qty, cost_basis, avg_price FROM positions WHERE CAST(qty AS {}) <> 0",
        B::NUMBER
    ));
    assert!(!rows.is_empty());
    for row in rows {
        let [Some(qty), Some(cost), Some(avg)] = &row[..] else {
            panic!("{row:?}");
        };
        let (qty, cost, avg) = (dec(qty), dec(cost), dec(avg));
        assert!(
            ((cost / qty) - avg).abs() < Decimal::new(1, 6),
            "{cost} / {qty} vs {avg}"
        );
    }
}

pub fn a_restart_after_every_record_gives_the_same_tables<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([whole, db]) = fresh_dbs::<B, _>(tmp.path(), ["whole", "pieces"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 40);
    whole.replay(&dir, SidecarOptions::default());
    let reference = whole.dump();

    // batch_rows = 1: every record is its own batch, so this restarts between
    // every input and its outputs, and between an order and its decision where
    // they are separate records (a flip's legs, retries).
    let mut runs = 0;
    loop {
        let s = db.replay(&dir, stop_after(1, 1));
        runs += 1;
        if s.records == 0 {
            break;
        }
        assert!(runs < 100_000, "no progress");
    }
    assert!(runs > 100, "{runs} runs");
    assert_same(&reference, &db.dump(), "restart after every record");
}

pub fn stopping_after_n_batches_and_restarting_gives_the_same_tables<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([whole]) = fresh_dbs::<B, _>(tmp.path(), ["whole"]) else {
        return;
    };
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
    whole.replay(&dir, SidecarOptions::default());
    let reference = whole.dump();
    for (i, (batches, rows)) in [(1, 13), (2, 97), (5, 250), (3, 1000), (7, 61)]
        .into_iter()
        .enumerate()
    {
        let Some([db]) = fresh_dbs::<B, _>(tmp.path(), [&format!("r{i}")]) else {
            return;
        };
        let first = db.replay(&dir, stop_after(batches, rows));
        assert_eq!(first.batches, batches);
        let rest = db.replay(&dir, with_batch(rows * 3));
        assert_eq!(rest.start_seq, first.next_seq);
        assert_same(
            &reference,
            &db.dump(),
            &format!("stop after {batches} batches of {rows}"),
        );
    }
}

pub fn a_sigkill_midway_loses_and_duplicates_nothing<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([whole, db]) = fresh_dbs::<B, _>(tmp.path(), ["whole", "killed"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let mut s = journal(
        &dir,
        &SynthSpec {
            followers: 40,
            paused_pct: 25,
            seed: 5,
        },
        B::KILL_FILLS,
    );
    let total = s.records();
    whole.replay(&dir, SidecarOptions::default());
    let reference = whole.dump();

    let kills = sigkill_repeatedly(tmp.path(), &dir, &db.url(), total, B::KILL_STEP, &|| {
        db.next_seq()
    });
    db.replay(&dir, SidecarOptions::default());
    assert_eq!(db.next_seq(), total + 1);
    assert_same(&reference, &db.dump(), &format!("{kills} SIGKILLs"));
    // The first run was killed before it could build them: a later one did.
    assert_eq!(db.secondary_indexes(), SECONDARY_INDEXES.len());
}

pub fn a_fresh_database_is_indexed_once_caught_up<B: Backend>() {
    /// Replays in batches of 100 rows; how many secondary indexes the database
    /// had after each batch.
    fn indexes_per_batch<B: Backend>(dir: &Path, db: &B) -> (SidecarStats, Vec<usize>) {
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        let probe = db.clone();
        let opts = SidecarOptions {
            batch_rows: 100,
            progress: Some(Box::new(move |_: &SidecarStats| {
                seen.lock().expect("lock").push(probe.secondary_indexes());
            })),
            ..SidecarOptions::default()
        };
        let stats = db.replay(dir, opts);
        let log = log.lock().expect("lock").clone();
        (stats, log)
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["i"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 200);
    s.flush().expect("flush");
    let (stats, during) = indexes_per_batch(&dir, &db);
    assert_eq!(during.len() as u64, stats.batches);
    assert!(stats.batches > 2, "{stats:?}");
    assert!(during.iter().all(|n| *n == 0), "{during:?}");
    assert_eq!(db.secondary_indexes(), SECONDARY_INDEXES.len());

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

pub fn follow_picks_up_records_written_after_it_started<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db, fresh]) = fresh_dbs::<B, _>(tmp.path(), ["f", "fresh"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 10);
    let stop = Arc::new(AtomicBool::new(false));
    let opts = SidecarOptions {
        follow: true,
        batch_rows: 64,
        flush_every: Duration::from_millis(5),
        stop: Some(Arc::clone(&stop)),
        ..SidecarOptions::default()
    };
    let (d, u) = (dir.clone(), db.url());
    let follower = std::thread::spawn(move || run(&d, &u, opts));
    // Each chunk is written after the follower started; wait until it is in SQL
    // before writing the next, so every chunk is picked up by following.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = Vec::new();
    for _ in 0..8 {
        s.leader_fills(25).expect("more fills");
        let total = s.records();
        while db.next_seq() != total + 1 {
            assert!(
                Instant::now() < deadline,
                "follower stuck at {} of {total}",
                db.next_seq()
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
    fresh.replay(&dir, SidecarOptions::default());
    assert_same(&fresh.dump(), &db.dump(), "follow vs one replay");
}

/// Appends one bad record to a journal and returns its sequence.
type Damage = Box<dyn FnOnce(&mut Synth) -> u64>;

fn damaged_journal(dir: &Path, bad: impl FnOnce(&mut Synth) -> u64) -> u64 {
    let mut s = journal(dir, &SynthSpec::default(), 5);
    let seq = bad(&mut s);
    s.leader_fills(2).expect("more");
    seq
}

fn run_err<B: Backend>(dir: &Path, db: &B) -> SidecarError {
    match db.run(dir, with_batch(7)) {
        Err(e) => e,
        Ok(s) => panic!("a damaged journal replayed: {s:?}"),
    }
}

fn entry(e: JournalEntry) -> (u16, Vec<u8>) {
    let mut enc = Encoder::default();
    let (kind, _, bytes) = enc.entry(&e).expect("encode").expect("a record");
    (kind as u16, bytes.to_vec())
}

pub fn hostile_records_give_an_error_naming_their_seq<B: Backend>() {
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
            "bad kind code 0 in a leader_fill_kind record",
            Box::new(|s: &mut Synth| {
                let (_, b) = entry(JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
                    qty: Lots(1),
                    price: Ticks(1),
                    event_key: 6,
                    kind: FillKind::Liquidation,
                    ..LeaderFill::default()
                })));
                // The kind is the payload's last field: a trade's code there
                // is no writer's (a trade has its own record).
                let mut b = b.to_vec();
                let at = b.len() - 8;
                assert_eq!(b[at], FillKind::Liquidation.code());
                b[at] = FillKind::Trade.code();
                s.append_raw(Kind::LeaderFillKind as u16, SCHEMA, &b)
                    .expect("append")
            }),
        ),
        (
            "leader index 98 is not in the config",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
                    leader: LeaderIdx(98),
                    qty: Lots(1),
                    price: Ticks(1),
                    event_key: 7,
                    kind: FillKind::Adl,
                    ..LeaderFill::default()
                })));
                assert_eq!(k, Kind::LeaderFillKind as u16);
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
            "symbol index 77 is not in the config",
            Box::new(|s: &mut Synth| {
                let (k, b) = entry(JournalEntry::Feed(FeedEvent::Funding {
                    symbol: SymbolIdx(77),
                    rate: fillcast_engine::units::FundingRate(1),
                    price: Ticks(5),
                    ts: Nanos(1),
                }));
                assert_eq!(k, Kind::Funding as u16);
                s.append_raw(k, SCHEMA, &b).expect("append")
            }),
        ),
        (
            "damaged funding payload",
            Box::new(|s: &mut Synth| {
                s.append_raw(Kind::Funding as u16, SCHEMA, &[0xff; 12])
                    .expect("append")
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
        let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["h"]) else {
            return;
        };
        let dir = tmp.path().join("j");
        let seq = damaged_journal(&dir, bad);
        let msg = run_err(&dir, &db).to_string();
        assert!(
            msg.contains(&format!("journal record {seq}:")) && msg.contains(want),
            "case {i}: `{msg}` should name record {seq} and say `{want}`"
        );
        // Everything before the batch holding the bad record is committed, and
        // a restart stops at the same record.
        assert!(db.next_seq() > 1 && db.next_seq() <= seq, "case {i}");
        assert_eq!(run_err(&dir, &db).to_string(), msg, "case {i}");
    }
}

pub fn a_journal_that_does_not_start_with_its_config_is_refused<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["n"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let (mut w, _) =
        fillcast_journal::JournalWriter::open(&dir, Default::default()).expect("writer");
    let (k, b) = entry(JournalEntry::Decision(Decision::default()));
    w.append(k, SCHEMA, 0, &b).expect("append");
    let msg = run_err(&dir, &db).to_string();
    assert!(
        msg.contains("journal record 1:") && msg.contains("config"),
        "{msg}"
    );
}

pub fn a_newer_schema_and_another_journal_are_refused<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["v"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 3);
    db.replay(&dir, SidecarOptions::default());

    let other = tmp.path().join("other");
    journal(&other, &SynthSpec::default(), 3);
    let e = db
        .run(&other, SidecarOptions::default())
        .expect_err("other journal");
    assert!(matches!(e, SidecarError::OtherJournal { .. }), "{e}");

    db.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (99, 'later')");
    let e = db
        .run(&dir, SidecarOptions::default())
        .expect_err("newer schema");
    assert!(
        matches!(e, SidecarError::NewerSchema { found: 99, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("newer"), "{e}");

    let e = run(&dir, "mysql://x", SidecarOptions::default()).expect_err("address");
    assert!(matches!(e, SidecarError::Address(_)), "{e}");
    let e = db
        .run(&tmp.path().join("none"), SidecarOptions::default())
        .expect_err("no journal");
    assert!(matches!(e, SidecarError::NoJournal(_)), "{e}");
}

pub fn the_schema_is_versioned_in_schema_migrations<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["m"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 2);
    db.replay(&dir, SidecarOptions::default());
    let row = db
        .query("SELECT MAX(version), MAX(applied_at), COUNT(*) FROM schema_migrations")
        .remove(0);
    let [Some(v), Some(at), Some(n)] = &row[..] else {
        panic!("{row:?}");
    };
    let (v, n): (i64, i64) = (v.parse().expect("version"), n.parse().expect("count"));
    assert_eq!(v, fillcast_sql::sidecar::schema::SCHEMA_VERSION);
    assert_eq!(n, v, "one row per migration");
    assert!(at.ends_with('Z') && at.contains('T'), "{at}");
    assert_eq!(db.secondary_indexes(), SECONDARY_INDEXES.len());
}

pub fn a_config_change_midway_is_applied_and_restarts_across_it_agree<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([whole, db]) = fresh_dbs::<B, _>(tmp.path(), ["whole", "pieces"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec::default();
    let mut s = journal(&dir, &spec, 30);
    let first = s.universe().revision;
    let toml = config_toml(&spec).replace("equity = \"1000000\"", "equity = \"1200000\"");
    let second = s.append_config(&toml).expect("reload");
    assert_ne!(first, second);
    s.leader_fills(30).expect("more fills");
    whole.replay(&dir, with_batch(50));
    assert_eq!(whole.count("SELECT COUNT(*) FROM config_revisions"), 2);
    let detail = whole
        .text("SELECT detail FROM audit_log WHERE kind = 'config' ORDER BY seq DESC LIMIT 1")
        .expect("audit");
    assert!(
        detail.contains(&format!("previous revision {first:016x}")),
        "{detail}"
    );
    let equity = whole
        .text("SELECT equity FROM leaders WHERE leader_id = 'L1'")
        .expect("leader");
    assert_eq!(equity, "1200000");
    let rev = whole
        .text("SELECT config_revision FROM sidecar_state")
        .expect("state");
    assert_eq!(rev, format!("{second:016x}"));
    // Positions were read back under the new config and kept on counting.
    let u = s.universe();
    for (si, sub) in u.subs.iter().enumerate() {
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want = sym.qty_decimal(s.core().position(SubIdx(si as u32), SymbolIdx(yi as u16)));
            let got = whole
                .text(&format!(
                    "SELECT qty FROM positions WHERE subscription_id = {} AND symbol = {}",
                    lit(&sub.id),
                    lit(&sym.name)
                ))
                .unwrap_or_else(|| "0".into());
            assert_eq!(dec(&got), want, "{} {}", sub.id, sym.name);
        }
    }
    while db.replay(&dir, stop_after(1, 3)).records > 0 {}
    assert_same(&whole.dump(), &db.dump(), "restarts across a config change");
}

/// A reload removed followers whose orders were still working: the sidecar,
/// reading its state back under the new revision, refused the database ("follower
/// `G0` is not in the config"; found by
/// `live::a_reload_adding_1000_subscriptions_and_removing_100_while_fills_flow`).
/// A removed item keeps its place, and what SQL holds of it is read back.
pub fn regression_a_reload_removing_a_follower_with_working_orders_stopped_the_sidecar<
    B: Backend,
>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["a"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec::default();
    let mut s = journal(&dir, &spec, 20);
    s.leave_orders_working(true);
    s.leader_fills(4).expect("fills left working");
    // Every follower and subscription but the last two's removed.
    let mut toml = config_toml(&spec);
    for i in 0..spec.followers - 2 {
        for table in [
            format!("[[followers]]\nid = \"F{i}\"\n"),
            format!("[[subscriptions]]\nid = \"S{i}\"\n"),
        ] {
            let at = toml.find(&table).expect("the item");
            let end = toml[at..].find("\n\n").map_or(toml.len(), |e| at + e + 2);
            toml.replace_range(at..end, "");
        }
    }
    s.append_config(&toml).expect("reload");
    s.leave_orders_working(false);
    s.answer_working().expect("the venue answers");
    s.leader_fills(10).expect("more fills");
    // One batch at a time, restarting after each: the orders' reports find them
    // only in SQL, read back under the revision that removed their followers.
    while db.replay(&dir, stop_after(1, 5)).records > 0 {}
    let working = db.count("SELECT COUNT(*) FROM follower_orders WHERE follower_id = 'F0'");
    assert!(working > 0, "F0 had no orders: the test proves nothing");
    let detail = db
        .text("SELECT detail FROM audit_log WHERE kind = 'config' ORDER BY seq DESC LIMIT 1")
        .expect("audit");
    assert!(
        detail.contains(&format!("2 followers (and {} removed)", spec.followers - 2)),
        "{detail}"
    );
}

/// A reload that changes a subscription's allocation writes one
/// `allocation_changes` row at the revision's record (the capital a report keeps
/// out of profit), and none for the subscriptions it left alone.
pub fn an_allocation_change_is_a_row_at_its_revision<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["a"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec::default();
    let mut s = journal(&dir, &spec, 10);
    let base = config_toml(&spec);
    let with_s1 = |allocation: &str| {
        let at = base.find("[[subscriptions]]\nid = \"S1\"\n").expect("S1");
        let mut toml = base.clone();
        let field = at
            + toml[at..]
                .find("allocation = \"10000\"")
                .expect("its allocation");
        toml.replace_range(field..field + 20, &format!("allocation = \"{allocation}\""));
        toml
    };
    let up = s.append_config(&with_s1("15000")).expect("deposit");
    s.leader_fills(5).expect("fills");
    let down = s.append_config(&with_s1("12500.5")).expect("withdrawal");
    s.leader_fills(5).expect("fills");
    // The same revision again changes nothing.
    s.append_config(&with_s1("12500.5")).expect("unchanged");
    while db.replay(&dir, stop_after(1, 3)).records > 0 {}
    let rows = db.query(
        "SELECT seq, subscription_id, follower_id, leader_id, ts, allocation_before, \
         allocation_after, config_revision FROM allocation_changes ORDER BY seq",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let config_seqs = db.query("SELECT seq, ts FROM audit_log WHERE kind = 'config' ORDER BY seq");
    for (row, (rev, before, after)) in rows
        .iter()
        .zip([(up, "10000", "15000"), (down, "15000", "12500.5")])
    {
        let cell = |i: usize| row[i].clone().expect("not NULL");
        assert_eq!(cell(1), "S1");
        assert_eq!(cell(2), "F1");
        assert_eq!(dec(&cell(5)), dec(before));
        assert_eq!(dec(&cell(6)), dec(after));
        assert_eq!(cell(7), format!("{rev:016x}"));
        // At the revision's own record.
        let at = config_seqs
            .iter()
            .find(|c| c[0] == row[0])
            .unwrap_or_else(|| panic!("no config record at seq {:?}", row[0]));
        assert_eq!(at[1], row[4], "the revision's time");
    }
    assert_eq!(
        db.text("SELECT allocation FROM subscriptions WHERE subscription_id = 'S1'")
            .map(|a| dec(&a)),
        Some(dec("12500.5"))
    );
}

/// The config of `a_funding_input_pays_every_open_position`.
const FUNDING_CONFIG: &str = r#"
[[venues]]
name = "sim"
kind = "sim"

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.01"
tick_size = "0.01"
venue = "sim"

[[leaders]]
id = "L1"
equity = "100000"

[[leaders]]
id = "L2"
equity = "100000"

[[followers]]
id = "F1"
equity = "50000"

[[followers]]
id = "F2"
equity = "50000"

[[subscriptions]]
id = "S1"
follower = "F1"
leader = "L1"
allocation = "20000"
mode = "fixed_ratio"
ratio = "0.1"

[[subscriptions]]
id = "S2"
follower = "F2"
leader = "L1"
allocation = "20000"
mode = "fixed_ratio"
ratio = "0.1"
"#;

/// Issue 16: a funding input pays (or credits) every position open in its
/// symbol at that point of the journal, leaders' and subscriptions' (what the
/// venue filled), and nobody flat; an invalid one pays nothing and is an
/// oddity. Every amount below is computed by hand.
pub fn a_funding_input_pays_every_open_position<B: Backend>() {
    use fillcast_engine::config::load_str;
    use fillcast_engine::event::FollowerOrder;
    use fillcast_engine::ids::leader_event_key;
    use fillcast_engine::model::{FollowerIdx, Universe};
    use fillcast_engine::outputs::DecisionStatus;
    use fillcast_engine::port::JournalSink;
    use fillcast_engine::units::FundingRate;
    use fillcast_journal::stage::JournalStage;
    use fillcast_journal::writer::JournalWriter;

    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["f"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let cfg = load_str(FUNDING_CONFIG, Path::new("funding.toml")).expect("config");
    let u = Universe::from_config(&cfg).expect("model");
    let (btc, eth) = (SymbolIdx(0), SymbolIdx(1));
    let t0 = 1_732_060_800_000_000_000u64;
    let fill = |leader: u32, symbol, side, qty, price, event: &str, at: u64| {
        JournalEntry::Feed(FeedEvent::LeaderFill(LeaderFill {
            leader: LeaderIdx(leader),
            symbol,
            side,
            qty: Lots(qty),
            price: Ticks(price),
            event_key: leader_event_key(&u.leaders[leader as usize].id, event),
            venue_ts: Nanos(t0 + at),
            recv_ts: Nanos(t0 + at),
            ..LeaderFill::default()
        }))
    };
    let e1 = leader_event_key("L1", "e1");
    // S1 (F1) and S2 (F2) copy L1's 0.5 BTC at 10%: orders of 50 lots; the
    // venue fills S1's in full, S2's 30 of them.
    let order = |id: u64, sub: u32, qty: i64| FollowerOrder {
        id,
        sub: SubIdx(sub),
        follower: FollowerIdx(sub),
        symbol: btc,
        side: Side::Buy,
        qty: Lots(qty),
        limit: Ticks(650_000),
        leader_event_key: e1,
        ts: Nanos(t0 + 1),
        ..FollowerOrder::default()
    };
    let decision = |sub: u32| Decision {
        event_key: e1,
        sub: SubIdx(sub),
        symbol: btc,
        target: Lots(50),
        delta: Lots(50),
        sent: Lots(50),
        status: DecisionStatus::Sent,
        revision: u.revision,
        ..Decision::default()
    };
    let report = |id: u64, kind: ExecKind, qty: i64, trade_id: u64| {
        JournalEntry::Exec(ExecReport {
            order_id: id,
            kind,
            qty: Lots(qty),
            price: Ticks(if kind == ExecKind::Fill { 650_000 } else { 0 }),
            trade_id,
            venue_ts: Nanos(t0 + 2),
            recv_ts: Nanos(t0 + 2),
            ..ExecReport::default()
        })
    };
    let funding = |symbol, rate: i64, price: i64, at: u64| {
        JournalEntry::Feed(FeedEvent::Funding {
            symbol,
            rate: FundingRate(rate),
            price: Ticks(price),
            ts: Nanos(t0 + at),
        })
    };
    let entries = vec![
        fill(0, btc, Side::Buy, 500, 650_000, "e1", 1),
        JournalEntry::Order(order(0xa1, 0, 50)),
        JournalEntry::Decision(decision(0)),
        JournalEntry::Order(order(0xa2, 1, 50)),
        JournalEntry::Decision(decision(1)),
        report(0xa1, ExecKind::Ack, 0, 0),
        report(0xa1, ExecKind::Fill, 50, 1),
        report(0xa2, ExecKind::Ack, 0, 0),
        report(0xa2, ExecKind::Fill, 30, 2),
        report(0xa2, ExecKind::Canceled, 0, 0),
        // L2 goes 2 ETH short; L1 trades ETH and is flat again.
        fill(1, eth, Side::Sell, 200, 340_000, "e2", 3),
        fill(0, eth, Side::Buy, 100, 340_000, "e3", 4),
        fill(0, eth, Side::Sell, 100, 340_100, "e4", 5),
        // 0.012345% at 65000.1; -0.005% at 3400.55; a rate of 200%: invalid.
        funding(btc, 12_345, 650_001, 28_800_000_000_000),
        funding(eth, -5_000, 340_055, 28_800_000_000_000),
        funding(btc, 200_000_000, 650_001, 28_800_000_000_001),
    ];
    let (writer, _) = JournalWriter::open(&dir, Default::default()).expect("journal");
    let mut stage = JournalStage::new(writer);
    stage
        .write_config(u.revision, &cfg.model_toml().expect("model"), t0)
        .expect("config");
    stage.append(&entries).expect("append");
    stage.before_send().expect("flush");
    drop(stage);
    db.replay(&dir, SidecarOptions::default());

    let rates =
        db.query("SELECT seq, symbol, ts, rate, mark_price FROM funding_rates ORDER BY seq");
    let at = (t0 + 28_800_000_000_000).to_string();
    let rate_rows: Vec<(String, String, Decimal, Decimal)> = rates
        .iter()
        .map(|r| {
            let c = |i: usize| r[i].clone().expect("not NULL");
            (c(1), c(2), dec(&c(3)), dec(&c(4)))
        })
        .collect();
    assert_eq!(
        rate_rows,
        vec![
            (
                "BTCUSDT".into(),
                at.clone(),
                dec("0.00012345"),
                dec("65000.1")
            ),
            (
                "ETHUSDT".into(),
                at.clone(),
                dec("-0.00005"),
                dec("3400.55")
            ),
            (
                "BTCUSDT".into(),
                (t0 + 28_800_000_000_001).to_string(),
                dec("2"),
                dec("65000.1")
            ),
        ]
    );
    let seq_of = |i: usize| rates[i][0].clone().expect("seq");

    let rows = db.query(
        "SELECT seq, line, ts, symbol, leader_id, follower_id, subscription_id, position_qty,          mark_price, rate, amount FROM funding_payments ORDER BY seq, line",
    );
    type Payment = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Decimal,
        Decimal,
    );
    let got: Vec<Payment> = rows
        .iter()
        .map(|r| {
            let c = |i: usize| r[i].clone().expect("not NULL");
            assert_eq!(c(2), at, "{r:?}");
            assert_eq!(
                dec(&c(8)),
                dec(if c(3) == "BTCUSDT" {
                    "65000.1"
                } else {
                    "3400.55"
                })
            );
            (
                c(0),
                c(1),
                c(4),
                r[5].clone(),
                r[6].clone(),
                dec(&c(7)),
                dec(&c(10)),
            )
        })
        .collect();
    let some = |s: &str| Some(s.to_string());
    // BTC: 0.5 × 65000.1 × 0.00012345 = 4.0121311725 → 4.01213117 (paid: long);
    // 0.05 × … = 0.40121311725 → 0.40121312 (half or more: away from zero);
    // 0.03 × … = 0.24072787035 → 0.24072787. ETH: L2's −2 × 3400.55 × −0.00005
    // = 0.340055, which a short pays at a negative rate. L1 is flat in ETH.
    assert_eq!(
        got,
        vec![
            (
                seq_of(0),
                "0".into(),
                "L1".into(),
                None,
                None,
                dec("0.5"),
                dec("-4.01213117")
            ),
            (
                seq_of(0),
                "1".into(),
                "L1".into(),
                some("F1"),
                some("S1"),
                dec("0.05"),
                dec("-0.40121312")
            ),
            (
                seq_of(0),
                "2".into(),
                "L1".into(),
                some("F2"),
                some("S2"),
                dec("0.03"),
                dec("-0.24072787")
            ),
            (
                seq_of(1),
                "0".into(),
                "L2".into(),
                None,
                None,
                dec("-2"),
                dec("-0.340055")
            ),
        ]
    );
    for r in &rows {
        assert_eq!(
            dec(r[9].as_deref().expect("rate")),
            if r[3].as_deref() == Some("BTCUSDT") {
                dec("0.00012345")
            } else {
                dec("-0.00005")
            }
        );
    }
    let odd =
        db.query("SELECT seq, subject, detail FROM audit_log WHERE reason = 'invalid_funding'");
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert_eq!(odd[0][0], Some(seq_of(2)));
    assert_eq!(odd[0][1].as_deref(), Some("BTCUSDT"));

    // A database rebuilt one record per batch, restarting in between, holds
    // the same rows.
    let Some([pieces]) = fresh_dbs::<B, _>(tmp.path(), ["f2"]) else {
        return;
    };
    while pieces.replay(&dir, stop_after(1, 1)).records > 0 {}
    assert_same(&db.dump(), &pieces.dump(), "funding, one record a batch");
}

pub fn a_database_ahead_of_its_journal_is_refused<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["a"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 20);
    db.replay(&dir, SidecarOptions::default());
    std::fs::remove_dir_all(&dir).expect("wipe");
    journal(&dir, &SynthSpec::default(), 2);
    let e = db.run(&dir, SidecarOptions::default()).expect_err("ahead");
    assert!(matches!(e, SidecarError::JournalBehind { .. }), "{e}");
}

pub fn a_damaged_segment_gives_an_error_naming_the_record<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["c"]) else {
        return;
    };
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
    let e = db.run(&dir, with_batch(10)).expect_err("damaged");
    let SidecarError::JournalAt { seq, .. } = &e else {
        panic!("{e}");
    };
    assert!(
        e.to_string().contains(&format!("reading record {seq}")),
        "{e}"
    );
    // Everything before the damage is in SQL, and nothing after it.
    assert!(db.next_seq() > 1 && db.next_seq() <= *seq, "{e}");
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
pub fn regression_a_journal_rewritten_under_the_sidecar_is_refused_naming_the_record<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db, db2, fresh]) = fresh_dbs::<B, _>(tmp.path(), ["r", "r2", "fresh"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 80);
    let total = s.records();
    drop(s);
    let stats = db.replay(&dir, with_batch(60));
    assert!(stats.batches > 3, "{stats:?}");
    let before = db.dump();

    let seq = crate::common::rewrite_one_record(&dir, total);
    let e = db
        .run(&dir, SidecarOptions::default())
        .expect_err("rewritten journal");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq: s, located: true, .. } if s == seq),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("record {seq} ")) && msg.contains("Rebuild the database"),
        "{msg}"
    );
    assert_same(&before, &db.dump(), "a refused run");
    // Refused again, the same way, at every start.
    assert_eq!(
        db.run(&dir, SidecarOptions::default())
            .expect_err("again")
            .to_string(),
        msg
    );

    // Another journal of the same length (another seed) in the same place.
    std::fs::remove_dir_all(&dir).expect("wipe");
    drop(journal(&dir, &SynthSpec::default(), 80));
    db2.replay(&dir, with_batch(60));
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
    let e = db2
        .run(&dir, SidecarOptions::default())
        .expect_err("replaced journal");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq, located: true, .. } if seq == want),
        "{e} (want record {want})"
    );

    // A fresh database follows the rewritten journal.
    fresh.replay(&dir, SidecarOptions::default());
}

/// A database written before the continuity check (schema version 2, no chain)
/// still works: its first run adopts the journal's history as it is, says so,
/// and from then on a rewritten journal is refused.
pub fn a_database_from_before_the_continuity_check_adopts_the_chain_once<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db, fresh]) = fresh_dbs::<B, _>(tmp.path(), ["old", "fresh"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 40);
    let first_part = s.records();
    db.replay(&dir, with_batch(50));
    // Back to schema version 2, as an older fillcast left it.
    db.execute(
        "ALTER TABLE sidecar_state DROP COLUMN chain; DROP TABLE sidecar_chain; \
         DROP TABLE follower_equity; DROP TABLE allocation_changes; \
         ALTER TABLE leader_fills DROP COLUMN kind; \
         DROP TABLE funding_rates; DROP TABLE funding_payments; \
         DELETE FROM schema_migrations WHERE version >= 3;",
    );
    s.leader_fills(20).expect("more fills");
    let total = s.records();
    drop(s);
    let stats = db.replay(&dir, with_batch(50));
    assert_eq!(
        stats.continuity,
        fillcast_sql::sidecar::Continuity::Adopted {
            through: first_part
        }
    );
    assert_eq!(stats.next_seq, total + 1);
    // The same tables, and the same chain, as a database that always had it;
    // but the fills a database of version 2 held before it learned kinds
    // (version 6) are trades there, as an older build could only have written.
    fresh.replay(&dir, with_batch(50));
    fresh.execute(&format!(
        "UPDATE leader_fills SET kind = 'trade' WHERE seq <= {first_part}"
    ));
    // Nor funding, which version 7 records from its migration on.
    fresh.execute(&format!(
        "DELETE FROM funding_rates WHERE seq <= {first_part}; \
         DELETE FROM funding_payments WHERE seq <= {first_part}"
    ));
    assert_same(&fresh.dump(), &db.dump(), "adopted vs fresh");
    let again = db.replay(&dir, SidecarOptions::default());
    assert_eq!(
        again.continuity,
        fillcast_sql::sidecar::Continuity::Verified { through: total }
    );
    let seq = crate::common::rewrite_one_record(&dir, first_part);
    let e = db
        .run(&dir, SidecarOptions::default())
        .expect_err("rewritten");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq: s, located: true, .. } if s == seq),
        "{e}"
    );
}

/// A fill of i64::MAX lots on a partly filled order overflowed the filled
/// quantity and stopped the sidecar with an error at that record (the core
/// panicked on it in debug builds). Both count it as an overfill now: the
/// sidecar writes an `overfill` oddity and goes on.
pub fn regression_a_fill_of_i64_max_lots_on_a_partly_filled_order_stopped_the_sidecar<
    B: Backend,
>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([db]) = fresh_dbs::<B, _>(tmp.path(), ["a"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec {
        followers: 8,
        paused_pct: 0,
        seed: 5,
    };
    let mut s = journal(&dir, &spec, 200);
    db.replay(&dir, SidecarOptions::default());
    // An order with fills whose position can take i64::MAX more lots its way:
    // only the filled quantity overflows.
    let id = db
        .text(&format!(
            "SELECT o.client_order_id FROM follower_orders o JOIN positions p \
             ON p.subscription_id = o.subscription_id AND p.symbol = o.symbol \
             WHERE CAST(o.filled_qty AS {num}) > 0 AND ((o.side = 'sell' AND CAST(p.qty AS {num}) >= 0) \
             OR (o.side = 'buy' AND CAST(p.qty AS {num}) <= 0)) ORDER BY o.seq LIMIT 1",
            num = B::NUMBER
        ))
        .expect("a partly or wholly filled order that reduces or opens from flat");
    let order_id = fillcast_engine::ids::parse_client_order_id(&id).expect("client order id");
    let oddities = |db: &B| db.count("SELECT COUNT(*) FROM audit_log WHERE reason = 'overfill'");
    let before = oddities(&db);
    let (k, b) = entry(JournalEntry::Exec(ExecReport {
        order_id,
        kind: ExecKind::Fill,
        qty: Lots(i64::MAX),
        price: Ticks(1),
        trade_id: u64::MAX,
        recv_ts: Nanos(1),
        ..ExecReport::default()
    }));
    s.append_raw(k, SCHEMA, &b).expect("append");
    s.flush().expect("flush");
    db.run(&dir, SidecarOptions::default())
        .expect("the sidecar goes on past the overfill");
    assert_eq!(oddities(&db), before + 1);
}

/// The row records of the journal in `dir`: first sequence and rows of each
/// record that holds more than one entry.
fn row_records(dir: &Path) -> Vec<(u64, u64)> {
    use fillcast_journal::segment::{self, Step, SEGMENT_HEADER};
    let mut out = Vec::new();
    for (first, path) in fillcast_journal::writer::list_segments(dir).expect("segments") {
        let b = std::fs::read(&path).expect("segment");
        let (mut off, mut seq) = (SEGMENT_HEADER, first);
        while let Step::Record { next, span, .. } = segment::step(&b[..], off, seq) {
            if span > 1 {
                out.push((seq, span));
            }
            off = next;
            seq += span;
        }
    }
    out
}

/// A row record (a fan-out's pairs, reports received together) holds many
/// sequences, and the sidecar commits its read position a row at a time. Stopped
/// after batches that end inside row records, replaying and following (a
/// tailer opened inside a row record), it resumes at the next row, applies
/// each row once, and ends with the tables of an uninterrupted replay.
pub fn stopping_inside_row_records_applies_each_row_once<B: Backend>() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some([whole]) = fresh_dbs::<B, _>(tmp.path(), ["whole"]) else {
        return;
    };
    let dir = tmp.path().join("j");
    let spec = SynthSpec {
        followers: 8,
        paused_pct: 0,
        seed: 21,
    };
    let total = journal(&dir, &spec, 25).records();
    let rows = row_records(&dir);
    assert!(rows.len() >= 10, "{rows:?}");
    let inside = |seq: u64| rows.iter().any(|(s, n)| *s < seq && seq < s + n);
    whole.replay(&dir, SidecarOptions::default());
    let reference = whole.dump();
    for (i, (follow, batch_rows)) in [(false, 1), (false, 6), (true, 1)].into_iter().enumerate() {
        let Some([db]) = fresh_dbs::<B, _>(tmp.path(), [&format!("rows{i}")]) else {
            return;
        };
        let (mut stops_inside, mut runs) = (0, 0);
        while db.next_seq() != total + 1 {
            let before = db.next_seq().max(1);
            let s = db.replay(
                &dir,
                SidecarOptions {
                    follow,
                    ..stop_after(1, batch_rows)
                },
            );
            assert_eq!((s.start_seq, s.batches), (before, 1), "run {runs}");
            assert_eq!(s.next_seq, db.next_seq());
            assert!(s.next_seq > before);
            stops_inside += usize::from(inside(s.next_seq));
            runs += 1;
            assert!(runs <= total, "no progress");
        }
        assert!(
            stops_inside >= 10,
            "{stops_inside} stops inside row records"
        );
        assert_same(
            &reference,
            &db.dump(),
            &format!("follow {follow}, batches of {batch_rows} rows"),
        );
    }
}
