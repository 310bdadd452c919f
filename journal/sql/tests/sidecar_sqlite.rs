//! The sidecar against a real SQLite file: every scenario of `sidecar` (row
//! counts, restarts, SIGKILL, follow, hostile records, …), and what only a SQLite
//! file has: decimals stored as text, and the write-ahead log.

use fillcast_sql::sidecar::rusqlite::{types::ValueRef, Connection};
use fillcast_sql::sidecar::schema::{SECONDARY_INDEXES, TABLES};
use fillcast_sql::sidecar::synth::SynthSpec;
use fillcast_sql::sidecar::SidecarOptions;
use std::path::{Path, PathBuf};

use crate::common::{journal, Tables};
use crate::sidecar::Backend;

crate::sidecar::scenarios!(Sqlite);

/// A SQLite file, created by the sidecar's first run.
#[derive(Clone, Debug)]
pub struct Sqlite {
    path: PathBuf,
}

impl Sqlite {
    fn open(&self) -> Connection {
        Connection::open(&self.path).expect("open db")
    }
}

impl Backend for Sqlite {
    // Decimals are text in SQLite: arithmetic wants a number.
    const NUMBER: &'static str = "REAL";
    const KILL_FILLS: usize = 1_500;
    const KILL_STEP: u64 = 200;

    fn fresh(tmp: &Path, name: &str) -> Option<Sqlite> {
        Some(Sqlite {
            path: tmp.join(format!("{name}.db")),
        })
    }

    fn url(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn try_query(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        let mut st = c.prepare(sql).map_err(|e| e.to_string())?;
        let n = st.column_count();
        let rows = st
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get_ref(i).map(text))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(|e| e.to_string())?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    fn execute(&self, sql: &str) {
        self.open().execute_batch(sql).expect(sql);
    }

    fn dump(&self) -> Tables<Vec<String>> {
        let c = self.open();
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

    fn secondary_indexes(&self) -> usize {
        SECONDARY_INDEXES
            .iter()
            .map(|(name, _)| {
                self.count(&format!(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = '{name}'"
                )) as usize
            })
            .sum()
    }
}

/// A cell as a query's caller reads it.
fn text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(_) => Some("blob".into()),
    }
}

/// A cell as a dump compares it: with its storage class, so that a decimal
/// stored as a number differs from the same decimal stored as text.
fn cell(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("real {f}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t)),
        ValueRef::Blob(_) => "blob".into(),
    }
}

#[test]
fn decimals_are_stored_as_text() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 120);
    let db = Sqlite::fresh(tmp.path(), "d").expect("sqlite");
    db.replay(&dir, SidecarOptions::default());
    for (t, cols) in [
        ("leader_fills", "qty, price, position_after"),
        ("copy_instructions", "target, delta, sent"),
        ("follower_orders", "qty, limit_price, filled_qty"),
        ("follower_fills", "qty, price, fee"),
        ("positions", "qty, realized_pnl, cost_basis"),
    ] {
        for col in cols.split(", ") {
            let not_text = db.count(&format!(
                "SELECT COUNT(*) FROM {t} WHERE typeof({col}) <> 'text'"
            ));
            assert_eq!(not_text, 0, "{t}.{col}");
        }
    }
}

#[test]
fn the_database_file_uses_the_write_ahead_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    journal(&dir, &SynthSpec::default(), 2);
    let db = Sqlite::fresh(tmp.path(), "m").expect("sqlite");
    db.replay(&dir, SidecarOptions::default());
    let mode: String = db
        .open()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}
