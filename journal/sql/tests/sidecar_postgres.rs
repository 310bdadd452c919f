//! The sidecar against a real PostgreSQL, at the URL in `FILLCAST_TEST_PG`
//! (`scripts/test.sh` sets `postgres://postgres@127.0.0.1:5432/test`): every
//! scenario of `sidecar`, and what only PostgreSQL has: `NUMERIC` columns, and
//! index builds that outlive a killed client. Each database is a schema of its
//! own (`fc_test_<random>`, through the connection's `search_path`), dropped when
//! the test ends. Without a server the tests print why they skip, except under
//! CI (`CI` set), where that is a failure.

use fillcast_sql::sidecar::pg::{Client, NoTls, SimpleQueryMessage};
use fillcast_sql::sidecar::schema::{SECONDARY_INDEXES, TABLES};
use fillcast_sql::sidecar::synth::SynthSpec;
use fillcast_sql::sidecar::{run, SidecarOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{journal, Tables};
use crate::sidecar::Backend;

crate::sidecar::scenarios!(Postgres);

/// A schema of its own for one database of a test; clones share it, and the last
/// one dropped drops it (even in a panic).
#[derive(Clone)]
pub struct Postgres(Arc<Schema>);

struct Schema {
    base: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&self.base, NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}

impl Postgres {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn client(&self) -> Client {
        let mut c = Client::connect(&self.0.base, NoTls).expect("connect");
        c.batch_execute(&format!("SET search_path = {}", self.0.name))
            .expect("search_path");
        c
    }

    fn drop_indexes(&self) {
        let mut sql = String::new();
        for (name, _) in SECONDARY_INDEXES {
            sql.push_str(&format!("DROP INDEX IF EXISTS {name};"));
        }
        self.client().batch_execute(&sql).expect("drop indexes");
    }
}

impl Backend for Postgres {
    const NUMBER: &'static str = "NUMERIC";
    // A replay into PostgreSQL is slower than into SQLite: fewer records give
    // as many kills.
    const KILL_FILLS: usize = 800;
    const KILL_STEP: u64 = 400;

    fn fresh(_tmp: &Path, _name: &str) -> Option<Postgres> {
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
        Some(Postgres(Arc::new(Schema { base, name })))
    }

    /// The base URL with this schema first in its search path.
    fn url(&self) -> String {
        let base = &self.0.base;
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{}", self.0.name)
    }

    fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut c = Client::connect(&self.url(), NoTls).map_err(|e| e.to_string())?;
        // The simple protocol gives every value as text, NUMERIC included.
        let rows = c
            .simple_query(sql)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect();
        Ok(rows)
    }

    fn execute(&self, sql: &str) {
        self.client().batch_execute(sql).expect(sql);
    }

    /// Each row as PostgreSQL's text form of the record.
    fn dump(&self) -> Tables<Vec<String>> {
        let mut c = self.client();
        let mut out = Tables::new();
        for t in TABLES {
            let mut rows: Vec<Vec<String>> = c
                .query(&format!("SELECT t::text FROM {t} t"), &[])
                .expect("select")
                .iter()
                .map(|r| vec![r.get(0)])
                .collect();
            rows.sort();
            out.insert(t.to_string(), rows);
        }
        out
    }

    /// Only valid ones: a build killed midway can leave an invalid index behind.
    fn secondary_indexes(&self) -> usize {
        let names: Vec<&str> = SECONDARY_INDEXES.iter().map(|(n, _)| *n).collect();
        let n: i64 = self
            .client()
            .query_one(
                "SELECT COUNT(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_namespace s ON s.oid = c.relnamespace \
                 WHERE s.nspname = $1 AND c.relname = ANY($2) AND i.indisvalid",
                &[&self.0.name, &names],
            )
            .expect("indexes")
            .get(0);
        n as usize
    }
}

#[test]
fn decimals_are_stored_as_numeric() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(db) = Postgres::fresh(tmp.path(), "n") else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 2);
    db.replay(&dir, SidecarOptions::default());
    let numeric = db.count(&format!(
        "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = '{}' \
         AND column_name IN ('qty', 'price', 'fee', 'realized_pnl', 'target') AND data_type <> 'numeric'",
        db.name()
    ));
    assert_eq!(numeric, 0);
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

/// Issue 10, finding 12: a PostgreSQL sidecar killed while it built its indexes,
/// and restarted at once, failed with a duplicate key in `pg_class`: the killed
/// client's backend went on building them, and the new run's `CREATE INDEX IF
/// NOT EXISTS` did not see its uncommitted indexes. The build is stopped midway
/// here (a lock this test holds on `follower_orders` makes it wait after its
/// first indexes), the sidecar killed (the process, then the backend), and
/// restarted at once: it must complete, with every index valid.
#[test]
fn regression_a_sidecar_killed_while_it_builds_its_indexes_restarts_at_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(schema) = Postgres::fresh(tmp.path(), "k") else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 60);
    schema.replay(&dir, SidecarOptions::default());
    assert_eq!(schema.secondary_indexes(), SECONDARY_INDEXES.len());
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
            schema.secondary_indexes(),
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
    let tmp = tempfile::tempdir().expect("tmp");
    let Some(schema) = Postgres::fresh(tmp.path(), "i") else {
        return;
    };
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 30);
    schema.replay(&dir, SidecarOptions::default());
    let mut c = schema.client();
    c.batch_execute("DROP INDEX follower_orders_follower")
        .expect("drop");
    // Not unique: the build fails midway and leaves the index invalid.
    c.batch_execute(
        "CREATE UNIQUE INDEX CONCURRENTLY follower_orders_follower ON follower_orders (follower_id)",
    )
    .expect_err("duplicate follower ids");
    assert_eq!(schema.secondary_indexes(), SECONDARY_INDEXES.len() - 1);
    schema.replay(&dir, SidecarOptions::default());
    assert_eq!(schema.secondary_indexes(), SECONDARY_INDEXES.len());
    let unique: bool = c
        .query_one(
            "SELECT i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname = 'follower_orders_follower' AND c.relnamespace = $1::TEXT::REGNAMESPACE",
            &[&schema.name()],
        )
        .expect("index")
        .get(0);
    assert!(!unique);
}
