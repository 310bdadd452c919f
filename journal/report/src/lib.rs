//! Reports over the sidecar's SQL tables: leader metrics, follower P&L and
//! high-water-mark performance fees, reconciliation of decisions against venue
//! fills, and the lineage of any order. Output as JSON (every figure), a terminal
//! summary, and one self-contained HTML page with inline SVG charts.
//!
//! - `query`: the `Source` trait (SQLite, PostgreSQL), typed rows, loading;
//! - `ledger`: positions, trades and equity curves rebuilt from fills and marks;
//! - `metrics`, `fees`: pure metric functions with their exact definitions;
//! - `leaders`, `followers`, `recon`: the report's sections; `unhedged`: positions
//!   open where the leader is flat and the resync's work; `lineage`: one chain;
//! - `leaderboard`: leaders ranked over one period, filtered; `follower_view`: one
//!   follower's own report, holding nothing of any other follower;
//! - `json`, `text`, `html`: renderings; `chart`: the SVG charts of the HTML page,
//!   public because the benchmark draws its own chart with them.
//!
//! Reports come from reconciled fills and marks, never from intentions: P&L is what
//! the venues filled, valued at the mark (else at the latest trade in the symbol by
//! anyone, and the report says which); what the engine decided appears only in
//! reconciliation and lineage, next to what happened.
//!
//! **Invariant:** this module only reads the database; it never writes SQL and never
//! opens the journal. Money is `Decimal` throughout; `f64` appears only in ratios
//! that need a root or a power (Sharpe, annualised return, Calmar) and in pixels.

mod attribution;
mod follower_view;
mod followers;
mod html;
mod json;
mod leaderboard;
mod leaders;
mod recon;
mod text;
mod unhedged;

pub mod chart;
pub mod fees;
pub mod ledger;
pub mod lineage;
pub mod metrics;
pub mod query;
pub mod time;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Display;

use rust_decimal::Decimal;

pub use attribution::PnlAttribution;
pub use fees::{FeePolicy, FeeSchedule, Settlement};
pub use follower_view::{FollowerActivity, FollowerView, OrderLine};
pub use followers::{FeeTotals, FollowerReport, SubscriptionPnl};
pub use leaderboard::{Leaderboard, LeaderboardFilter, LeaderboardRow, RANKED_BY};
pub use leaders::{LeaderReport, TradeStats, WindowMetrics};
pub use ledger::{OpenPosition, PriceBasis};
pub use lineage::Lineage;
pub use metrics::{Bucket, ProfitFactor};
pub use query::{AuditRow, Source};
pub use recon::{FollowerSync, PairSync, Reconciliation, SyncBucket};
pub use unhedged::{OpenWhereFlat, OpenWhereLeaderFlat, ResyncActivity, VenueLinks};

/// The default least length of a window with annualised figures, in days: a month
/// of data, so that no year is extrapolated from a week.
pub const ANNUALISE_MIN_DAYS: i64 = 30;

/// How the notes say a symbol without a mark is valued.
const BY_LATEST_TRADE: &str = "valued at the latest trade in the symbol by anyone (a leader or follower fill, whichever is latest) instead of a mark";

/// Everything a report says.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The report's "now": the latest timestamp in the data unless set in options.
    /// `None` for a database with no timestamp at all.
    pub as_of_ns: Option<i64>,
    pub options: ReportOptions,
    /// Rows read per table, in `query::TABLES` order.
    pub row_counts: Vec<(&'static str, u64)>,
    /// Tables not in the database (read as empty).
    pub missing_tables: Vec<&'static str>,
    /// Caveats worth reading next to the figures.
    pub notes: Vec<String>,
    pub leaders: Vec<LeaderReport>,
    pub followers: Vec<FollowerReport>,
    pub fees: FeeTotals,
    /// The followers' net P&L split by where it came from.
    pub pnl_attribution: PnlAttribution,
    /// Followers' net P&L (sum over their subscriptions).
    pub pnl_distribution: Vec<Bucket>,
    pub reconciliation: Reconciliation,
    pub activity: Activity,
    pub audit: AuditSummary,
    /// Fan-out latency, passed in by the caller (`with_latency`).
    pub latency: Option<Latency>,
}

/// What the engine decided and the venues answered, counted.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Activity {
    pub leader_fills: u64,
    pub instructions: u64,
    /// Counts per status (`sent`, `reduced`, `skipped`, `deferred`, and any other
    /// the database holds).
    pub instructions_by_status: Vec<(String, u64)>,
    /// `status (reason)` counts of the instructions not plainly `sent`.
    pub limited_by_reason: Vec<(String, u64)>,
    /// Decisions not sent yet for a reason that heals (`venue_down`,
    /// `order_table_full`): the resync sends them.
    pub deferred: u64,
    pub resync: ResyncActivity,
    /// Outages and alarms per venue, from `audit_log`.
    pub venues: Vec<VenueLinks>,
    pub orders: u64,
    pub orders_by_status: Vec<(String, u64)>,
    pub reject_reasons: Vec<(String, u64)>,
    pub follower_fills: u64,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct AuditSummary {
    pub total: u64,
    pub by_kind: Vec<(String, u64)>,
    /// The latest entries, oldest first (at most `ReportOptions::audit_recent_max`).
    pub recent: Vec<AuditRow>,
}

/// A fan-out latency histogram: `(upper bound in ns, count)` buckets.
#[derive(Clone, Debug, PartialEq)]
pub struct Latency {
    /// Sorted by upper bound.
    pub buckets: Vec<(u64, u64)>,
    pub count: u64,
    /// Upper bound of the bucket holding the quantile (an upper estimate).
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
}

impl Latency {
    pub fn new(mut buckets: Vec<(u64, u64)>) -> Latency {
        buckets.sort_by_key(|b| b.0);
        let count = buckets.iter().fold(0u64, |a, b| a.saturating_add(b.1));
        let q = |q: f64| -> Option<u64> {
            if count == 0 {
                return None;
            }
            let rank = ((count as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0u64;
            buckets.iter().find_map(|(ub, n)| {
                seen = seen.saturating_add(*n);
                (seen >= rank).then_some(*ub)
            })
        };
        Latency {
            p50_ns: q(0.50),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            count,
            buckets,
        }
    }
}

/// Settings of a report.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOptions {
    /// The report's "now" in ns; default: the latest timestamp in the data.
    pub as_of_ns: Option<i64>,
    /// Trailing windows of the leader metrics, in days; "all time" is always added.
    pub windows_days: Vec<u32>,
    /// The period of Sharpe returns (default one day); annualised with
    /// `365 days / period`.
    pub sharpe_period_ns: i64,
    /// Least data a window must hold for its annualised figures (annualised
    /// return, Sharpe, Calmar); a shorter window shows them as n/a. Default 30 days.
    pub annualise_min_ns: i64,
    pub fee: FeePolicy,
    /// Most settlement periods kept per subscription (the latest ones).
    pub fee_periods_max: usize,
    /// A pair is in sync when |deviation| × mark ≤ this (quote currency).
    pub sync_tolerance_notional: Decimal,
    /// Points per drawn curve.
    pub chart_points_max: usize,
    pub audit_recent_max: usize,
    /// Rows per table of the HTML page and the summary (JSON has every row).
    pub rows_max: usize,
    /// Buckets of the follower P&L histogram.
    pub pnl_buckets_max: usize,
    /// Rows of `reconciliation.open_where_leader_flat` in the JSON (unexplained
    /// first); its counts cover every row.
    pub open_rows_max: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            as_of_ns: None,
            windows_days: vec![7, 30, 90],
            sharpe_period_ns: time::NS_PER_DAY,
            annualise_min_ns: ANNUALISE_MIN_DAYS * time::NS_PER_DAY,
            fee: FeePolicy::default(),
            fee_periods_max: 10_000,
            sync_tolerance_notional: Decimal::ZERO,
            chart_points_max: 600,
            audit_recent_max: 50,
            rows_max: 200,
            pnl_buckets_max: 12,
            open_rows_max: 1_000,
        }
    }
}

impl ReportOptions {
    /// Sharpe periods per year: 365 for daily periods.
    pub fn periods_per_year(&self) -> f64 {
        time::NS_PER_YEAR as f64 / self.sharpe_period_ns.max(1) as f64
    }
}

/// Why a report could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("report query failed ({context}): {message}")]
    Query { context: String, message: String },
    #[error("table {table}, row {row}, column {column}: {value:?} is not {expected}")]
    Parse {
        table: String,
        row: String,
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("arithmetic overflow rebuilding {what} at ts {ts_ns}: values beyond 28 digits")]
    Overflow { what: String, ts_ns: i64 },
    #[error("report options: {0}")]
    Fee(#[from] fees::FeeError),
    #[error("report options: {0}")]
    Options(String),
    #[error("follower {0:?} is not in the database: no followers row, subscription, instruction, order or fill names it")]
    UnknownFollower(String),
}

impl ReportError {
    pub(crate) fn query(context: &str, e: impl Display) -> ReportError {
        ReportError::Query {
            context: context.chars().take(200).collect(),
            message: e.to_string(),
        }
    }
}

/// Builds the report of a SQLite database with default options.
pub fn build(conn: &rusqlite::Connection) -> Result<Report, ReportError> {
    build_with(conn, &ReportOptions::default())
}

/// Builds the report of a SQLite database.
pub fn build_with(
    conn: &rusqlite::Connection,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    build_from(&mut query::Sqlite(conn), opts)
}

/// Builds the report of a PostgreSQL database.
pub fn build_postgres(
    client: &mut postgres::Client,
    opts: &ReportOptions,
) -> Result<Report, ReportError> {
    build_from(&mut query::Postgres(client), opts)
}

/// The lineage of a follower order in a SQLite database; `None` if unknown.
pub fn lineage(
    conn: &rusqlite::Connection,
    client_order_id: &str,
) -> Result<Option<Lineage>, ReportError> {
    lineage::of_order(&mut query::Sqlite(conn), client_order_id)
}

/// Every decision on one leader fill (by `leader_fills.seq`) in a SQLite database.
pub fn leader_fill_lineage(
    conn: &rusqlite::Connection,
    seq: i64,
) -> Result<Option<Lineage>, ReportError> {
    lineage::of_leader_fill(&mut query::Sqlite(conn), seq)
}

/// The lineage of a follower order in a PostgreSQL database.
pub fn lineage_postgres(
    client: &mut postgres::Client,
    client_order_id: &str,
) -> Result<Option<Lineage>, ReportError> {
    lineage::of_order(&mut query::Postgres(client), client_order_id)
}

/// Every decision on one leader fill (by `leader_fills.seq`) in a PostgreSQL database.
pub fn leader_fill_lineage_postgres(
    client: &mut postgres::Client,
    seq: i64,
) -> Result<Option<Lineage>, ReportError> {
    lineage::of_leader_fill(&mut query::Postgres(client), seq)
}

/// Checks the options every report needs.
pub(crate) fn validate(opts: &ReportOptions) -> Result<(), ReportError> {
    opts.fee.validate()?;
    if opts.sharpe_period_ns <= 0 {
        return Err(ReportError::Options(format!(
            "sharpe_period_ns must be positive, got {}",
            opts.sharpe_period_ns
        )));
    }
    if opts.annualise_min_ns < 0 {
        return Err(ReportError::Options(format!(
            "annualise_min_ns must not be negative, got {}",
            opts.annualise_min_ns
        )));
    }
    if let Some(t) = opts.as_of_ns.filter(|t| !(0..=time::TS_MAX_NS).contains(t)) {
        return Err(ReportError::Options(format!(
            "as_of_ns {t} is outside [0, {}] (1970 to 2261)",
            time::TS_MAX_NS
        )));
    }
    Ok(())
}

/// The report of one follower in a SQLite database: its own data and nothing of
/// any other follower. An unknown follower id is an error naming it.
pub fn build_follower(
    conn: &rusqlite::Connection,
    opts: &ReportOptions,
    follower_id: &str,
) -> Result<FollowerView, ReportError> {
    follower_view::build(&mut query::Sqlite(conn), opts, follower_id)
}

/// The report of one follower in a PostgreSQL database.
pub fn build_follower_postgres(
    client: &mut postgres::Client,
    opts: &ReportOptions,
    follower_id: &str,
) -> Result<FollowerView, ReportError> {
    follower_view::build(&mut query::Postgres(client), opts, follower_id)
}

/// Builds a report from any `Source`.
pub fn build_from(src: &mut dyn Source, opts: &ReportOptions) -> Result<Report, ReportError> {
    validate(opts)?;
    let ds = query::load(src, opts.audit_recent_max)?;
    let as_of = opts.as_of_ns.or_else(|| ds.last_ts());
    let as_of_ns = as_of.unwrap_or(0);

    let subs = followers::subscription_index(&ds);
    let leaders = leaders::leaders(&ds, &subs, as_of_ns, opts)?;
    let (followers, fees) = followers::followers(&ds, &subs, as_of_ns, opts)?;
    let pnl_distribution = followers::pnl_distribution(&followers, opts.pnl_buckets_max);
    let pnl_attribution = attribution::attribute(&ds, &followers, as_of_ns);
    let reconciliation = recon::reconcile(&ds, &subs, as_of_ns, opts);
    let activity = activity(&ds);
    let audit = AuditSummary {
        total: ds.counts.get("audit_log").copied().unwrap_or(0),
        by_kind: ds
            .audit_by_kind
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect(),
        recent: ds.audit_recent.clone(),
    };

    let mut notes = Vec::new();
    let empty = ds.leader_fills.is_empty()
        && ds.instructions.is_empty()
        && ds.orders.is_empty()
        && ds.fills.is_empty();
    if empty {
        notes.push("empty database: no leader fills, instructions, orders or fills yet; nothing to measure".to_string());
    }
    if !ds.missing.is_empty() {
        notes.push(format!(
            "tables not found (read as empty): {}",
            ds.missing.join(", ")
        ));
    }
    if ds.marks.is_empty() && !(ds.leader_fills.is_empty() && ds.fills.is_empty()) {
        notes.push(format!(
            "no mark prices: open positions are {BY_LATEST_TRADE}"
        ));
    } else {
        // Marks for some symbols only: say which traded symbols had none by the
        // report's time (their open positions are valued at the latest trade).
        let unmarked: std::collections::BTreeSet<&str> = ds
            .trades
            .symbols()
            .filter(|s| ds.trades.at(s, as_of_ns).is_some() && ds.marks.at(s, as_of_ns).is_none())
            .collect();
        if !unmarked.is_empty() {
            notes.push(format!(
                "no mark price for {}: open positions in them are {BY_LATEST_TRADE}",
                unmarked.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let no_capital: Vec<&str> = leaders
        .iter()
        .filter(|l| l.capital.is_none() && l.fills > 0)
        .map(|l| l.leader_id.as_str())
        .collect();
    if !no_capital.is_empty() {
        notes.push(format!(
            "no capital (leader_equity or leaders.equity) for {}: P&L only, no ROI, drawdown, Sharpe or Calmar",
            no_capital.join(", ")
        ));
    }
    let ignored: usize = leaders.iter().map(|l| l.ignored_fills).sum();
    if ignored > 0 {
        notes.push(format!(
            "{ignored} leader fill(s) the engine ignored (duplicate or invalid) are left out of leader metrics"
        ));
    }
    let gaps: u32 = leaders.iter().map(|l| l.position_gaps).sum();
    if gaps > 0 {
        notes.push(format!(
            "{gaps} leader fill(s) reported a position the earlier fills do not explain (fills missing, or a position older than the data); healed at that fill's price"
        ));
    }
    if ds.funding_payments.is_none() && !(ds.fills.is_empty() && ds.leader_fills.is_empty()) {
        notes.push(
            "funding not recorded (no funding_payments table: a database from before schema version 7): leader and follower P&L exclude funding".to_string(),
        );
    }

    Ok(Report {
        as_of_ns: as_of,
        options: opts.clone(),
        row_counts: query::TABLES
            .iter()
            .map(|t| (*t, ds.counts.get(t).copied().unwrap_or(0)))
            .collect(),
        missing_tables: ds.missing.clone(),
        notes,
        leaders,
        followers,
        fees,
        pnl_attribution,
        pnl_distribution,
        reconciliation,
        activity,
        audit,
        latency: None,
    })
}

impl Report {
    /// Adds the fan-out latency histogram: `(upper bound in ns, count)` buckets.
    pub fn with_latency(mut self, buckets: Vec<(u64, u64)>) -> Report {
        self.latency = Some(Latency::new(buckets));
        self
    }

    /// No leader fill, instruction, order or fill: nothing to measure.
    pub fn is_empty(&self) -> bool {
        self.activity.leader_fills == 0
            && self.activity.instructions == 0
            && self.activity.orders == 0
            && self.activity.follower_fills == 0
    }

    pub fn leader(&self, leader_id: &str) -> Option<&LeaderReport> {
        self.leaders.iter().find(|l| l.leader_id == leader_id)
    }

    pub fn follower(&self, follower_id: &str) -> Option<&FollowerReport> {
        self.followers.iter().find(|f| f.follower_id == follower_id)
    }

    /// Every figure, as JSON (decimals as exact strings).
    pub fn to_json(&self) -> serde_json::Value {
        json::report(self)
    }

    /// A summary for the terminal.
    pub fn summary_text(&self) -> String {
        text::summary(self)
    }

    /// One self-contained HTML page: inline CSS, SVG and one inline script (the
    /// leaderboard's filters and sorting), no network.
    pub fn to_html(&self) -> String {
        html::page(self)
    }

    /// The leaders ranked over `filter.period`, after its filters; an error for a
    /// period that is not one of the report's windows.
    pub fn leaderboard(&self, filter: &LeaderboardFilter) -> Result<Leaderboard, ReportError> {
        leaderboard::rank(&self.leaders, self.as_of_ns, filter)
    }
}

impl Leaderboard {
    /// Every figure, as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json::leaderboard(self)
    }

    /// The leaderboard for the terminal.
    pub fn to_text(&self) -> String {
        text::leaderboard(self)
    }
}

impl FollowerView {
    /// Every figure of the follower, as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json::follower_view(self)
    }

    /// The follower's summary for the terminal.
    pub fn to_text(&self) -> String {
        text::follower_view(self)
    }

    /// The follower's own self-contained HTML page (inline CSS, no script).
    pub fn to_html(&self) -> String {
        html::follower_page(self)
    }
}

fn activity(ds: &query::Dataset) -> Activity {
    Activity {
        leader_fills: ds.leader_fills.len() as u64,
        instructions: ds.instructions.len() as u64,
        instructions_by_status: tally(ds.instructions.iter().map(|i| i.status.clone())),
        limited_by_reason: tally(
            ds.instructions
                .iter()
                .filter(|i| i.status != "sent")
                .map(status_label),
        ),
        deferred: ds
            .instructions
            .iter()
            .filter(|i| i.status == "deferred")
            .count() as u64,
        resync: unhedged::resync_activity(ds),
        venues: unhedged::venue_links(ds),
        orders: ds.orders.len() as u64,
        orders_by_status: tally(ds.orders.iter().map(|o| o.status.clone())),
        reject_reasons: tally(ds.orders.iter().filter_map(|o| o.reject_reason.clone())),
        follower_fills: ds.fills.len() as u64,
    }
}

/// `status (reason)` of an instruction, e.g. `deferred (venue_down)`.
pub(crate) fn status_label(i: &query::Instruction) -> String {
    format!(
        "{} ({})",
        i.status,
        if i.reason.is_empty() {
            "no reason"
        } else {
            &i.reason
        }
    )
}

/// Counts of each key, most first, then by key.
pub(crate) fn tally(keys: impl IntoIterator<Item = String>) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_default() += 1;
    }
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

/// Ids in natural order: numbers by value (`2` before `10`), then text.
pub(crate) fn id_cmp(a: &str, b: &str) -> Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        _ => a.cmp(b),
    }
}
