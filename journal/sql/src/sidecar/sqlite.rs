//! The SQLite store: one file in WAL mode (reports read while the sidecar
//! writes), one `BEGIN IMMEDIATE` transaction per batch, cached prepared
//! statements with their parameters bound in place (no SQL text per row).
//!
//! `synchronous = NORMAL`: in WAL mode a committed batch survives a crash of the
//! sidecar; a power loss may take back the last batches, never half of one, and the
//! sidecar then replays them from the journal, which is the truth.
//!
//! A new database file is created readable by its owner only (0600, less any
//! umask bits): it holds every follower's orders, positions and the whole config.
//! SQLite gives its `-wal` and `-shm` files the mode of the database file.

use crate::sidecar::build::{Batch, TableWriter};
use crate::sidecar::continuity::ChainRow;
use crate::sidecar::rows::{Row, Sink, Table};
use crate::sidecar::schema::{self, Dialect, MIGRATIONS_TABLE};
use crate::sidecar::store::{
    self, pending_migrations, saved, Commit, Saved, SavedLeaderPosition, SavedOrder, SavedPosition,
    Store, QUERIES,
};
use crate::sidecar::SidecarError;
use fillcast_engine::model::Universe;
use rusqlite::{Connection, OptionalExtension, Statement, TransactionBehavior};
use rust_decimal::Decimal;
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

/// SQLite's page cache, KiB (the default is 2 MiB).
const CACHE_KIB: i64 = 64 << 10;

/// Page size of a new database file: larger pages split less often under the
/// append-mostly inserts (the default is 4 KiB).
const PAGE_BYTES: i64 = 16 << 10;

/// WAL pages between checkpoints (the default is 1,000).
const WAL_CHECKPOINT_PAGES: i64 = (64 << 20) / PAGE_BYTES;

pub(crate) struct Sqlite {
    conn: Connection,
    name: String,
}

impl Sqlite {
    /// Opens (creating if need be) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Sqlite, SidecarError> {
        let name = format!("sqlite:{}", path.display());
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: e.to_string(),
        };
        create_private(path).map_err(|e| SidecarError::Db {
            db: name.clone(),
            message: format!("cannot create the database file: {e}"),
        })?;
        let conn = Connection::open(path).map_err(err)?;
        // Takes effect only in a new, empty file (before WAL mode is set).
        conn.pragma_update(None, "page_size", PAGE_BYTES)
            .map_err(err)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SidecarError::Db {
                db: name,
                message: format!("cannot switch to WAL mode (journal_mode is `{mode}`)"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // The secondary indexes take rows in no useful order: keep their pages cached.
        conn.pragma_update(None, "cache_size", -CACHE_KIB)
            .map_err(err)?;
        // Checkpoint (copy the WAL into the file, and fsync) every 64 MiB rather
        // than every 4 MiB: pages that several batches touch are copied once.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)
            .map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.set_prepared_statement_cache_capacity(64);
        let mut s = Sqlite { conn, name };
        s.migrate()?;
        Ok(s)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> SidecarError + '_ {
        move |e| SidecarError::Db {
            db: self.name.clone(),
            message: e.to_string(),
        }
    }

    fn migrate(&mut self) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: e.to_string(),
        };
        self.conn.execute_batch(MIGRATIONS_TABLE).map_err(err)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        for (v, script) in pending_migrations(&name, current, Dialect::Sqlite)? {
            tx.execute_batch(&script).map_err(err)?;
            tx.execute(
                &format!(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, {})",
                    schema::now_sql(Dialect::Sqlite)
                ),
                [v],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// Creates `path` empty with mode 0600 if it does not exist (an empty file is a
/// new SQLite database), so that SQLite never creates it with its default 0644.
/// An existing file keeps the mode its owner gave it.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// SQLite spells parameters `?n`.
fn sqlite_params(sql: &str) -> String {
    sql.replace('$', "?")
}

/// Binds a row's values to a prepared statement, in column order.
struct Bind<'a, 'b> {
    stmt: &'a mut Statement<'b>,
    idx: usize,
    buf: String,
    err: Option<rusqlite::Error>,
}

impl Bind<'_, '_> {
    fn bind<T: rusqlite::ToSql>(&mut self, v: T) {
        self.idx += 1;
        if let Err(e) = self.stmt.raw_bind_parameter(self.idx, v) {
            self.err.get_or_insert(e);
        }
    }
}

impl Sink for Bind<'_, '_> {
    fn int(&mut self, v: i64) {
        self.bind(v);
    }

    fn text(&mut self, v: &str) {
        self.bind(v);
    }

    fn dec(&mut self, v: Decimal) {
        // SQLite copies bound text (SQLITE_TRANSIENT), so one buffer serves all.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let _ = write!(buf, "{v}");
        self.bind(buf.as_str());
        self.buf = buf;
    }

    fn flag(&mut self, v: bool) {
        self.bind(i64::from(v));
    }

    fn null(&mut self) {
        self.bind(rusqlite::types::Null);
    }
}

fn insert_sql(t: &Table) -> String {
    let params: Vec<String> = (1..=t.columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({}){}",
        t.name,
        t.column_list(),
        params.join(", "),
        t.on_conflict()
    )
}

fn insert_all<R: Row>(
    conn: &Connection,
    rows: impl IntoIterator<Item = R>,
    u: &Universe,
    db: &str,
) -> Result<usize, SidecarError> {
    let err = |e: rusqlite::Error| SidecarError::Db {
        db: db.to_string(),
        message: format!("writing {}: {e}", R::TABLE.name),
    };
    let mut stmt = conn.prepare_cached(&insert_sql(&R::TABLE)).map_err(err)?;
    let mut sink = Bind {
        stmt: &mut stmt,
        idx: 0,
        buf: String::with_capacity(64),
        err: None,
    };
    let mut n = 0;
    for row in rows {
        sink.idx = 0;
        row.put(u, &mut sink).map_err(|e| SidecarError::Db {
            db: db.to_string(),
            message: format!("writing {}: {e}", R::TABLE.name),
        })?;
        debug_assert_eq!(sink.idx, R::TABLE.columns.len());
        if let Some(e) = sink.err.take() {
            return Err(err(e));
        }
        sink.stmt.raw_execute().map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// Writes a batch's tables through `insert_all`.
struct Inserts<'a> {
    tx: &'a Connection,
    db: &'a str,
}

impl TableWriter for Inserts<'_> {
    fn rows<R: Row>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
        u: &Universe,
    ) -> Result<usize, SidecarError> {
        insert_all(self.tx, rows, u, self.db)
    }
}

impl Store for Sqlite {
    fn name(&self) -> &str {
        &self.name
    }

    fn saved(&mut self, journal_dir: &str) -> Result<Saved, SidecarError> {
        self.conn
            .execute(
                "INSERT INTO sidecar_state (id, next_seq, journal_dir, input_seq) VALUES (1, 1, ?1, 0) \
                 ON CONFLICT (id) DO NOTHING",
                [journal_dir],
            )
            .map_err(self.err())?;
        let (next_seq, dir, rev, input_seq, chain) = self
            .conn
            .query_row(store::SAVED, [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(self.err())?;
        saved(&self.name, next_seq, dir, rev, input_seq, chain)
    }

    fn indexes(&mut self, sql: &str) -> Result<(), SidecarError> {
        // SQLite builds an index in its transaction, so no invalid one is ever left.
        let name = self.name.clone();
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: format!("building the secondary indexes: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute_batch(sql).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn adopt_chain(
        &mut self,
        next_seq: u64,
        chain: &str,
        rows: &[(u64, &[u8])],
    ) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: format!("recording the continuity chain: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let next = i64::try_from(next_seq).unwrap_or(i64::MAX);
        let updated = tx
            .execute(
                &sqlite_params(store::ADOPT_CHAIN),
                rusqlite::params![chain, next],
            )
            .map_err(err)?;
        store::adopted(&name, updated as u64, next)?;
        for (first, last, hashes) in store::adopt_rows(rows) {
            tx.execute(
                &sqlite_params(store::INSERT_CHAIN),
                rusqlite::params![first, last, hashes],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn chain_rows(&mut self) -> Result<Vec<ChainRow>, SidecarError> {
        let mut stmt = self.conn.prepare(store::CHAIN_ROWS).map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(self.err())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err())?;
        store::chain_rows(&self.name, rows)
    }

    fn config_toml(&mut self, revision: &str) -> Result<Option<String>, SidecarError> {
        self.conn
            .query_row(&sqlite_params(QUERIES.config_toml), [revision], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.err())
    }

    fn revisions(&mut self) -> Result<Vec<String>, SidecarError> {
        let mut stmt = self.conn.prepare(QUERIES.revisions).map_err(self.err())?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    fn positions(&mut self) -> Result<Vec<SavedPosition>, SidecarError> {
        let mut stmt = self.conn.prepare(QUERIES.positions).map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SavedPosition {
                    subscription_id: r.get(0)?,
                    symbol: r.get(1)?,
                    qty: r.get(2)?,
                    cost_basis: r.get(3)?,
                    realized_pnl: r.get(4)?,
                    updated_seq: r.get(5)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    fn leader_positions(&mut self) -> Result<Vec<SavedLeaderPosition>, SidecarError> {
        let mut stmt = self
            .conn
            .prepare(QUERIES.leader_positions)
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SavedLeaderPosition {
                    leader_id: r.get(0)?,
                    symbol: r.get(1)?,
                    qty: r.get(2)?,
                    updated_seq: r.get(3)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    fn recent_events(&mut self, n: usize) -> Result<Vec<String>, SidecarError> {
        let mut stmt = self
            .conn
            .prepare(&sqlite_params(QUERIES.recent_events))
            .map_err(self.err())?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map([limit], |r| r.get::<_, String>(0))
            .map_err(self.err())?;
        let mut v: Vec<String> = rows.collect::<Result<_, _>>().map_err(self.err())?;
        v.reverse();
        Ok(v)
    }

    fn order(&mut self, client_order_id: &str) -> Result<Option<SavedOrder>, SidecarError> {
        let name = self.name.clone();
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: e.to_string(),
        };
        let mut stmt = self
            .conn
            .prepare_cached(&sqlite_params(QUERIES.order))
            .map_err(err)?;
        let order = stmt
            .query_row([client_order_id], |r| {
                Ok(SavedOrder {
                    client_order_id: r.get(0)?,
                    seq: r.get(1)?,
                    instruction_seq: r.get(2)?,
                    event_id: r.get(3)?,
                    subscription_id: r.get(4)?,
                    follower_id: r.get(5)?,
                    symbol: r.get(6)?,
                    side: r.get(7)?,
                    qty: r.get(8)?,
                    limit_price: r.get(9)?,
                    order_type: r.get(10)?,
                    reduce_only: r.get::<_, i64>(11)? != 0,
                    status: r.get(12)?,
                    filled_qty: r.get(13)?,
                    reject_reason: r.get(14)?,
                    trades: Vec::new(),
                })
            })
            .optional()
            .map_err(err)?;
        let Some(mut order) = order else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached(&sqlite_params(QUERIES.order_trades))
            .map_err(err)?;
        let trades = stmt
            .query_map([client_order_id], |r| r.get(0))
            .map_err(err)?;
        order.trades = trades.collect::<Result<_, _>>().map_err(err)?;
        Ok(Some(order))
    }

    fn write(
        &mut self,
        batch: &Batch,
        u: &Universe,
        commit: &Commit<'_>,
    ) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: rusqlite::Error| SidecarError::Db {
            db: name.clone(),
            message: e.to_string(),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let moved = tx
            .execute(
                &sqlite_params(store::MOVE),
                rusqlite::params![
                    commit.next_seq,
                    commit.input_seq,
                    commit.config_revision,
                    commit.chain,
                    commit.expected_next_seq
                ],
            )
            .map_err(err)?;
        if moved != 1 {
            return Err(SidecarError::Concurrent {
                db: name.clone(),
                expected: commit.expected_next_seq,
            });
        }
        tx.execute(
            &sqlite_params(store::INSERT_CHAIN),
            rusqlite::params![commit.expected_next_seq, commit.next_seq - 1, commit.hashes],
        )
        .map_err(err)?;
        batch.write_to(&mut Inserts { tx: &tx, db: &name }, u)?;
        tx.commit().map_err(err)
    }
}
