//! The PostgreSQL store: one transaction per batch, each table's rows sent as one
//! text-format `COPY` (never a round trip per row). Tables that take upserts
//! (orders, positions, names) or ignore repeats (fills, config revisions) are
//! copied into a temporary staging table and merged with one
//! `INSERT ... SELECT ... ON CONFLICT`.
//!
//! The schema is the first one in the connection's `search_path` (set it in the
//! URL: `?options=-c%20search_path%3Dmy_schema`).
//!
//! Every batch and every index build takes the sidecar's advisory lock on its
//! schema first (`LOCK_SQL`), for the length of its transaction. A sidecar killed
//! while it builds the indexes leaves a backend that goes on building them, its
//! new `pg_class` rows uncommitted, until the build ends; a sidecar restarted at
//! once would otherwise run its own `CREATE INDEX IF NOT EXISTS` beside it, not
//! see those rows, and fail on `pg_class`'s unique key when they commit. With the
//! lock it waits for that build, then finds the indexes there (or, if the old
//! backend was terminated, its work rolled back, and builds them).

use crate::sidecar::build::{Batch, TableWriter};
use crate::sidecar::continuity::ChainRow;
use crate::sidecar::pgconn::{describe, PgTarget};
use crate::sidecar::rows::{Conflict, Row, RowError, Sink};
use crate::sidecar::schema::SECONDARY_INDEXES;
use crate::sidecar::schema::{self, Dialect, MIGRATIONS_TABLE};
use crate::sidecar::store::{
    self, pending_migrations, saved, Commit, Saved, SavedLeaderPosition, SavedOrder, SavedPosition,
    Store, QUERIES,
};
use crate::sidecar::SidecarError;
use fillcast_engine::model::Universe;
use postgres::{Client, Transaction};
use rust_decimal::Decimal;
use std::fmt::Write as _;
use std::io::Write as _;

pub(crate) struct Postgres {
    client: Client,
    name: String,
}

/// The sidecar's advisory lock on its schema, held to the end of the transaction:
/// (fillcast's lock class, the schema's name hashed).
const LOCK_SQL: &str =
    "SELECT pg_advisory_xact_lock(1717986913, hashtext(COALESCE(current_schema(), '')))";

/// The secondary indexes of the sidecar's schema that are invalid: left by a
/// killed `CREATE INDEX CONCURRENTLY` or `REINDEX CONCURRENTLY` (someone's, not
/// the sidecar's, which builds in a transaction), and which `IF NOT EXISTS` would
/// keep as they are.
const INVALID_INDEXES: &str = "SELECT c.relname::TEXT FROM pg_index i \
     JOIN pg_class c ON c.oid = i.indexrelid \
     WHERE c.relnamespace = to_regnamespace(current_schema())::OID \
     AND NOT i.indisvalid AND c.relname = ANY($1)";

/// Tables written through a staging table, and so needing one.
const STAGED: &[&str] = &[
    "config_revisions",
    "symbols",
    "leaders",
    "followers",
    "subscriptions",
    "leader_positions",
    "follower_orders",
    "follower_fills",
    "positions",
];

impl Postgres {
    /// Connects and brings the schema up to date.
    pub fn open(target: &PgTarget) -> Result<Postgres, SidecarError> {
        let client = target.connect()?;
        let mut pg = Postgres {
            client,
            name: target.shown().to_string(),
        };
        pg.migrate()?;
        let mut stage = String::new();
        for t in STAGED {
            let _ = writeln!(
                stage,
                "CREATE TEMP TABLE IF NOT EXISTS stage_{t} (LIKE {t}) ON COMMIT DELETE ROWS;"
            );
        }
        pg.client.batch_execute(&stage).map_err(pg.err())?;
        Ok(pg)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> SidecarError + '_ {
        move |e| SidecarError::Db {
            db: self.name.clone(),
            message: describe(&e),
        }
    }

    fn migrate(&mut self) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: postgres::Error| SidecarError::Db {
            db: name.clone(),
            message: describe(&e),
        };
        self.client.batch_execute(MIGRATIONS_TABLE).map_err(err)?;
        let mut tx = self.client.transaction().map_err(err)?;
        // Two sidecars starting at once: the second waits, then sees the first's work.
        tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
            .map_err(err)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations",
                &[],
            )
            .map_err(err)?
            .try_get(0)
            .map_err(err)?;
        for (v, script) in pending_migrations(&name, current, Dialect::Postgres)? {
            tx.batch_execute(&script).map_err(err)?;
            tx.execute(
                &format!(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1::BIGINT::INTEGER, {})",
                    schema::now_sql(Dialect::Postgres)
                ),
                &[&v],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

/// Appends a row's values to a text-format COPY buffer.
struct Copy<'a> {
    buf: &'a mut String,
    first: bool,
}

impl Copy<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.buf.push('\t');
        }
        self.first = false;
    }
}

impl Sink for Copy<'_> {
    fn int(&mut self, v: i64) {
        self.sep();
        let _ = write!(self.buf, "{v}");
    }

    fn text(&mut self, v: &str) {
        self.sep();
        for ch in v.chars() {
            match ch {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
    }

    fn dec(&mut self, v: Decimal) {
        self.sep();
        let _ = write!(self.buf, "{v}");
    }

    fn flag(&mut self, v: bool) {
        self.sep();
        self.buf.push(if v { 't' } else { 'f' });
    }

    fn null(&mut self) {
        self.sep();
        self.buf.push_str("\\N");
    }
}

fn copy_all<R: Row>(
    tx: &mut Transaction<'_>,
    rows: impl IntoIterator<Item = R>,
    u: &Universe,
    db: &str,
    buf: &mut String,
) -> Result<usize, SidecarError> {
    let t = R::TABLE;
    let fail = |message: String| SidecarError::Db {
        db: db.to_string(),
        message: format!("writing {}: {message}", t.name),
    };
    buf.clear();
    let mut n = 0;
    for row in rows {
        let mut sink = Copy {
            buf: &mut *buf,
            first: true,
        };
        row.put(u, &mut sink)
            .map_err(|e: RowError| fail(e.to_string()))?;
        buf.push('\n');
        n += 1;
    }
    if n == 0 {
        return Ok(0);
    }
    let cols = t.column_list();
    let target = match t.conflict {
        Conflict::Fail => t.name.to_string(),
        Conflict::Ignore(_) | Conflict::Update(_) => format!("stage_{}", t.name),
    };
    let mut w = tx
        .copy_in(&format!("COPY {target} ({cols}) FROM STDIN"))
        .map_err(|e| fail(describe(&e)))?;
    w.write_all(buf.as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    w.finish().map_err(|e| fail(describe(&e)))?;
    if target != t.name {
        tx.batch_execute(&format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {target}{}",
            t.name,
            t.on_conflict()
        ))
        .map_err(|e| fail(describe(&e)))?;
    }
    Ok(n)
}

/// Writes a batch's tables through `copy_all`, reusing one buffer.
struct Copies<'a, 't> {
    tx: &'a mut Transaction<'t>,
    db: &'a str,
    buf: String,
}

impl TableWriter for Copies<'_, '_> {
    fn rows<R: Row>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
        u: &Universe,
    ) -> Result<usize, SidecarError> {
        copy_all(self.tx, rows, u, self.db, &mut self.buf)
    }
}

impl Store for Postgres {
    fn name(&self) -> &str {
        &self.name
    }

    fn saved(&mut self, journal_dir: &str) -> Result<Saved, SidecarError> {
        self.client
            .execute(
                "INSERT INTO sidecar_state (id, next_seq, journal_dir, input_seq) VALUES (1, 1, $1, 0) \
                 ON CONFLICT (id) DO NOTHING",
                &[&journal_dir],
            )
            .map_err(self.err())?;
        let row = self
            .client
            .query_one(store::SAVED, &[])
            .map_err(self.err())?;
        let next_seq: i64 = row.try_get(0).map_err(self.err())?;
        let input_seq: i64 = row.try_get(3).map_err(self.err())?;
        saved(
            &self.name,
            next_seq,
            row.try_get(1).map_err(self.err())?,
            row.try_get(2).map_err(self.err())?,
            input_seq,
            row.try_get(4).map_err(self.err())?,
        )
    }

    fn indexes(&mut self, sql: &str) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: postgres::Error| SidecarError::Db {
            db: name.clone(),
            message: format!("building the secondary indexes: {}", describe(&e)),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute(LOCK_SQL).map_err(err)?;
        let ours: Vec<&str> = SECONDARY_INDEXES.iter().map(|(n, _)| *n).collect();
        let mut drop = String::new();
        for row in tx.query(INVALID_INDEXES, &[&ours]).map_err(err)? {
            let index: String = row.try_get(0).map_err(err)?;
            let _ = writeln!(drop, "DROP INDEX {index};");
        }
        tx.batch_execute(&drop).map_err(err)?;
        tx.batch_execute(sql).map_err(err)?;
        tx.commit().map_err(err)
    }

    fn adopt_chain(
        &mut self,
        next_seq: u64,
        chain: &str,
        rows: &[(u64, &[u8])],
    ) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: postgres::Error| SidecarError::Db {
            db: name.clone(),
            message: format!("recording the continuity chain: {}", describe(&e)),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        tx.batch_execute(LOCK_SQL).map_err(err)?;
        let next = i64::try_from(next_seq).unwrap_or(i64::MAX);
        let updated = tx
            .execute(store::ADOPT_CHAIN, &[&chain, &next])
            .map_err(err)?;
        store::adopted(&name, updated, next)?;
        for (first, last, hashes) in store::adopt_rows(rows) {
            tx.execute(store::INSERT_CHAIN, &[&first, &last, &hashes])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn chain_rows(&mut self) -> Result<Vec<ChainRow>, SidecarError> {
        let rows = self
            .client
            .query(store::CHAIN_ROWS, &[])
            .map_err(self.err())?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, postgres::Error>>()
            .map_err(self.err())?;
        store::chain_rows(&self.name, rows)
    }

    fn config_toml(&mut self, revision: &str) -> Result<Option<String>, SidecarError> {
        let row = self
            .client
            .query_opt(QUERIES.config_toml, &[&revision])
            .map_err(self.err())?;
        row.map(|r| r.try_get(0)).transpose().map_err(self.err())
    }

    fn revisions(&mut self) -> Result<Vec<String>, SidecarError> {
        let rows = self
            .client
            .query(QUERIES.revisions, &[])
            .map_err(self.err())?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(self.err())
    }

    fn positions(&mut self) -> Result<Vec<SavedPosition>, SidecarError> {
        let rows = self
            .client
            .query(QUERIES.positions, &[])
            .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                Ok(SavedPosition {
                    subscription_id: r.try_get(0)?,
                    symbol: r.try_get(1)?,
                    qty: r.try_get(2)?,
                    cost_basis: r.try_get(3)?,
                    realized_pnl: r.try_get(4)?,
                    updated_seq: r.try_get(5)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(self.err())
    }

    fn leader_positions(&mut self) -> Result<Vec<SavedLeaderPosition>, SidecarError> {
        let rows = self
            .client
            .query(QUERIES.leader_positions, &[])
            .map_err(self.err())?;
        rows.iter()
            .map(|r| {
                Ok(SavedLeaderPosition {
                    leader_id: r.try_get(0)?,
                    symbol: r.try_get(1)?,
                    qty: r.try_get(2)?,
                    updated_seq: r.try_get(3)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .map_err(self.err())
    }

    fn recent_events(&mut self, n: usize) -> Result<Vec<String>, SidecarError> {
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(QUERIES.recent_events, &[&limit])
            .map_err(self.err())?;
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        v.reverse();
        Ok(v)
    }

    fn order(&mut self, client_order_id: &str) -> Result<Option<SavedOrder>, SidecarError> {
        let Some(r) = self
            .client
            .query_opt(QUERIES.order, &[&client_order_id])
            .map_err(self.err())?
        else {
            return Ok(None);
        };
        let read = || -> Result<SavedOrder, postgres::Error> {
            Ok(SavedOrder {
                client_order_id: r.try_get(0)?,
                seq: r.try_get(1)?,
                instruction_seq: r.try_get(2)?,
                event_id: r.try_get(3)?,
                subscription_id: r.try_get(4)?,
                follower_id: r.try_get(5)?,
                symbol: r.try_get(6)?,
                side: r.try_get(7)?,
                qty: r.try_get(8)?,
                limit_price: r.try_get(9)?,
                order_type: r.try_get(10)?,
                reduce_only: r.try_get(11)?,
                status: r.try_get(12)?,
                filled_qty: r.try_get(13)?,
                reject_reason: r.try_get(14)?,
                trades: Vec::new(),
            })
        };
        let mut order = read().map_err(self.err())?;
        let trades = self
            .client
            .query(QUERIES.order_trades, &[&client_order_id])
            .map_err(self.err())?;
        order.trades = trades
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(self.err())?;
        Ok(Some(order))
    }

    fn write(
        &mut self,
        batch: &Batch,
        u: &Universe,
        commit: &Commit<'_>,
    ) -> Result<(), SidecarError> {
        let name = self.name.clone();
        let err = |e: postgres::Error| SidecarError::Db {
            db: name.clone(),
            message: describe(&e),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        // Never beside an index build (see the module's comment).
        tx.batch_execute(LOCK_SQL).map_err(err)?;
        let moved = tx
            .execute(
                store::MOVE,
                &[
                    &commit.next_seq,
                    &commit.input_seq,
                    &commit.config_revision,
                    &commit.chain,
                    &commit.expected_next_seq,
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
            store::INSERT_CHAIN,
            &[
                &commit.expected_next_seq,
                &(commit.next_seq - 1),
                &commit.hashes,
            ],
        )
        .map_err(err)?;
        let mut copies = Copies {
            tx: &mut tx,
            db: &name,
            buf: String::with_capacity(1 << 20),
        };
        batch.write_to(&mut copies, u)?;
        tx.commit().map_err(err)
    }
}
