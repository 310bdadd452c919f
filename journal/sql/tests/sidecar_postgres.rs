//! The SQL sidecar against a real PostgreSQL, at the URL in `FILLCAST_TEST_PG`
//! (`scripts/test.sh` sets `postgres://postgres@127.0.0.1:5432/test`). Each test
//! works in its own schema (`fc_test_<random>`, through the connection's
//! `search_path`) and drops it at the end. Without a server the tests print why
//! they skip, except under CI (`CI` set), where that is a failure.

use fillcast_engine::model::{SubIdx, SymbolIdx};
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::Kind;
use fillcast_sql::sidecar::pg::{Client, NoTls};
use fillcast_sql::sidecar::schema::{SECONDARY_INDEXES, TABLES};
use fillcast_sql::sidecar::synth::SynthSpec;
use fillcast_sql::sidecar::{run, SidecarError, SidecarOptions, SidecarStats};
use rust_decimal::Decimal;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{assert_same, journal, sigkill_repeatedly, stop_after};

type Tables = crate::common::Tables<String>;

/// A schema of its own for one test, dropped when the test ends (even by a panic).
struct Schema {
    base: String,
    name: String,
}

impl Schema {
    /// `None` (after saying why) when there is no server to test against.
    fn new() -> Option<Schema> {
        let ci = std::env::var_os("CI").is_some();
        let skip = |why: String| {
            assert!(!ci, "PostgreSQL tests cannot run under CI: {why}");
            println!("skipped: {why}");
            None
        };
        let Ok(base) = std::env::var("FILLCAST_TEST_PG") else {
            return skip(
                "FILLCAST_TEST_PG is not set (e.g. postgres://postgres@127.0.0.1:5432/test)".into(),
            );
        };
        let mut c = match Client::connect(&base, NoTls) {
            Ok(c) => c,
            Err(e) => return skip(format!("PostgreSQL at {base} is unreachable: {e}")),
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "fc_test_{}_{}_{}",
            std::process::id(),
            nanos,
            N.fetch_add(1, Ordering::Relaxed)
        );
        c.batch_execute(&format!("CREATE SCHEMA {name}"))
            .expect("create schema");
        Some(Schema { base, name })
    }

    /// The sidecar's address: the base URL with this schema first in its search path.
    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    fn client(&self) -> Client {
        let mut c = Client::connect(&self.base, NoTls).expect("connect");
        c.batch_execute(&format!("SET search_path = {}", self.name))
            .expect("search_path");
        c
    }

    fn count(&self, c: &mut Client, sql: &str) -> u64 {
        let n: i64 = c.query_one(sql, &[]).expect(sql).get(0);
        n as u64
    }

    fn next_seq(&self) -> u64 {
        let Ok(mut c) = Client::connect(&self.url(), NoTls) else {
            return 0;
        };
        c.query_opt("SELECT next_seq FROM sidecar_state", &[])
            .ok()
            .flatten()
            .map_or(0, |r| r.get::<_, i64>(0) as u64)
    }

    /// Every table, each row as PostgreSQL's text form of the record, sorted.
    fn dump(&self) -> Tables {
        let mut c = self.client();
        let mut out = Tables::new();
        for t in TABLES {
            let mut rows: Vec<String> = c
                .query(&format!("SELECT t::text FROM {t} t"), &[])
                .expect("select")
                .iter()
                .map(|r| r.get(0))
                .collect();
            rows.sort();
            out.insert(t.to_string(), rows);
        }
        out
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.base, NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

fn replay(dir: &Path, url: &str, opts: SidecarOptions) -> SidecarStats {
    run(dir, url, opts).expect("sidecar run")
}

#[test]
fn row_counts_match_the_journal_and_positions_match_the_core() {
    let Some(schema) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let s = journal(
        &dir,
        &SynthSpec {
            followers: 16,
            paused_pct: 20,
            seed: 11,
        },
        300,
    );
    let stats = replay(
        &dir,
        &schema.url(),
        SidecarOptions {
            batch_rows: 400,
            ..SidecarOptions::default()
        },
    );
    let k = JournalReader::open(&dir)
        .expect("reader")
        .summary()
        .expect("summary")
        .by_kind;
    assert_eq!(stats.records, k.values().sum::<u64>());
    assert!(stats.batches > 1);
    let mut c = schema.client();
    let mut n = |t: &str| schema.count(&mut c, &format!("SELECT COUNT(*) FROM {t}"));
    assert_eq!(n("leader_fills"), k[&(Kind::LeaderFill as u16)]);
    assert_eq!(
        (n("copy_instructions"), n("follower_orders")),
        crate::common::instruction_and_order_rows(&k)
    );
    assert_eq!(n("follower_fills"), s.counts().distinct_fills);
    assert_eq!(n("mark_prices"), k[&(Kind::MarkPrice as u16)]);
    assert_eq!(n("leader_equity"), k[&(Kind::LeaderEquity as u16)]);
    assert_eq!(n("subscriptions"), 16);

    // Exact NUMERIC columns, and positions equal to the engine's own.
    let mut c = schema.client();
    let numeric = schema.count(
        &mut c,
        &format!(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = '{}' \
             AND column_name IN ('qty', 'price', 'fee', 'realized_pnl', 'target') AND data_type <> 'numeric'",
            schema.name
        ),
    );
    assert_eq!(numeric, 0);
    let u = s.universe();
    for (si, sub) in u.subs.iter().enumerate() {
        let mut realized = Decimal::ZERO;
        for (yi, sym) in u.symbols.iter().enumerate() {
            let want = sym.qty_decimal(s.core().position(SubIdx(si as u32), SymbolIdx(yi as u16)));
            let row = c
                .query_opt(
                    "SELECT qty::text, realized_pnl::text FROM positions WHERE subscription_id = $1 AND symbol = $2",
                    &[&sub.id, &sym.name],
                )
                .expect("position");
            let (qty, pnl): (String, String) =
                row.map_or(("0".into(), "0".into()), |r| (r.get(0), r.get(1)));
            assert_eq!(Decimal::from_str(&qty).expect("qty"), want);
            realized += Decimal::from_str(&pnl).expect("pnl");
        }
        assert_eq!(realized, s.core().realized(SubIdx(si as u32)).to_decimal());
    }
    let orphans = schema.count(
        &mut c,
        "SELECT COUNT(*) FROM follower_orders fo LEFT JOIN copy_instructions ci ON ci.seq = fo.instruction_seq \
         WHERE fo.event_id IS NOT NULL AND ci.seq IS NULL",
    );
    assert_eq!(orphans, 0);
    let again = replay(&dir, &schema.url(), SidecarOptions::default());
    assert_eq!((again.records, again.rows), (0, 0));
}

#[test]
fn restarts_give_the_same_tables_as_one_replay() {
    let Some(whole) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(
        &dir,
        &SynthSpec {
            followers: 20,
            paused_pct: 33,
            seed: 3,
        },
        150,
    );
    replay(&dir, &whole.url(), SidecarOptions::default());
    let reference = whole.dump();
    for (batches, rows) in [(1, 9), (3, 101), (4, 700)] {
        let Some(s) = Schema::new() else { return };
        let first = replay(&dir, &s.url(), stop_after(batches, rows));
        assert_eq!(first.batches, batches);
        replay(&dir, &s.url(), stop_after(u64::MAX, rows * 2));
        assert_same(
            &reference,
            &s.dump(),
            &format!("stop after {batches} batches of {rows}"),
        );
    }

    // Every record its own batch, and a restart after each.
    let small = tmp.path().join("small");
    journal(&small, &SynthSpec::default(), 12);
    let Some(one) = Schema::new() else { return };
    replay(&small, &one.url(), SidecarOptions::default());
    let Some(s) = Schema::new() else { return };
    let mut runs = 0;
    while replay(&small, &s.url(), stop_after(1, 1)).records > 0 {
        runs += 1;
        assert!(runs < 100_000, "no progress");
    }
    assert!(runs > 50, "{runs}");
    assert_same(&one.dump(), &s.dump(), "restart after every record");
}

#[test]
fn a_sigkill_midway_loses_and_duplicates_nothing() {
    let Some(whole) = Schema::new() else { return };
    let Some(killed) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(
        &dir,
        &SynthSpec {
            followers: 40,
            paused_pct: 25,
            seed: 5,
        },
        800,
    );
    let total = s.records();
    replay(&dir, &whole.url(), SidecarOptions::default());
    let kills = sigkill_repeatedly(tmp.path(), &dir, &killed.url(), total, 400, &|| {
        killed.next_seq()
    });
    replay(&dir, &killed.url(), SidecarOptions::default());
    assert_eq!(killed.next_seq(), total + 1);
    assert_same(&whole.dump(), &killed.dump(), &format!("{kills} SIGKILLs"));
}

#[test]
fn follow_picks_up_records_written_after_it_started() {
    let Some(schema) = Schema::new() else { return };
    let Some(fresh) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
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
    let (d, url) = (dir.clone(), schema.url());
    let follower = std::thread::spawn(move || run(&d, &url, opts));
    // Each chunk is written after the follower started; wait until it is in SQL
    // before writing the next, so every chunk is picked up by following.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught_up = Vec::new();
    for _ in 0..8 {
        s.leader_fills(25).expect("more fills");
        let total = s.records();
        while schema.next_seq() != total + 1 {
            assert!(
                Instant::now() < deadline,
                "follower stuck at {} of {total}",
                schema.next_seq()
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
    replay(&dir, &fresh.url(), SidecarOptions::default());
    assert_same(&fresh.dump(), &schema.dump(), "follow vs one replay");
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(schema) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 2);
    replay(&dir, &schema.url(), SidecarOptions::default());
    schema
        .client()
        .batch_execute("INSERT INTO schema_migrations (version, applied_at) VALUES (42, 'later')")
        .expect("bump");
    let e = run(&dir, &schema.url(), SidecarOptions::default()).expect_err("newer schema");
    assert!(
        matches!(e, SidecarError::NewerSchema { found: 42, .. }),
        "{e}"
    );
}

/// Waits up to a minute for `found` to give something.
fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = found() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Schema {
    /// How many of the secondary indexes exist and are valid.
    fn valid_indexes(&self) -> usize {
        let names: Vec<&str> = SECONDARY_INDEXES.iter().map(|(n, _)| *n).collect();
        let n: i64 = self
            .client()
            .query_one(
                "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = $1 AND c.relname = ANY($2) AND i.indisvalid",
                &[&self.name, &names],
            )
            .expect("indexes")
            .get(0);
        n as usize
    }

    fn drop_indexes(&self) {
        let mut sql = String::new();
        for (name, _) in SECONDARY_INDEXES {
            sql.push_str(&format!("DROP INDEX IF EXISTS {name};"));
        }
        self.client().batch_execute(&sql).expect("drop indexes");
    }
}

/// Issue 10, finding 12: a PostgreSQL sidecar killed while it built its indexes,
/// and restarted at once, failed with a duplicate key in `pg_class`: the killed
/// client's backend went on building them, and the new run's `CREATE INDEX IF
/// NOT EXISTS` did not see its uncommitted indexes. The build is stopped midway
/// here (a lock this test holds on `follower_orders` makes it wait after its
/// first indexes), the sidecar killed (the process, then the backend), and
/// restarted at once: it must complete, with every index valid.
#[test]
fn regression_a_sidecar_killed_while_it_builds_its_indexes_restarts_at_once() {
    let Some(schema) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 60);
    replay(&dir, &schema.url(), SidecarOptions::default());
    assert_eq!(schema.valid_indexes(), SECONDARY_INDEXES.len());
    let bin = crate::common::child_binary(tmp.path());
    for kill_backend in [false, true] {
        schema.drop_indexes();
        let mut holder = schema.client();
        let mut hold = holder.transaction().expect("begin");
        hold.batch_execute("LOCK TABLE follower_orders IN ROW EXCLUSIVE MODE")
            .expect("lock");
        let holder_pid: i32 = hold
            .query_one("SELECT pg_backend_pid()", &[])
            .expect("pid")
            .get(0);
        let mut child = crate::common::spawn_child_sidecar(&bin, &dir, &schema.url());
        let mut admin = schema.client();
        let blocked_by = |admin: &mut Client, pids: &[i32], not: i32| -> Option<i32> {
            admin
                .query_opt(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE pid <> $2 AND pg_blocking_pids(pid) && $1::INT[] LIMIT 1",
                    &[&pids, &not],
                )
                .expect("pg_stat_activity")
                .map(|r| r.get(0))
        };
        // The child's backend, midway through its indexes, waiting for the lock.
        let builder = wait_for("the index build to wait", || {
            blocked_by(&mut admin, &[holder_pid], 0)
        });
        if kill_backend {
            admin
                .execute("SELECT pg_terminate_backend($1)", &[&builder])
                .expect("terminate");
        } else {
            child.kill().expect("SIGKILL");
        }
        let status = child.wait().expect("reap");
        assert!(kill_backend || !status.success(), "{status}");

        let (d, url) = (dir.clone(), schema.url());
        let restarted = std::thread::spawn(move || run(&d, &url, SidecarOptions::default()));
        // The restarted run is waiting for the old build (or for the lock).
        wait_for("the restarted run to wait", || {
            blocked_by(&mut admin, &[holder_pid, builder], builder)
        });
        hold.commit().expect("release the lock");
        let stats = restarted.join().expect("thread");
        assert!(
            stats.is_ok(),
            "restart after a kill (backend: {kill_backend}): {:?}",
            stats.err().map(|e| e.to_string())
        );
        assert_eq!(
            schema.valid_indexes(),
            SECONDARY_INDEXES.len(),
            "backend: {kill_backend}"
        );
    }
}

/// A build killed with `CONCURRENTLY` (by hand, or a `REINDEX CONCURRENTLY`)
/// leaves an invalid index, which `CREATE INDEX IF NOT EXISTS` keeps: the sidecar
/// drops and builds it again.
#[test]
fn regression_an_invalid_index_left_by_a_killed_build_is_built_again() {
    let Some(schema) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 30);
    replay(&dir, &schema.url(), SidecarOptions::default());
    let mut c = schema.client();
    c.batch_execute("DROP INDEX follower_orders_follower")
        .expect("drop");
    // Not unique: the build fails midway and leaves the index invalid.
    c.batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY follower_orders_follower ON follower_orders (follower_id)",
    )
    .expect_err("duplicate follower ids");
    assert_eq!(schema.valid_indexes(), SECONDARY_INDEXES.len() - 1);
    replay(&dir, &schema.url(), SidecarOptions::default());
    assert_eq!(schema.valid_indexes(), SECONDARY_INDEXES.len());
    let unique: bool = c
        .query_one(
            "SELECT i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 'follower_orders_follower' AND c.relnamespace = $1::TEXT::REGNAMESPACE",
            &[&schema.name],
        )
        .expect("index")
        .get(0);
    assert!(!unique);
}

/// Issue 10, finding 5, in PostgreSQL: a journal rewritten under the sidecar is
/// refused, naming the record, and the tables stay as they were.
#[test]
fn regression_a_journal_rewritten_under_the_sidecar_is_refused_naming_the_record() {
    let Some(schema) = Schema::new() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let mut s = journal(&dir, &SynthSpec::default(), 80);
    let total = s.records();
    drop(s);
    let stats = replay(
        &dir,
        &schema.url(),
        SidecarOptions {
            batch_rows: 60,
            ..SidecarOptions::default()
        },
    );
    assert!(stats.batches > 3, "{stats:?}");
    let before = schema.dump();
    let seq = crate::common::rewrite_one_record(&dir, total);
    let e = run(&dir, &schema.url(), SidecarOptions::default()).expect_err("rewritten journal");
    assert!(
        matches!(e, SidecarError::HistoryChanged { seq: s, located: true, .. } if s == seq),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("record {seq} ")), "{e}");
    assert_same(&before, &schema.dump(), "a refused run");
}
