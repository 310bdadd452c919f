//! What the sidecar needs from a database, whichever it is: the saved read
//! position, the state rows it reads back on start, and one transaction per batch.

use crate::sidecar::build::Batch;
use crate::sidecar::continuity::ChainRow;
use crate::sidecar::schema::{self, Dialect, SCHEMA_VERSION};
use crate::sidecar::SidecarError;
use fillcast_engine::model::Universe;

/// The migrations a database at schema version `current` still needs, each
/// with its script for `dialect`; a database newer than this build is refused.
pub(crate) fn pending_migrations(
    db: &str,
    current: i64,
    dialect: Dialect,
) -> Result<Vec<(i64, String)>, SidecarError> {
    if current > SCHEMA_VERSION {
        return Err(SidecarError::NewerSchema {
            db: db.to_string(),
            found: current,
            known: SCHEMA_VERSION,
        });
    }
    (current + 1..=SCHEMA_VERSION)
        .map(|v| {
            let script = schema::script(v, dialect).ok_or_else(|| SidecarError::Db {
                db: db.to_string(),
                message: format!("no migration {v}"),
            })?;
            Ok((v, script))
        })
        .collect()
}

/// The read position and context committed with the last batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Saved {
    pub next_seq: u64,
    pub journal_dir: Option<String>,
    /// The config revision in force at `next_seq` (16 hex digits).
    pub config_revision: Option<String>,
    /// The last input record before `next_seq` (0: none yet).
    pub input_seq: u64,
    /// The chain of the records before `next_seq` (16 hex digits; `None` in a
    /// database from before the continuity check).
    pub chain: Option<String>,
}

/// Checks the `sidecar_state` row as read from `db`.
pub(crate) fn saved(
    db: &str,
    next_seq: i64,
    journal_dir: Option<String>,
    config_revision: Option<String>,
    input_seq: i64,
    chain: Option<String>,
) -> Result<Saved, SidecarError> {
    let bad = |what: &str, v: i64| SidecarError::State {
        db: db.to_string(),
        message: format!("sidecar_state.{what} is {v}"),
    };
    Ok(Saved {
        next_seq: u64::try_from(next_seq)
            .ok()
            .filter(|s| *s >= 1)
            .ok_or_else(|| bad("next_seq", next_seq))?,
        journal_dir,
        config_revision,
        input_seq: u64::try_from(input_seq).map_err(|_| bad("input_seq", input_seq))?,
        chain,
    })
}

/// Checks the `sidecar_chain` rows as read from `db`, in `first_seq` order.
pub(crate) fn chain_rows(
    db: &str,
    rows: Vec<(i64, i64, Vec<u8>)>,
) -> Result<Vec<ChainRow>, SidecarError> {
    rows.into_iter()
        .map(|(first, last, hashes)| {
            let bad = || SidecarError::State {
                db: db.to_string(),
                message: format!(
                    "sidecar_chain row {first}..={last} holds {} bytes",
                    hashes.len()
                ),
            };
            let first_seq = u64::try_from(first).map_err(|_| bad())?;
            let last_seq = u64::try_from(last).map_err(|_| bad())?;
            let records = last_seq.checked_sub(first_seq).ok_or_else(bad)? + 1;
            if records.checked_mul(4) != Some(hashes.len() as u64) {
                return Err(bad());
            }
            Ok(ChainRow {
                first_seq,
                last_seq,
                hashes,
            })
        })
        .collect()
}

/// What a batch's transaction sets `sidecar_state` to; `expected_next_seq` is
/// what it must still hold (so two sidecars on one database fail, not interleave).
/// `hashes` are the short hashes of records `expected_next_seq..next_seq`, its
/// `sidecar_chain` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Commit<'a> {
    pub next_seq: i64,
    pub expected_next_seq: i64,
    pub input_seq: i64,
    pub config_revision: Option<String>,
    pub chain: String,
    pub hashes: &'a [u8],
}

/// A `follower_orders` row as stored, with the venue trade ids of its fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SavedOrder {
    pub client_order_id: String,
    pub seq: i64,
    pub instruction_seq: Option<i64>,
    pub event_id: Option<String>,
    pub subscription_id: String,
    pub follower_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: String,
    pub limit_price: String,
    pub order_type: String,
    pub reduce_only: bool,
    pub status: String,
    pub filled_qty: String,
    pub reject_reason: Option<String>,
    pub trades: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SavedPosition {
    pub subscription_id: String,
    pub symbol: String,
    pub qty: String,
    pub cost_basis: String,
    pub realized_pnl: String,
    pub updated_seq: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SavedLeaderPosition {
    pub leader_id: String,
    pub symbol: String,
    pub qty: String,
    pub updated_seq: i64,
}

pub(crate) trait Store {
    /// The database, for messages (a PostgreSQL password is masked).
    fn name(&self) -> &str;

    /// The saved position; a new database gets its state row (next_seq 1) here.
    fn saved(&mut self, journal_dir: &str) -> Result<Saved, SidecarError>;

    /// Runs index DDL (`schema::create_secondary_indexes` or its drop) outside a
    /// batch, in one transaction, after dropping any of the secondary indexes
    /// that a killed build left invalid, so that it can be killed and run again
    /// at any moment. In PostgreSQL it holds the sidecar's lock (`LOCK_SQL`),
    /// which a killed client's backend keeps until its own build has ended.
    fn indexes(&mut self, sql: &str) -> Result<(), SidecarError>;

    /// Records the chain of a database from before the continuity check, with
    /// `sidecar_chain` rows `(first_seq, hashes)`; `next_seq` must not have moved.
    fn adopt_chain(
        &mut self,
        next_seq: u64,
        chain: &str,
        rows: &[(u64, &[u8])],
    ) -> Result<(), SidecarError>;

    /// Every `sidecar_chain` row, in `first_seq` order.
    fn chain_rows(&mut self) -> Result<Vec<ChainRow>, SidecarError>;

    fn config_toml(&mut self, revision: &str) -> Result<Option<String>, SidecarError>;

    /// Every config revision already stored.
    fn revisions(&mut self) -> Result<Vec<String>, SidecarError>;

    fn positions(&mut self) -> Result<Vec<SavedPosition>, SidecarError>;

    fn leader_positions(&mut self) -> Result<Vec<SavedLeaderPosition>, SidecarError>;

    /// Event ids of the last `n` leader fills the engine acted on, oldest first.
    fn recent_events(&mut self, n: usize) -> Result<Vec<String>, SidecarError>;

    fn order(&mut self, client_order_id: &str) -> Result<Option<SavedOrder>, SidecarError>;

    /// Write `batch` (names resolved in `universe`) and `commit`, in one transaction.
    fn write(
        &mut self,
        batch: &Batch,
        universe: &Universe,
        commit: &Commit<'_>,
    ) -> Result<(), SidecarError>;
}

/// The SQL both stores run to adopt a chain and to read the rows back, with
/// PostgreSQL's `$n` parameters.
pub(crate) const ADOPT_CHAIN: &str =
    "UPDATE sidecar_state SET chain = $1 WHERE id = 1 AND next_seq = $2 AND chain IS NULL";
pub(crate) const INSERT_CHAIN: &str =
    "INSERT INTO sidecar_chain (first_seq, last_seq, hashes) VALUES ($1, $2, $3)";
pub(crate) const CHAIN_ROWS: &str =
    "SELECT first_seq, last_seq, hashes FROM sidecar_chain ORDER BY first_seq";
pub(crate) const SAVED: &str =
    "SELECT next_seq, journal_dir, config_revision, input_seq, chain FROM sidecar_state WHERE id = 1";
pub(crate) const MOVE: &str =
    "UPDATE sidecar_state SET next_seq = $1, input_seq = $2, config_revision = $3, chain = $4 \
     WHERE id = 1 AND next_seq = $5";

/// An adoption's `sidecar_chain` rows as `(first_seq, last_seq, hashes)`.
pub(crate) fn adopt_rows<'a>(
    rows: &'a [(u64, &'a [u8])],
) -> impl Iterator<Item = (i64, i64, &'a [u8])> + 'a {
    rows.iter().map(|(first, hashes)| {
        let n = (hashes.len() / 4) as u64;
        let last = i64::try_from(first + n.max(1) - 1).unwrap_or(i64::MAX);
        (i64::try_from(*first).unwrap_or(i64::MAX), last, *hashes)
    })
}

/// The `sidecar_state` update of an adoption must have found the row where the
/// run read it: otherwise another sidecar moved it.
pub(crate) fn adopted(db: &str, updated: u64, next_seq: i64) -> Result<(), SidecarError> {
    if updated == 1 {
        return Ok(());
    }
    Err(SidecarError::Concurrent {
        db: db.to_string(),
        expected: next_seq,
    })
}

/// The reads both stores make, with PostgreSQL's `$n` parameters (SQLite's
/// store spells them `?n`). Decimals are read as text, which is exact in both.
pub(crate) struct Queries {
    pub config_toml: &'static str,
    pub revisions: &'static str,
    pub positions: &'static str,
    pub leader_positions: &'static str,
    pub recent_events: &'static str,
    pub order: &'static str,
    pub order_trades: &'static str,
}

pub(crate) const QUERIES: Queries = Queries {
    config_toml: "SELECT toml FROM config_revisions WHERE revision = $1",
    revisions: "SELECT revision FROM config_revisions",
    positions: "SELECT subscription_id, symbol, CAST(qty AS TEXT), CAST(cost_basis AS TEXT), \
                CAST(realized_pnl AS TEXT), updated_seq FROM positions",
    leader_positions:
        "SELECT leader_id, symbol, CAST(qty AS TEXT), updated_seq FROM leader_positions",
    recent_events:
        "SELECT event_id FROM leader_fills WHERE ignored = '' ORDER BY seq DESC LIMIT $1",
    order: "SELECT client_order_id, seq, instruction_seq, event_id, subscription_id, follower_id, \
            symbol, side, CAST(qty AS TEXT), CAST(limit_price AS TEXT), order_type, reduce_only, \
            status, CAST(filled_qty AS TEXT), reject_reason \
            FROM follower_orders WHERE client_order_id = $1",
    order_trades:
        "SELECT venue_trade_id FROM follower_fills WHERE client_order_id = $1 ORDER BY seq",
};
