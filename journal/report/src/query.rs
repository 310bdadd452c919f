//! Reading the sidecar's tables: one `Source` trait over SQLite and PostgreSQL, the
//! typed rows, and the in-memory `Dataset` the report is computed from.
//!
//! Every column is selected as `CAST(column AS TEXT)` and parsed here: decimals stay
//! exact (SQLite's own arithmetic on TEXT decimals would go through f64, so no sum is
//! ever done in SQL), and one SQL text serves both databases, whatever integer or
//! text type the sidecar chose for an id. A table that does not exist reads as empty
//! and is listed in `Dataset::missing`, so a fresh or empty database gives a valid
//! (empty) report. A value that does not parse is an error naming the table, the
//! row and the column.
//!
//! This module only reads: it never writes to the database.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::ledger::{Marks, Trades};
use super::time::TS_MAX_NS;
use super::ReportError;

/// Called with each row's columns, `None` for NULL.
pub type RowFn<'f> = dyn FnMut(&[Option<&str>]) -> Result<(), ReportError> + 'f;

/// A parameter of a lineage query.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
}

/// Somewhere the report can read the tables from. Queries use `$1, $2, …`
/// placeholders (valid in SQLite and PostgreSQL) and select text columns only.
pub trait Source {
    fn has_table(&mut self, table: &str) -> Result<bool, ReportError>;

    fn has_column(&mut self, table: &str, column: &str) -> Result<bool, ReportError>;

    /// Runs `sql` and calls `row` with each row's columns (`None` for NULL).
    fn for_each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut RowFn<'_>,
    ) -> Result<(), ReportError>;
}

/// A SQLite database through `rusqlite`.
pub struct Sqlite<'c>(pub &'c rusqlite::Connection);

impl Source for Sqlite<'_> {
    fn has_table(&mut self, table: &str) -> Result<bool, ReportError> {
        let n: i64 = self
            .0
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(|e| ReportError::query(table, e))?;
        Ok(n > 0)
    }

    fn has_column(&mut self, table: &str, column: &str) -> Result<bool, ReportError> {
        let n: i64 = self
            .0
            .query_row(
                "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, column],
                |r| r.get(0),
            )
            .map_err(|e| ReportError::query(table, e))?;
        Ok(n > 0)
    }

    fn for_each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut RowFn<'_>,
    ) -> Result<(), ReportError> {
        let mut stmt = self
            .0
            .prepare(sql)
            .map_err(|e| ReportError::query(sql, e))?;
        let ncols = stmt.column_count();
        let values: Vec<rusqlite::types::Value> = params
            .iter()
            .map(|p| match p {
                Param::Int(i) => rusqlite::types::Value::Integer(*i),
                Param::Text(s) => rusqlite::types::Value::Text((*s).to_string()),
            })
            .collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(values))
            .map_err(|e| ReportError::query(sql, e))?;
        while let Some(r) = rows.next().map_err(|e| ReportError::query(sql, e))? {
            let mut cols: Vec<Option<&str>> = Vec::with_capacity(ncols);
            for i in 0..ncols {
                let v = r.get_ref(i).map_err(|e| ReportError::query(sql, e))?;
                cols.push(match v {
                    rusqlite::types::ValueRef::Null => None,
                    rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                        Some(std::str::from_utf8(b).map_err(|_| ReportError::Parse {
                            table: table_of(sql),
                            row: String::from("?"),
                            column: format!("#{i}"),
                            value: String::from("(bytes)"),
                            expected: "UTF-8 text",
                        })?)
                    }
                    // Not reached with CAST(.. AS TEXT); refused rather than guessed.
                    _ => {
                        return Err(ReportError::Parse {
                            table: table_of(sql),
                            row: String::from("?"),
                            column: format!("#{i}"),
                            value: format!("{v:?}"),
                            expected: "a column selected as text",
                        })
                    }
                });
            }
            row(&cols)?;
        }
        Ok(())
    }
}

/// A PostgreSQL database through the synchronous `postgres` client.
pub struct Postgres<'c>(pub &'c mut postgres::Client);

impl Source for Postgres<'_> {
    fn has_table(&mut self, table: &str) -> Result<bool, ReportError> {
        let r = self
            .0
            .query_one(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = ANY (current_schemas(false)) AND table_name = $1",
                &[&table],
            )
            .map_err(|e| ReportError::query(table, e))?;
        let n: i64 = r.get(0);
        Ok(n > 0)
    }

    fn has_column(&mut self, table: &str, column: &str) -> Result<bool, ReportError> {
        let r = self
            .0
            .query_one(
                "SELECT count(*) FROM information_schema.columns \
                 WHERE table_schema = ANY (current_schemas(false)) AND table_name = $1 \
                 AND column_name = $2",
                &[&table, &column],
            )
            .map_err(|e| ReportError::query(table, e))?;
        let n: i64 = r.get(0);
        Ok(n > 0)
    }

    fn for_each_row(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        row: &mut RowFn<'_>,
    ) -> Result<(), ReportError> {
        use postgres::fallible_iterator::FallibleIterator;
        use postgres::types::ToSql;
        let ints: Vec<i64> = params
            .iter()
            .map(|p| match p {
                Param::Int(i) => *i,
                Param::Text(_) => 0,
            })
            .collect();
        let args: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .zip(&ints)
            .map(|(p, i)| match p {
                Param::Int(_) => i as &(dyn ToSql + Sync),
                Param::Text(s) => s as &(dyn ToSql + Sync),
            })
            .collect();
        let mut it = self
            .0
            .query_raw(sql, args)
            .map_err(|e| ReportError::query(sql, e))?;
        while let Some(r) = it.next().map_err(|e| ReportError::query(sql, e))? {
            let mut cols: Vec<Option<&str>> = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                cols.push(
                    r.try_get::<_, Option<&str>>(i)
                        .map_err(|e| ReportError::query(sql, e))?,
                );
            }
            row(&cols)?;
        }
        Ok(())
    }
}

fn table_of(sql: &str) -> String {
    sql.split_whitespace()
        .skip_while(|w| !w.eq_ignore_ascii_case("FROM"))
        .nth(1)
        .unwrap_or("?")
        .to_string()
}

/// A leader fill (`leader_fills`).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderFill {
    pub seq: i64,
    pub leader_id: String,
    pub event_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub position_after: Option<Decimal>,
    pub order_id: Option<String>,
    pub order_qty: Option<Decimal>,
    pub venue_ts: i64,
    pub recv_ts: i64,
    /// Empty, or why the engine did not act on the fill (`duplicate`, `invalid`):
    /// such a fill is left out of the leader's positions and metrics.
    pub ignored: String,
    /// Who made the fill's order (schema version 6): `trade` (the leader's own,
    /// and every fill of an older database), `liquidation`, `adl`,
    /// `settlement` or `unknown`. Every kind moved the leader's position.
    pub kind: String,
}

impl LeaderFill {
    /// Whether the leader's own order made the fill (`kind` is `trade`), rather
    /// than the venue closing its position or an order the source could not tell.
    pub fn is_trade(&self) -> bool {
        self.kind == "trade"
    }

    /// The fill's time: the venue's timestamp, or the receive time when the venue
    /// sent none.
    pub fn ts(&self) -> i64 {
        if self.venue_ts > 0 {
            self.venue_ts
        } else {
            self.recv_ts
        }
    }
}

/// A decision per (leader fill, subscription) (`copy_instructions`).
#[derive(Clone, Debug, PartialEq)]
pub struct Instruction {
    pub seq: i64,
    pub leader_fill_seq: Option<i64>,
    pub event_id: String,
    pub subscription_id: String,
    pub follower_id: String,
    pub leader_id: String,
    pub symbol: String,
    /// Signed target position after the leader fill.
    pub target: Decimal,
    /// `target − F`: what the copy model asked for (signed).
    pub delta: Decimal,
    /// What was sent after risk (signed).
    pub sent: Decimal,
    pub status: String,
    pub reason: String,
    /// The config revision the decision was made under (an id, often hex).
    pub config_revision: Option<String>,
    /// Why the resync made this decision (`unfilled`, `reject_<venue reason>`,
    /// `order_table_full`, `venue_down`, `command`); empty for a leader fill's own.
    pub resync: String,
}

impl Instruction {
    /// Whether the resync made it (a catch-up), not a leader fill.
    pub fn is_resync(&self) -> bool {
        !self.resync.is_empty()
    }
}

/// An order sent to a venue (`follower_orders`).
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerOrder {
    pub client_order_id: String,
    pub seq: i64,
    pub instruction_seq: Option<i64>,
    pub event_id: String,
    pub subscription_id: String,
    pub follower_id: String,
    pub leader_id: String,
    pub venue: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub limit_price: Option<Decimal>,
    pub order_type: String,
    pub reduce_only: bool,
    pub status: String,
    pub filled_qty: Decimal,
    pub reject_reason: Option<String>,
}

impl FollowerOrder {
    /// Whether the order can still fill (not filled, canceled, rejected or expired).
    pub fn is_working(&self) -> bool {
        !matches!(
            self.status.as_str(),
            "filled" | "canceled" | "rejected" | "expired"
        )
    }
}

/// A venue fill of a follower order (`follower_fills`).
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerFill {
    pub client_order_id: String,
    pub venue_trade_id: String,
    pub seq: i64,
    pub follower_id: String,
    pub subscription_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub price: Decimal,
    pub fee: Decimal,
    pub ts: i64,
}

/// The engine's position per (subscription, symbol) (`positions`).
#[derive(Clone, Debug, PartialEq)]
pub struct PositionRow {
    pub subscription_id: String,
    pub symbol: String,
    pub follower_id: String,
    pub leader_id: String,
    pub qty: Decimal,
    pub avg_price: Option<Decimal>,
    pub realized_pnl: Option<Decimal>,
    pub updated_seq: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionRow {
    pub subscription_id: String,
    pub follower_id: String,
    pub leader_id: String,
    pub mode: Option<String>,
    pub allocation: Option<Decimal>,
}

/// A subscription's allocation changed by a config revision (`allocation_changes`):
/// capital the follower added (`after > before`) or withdrew.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocationChange {
    pub seq: i64,
    pub subscription_id: String,
    pub ts: i64,
    pub before: Decimal,
    pub after: Decimal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub ts: i64,
    pub kind: String,
    pub subject: String,
    pub reason: String,
    pub detail: String,
}

/// The leader's current position per (leader, symbol) (`leader_positions`).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderPositionRow {
    pub leader_id: String,
    pub symbol: String,
    pub qty: Decimal,
    /// The leader fill that last changed it.
    pub updated_seq: Option<i64>,
}

/// One position's funding at one funding input (`funding_payments`, schema
/// version 7): `amount` is what the holder received (negative: paid).
#[derive(Clone, Debug, PartialEq)]
pub struct FundingPayment {
    pub seq: i64,
    pub ts: i64,
    pub symbol: String,
    pub leader_id: String,
    /// `None` for a leader's own position.
    pub subscription_id: Option<String>,
    pub amount: Decimal,
}

/// Audit kinds about the resync and venue links, kept whole (not only the recent
/// ones): the reasons a position may be open where its leader is flat.
pub const SYNC_AUDIT_KINDS: [&str; 4] = ["out_of_sync", "venue_down", "venue_up", "venue_alarm"];

/// Every table the report reads, in the order they are listed.
pub const TABLES: [&str; 16] = [
    "leader_fills",
    "leader_positions",
    "copy_instructions",
    "follower_orders",
    "follower_fills",
    "positions",
    "mark_prices",
    "leader_equity",
    "subscriptions",
    "leaders",
    "followers",
    "audit_log",
    "symbols",
    "allocation_changes",
    "follower_equity",
    "funding_payments",
];

/// The tables, loaded.
#[derive(Debug, Default)]
pub struct Dataset {
    pub leader_fills: Vec<LeaderFill>,
    pub instructions: Vec<Instruction>,
    pub orders: Vec<FollowerOrder>,
    pub fills: Vec<FollowerFill>,
    pub positions: Vec<PositionRow>,
    pub leader_positions: Vec<LeaderPositionRow>,
    pub marks: Marks,
    /// The latest trade prices per symbol, from `leader_fills` (those the engine
    /// acted on) and `follower_fills`: what a symbol without a mark is valued at.
    pub trades: Trades,
    /// `(leader_id, ts, equity)` in time order.
    pub leader_equity: Vec<(String, i64, Decimal)>,
    /// `(follower_id, ts, equity)` in time order: the account equity sources report.
    pub follower_equity: Vec<(String, i64, Decimal)>,
    pub subscriptions: Vec<SubscriptionRow>,
    /// In time order (`ts`, then `seq`).
    pub allocation_changes: Vec<AllocationChange>,
    /// In time order (`ts`, then `seq`); `None` when the database has no
    /// `funding_payments` table (from before schema version 7): funding was not
    /// recorded, which is not the same as none paid.
    pub funding_payments: Option<Vec<FundingPayment>>,
    pub leaders: BTreeMap<String, Option<Decimal>>,
    pub followers: BTreeMap<String, Option<Decimal>>,
    /// Lot size per symbol (`symbols`), for deviations in lots.
    pub lot_sizes: BTreeMap<String, Decimal>,
    /// The latest `audit_recent_max` audit rows, oldest first.
    pub audit_recent: Vec<AuditRow>,
    pub audit_by_kind: BTreeMap<String, u64>,
    /// Every audit row of a `SYNC_AUDIT_KINDS` kind, in `seq` order.
    pub audit_sync: Vec<AuditRow>,
    /// The config revision in force last (`config_revisions`, the latest `seq`):
    /// `(seq, model TOML)`.
    pub latest_config: Option<(i64, String)>,
    /// Rows read per table.
    pub counts: BTreeMap<&'static str, u64>,
    pub missing: Vec<&'static str>,
}

impl Dataset {
    /// The latest venue time in the data: the default "as of" of a report. A
    /// fill's receive time is left out (`LeaderFill::ts` takes it only when the
    /// venue sent no time): a history replayed today is reported as of its own
    /// last day, not today. A change of allocation counts (it is stamped with the
    /// engine's time, the only time a reload has): a report must include the
    /// capital the follower added.
    pub fn last_ts(&self) -> Option<i64> {
        let lf = self.leader_fills.iter().map(LeaderFill::ts).max();
        let ac = self.allocation_changes.iter().map(|c| c.ts).max();
        let ff = self.fills.iter().map(|f| f.ts).max();
        let eq = self
            .leader_equity
            .iter()
            .chain(&self.follower_equity)
            .map(|e| e.1)
            .max();
        let funding = self.funding_payments.iter().flatten().map(|p| p.ts).max();
        [lf, ff, eq, ac, funding, self.marks.last_ts()]
            .into_iter()
            .flatten()
            .max()
    }
}

/// Reads every table from `src`.
pub fn load(src: &mut dyn Source, audit_recent_max: usize) -> Result<Dataset, ReportError> {
    let mut ds = Dataset::default();
    for table in TABLES {
        if !src.has_table(table)? {
            ds.missing.push(table);
            ds.counts.insert(table, 0);
            continue;
        }
        let n = load_table(src, table, &mut ds, audit_recent_max)?;
        ds.counts.insert(table, n);
    }
    // Only the model in force last, not every revision's (each can be megabytes).
    if src.has_table("config_revisions")? {
        let sql = "SELECT CAST(seq AS TEXT), CAST(toml AS TEXT) FROM config_revisions \
                   ORDER BY seq DESC LIMIT 1";
        src.for_each_row(sql, &[], &mut |c| {
            let row = Row::new("config_revisions", &["seq", "toml"], c);
            ds.latest_config = Some((row.int(0)?, row.text(1)?));
            Ok(())
        })?;
    }
    // Each fill at the time the ledger gives it (a leader fill's `ts()`), ordered
    // within an instant by the journal's `seq`, a leader fill first on a tie.
    ds.trades = Trades::new(
        ds.leader_fills
            .iter()
            .filter(|f| f.ignored.is_empty())
            .map(|f| (f.symbol.as_str(), f.ts(), f.seq, f.price))
            .chain(
                ds.fills
                    .iter()
                    .map(|f| (f.symbol.as_str(), f.ts, f.seq, f.price)),
            ),
    );
    Ok(ds)
}

/// Columns outside the brief's list that the sidecar writes: read when present,
/// NULL otherwise.
const OPTIONAL_COLUMNS: [(&str, &str); 3] = [
    ("leader_fills", "ignored"),
    // Schema version 6: a database of an earlier version holds only trades.
    ("leader_fills", "kind"),
    // Schema version 2: a database of version 1 has no resync decisions.
    ("copy_instructions", "resync"),
];

/// `cols` with each optional column the table lacks replaced by `NULL`.
pub(crate) fn columns<'a>(
    src: &mut dyn Source,
    table: &str,
    cols: &[&'a str],
) -> Result<Vec<&'a str>, ReportError> {
    cols.iter()
        .map(|c| {
            if OPTIONAL_COLUMNS.contains(&(table, *c)) && !src.has_column(table, c)? {
                Ok("NULL")
            } else {
                Ok(*c)
            }
        })
        .collect()
}

fn select(table: &str, columns: &[&str], order: &str) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS TEXT)"))
        .collect();
    format!(
        "SELECT {} FROM {table} ORDER BY {}",
        cols.join(", "),
        qualified(table, order)
    )
}

/// `order` with each term's column named as `table.column`. PostgreSQL names
/// `CAST(seq AS TEXT)` "seq" and sorts a bare `ORDER BY seq` by that text
/// ("10" before "9"); the table's own column sorts by its type in both databases.
fn qualified(table: &str, order: &str) -> String {
    order
        .split(',')
        .map(|term| {
            let term = term.trim();
            if term.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                format!("{table}.{term}")
            } else {
                term.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

use fillcast_schema::{
    ALLOCATION_CHANGES, AUDIT_LOG, COPY_INSTRUCTIONS, FOLLOWERS, FOLLOWER_EQUITY, FOLLOWER_FILLS,
    FOLLOWER_ORDERS, FUNDING_PAYMENTS, LEADERS, LEADER_EQUITY, LEADER_FILLS, LEADER_POSITIONS,
    MARK_PRICES, POSITIONS, SUBSCRIPTIONS, SYMBOLS,
};

/// Runs `SELECT cols FROM table ORDER BY order` and hands each row to `f`;
/// returns how many rows were read.
fn read_rows(
    src: &mut dyn Source,
    table: &'static str,
    cols: &[&str],
    order: &str,
    f: &mut dyn FnMut(&Row<'_, '_>) -> Result<(), ReportError>,
) -> Result<u64, ReportError> {
    let mut n = 0u64;
    src.for_each_row(&select(table, cols, order), &[], &mut |c| {
        n += 1;
        f(&Row::new(table, cols, c))
    })?;
    Ok(n)
}

fn load_table(
    src: &mut dyn Source,
    table: &'static str,
    ds: &mut Dataset,
    audit_recent_max: usize,
) -> Result<u64, ReportError> {
    Ok(match table {
        "leader_fills" => {
            let cols = columns(src, table, LEADER_FILLS.names)?;
            read_rows(src, table, &cols, "seq", &mut |r| {
                ds.leader_fills.push(leader_fill(r)?);
                Ok(())
            })?
        }
        "copy_instructions" => {
            let cols = columns(src, table, COPY_INSTRUCTIONS.names)?;
            read_rows(src, table, &cols, "seq", &mut |r| {
                ds.instructions.push(instruction(r)?);
                Ok(())
            })?
        }
        "leader_positions" => {
            let cols = LEADER_POSITIONS.names;
            read_rows(src, table, cols, "leader_id, symbol", &mut |r| {
                ds.leader_positions.push(LeaderPositionRow {
                    leader_id: r.text(0)?,
                    symbol: r.text(1)?,
                    qty: r.dec(2)?,
                    updated_seq: r.opt_int(3)?,
                });
                Ok(())
            })?
        }
        "follower_orders" => read_rows(src, table, FOLLOWER_ORDERS.names, "seq", &mut |r| {
            ds.orders.push(order(r)?);
            Ok(())
        })?,
        "follower_fills" => read_rows(src, table, FOLLOWER_FILLS.names, "seq", &mut |r| {
            ds.fills.push(follower_fill(r)?);
            Ok(())
        })?,
        "positions" => {
            let cols = POSITIONS.run("subscription_id", "updated_seq");
            read_rows(src, table, cols, "subscription_id, symbol", &mut |r| {
                ds.positions.push(PositionRow {
                    subscription_id: r.text(0)?,
                    symbol: r.text(1)?,
                    follower_id: r.text_or_empty(2),
                    leader_id: r.text_or_empty(3),
                    qty: r.dec(4)?,
                    avg_price: r.opt_dec(5)?,
                    realized_pnl: r.opt_dec(6)?,
                    updated_seq: r.opt_int(7)?,
                });
                Ok(())
            })?
        }
        "mark_prices" => {
            let mut rows: Vec<(String, i64, Decimal)> = Vec::new();
            let cols = MARK_PRICES.run("symbol", "price");
            let n = read_rows(src, table, cols, "symbol, ts", &mut |r| {
                rows.push((r.text(0)?, r.ts(1)?, r.dec(2)?));
                Ok(())
            })?;
            // Already sorted unless `ts` was stored as text; then this fixes it.
            rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
            for (s, t, p) in rows {
                ds.marks.push(&s, t, p);
            }
            n
        }
        "leader_equity" | "follower_equity" => {
            let (cols, rows) = if table == "leader_equity" {
                (
                    LEADER_EQUITY.run("leader_id", "equity"),
                    &mut ds.leader_equity,
                )
            } else {
                (
                    FOLLOWER_EQUITY.run("follower_id", "equity"),
                    &mut ds.follower_equity,
                )
            };
            let order = format!("{}, ts", cols[0]);
            let n = read_rows(src, table, cols, &order, &mut |r| {
                rows.push((r.text(0)?, r.ts(1)?, r.dec(2)?));
                Ok(())
            })?;
            rows.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            n
        }
        "subscriptions" => read_rows(
            src,
            table,
            SUBSCRIPTIONS.names,
            "subscription_id",
            &mut |r| {
                ds.subscriptions.push(SubscriptionRow {
                    subscription_id: r.text(0)?,
                    follower_id: r.text_or_empty(1),
                    leader_id: r.text_or_empty(2),
                    mode: r.opt_text(3),
                    allocation: r.opt_dec(4)?,
                });
                Ok(())
            },
        )?,
        "leaders" | "followers" => {
            let (cols, map) = if table == "leaders" {
                (LEADERS, &mut ds.leaders)
            } else {
                (FOLLOWERS, &mut ds.followers)
            };
            read_rows(src, table, cols.names, cols.names[0], &mut |r| {
                map.insert(r.text(0)?, r.opt_dec(1)?);
                Ok(())
            })?
        }
        "audit_log" => {
            let keep = audit_recent_max;
            let mut recent: std::collections::VecDeque<AuditRow> = Default::default();
            let n = read_rows(src, table, AUDIT_LOG.names, "seq", &mut |r| {
                let row = AuditRow {
                    seq: r.int(0)?,
                    ts: r.ts(1)?,
                    kind: r.text_or_empty(2),
                    subject: r.text_or_empty(3),
                    reason: r.text_or_empty(4),
                    detail: r.text_or_empty(5),
                };
                *ds.audit_by_kind.entry(row.kind.clone()).or_default() += 1;
                if SYNC_AUDIT_KINDS.contains(&row.kind.as_str()) {
                    ds.audit_sync.push(row.clone());
                }
                if keep > 0 {
                    if recent.len() == keep {
                        recent.pop_front();
                    }
                    recent.push_back(row);
                }
                Ok(())
            })?;
            ds.audit_recent = recent.into();
            n
        }
        "symbols" => read_rows(
            src,
            table,
            SYMBOLS.run("name", "lot_size"),
            "name",
            &mut |r| {
                if let Some(lot) = r.opt_dec(1)?.filter(|l| *l > Decimal::ZERO) {
                    ds.lot_sizes.insert(r.text(0)?, lot);
                }
                Ok(())
            },
        )?,
        "allocation_changes" => {
            let cols = ALLOCATION_CHANGES.names;
            let n = read_rows(src, table, cols, "seq, subscription_id", &mut |r| {
                ds.allocation_changes.push(AllocationChange {
                    seq: r.int(0)?,
                    subscription_id: r.text(1)?,
                    ts: r.ts(4)?,
                    before: r.dec(5)?,
                    after: r.dec(6)?,
                });
                Ok(())
            })?;
            ds.allocation_changes.sort_by_key(|c| (c.ts, c.seq));
            n
        }
        "funding_payments" => {
            let cols = FUNDING_PAYMENTS.names;
            let mut rows = Vec::new();
            let n = read_rows(src, table, cols, "seq, line", &mut |r| {
                rows.push(FundingPayment {
                    seq: r.int(0)?,
                    ts: r.ts(2)?,
                    symbol: r.text(3)?,
                    leader_id: r.text(4)?,
                    subscription_id: r.opt_text(6),
                    amount: r.dec(10)?,
                });
                Ok(())
            })?;
            rows.sort_by_key(|p| (p.ts, p.seq));
            ds.funding_payments = Some(rows);
            n
        }
        _ => unreachable!("TABLES lists only the tables handled here"),
    })
}

pub(crate) fn leader_fill(r: &Row<'_, '_>) -> Result<LeaderFill, ReportError> {
    Ok(LeaderFill {
        seq: r.int(0)?,
        leader_id: r.text(1)?,
        event_id: r.text_or_empty(2),
        symbol: r.text(3)?,
        side: r.side(4)?,
        qty: r.dec(5)?,
        price: r.dec(6)?,
        position_after: r.opt_dec(7)?,
        order_id: r.opt_text(8),
        order_qty: r.opt_dec(9)?,
        venue_ts: r.ts(10)?,
        recv_ts: r.ts(11)?,
        ignored: r.text_or_empty(12),
        kind: r.opt_text(13).unwrap_or_else(|| "trade".to_string()),
    })
}

pub(crate) fn instruction(r: &Row<'_, '_>) -> Result<Instruction, ReportError> {
    Ok(Instruction {
        seq: r.int(0)?,
        leader_fill_seq: r.opt_int(1)?,
        event_id: r.text_or_empty(2),
        subscription_id: r.text(3)?,
        follower_id: r.text_or_empty(4),
        leader_id: r.text_or_empty(5),
        symbol: r.text(6)?,
        target: r.dec(7)?,
        delta: r.opt_dec(8)?.unwrap_or_default(),
        sent: r.opt_dec(9)?.unwrap_or_default(),
        status: r.text_or_empty(10),
        reason: r.text_or_empty(11),
        config_revision: r.opt_text(12),
        resync: r.text_or_empty(13),
    })
}

pub(crate) fn order(r: &Row<'_, '_>) -> Result<FollowerOrder, ReportError> {
    Ok(FollowerOrder {
        client_order_id: r.text(0)?,
        seq: r.opt_int(1)?.unwrap_or(0),
        instruction_seq: r.opt_int(2)?,
        event_id: r.text_or_empty(3),
        subscription_id: r.text_or_empty(4),
        follower_id: r.text_or_empty(5),
        leader_id: r.text_or_empty(6),
        venue: r.text_or_empty(7),
        symbol: r.text_or_empty(8),
        side: r.side(9)?,
        qty: r.dec(10)?,
        limit_price: r.opt_dec(11)?,
        order_type: r.text_or_empty(12),
        reduce_only: r.flag(13)?,
        status: r.text_or_empty(14),
        filled_qty: r.opt_dec(15)?.unwrap_or_default(),
        reject_reason: r.opt_text(16).filter(|s| !s.is_empty() && s != "none"),
    })
}

pub(crate) fn follower_fill(r: &Row<'_, '_>) -> Result<FollowerFill, ReportError> {
    Ok(FollowerFill {
        client_order_id: r.text_or_empty(0),
        venue_trade_id: r.text_or_empty(1),
        seq: r.opt_int(2)?.unwrap_or(0),
        follower_id: r.text_or_empty(3),
        subscription_id: r.text(4)?,
        symbol: r.text(5)?,
        side: r.side(6)?,
        qty: r.dec(7)?,
        price: r.dec(8)?,
        fee: r.opt_dec(9)?.unwrap_or_default(),
        ts: r.ts(10)?,
    })
}

/// `SELECT CAST(..) .. FROM table WHERE where_sql ORDER BY order`.
pub(crate) fn select_where(table: &str, columns: &[&str], where_sql: &str, order: &str) -> String {
    let cols: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({c} AS TEXT)"))
        .collect();
    format!(
        "SELECT {} FROM {table} WHERE {where_sql} ORDER BY {}",
        cols.join(", "),
        qualified(table, order)
    )
}

/// `+qty` for a buy, `−qty` for a sell.
pub fn signed(side: &str, qty: Decimal) -> Decimal {
    if side == "sell" {
        -qty.abs()
    } else {
        qty.abs()
    }
}

/// One row being parsed; errors name the table, the row's key and the column.
pub(crate) struct Row<'a, 'b> {
    table: &'static str,
    names: &'a [&'a str],
    cols: &'a [Option<&'b str>],
}

impl<'a, 'b> Row<'a, 'b> {
    pub(crate) fn new(
        table: &'static str,
        names: &'a [&'a str],
        cols: &'a [Option<&'b str>],
    ) -> Self {
        debug_assert_eq!(names.len(), cols.len());
        Row { table, names, cols }
    }

    fn raw(&self, i: usize) -> Option<&'b str> {
        self.cols.get(i).copied().flatten().map(str::trim)
    }

    fn err(&self, i: usize, expected: &'static str) -> ReportError {
        ReportError::Parse {
            table: self.table.to_string(),
            row: format!(
                "{}={}",
                self.names.first().copied().unwrap_or("?"),
                self.raw(0).unwrap_or("NULL")
            ),
            column: self.names.get(i).copied().unwrap_or("?").to_string(),
            value: self.raw(i).unwrap_or("NULL").to_string(),
            expected,
        }
    }

    fn text(&self, i: usize) -> Result<String, ReportError> {
        self.raw(i)
            .map(str::to_string)
            .ok_or_else(|| self.err(i, "a value, not NULL"))
    }

    fn text_or_empty(&self, i: usize) -> String {
        self.raw(i).unwrap_or("").to_string()
    }

    fn opt_text(&self, i: usize) -> Option<String> {
        self.raw(i).map(str::to_string)
    }

    fn dec(&self, i: usize) -> Result<Decimal, ReportError> {
        self.opt_dec(i)?
            .ok_or_else(|| self.err(i, "an exact decimal, not NULL"))
    }

    fn opt_dec(&self, i: usize) -> Result<Option<Decimal>, ReportError> {
        match self.raw(i) {
            None | Some("") => Ok(None),
            Some(s) => parse_decimal(s)
                .map(Some)
                .ok_or_else(|| self.err(i, "an exact decimal such as 65000.1")),
        }
    }

    fn int(&self, i: usize) -> Result<i64, ReportError> {
        self.opt_int(i)?
            .ok_or_else(|| self.err(i, "an integer, not NULL"))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, ReportError> {
        match self.raw(i) {
            None | Some("") => Ok(None),
            Some(s) => s
                .parse::<i64>()
                .ok()
                // An integer stored through a REAL column reads back as "5.0".
                .or_else(|| {
                    parse_decimal(s)
                        .filter(|d| d.fract().is_zero())
                        .and_then(|d| i64::try_from(d).ok())
                })
                .map(Some)
                .ok_or_else(|| self.err(i, "an integer")),
        }
    }

    /// A timestamp in ns since 1970, in `[0, TS_MAX_NS]`; NULL reads as 0 (unknown).
    fn ts(&self, i: usize) -> Result<i64, ReportError> {
        match self.opt_int(i)? {
            None => Ok(0),
            Some(t) if (0..=TS_MAX_NS).contains(&t) => Ok(t),
            Some(_) => Err(self.err(i, "a timestamp in ns since 1970 (before 2261)")),
        }
    }

    fn side(&self, i: usize) -> Result<String, ReportError> {
        match self.raw(i).map(str::to_ascii_lowercase).as_deref() {
            Some("buy" | "b" | "bid" | "long") => Ok("buy".into()),
            Some("sell" | "s" | "ask" | "short") => Ok("sell".into()),
            _ => Err(self.err(i, "buy or sell")),
        }
    }

    fn flag(&self, i: usize) -> Result<bool, ReportError> {
        match self.raw(i).map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "0" | "false" | "f" | "no") => Ok(false),
            Some("1" | "true" | "t" | "yes") => Ok(true),
            _ => Err(self.err(i, "a boolean (0/1, true/false)")),
        }
    }
}

pub use fillcast_schema::parse_decimal;
