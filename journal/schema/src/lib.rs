//! The SQL schema the sidecar writes, and the migrations that build it.
//!
//! The schema is a public interface: reports, reconciliation and people's own
//! queries read these names, so a column is added by a new migration and never
//! renamed or repurposed. Migrations are an ordered list of scripts; version `n` is
//! `MIGRATIONS[n - 1]`, applied in one transaction with its `schema_migrations` row.
//! A database whose version is newer than this list is refused.
//!
//! One script serves both databases: `{SEQ}` is the type of a sequence primary key
//! (`INTEGER` in SQLite, so that it is the rowid, `BIGINT` in PostgreSQL), `{DEC}`
//! an exact decimal (`TEXT` in SQLite, `NUMERIC` in PostgreSQL) and `{BOOL}` a flag.
//! Timestamps are `BIGINT` nanoseconds since the epoch; ids are `TEXT`.

use rust_decimal::Decimal;
use std::str::FromStr;

/// Version 1: everything the journal's record schema 1 holds.
///
/// - `sidecar_state`: the read position, committed with the rows (one row).
///   `config_revision` is the config in force at `next_seq`; `input_seq` the last
///   input record before it (the outputs that follow an input refer to it).
/// - `leader_fills.ignored`: `''`, or why the engine did not act on the fill
///   (`duplicate` event id, `invalid` quantity or price); `position_after` counts
///   only the fills it acted on. `leader_positions` is the current position.
/// - `positions.cost_basis`: `qty × avg_price` exactly (signed like `qty`);
///   `avg_price` is rounded for reading and `NULL` when flat.
/// - Lineage: `copy_instructions(leader_fill_seq)`, `follower_orders(instruction_seq)`,
///   and `follower_fills(client_order_id)` through the leading column of its key.
const V1: &str = r#"
CREATE TABLE sidecar_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq BIGINT NOT NULL,
    journal_dir TEXT,
    config_revision TEXT,
    input_seq BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE config_revisions (
    revision TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    toml TEXT NOT NULL
);
CREATE TABLE symbols (
    name TEXT PRIMARY KEY,
    lot_size {DEC} NOT NULL,
    tick_size {DEC} NOT NULL
);
CREATE TABLE leaders (
    leader_id TEXT PRIMARY KEY,
    equity {DEC} NOT NULL
);
CREATE TABLE followers (
    follower_id TEXT PRIMARY KEY,
    equity {DEC} NOT NULL
);
CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    follower_id TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    allocation {DEC} NOT NULL
);
CREATE TABLE leader_fills (
    seq {SEQ} PRIMARY KEY,
    leader_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty {DEC} NOT NULL,
    price {DEC} NOT NULL,
    position_after {DEC} NOT NULL,
    order_id TEXT,
    order_qty {DEC},
    venue_ts BIGINT NOT NULL,
    recv_ts BIGINT NOT NULL,
    ignored TEXT NOT NULL
);
CREATE INDEX leader_fills_event ON leader_fills (event_id);
CREATE TABLE leader_positions (
    leader_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    qty {DEC} NOT NULL,
    updated_seq BIGINT NOT NULL,
    PRIMARY KEY (leader_id, symbol)
);
CREATE TABLE copy_instructions (
    seq {SEQ} PRIMARY KEY,
    leader_fill_seq BIGINT,
    event_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    target {DEC} NOT NULL,
    delta {DEC} NOT NULL,
    sent {DEC} NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    config_revision TEXT NOT NULL
);
CREATE INDEX copy_instructions_leader_fill ON copy_instructions (leader_fill_seq);
CREATE INDEX copy_instructions_follower ON copy_instructions (follower_id);
CREATE TABLE follower_orders (
    client_order_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    instruction_seq BIGINT,
    event_id TEXT,
    subscription_id TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    venue TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty {DEC} NOT NULL,
    limit_price {DEC} NOT NULL,
    order_type TEXT NOT NULL,
    reduce_only {BOOL} NOT NULL,
    status TEXT NOT NULL,
    filled_qty {DEC} NOT NULL,
    reject_reason TEXT
);
CREATE INDEX follower_orders_instruction ON follower_orders (instruction_seq);
CREATE INDEX follower_orders_follower ON follower_orders (follower_id);
CREATE TABLE follower_fills (
    client_order_id TEXT NOT NULL,
    venue_trade_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    follower_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty {DEC} NOT NULL,
    price {DEC} NOT NULL,
    fee {DEC} NOT NULL,
    ts BIGINT NOT NULL,
    PRIMARY KEY (client_order_id, venue_trade_id)
);
CREATE TABLE positions (
    subscription_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    qty {DEC} NOT NULL,
    avg_price {DEC},
    realized_pnl {DEC} NOT NULL,
    updated_seq BIGINT NOT NULL,
    cost_basis {DEC} NOT NULL,
    PRIMARY KEY (subscription_id, symbol)
);
CREATE INDEX positions_follower ON positions (follower_id);
CREATE TABLE mark_prices (
    seq {SEQ} PRIMARY KEY,
    symbol TEXT NOT NULL,
    ts BIGINT NOT NULL,
    price {DEC} NOT NULL
);
CREATE TABLE leader_equity (
    seq {SEQ} PRIMARY KEY,
    leader_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    equity {DEC} NOT NULL
);
CREATE TABLE audit_log (
    seq {SEQ} PRIMARY KEY,
    ts BIGINT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// Version 2: why the resync made an instruction (empty for a leader fill's).
const V2: &str = r#"
ALTER TABLE copy_instructions ADD COLUMN resync TEXT NOT NULL DEFAULT '';
"#;

/// Version 3: the continuity check over what the sidecar applied (see
/// `fillcast_sql::sidecar::continuity`).
///
/// - `sidecar_state.chain`: the running hash of every record before `next_seq`
///   (16 hex digits), committed with the rows. `NULL` in a database written before
///   version 3: its first run records the chain of the journal as it is then.
/// - `sidecar_chain`: per committed batch, the 32-bit hash of each of its records
///   (4 bytes each, little-endian, records `first_seq..=last_seq`), so that a
///   journal that changed under the database is refused naming the first record
///   that differs. Rows follow the batches, so they differ between databases that
///   hold the same rows; no report reads them.
const V3: &str = r#"
ALTER TABLE sidecar_state ADD COLUMN chain TEXT;
CREATE TABLE sidecar_chain (
    first_seq BIGINT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    hashes {BLOB} NOT NULL
);
"#;

/// Version 4: followers' account equity as sources report it (issue 12).
const V4: &str = r#"
CREATE TABLE follower_equity (
    seq {SEQ} PRIMARY KEY,
    follower_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    equity {DEC} NOT NULL
);
"#;

/// Version 5: a subscription's allocation as it changes (issue 12): one row per
/// subscription whose allocation a config revision changed, at that revision's
/// record (`seq`, `ts`). A rise is capital the follower added, a fall capital it
/// withdrew: the report keeps them out of profit, of the high-water mark and of
/// returns. A subscription's first allocation has no row (it is the `before` of
/// its first change, or `subscriptions.allocation` when it never changed).
const V5: &str = r#"
CREATE TABLE allocation_changes (
    seq BIGINT NOT NULL,
    subscription_id TEXT NOT NULL,
    follower_id TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    ts BIGINT NOT NULL,
    allocation_before {DEC} NOT NULL,
    allocation_after {DEC} NOT NULL,
    config_revision TEXT NOT NULL,
    PRIMARY KEY (seq, subscription_id)
);
"#;

/// Version 6: who made a leader fill's order (issue 15), for lineage:
/// `leader_fills.kind` is `trade` (the leader's own order, and every fill of a
/// database written before version 6), `liquidation` (the venue liquidated the
/// position), `adl` (its auto-deleveraging closed it), `settlement` (closed at
/// a contract's settlement: delivery, delisting) or `unknown` (the source could
/// not tell: a fill recovered from a trade history that does not name its
/// order). Every kind moved the leader's position and was copied alike.
const V6: &str = r#"
ALTER TABLE leader_fills ADD COLUMN kind TEXT NOT NULL DEFAULT 'trade';
"#;

/// Version 7: funding of perpetuals (issue 16).
///
/// - `funding_rates`: one row per funding input (`FeedEvent::Funding`): the
///   symbol's rate for the interval (`0.0001` is 0.01%; positive: longs pay) and
///   the mark price it applies to, at the venue's time `ts`.
/// - `funding_payments`: one row per position open in the symbol at that record,
///   as the sidecar holds them there: every leader's (`leader_positions`;
///   `follower_id` and `subscription_id` NULL) and every subscription's
///   (`positions`, what the venue filled). `amount = −position_qty × mark_price
///   × rate`, exact, rounded once to 8 decimal places (the money unit) half away
///   from zero: negative is paid, positive received (a long pays a positive
///   rate). `line` numbers a record's rows from 0: the leaders first, then the
///   subscriptions, each in the order of the config. A funding input the
///   engine counted invalid (a rate beyond ±1, no price) has its rate row, no
///   payment, and an `oddity` audit row (`invalid_funding`). A database from
///   before version 7 recorded no funding: the reports say "not recorded" for
///   it, never zero.
const V7: &str = r#"
CREATE TABLE funding_rates (
    seq {SEQ} PRIMARY KEY,
    symbol TEXT NOT NULL,
    ts BIGINT NOT NULL,
    rate {DEC} NOT NULL,
    mark_price {DEC} NOT NULL
);
CREATE TABLE funding_payments (
    seq BIGINT NOT NULL,
    line INTEGER NOT NULL,
    ts BIGINT NOT NULL,
    symbol TEXT NOT NULL,
    leader_id TEXT NOT NULL,
    follower_id TEXT,
    subscription_id TEXT,
    position_qty {DEC} NOT NULL,
    mark_price {DEC} NOT NULL,
    rate {DEC} NOT NULL,
    amount {DEC} NOT NULL,
    PRIMARY KEY (seq, line)
);
"#;

/// Every migration, in order: version `i + 1` is `MIGRATIONS[i]`.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// The newest schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The secondary (non-unique) indexes, as `(name, "table (columns)")`: exactly
/// the `CREATE INDEX` lines of the migrations (a test checks it).
///
/// A random-key index costs most of a bulk load: every batch rewrites most of its
/// pages. So the sidecar drops these while it fills a fresh database and builds
/// them, each in one sorted pass, when it has caught up with the journal (and at
/// the end of every run): see `fillcast_sql::sidecar::run`. A database the sidecar is
/// still catching up on, or whose sidecar was killed during its first catch-up,
/// may lack them: queries give the same answers, slower. Migrations therefore
/// must not assume that they exist (`DROP INDEX IF EXISTS`).
pub const SECONDARY_INDEXES: &[(&str, &str)] = &[
    ("leader_fills_event", "leader_fills (event_id)"),
    (
        "copy_instructions_leader_fill",
        "copy_instructions (leader_fill_seq)",
    ),
    (
        "copy_instructions_follower",
        "copy_instructions (follower_id)",
    ),
    (
        "follower_orders_instruction",
        "follower_orders (instruction_seq)",
    ),
    ("follower_orders_follower", "follower_orders (follower_id)"),
    ("positions_follower", "positions (follower_id)"),
];

/// SQL that drops every secondary index (the same in both dialects).
pub fn drop_secondary_indexes() -> String {
    SECONDARY_INDEXES
        .iter()
        .map(|(name, _)| format!("DROP INDEX IF EXISTS {name};\n"))
        .collect()
}

/// SQL that creates every secondary index that does not exist.
pub fn create_secondary_indexes() -> String {
    SECONDARY_INDEXES
        .iter()
        .map(|(name, on)| format!("CREATE INDEX IF NOT EXISTS {name} ON {on};\n"))
        .collect()
}

/// Parses an exact decimal as a database gives it back: plain (`-65000.10`, as
/// the sidecar writes and NUMERIC reads back) or scientific (`1e-5`), normalized.
/// The sidecar's restart and the reports read every decimal through it.
pub fn parse_decimal(s: &str) -> Option<Decimal> {
    Decimal::from_str(s)
        .ok()
        .or_else(|| Decimal::from_scientific(s).ok())
        .map(|d| d.normalize())
}

/// Parses a 16-hex-digit id (`event_id`, `order_id`, config revisions): the
/// inverse of how the sidecar writes them.
pub fn parse_hex_id(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

/// A table and all its columns, in the order the migrations leave them: the one
/// list the sidecar writes rows in and the reports read them by (a test applies
/// the migrations to SQLite and compares).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    pub table: &'static str,
    pub names: &'static [&'static str],
}

impl Columns {
    /// The position of column `name`, if the table has it.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|c| *c == name)
    }

    /// The columns from `first` to `last` (both included), for a reader that
    /// needs a run of them; panics on a name the table lacks (a programming
    /// error, caught by any test that reads the table).
    pub fn run(&self, first: &str, last: &str) -> &'static [&'static str] {
        let at = |name| {
            self.index(name)
                .unwrap_or_else(|| panic!("{} has no column {name}", self.table))
        };
        &self.names[at(first)..=at(last)]
    }
}

macro_rules! tables {
    ($($(#[$doc:meta])* $konst:ident = $table:literal [$($col:literal),* $(,)?];)*) => {
        $($(#[$doc])* pub const $konst: Columns = Columns { table: $table, names: &[$($col),*] };)*
        /// Every table a report reads, in the order it reads them.
        pub const REPORT_TABLES: &[Columns] = &[$($konst),*];
        /// Every report table's name, in `REPORT_TABLES` order.
        pub const TABLES: &[&str] = &[$($table),*];
    };
}

tables! {
    SIDECAR_STATE = "sidecar_state" ["id", "next_seq", "journal_dir", "config_revision", "input_seq", "chain"];
    CONFIG_REVISIONS = "config_revisions" ["revision", "seq", "toml"];
    SYMBOLS = "symbols" ["name", "lot_size", "tick_size"];
    LEADERS = "leaders" ["leader_id", "equity"];
    FOLLOWERS = "followers" ["follower_id", "equity"];
    SUBSCRIPTIONS = "subscriptions" ["subscription_id", "follower_id", "leader_id", "mode", "allocation"];
    LEADER_FILLS = "leader_fills" [
        "seq", "leader_id", "event_id", "symbol", "side", "qty", "price", "position_after",
        "order_id", "order_qty", "venue_ts", "recv_ts", "ignored", "kind",
    ];
    LEADER_POSITIONS = "leader_positions" ["leader_id", "symbol", "qty", "updated_seq"];
    COPY_INSTRUCTIONS = "copy_instructions" [
        "seq", "leader_fill_seq", "event_id", "subscription_id", "follower_id", "leader_id",
        "symbol", "target", "delta", "sent", "status", "reason", "config_revision", "resync",
    ];
    FOLLOWER_ORDERS = "follower_orders" [
        "client_order_id", "seq", "instruction_seq", "event_id", "subscription_id",
        "follower_id", "leader_id", "venue", "symbol", "side", "qty", "limit_price",
        "order_type", "reduce_only", "status", "filled_qty", "reject_reason",
    ];
    FOLLOWER_FILLS = "follower_fills" [
        "client_order_id", "venue_trade_id", "seq", "follower_id", "subscription_id", "symbol",
        "side", "qty", "price", "fee", "ts",
    ];
    POSITIONS = "positions" [
        "subscription_id", "symbol", "follower_id", "leader_id", "qty", "avg_price",
        "realized_pnl", "updated_seq", "cost_basis",
    ];
    MARK_PRICES = "mark_prices" ["seq", "symbol", "ts", "price"];
    LEADER_EQUITY = "leader_equity" ["seq", "leader_id", "ts", "equity"];
    FOLLOWER_EQUITY = "follower_equity" ["seq", "follower_id", "ts", "equity"];
    ALLOCATION_CHANGES = "allocation_changes" [
        "seq", "subscription_id", "follower_id", "leader_id", "ts", "allocation_before",
        "allocation_after", "config_revision",
    ];
    AUDIT_LOG = "audit_log" ["seq", "ts", "kind", "subject", "reason", "detail"];
    FUNDING_RATES = "funding_rates" ["seq", "symbol", "ts", "rate", "mark_price"];
    FUNDING_PAYMENTS = "funding_payments" [
        "seq", "line", "ts", "symbol", "leader_id", "follower_id", "subscription_id",
        "position_qty", "mark_price", "rate", "amount",
    ];
}

/// The continuity check's batches (version 3): no report reads them, and they
/// differ between databases that hold the same rows.
pub const SIDECAR_CHAIN: Columns = Columns {
    table: "sidecar_chain",
    names: &["first_seq", "last_seq", "hashes"],
};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Creates `schema_migrations` itself: it must exist before any version is read.
pub const MIGRATIONS_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)";

/// The script of migration `version` (1-based) for `dialect`.
pub fn script(version: i64, dialect: Dialect) -> Option<String> {
    let text = MIGRATIONS.get(usize::try_from(version).ok()?.checked_sub(1)?)?;
    let (seq, dec, flag, blob) = match dialect {
        Dialect::Sqlite => ("INTEGER", "TEXT", "INTEGER", "BLOB"),
        Dialect::Postgres => ("BIGINT", "NUMERIC", "BOOLEAN", "BYTEA"),
    };
    Some(
        text.replace("{SEQ}", seq)
            .replace("{DEC}", dec)
            .replace("{BOOL}", flag)
            .replace("{BLOB}", blob),
    )
}

/// The SQL expression for "now, UTC, ISO 8601" in `dialect` (for `applied_at`).
pub fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        Dialect::Postgres => {
            "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secondary_indexes_are_those_of_the_migrations() {
        let created: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| m.lines())
            .filter(|l| l.starts_with("CREATE INDEX "))
            .map(str::to_string)
            .collect();
        let listed: Vec<String> = SECONDARY_INDEXES
            .iter()
            .map(|(name, on)| format!("CREATE INDEX {name} ON {on};"))
            .collect();
        assert_eq!(created, listed);
        assert_eq!(drop_secondary_indexes().lines().count(), listed.len());
        assert_eq!(create_secondary_indexes().lines().count(), listed.len());
    }

    #[test]
    fn scripts_have_no_placeholder_left_and_name_every_table() {
        for d in [Dialect::Sqlite, Dialect::Postgres] {
            for v in 2..=SCHEMA_VERSION {
                let s = script(v, d).expect("script");
                assert!(!s.contains('{'), "{s}");
            }
            let s = script(1, d).expect("v1");
            assert!(!s.contains('{'), "{s}");
            let all: String = (1..=SCHEMA_VERSION)
                .map(|v| script(v, d).expect("script"))
                .collect();
            for t in TABLES {
                assert!(all.contains(&format!("CREATE TABLE {t} (")), "{t}");
            }
        }
        assert_eq!(script(0, Dialect::Sqlite), None);
        assert_eq!(script(SCHEMA_VERSION + 1, Dialect::Sqlite), None);
    }

    #[test]
    fn the_column_lists_are_the_tables_the_migrations_make() {
        let db = rusqlite::Connection::open_in_memory().expect("sqlite");
        for v in 1..=SCHEMA_VERSION {
            db.execute_batch(&script(v, Dialect::Sqlite).expect("script"))
                .expect("migration");
        }
        let names = |sql: &str| -> Vec<String> {
            let mut q = db.prepare(sql).expect("query");
            let rows = q.query_map([], |r| r.get(0)).expect("rows");
            rows.collect::<Result<_, _>>().expect("names")
        };
        let mut made = names("SELECT name FROM sqlite_master WHERE type = 'table'");
        made.sort();
        let all: Vec<Columns> = REPORT_TABLES
            .iter()
            .copied()
            .chain([SIDECAR_CHAIN])
            .collect();
        let mut listed: Vec<String> = all.iter().map(|t| t.table.to_string()).collect();
        listed.sort();
        assert_eq!(
            made, listed,
            "every table the migrations make is listed once"
        );
        for t in &all {
            let columns = names(&format!(
                "SELECT name FROM pragma_table_info('{}')",
                t.table
            ));
            assert_eq!(columns, t.names, "{}", t.table);
            assert_eq!(t.index(t.names[0]), Some(0));
        }
    }
}
