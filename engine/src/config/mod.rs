//! Configuration as written by people: TOML files under `config/`, with the
//! followers and subscriptions tables optionally in CSV files beside them.
//!
//! This module owns the *shape* of the config (`Config` and its parts, all exact
//! decimals) and its loading and validation (`load`), which report every error with
//! the file, the line and what was expected. It never builds engine tables: that is
//! `model::Universe::from_config`. Nor does it know a kind of venue or source: it
//! keeps their tables unread for whoever builds them, which reads and checks them
//! at load through `Kinds`.

mod load;

pub use load::{
    load, load_model, load_str, load_str_with, load_with, struct_fields, ConfigError, ConfigErrors,
    Item, Kinds, Problem,
};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
/// Why a decision model would not serialize (`Config::model_toml`).
pub use toml::ser::Error as ModelTomlError;

/// The whole configuration, after the followers/subscriptions files are merged in.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub symbols: Vec<SymbolConfig>,
    #[serde(default)]
    pub venues: Vec<VenueConfig>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub leaders: Vec<LeaderConfig>,
    #[serde(default)]
    pub followers: Vec<FollowerConfig>,
    /// A CSV file with one follower per row (columns = `FollowerConfig` fields).
    #[serde(default)]
    pub followers_file: Option<PathBuf>,
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    /// A CSV file with one subscription per row (columns = `SubscriptionConfig` fields).
    #[serde(default)]
    pub subscriptions_file: Option<PathBuf>,
    /// Where and how to journal; absent = no journal (nothing survives a restart).
    #[serde(default)]
    pub journal: Option<JournalConfig>,
    /// The control socket of `fillcast ctl` (operational: not in the model).
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// The Prometheus endpoint (operational: not in the model); absent = off.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// Where `fillcast ctl` reaches a running engine.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// The Unix socket (relative to the config file). Default: `control.sock` in
    /// the journal directory; without a journal, no socket unless given here.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// `false`: no control socket at all.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
}

/// The Prometheus text endpoint, served off the core thread.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` to listen on, e.g. `127.0.0.1:9464`.
    pub address: String,
}

/// The journal: every input and decision, on memory-mapped segment files.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    /// Directory of the segment files (relative to the config file).
    pub dir: PathBuf,
    /// Size of each segment file, MiB.
    #[serde(default = "defaults::segment_mib")]
    pub segment_mib: u32,
    /// `never` (page cache: survives a process crash), `every_ms` (also survives
    /// power loss except the last `flush_every_ms`), or `sync` (flushed before the
    /// orders of a fill leave: survives power loss).
    #[serde(default)]
    pub durability: DurabilityConfig,
    #[serde(default = "defaults::flush_every_ms")]
    pub flush_every_ms: u32,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityConfig {
    #[default]
    Never,
    EveryMs,
    Sync,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Slots in the feed ring (leader fills, marks, commands); a power of two.
    #[serde(default = "defaults::feed_ring")]
    pub feed_ring_slots: usize,
    /// Slots in the execution-report ring; a power of two.
    #[serde(default = "defaults::exec_ring")]
    pub exec_ring_slots: usize,
    /// Slots in each gateway's egress ring; each slot holds one chunk of orders.
    #[serde(default = "defaults::egress_ring")]
    pub egress_ring_slots: usize,
    /// Slots in the journal ring; each slot holds one chunk of journal entries.
    #[serde(default = "defaults::journal_ring")]
    pub journal_ring_slots: usize,
    /// Working orders the engine can track at once.
    #[serde(default = "defaults::max_working_orders")]
    pub max_working_orders: usize,
    /// Leader event ids remembered for duplicate detection.
    #[serde(default = "defaults::dedup_window")]
    pub dedup_window: usize,
    /// CPU to pin the core stage to (`None`: not pinned).
    #[serde(default)]
    pub core_cpu: Option<usize>,
    /// CPU to pin the I/O thread (sources + gateways) to.
    #[serde(default)]
    pub io_cpu: Option<usize>,
    /// `spin`, `spin-hint`, `backoff` (spin, then yield, then sleep) or `sleep`.
    #[serde(default = "defaults::wait")]
    pub wait: WaitConfig,
    /// Resync attempts per (subscription, symbol) without a fill in between, each
    /// with a fresh client order id, before the pair is marked out of sync (with its
    /// reason) to wait for a person or the leader's next fill.
    #[serde(default = "defaults::max_retries")]
    pub max_retries: u32,
    /// Orders one subscription can have live at once (2 ..= 64). A leader fill is
    /// taken only when each of the leader's subscriptions has room for two more (a
    /// flip is two orders): a full table slows intake, it never skips an order.
    #[serde(default = "defaults::orders_per_subscription")]
    pub orders_per_subscription: usize,
    /// How the engine brings a follower back to its target without waiting for the
    /// leader's next fill.
    #[serde(default)]
    pub resync: ResyncConfig,
    /// A venue down this long raises an alarm (log, summary, journal).
    #[serde(default = "defaults::venue_down_alarm_ms")]
    pub venue_down_alarm_ms: u64,
    /// What the alarm does besides: `alarm` (keep running; leader fills are still
    /// journaled and targets kept, and the resync catches up on reconnect) or `stop`
    /// (the engine stops taking input and exits with an error).
    #[serde(default)]
    pub on_venue_down: VenueDownPolicy,
    /// What a reload that removes a subscription does with the positions it holds:
    /// `close` them (reduce-only, through the resync) or `keep` them and stop
    /// copying. Left out of the model's TOML at its default, so that revisions
    /// written before it existed keep their hash.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_remove: RemovePolicy,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn is_false(v: &bool) -> bool {
    !*v
}

/// What removing a subscription that holds positions does (`engine.on_remove`).
#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RemovePolicy {
    /// Close its copied positions (reduce-only), then stop it.
    #[default]
    Close,
    /// Stop copying and leave its positions as they are (recorded in the revision).
    Keep,
}

impl RemovePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RemovePolicy::Close => "close",
            RemovePolicy::Keep => "keep",
        }
    }
}

/// The resync: when a subscription's held quantity (position plus working orders)
/// differs from its target for a reason that can heal, the engine sends the
/// catch-up itself after a backoff. Closes and reductions are always retried;
/// these policies say what to do when a venue rejects an order that adds exposure.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ResyncConfig {
    /// Wait before the first attempt, ms; each further attempt waits twice as long.
    pub backoff_ms: u64,
    /// The longest wait between attempts, ms.
    pub backoff_max_ms: u64,
    /// The unfilled part of an opening order that ended (IOC remainder canceled,
    /// expired): `retry` or `skip` (heal on the leader's next fill).
    pub unfilled_opening: RejectPolicy,
    pub insufficient_margin: RejectPolicy,
    pub position_limit: RejectPolicy,
    pub below_min: RejectPolicy,
    pub reduce_only: RejectPolicy,
    pub other: RejectPolicy,
}

impl Default for ResyncConfig {
    fn default() -> Self {
        ResyncConfig {
            backoff_ms: 10,
            backoff_max_ms: 2_000,
            unfilled_opening: RejectPolicy::Retry,
            insufficient_margin: RejectPolicy::Reduce,
            position_limit: RejectPolicy::Reduce,
            below_min: RejectPolicy::Skip,
            reduce_only: RejectPolicy::OutOfSync,
            other: RejectPolicy::OutOfSync,
        }
    }
}

/// What to do about an order that adds exposure and did not go through.
#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RejectPolicy {
    /// Send the catch-up again, with a fresh id, after the backoff.
    #[default]
    Retry,
    /// Send it again at half the size each attempt (what may be executable).
    Reduce,
    /// Leave it: the leader's next fill recomputes the target.
    Skip,
    /// Mark the subscription out of sync, with the reason, and wait for a person
    /// (or the leader's next fill).
    OutOfSync,
}

impl RejectPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectPolicy::Retry => "retry",
            RejectPolicy::Reduce => "reduce",
            RejectPolicy::Skip => "skip",
            RejectPolicy::OutOfSync => "out_of_sync",
        }
    }
}

#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VenueDownPolicy {
    #[default]
    Alarm,
    Stop,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            feed_ring_slots: defaults::feed_ring(),
            exec_ring_slots: defaults::exec_ring(),
            egress_ring_slots: defaults::egress_ring(),
            journal_ring_slots: defaults::journal_ring(),
            max_working_orders: defaults::max_working_orders(),
            dedup_window: defaults::dedup_window(),
            core_cpu: None,
            io_cpu: None,
            wait: defaults::wait(),
            max_retries: defaults::max_retries(),
            orders_per_subscription: defaults::orders_per_subscription(),
            resync: ResyncConfig::default(),
            venue_down_alarm_ms: defaults::venue_down_alarm_ms(),
            on_venue_down: VenueDownPolicy::Alarm,
            on_remove: RemovePolicy::Close,
        }
    }
}

pub mod defaults {
    use super::WaitConfig;
    pub fn feed_ring() -> usize {
        65_536
    }
    pub fn exec_ring() -> usize {
        262_144
    }
    pub fn egress_ring() -> usize {
        4_096
    }
    pub fn segment_mib() -> u32 {
        64
    }
    pub fn yes() -> bool {
        true
    }
    pub fn flush_every_ms() -> u32 {
        10
    }
    pub fn journal_ring() -> usize {
        8_192
    }
    pub fn max_working_orders() -> usize {
        1 << 20
    }
    pub fn dedup_window() -> usize {
        1 << 20
    }
    pub fn wait() -> WaitConfig {
        WaitConfig::Backoff
    }
    pub fn max_retries() -> u32 {
        6
    }
    pub fn orders_per_subscription() -> usize {
        crate::order::ORDERS_PER_SUBSCRIPTION
    }
    pub fn venue_down_alarm_ms() -> u64 {
        10_000
    }
    pub fn slippage_bps() -> u32 {
        50
    }
    pub fn multiplier() -> rust_decimal::Decimal {
        rust_decimal::Decimal::ONE
    }
}

#[derive(Copy, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WaitConfig {
    Spin,
    SpinHint,
    Backoff,
    Sleep,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymbolConfig {
    pub name: String,
    pub lot_size: Decimal,
    pub tick_size: Decimal,
    /// Venue minimum order quantity (a multiple of lot_size); default one lot.
    #[serde(default)]
    pub min_qty: Option<Decimal>,
    /// Venue minimum order notional in quote currency; default 0.
    #[serde(default)]
    pub min_notional: Option<Decimal>,
    /// Which venue follower orders for this symbol go to.
    pub venue: String,
    /// Set by the engine: removed by a reload (as `LeaderConfig::removed`). Its
    /// index stays, so that the journal's quantities, orders and positions in it
    /// keep naming it; no new input resolves it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
}

/// A `[[venues]]` table. The engine needs its name (symbols route orders to it);
/// what serves it is not the engine's business, so `kind` and the rest of the table
/// are kept as written, for whoever builds the venue's gateway (`Kinds` reads and
/// checks them at load).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct VenueConfig {
    pub name: String,
    pub kind: String,
    /// Every other key of the table.
    #[serde(flatten)]
    pub settings: toml::Table,
    /// The folder of the config file (as for a source).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// A `[[sources]]` table: where leader fills come from. As for a venue, `kind` and
/// the rest of the table are for whoever builds the source.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct SourceConfig {
    pub kind: String,
    /// Every other key of the table.
    #[serde(flatten)]
    pub settings: toml::Table,
    /// The folder of the config file, which a relative path in `settings` is taken
    /// from: set at load, so that nothing later depends on the working directory.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeaderConfig {
    pub id: String,
    /// Leader account equity in quote currency (basis of proportional sizing).
    pub equity: Decimal,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub profile: Option<LeaderProfile>,
    /// Set by the engine, never by a person: removed by a reload, kept in the
    /// journaled model so that the indices of those after it do not move.
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
}

/// What the leader declared it trades; a fill outside it is not copied (`leader_profile`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LeaderProfile {
    #[serde(default)]
    pub symbols: Option<Vec<String>>,
    /// Largest position notional the leader declared, in quote currency.
    #[serde(default)]
    pub max_position_notional: Option<Decimal>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FollowerConfig {
    pub id: String,
    pub equity: Decimal,
    #[serde(default)]
    pub status: Status,
    /// Max gross exposure ÷ equity.
    #[serde(default)]
    pub max_leverage: Option<Decimal>,
    #[serde(default)]
    pub max_open_positions: Option<u32>,
    /// Realized loss (quote currency) after which no new exposure is opened until the next UTC day.
    #[serde(default)]
    pub daily_loss_limit: Option<Decimal>,
    /// Symbols this follower may trade; `None` = all.
    #[serde(default)]
    pub symbols: Option<Vec<String>>,
    /// Set by the engine: removed by a reload (as `LeaderConfig::removed`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Active,
    Paused,
    Stopped,
}

#[derive(Copy, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModeConfig {
    Proportional,
    FixedRatio,
    FixedAmount,
    FixedLeverage,
}

#[derive(Copy, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderTypeConfig {
    /// IOC limit at the leader's price moved by `slippage_bps`.
    #[default]
    Limit,
    Market,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    /// Defaults to `"<follower>:<leader>"`.
    #[serde(default)]
    pub id: Option<String>,
    pub follower: String,
    pub leader: String,
    /// Capital assigned to this leader, quote currency.
    pub allocation: Decimal,
    pub mode: ModeConfig,
    /// `proportional`: r = multiplier × allocation ÷ leader equity.
    #[serde(default)]
    pub multiplier: Option<Decimal>,
    /// `fixed_ratio`: follower qty = ratio × leader qty.
    #[serde(default)]
    pub ratio: Option<Decimal>,
    /// `fixed_amount`: notional per leader order that adds exposure.
    #[serde(default)]
    pub amount: Option<Decimal>,
    /// `fixed_leverage`: amount = leverage × allocation.
    #[serde(default)]
    pub leverage: Option<Decimal>,
    #[serde(default)]
    pub order_type: OrderTypeConfig,
    #[serde(default = "defaults::slippage_bps")]
    pub slippage_bps: u32,
    #[serde(default)]
    pub max_order_notional: Option<Decimal>,
    #[serde(default)]
    pub max_position_notional: Option<Decimal>,
    /// Max position notional per symbol as a percentage of allocation.
    #[serde(default)]
    pub max_position_pct: Option<Decimal>,
    /// Stop and close everything when equity (realized + unrealized) falls this % of allocation.
    #[serde(default)]
    pub total_stop_loss_pct: Option<Decimal>,
    /// Stop copying when the leader's drawdown from its peak equity exceeds this %.
    #[serde(default)]
    pub leader_drawdown_pct: Option<Decimal>,
    #[serde(default)]
    pub copy_open_positions: bool,
    #[serde(default)]
    pub status: Status,
    /// Set by the engine: removed by a reload (as `LeaderConfig::removed`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub removed: bool,
}

/// The version of the decision model's encoding (`Config::model_toml`), hashed into
/// every revision: a change of encoding is a change of revision, never a collision.
pub const MODEL_VERSION: &str = "fillcast-model-v1";

/// Model v1 writes every venue as its name and then this kind and these settings,
/// whatever the venue's own: those of the one kind of venue there was, at their
/// defaults, when the encoding was fixed. They are in the bytes and the hash of every
/// v1 revision, so they stay verbatim as long as `MODEL_VERSION` does; nothing reads
/// them (a venue's kind and settings are operational).
const MODEL_V1_VENUE_KIND: &str = "sim";
const MODEL_V1_VENUE_SETTINGS: &str = "\
heartbeat_ms = 250
down_after_ms = 1000

[sim]
latency_us = 50
partial_fill_ppm = 100000
reject_ppm = 2000
transient_failure_ppm = 2000
seed = 7
";

/// `MODEL_V1_VENUE_SETTINGS` as a table, in its order (the `toml` crate's
/// `preserve_order`), so that it is written back byte for byte.
fn model_v1_venue_settings() -> toml::Table {
    MODEL_V1_VENUE_SETTINGS
        .parse()
        .expect("the model's venue settings are a TOML table")
}

impl Config {
    /// The decision model: everything that decides an order, and nothing else. The
    /// rest is operational (the sources, where the journal is, a venue's kind and
    /// settings, rings, CPUs, waiting), may change between runs, and is left at its
    /// default here. CSV rows are merged in.
    pub fn model(&self) -> Config {
        let defaults = EngineConfig::default();
        let engine = EngineConfig {
            feed_ring_slots: defaults.feed_ring_slots,
            exec_ring_slots: defaults.exec_ring_slots,
            egress_ring_slots: defaults.egress_ring_slots,
            journal_ring_slots: defaults.journal_ring_slots,
            core_cpu: None,
            io_cpu: None,
            wait: defaults.wait,
            ..self.engine.clone()
        };
        Config {
            engine,
            symbols: self.symbols.clone(),
            venues: self
                .venues
                .iter()
                .map(|v| VenueConfig {
                    name: v.name.clone(),
                    kind: MODEL_V1_VENUE_KIND.into(),
                    settings: model_v1_venue_settings(),
                    dir: PathBuf::new(),
                })
                .collect(),
            sources: Vec::new(),
            leaders: self.leaders.clone(),
            followers: self.followers.clone(),
            followers_file: None,
            subscriptions: self.subscriptions.clone(),
            subscriptions_file: None,
            journal: None,
            control: None,
            metrics: None,
        }
    }

    /// The decision model as one canonical TOML document: what the journal keeps
    /// as a config revision's content (`config::load_model` reads it back) and what
    /// the revision hashes, so moving a file or pinning a CPU changes neither.
    pub fn model_toml(&self) -> Result<String, ModelTomlError> {
        toml::to_string(&self.model())
    }
}

/// Why a config cannot follow the model in force (`Config::arranged_after`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArrangeError {
    #[error(
        "subscription `{id}` copied leader `{was_leader}` for follower `{was_follower}` and now names leader `{leader}` and follower `{follower}`: a subscription cannot move; remove it and add one with a new id"
    )]
    Moved {
        id: String,
        was_leader: String,
        was_follower: String,
        leader: String,
        follower: String,
    },
    /// A symbol kept its name but not its units: the journal holds its
    /// quantities and prices as whole lots and ticks of the old ones.
    #[error(
        "symbol `{name}`: {field} was {was} and is now {now}: the journal holds this symbol's quantities and prices as whole numbers of its lot and tick sizes, which a change would reinterpret; keep {field} = \"{was}\", or add the symbol under a new name (removing this one), or start a new journal"
    )]
    SymbolUnits {
        name: String,
        field: &'static str,
        was: String,
        now: String,
    },
    #[error(
        "symbol `{name}` routed its orders to venue `{was}` and now names venue `{now}`: its positions and working orders are at `{was}`; keep the venue, or add the symbol under a new name (removing this one), or start a new journal"
    )]
    SymbolVenue {
        name: String,
        was: String,
        now: String,
    },
    #[error(
        "symbol `{name}` routes to venue `{venue}`, which the engine in force does not have (its venues: {}): a reload or a restart on this journal cannot add a venue (a venue's gateway connects at start); route the symbol to one of those, or start a new journal",
        known.join(", ")
    )]
    SymbolOnNewVenue {
        name: String,
        venue: String,
        known: Vec<String>,
    },
    /// Venues are fixed for a journal's life: each has a gateway connected at start.
    #[error(
        "the venues changed from [{}] to [{}]: venues cannot be added, removed or reordered by a reload or a restart on this journal (a venue's gateway connects at start); route new symbols to a venue the engine has, or start a new journal",
        was.join(", "),
        now.join(", ")
    )]
    Venues { was: Vec<String>, now: Vec<String> },
    /// The arranged model does not resolve (a bug: both halves resolved alone).
    #[error("the arranged model does not resolve: {0}")]
    Model(String),
}

/// `new`'s items laid out after `prev`'s: each of `prev`'s in its place (`new`'s
/// version of it, or, when `new` has none, `prev`'s marked removed), then those
/// only `new` has, in `new`'s order.
fn arrange<T: Clone>(
    prev: &[T],
    new: &[T],
    key: impl Fn(&T) -> String,
    mut removed: impl FnMut(&mut T, bool),
) -> Vec<T> {
    let mut by_key: HashMap<String, usize> =
        new.iter().enumerate().map(|(i, t)| (key(t), i)).collect();
    let mut out = Vec::with_capacity(prev.len().max(new.len()));
    for p in prev {
        match by_key.remove(&key(p)) {
            Some(i) => {
                let mut t = new[i].clone();
                removed(&mut t, false);
                out.push(t);
            }
            None => {
                let mut t = p.clone();
                removed(&mut t, true);
                out.push(t);
            }
        }
    }
    out.extend(new.iter().filter(|t| by_key.contains_key(&key(t))).cloned());
    out
}

impl Config {
    /// This config with its symbols, leaders, followers and subscriptions laid
    /// out after the model in force (`prev`, a model or a config arranged
    /// before): every index the running engine holds keeps its item (an item
    /// this config drops stays, marked `removed`), and new items come after. Its
    /// model is what the journal keeps, so a replay resolves the same indices,
    /// the order ids (which hold a subscription's index) keep naming the same
    /// subscription, and orders and positions keep naming the same symbol.
    /// A symbol keeps its lot size, tick size and venue for the journal's life,
    /// and the venues stay as they are (`ArrangeError` says which changed).
    pub fn arranged_after(&self, prev: &Config) -> Result<Config, ArrangeError> {
        let names = |c: &Config| c.venues.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
        let known = names(prev);
        for s in &self.symbols {
            if !known.contains(&s.venue) {
                return Err(ArrangeError::SymbolOnNewVenue {
                    name: s.name.clone(),
                    venue: s.venue.clone(),
                    known,
                });
            }
        }
        if known != names(self) {
            return Err(ArrangeError::Venues {
                was: known,
                now: names(self),
            });
        }
        let symbols_by_name: HashMap<&str, &SymbolConfig> =
            prev.symbols.iter().map(|s| (s.name.as_str(), s)).collect();
        for s in &self.symbols {
            let Some(p) = symbols_by_name.get(s.name.as_str()) else {
                continue;
            };
            for (field, was, now) in [
                ("lot_size", p.lot_size, s.lot_size),
                ("tick_size", p.tick_size, s.tick_size),
            ] {
                // `0.10` and `0.1` are one size: compared as numbers.
                if was != now {
                    return Err(ArrangeError::SymbolUnits {
                        name: s.name.clone(),
                        field,
                        was: was.normalize().to_string(),
                        now: now.normalize().to_string(),
                    });
                }
            }
            if p.venue != s.venue {
                return Err(ArrangeError::SymbolVenue {
                    name: s.name.clone(),
                    was: p.venue.clone(),
                    now: s.venue.clone(),
                });
            }
        }
        let subs_by_id: HashMap<String, &SubscriptionConfig> = prev
            .subscriptions
            .iter()
            .map(|s| (crate::model::subscription_id(s), s))
            .collect();
        for s in &self.subscriptions {
            let id = crate::model::subscription_id(s);
            if let Some(p) = subs_by_id.get(&id) {
                if p.leader != s.leader || p.follower != s.follower {
                    return Err(ArrangeError::Moved {
                        id,
                        was_leader: p.leader.clone(),
                        was_follower: p.follower.clone(),
                        leader: s.leader.clone(),
                        follower: s.follower.clone(),
                    });
                }
            }
        }
        let mut out = self.clone();
        out.symbols = arrange(
            &prev.symbols,
            &self.symbols,
            |s| s.name.clone(),
            |s, r| s.removed = r,
        );
        out.leaders = arrange(
            &prev.leaders,
            &self.leaders,
            |l| l.id.clone(),
            |l, r| l.removed = r,
        );
        out.followers = arrange(
            &prev.followers,
            &self.followers,
            |f| f.id.clone(),
            |f, r| f.removed = r,
        );
        out.subscriptions = arrange(
            &prev.subscriptions,
            &self.subscriptions,
            crate::model::subscription_id,
            |s, r| s.removed = r,
        );
        Ok(out)
    }
}

/// What differs between two configs' decision models, one line per difference
/// (`subscriptions[F3:L1].allocation: "20000" → "30000"`), tables in arrays matched
/// by their id or name, so that a refusal can say what changed.
pub fn model_diff(old: &Config, new: &Config) -> Vec<String> {
    let value = |c: &Config| toml::Value::try_from(c.model()).ok();
    let mut out = Vec::new();
    match (value(old), value(new)) {
        (Some(a), Some(b)) => diff_values("", &a, &b, &mut out),
        _ => out.push("(the models cannot be compared)".into()),
    }
    out
}

fn diff_values(path: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    use toml::Value;
    if a == b {
        return;
    }
    let at = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    let short = |v: &Value| {
        let s = v.to_string();
        match s.char_indices().nth(80) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s,
        }
    };
    match (a, b) {
        (Value::Table(x), Value::Table(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_values(&at(k), p, q, out),
                    (Some(p), None) => out.push(format!("{}: {} → (unset)", at(k), short(p))),
                    (None, Some(q)) => out.push(format!("{}: (unset) → {}", at(k), short(q))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            let keyed = |items: &[Value]| -> Option<std::collections::BTreeMap<String, usize>> {
                let keys: std::collections::BTreeMap<String, usize> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| item_key(v).map(|k| (k, i)))
                    .collect::<Option<_>>()?;
                (keys.len() == items.len()).then_some(keys)
            };
            match (keyed(x), keyed(y)) {
                (Some(kx), Some(ky)) => {
                    let keys: std::collections::BTreeSet<&String> =
                        kx.keys().chain(ky.keys()).collect();
                    for k in keys {
                        let p = format!("{path}[{k}]");
                        match (kx.get(k), ky.get(k)) {
                            (Some(&i), Some(&j)) => match (is_removed(&x[i]), is_removed(&y[j])) {
                                // A tombstone (`Config::arranged_after`) reads as what it means.
                                (false, true) => out.push(format!("{p}: removed")),
                                (true, false) => out.push(format!("{p}: added back")),
                                _ => diff_values(&p, &x[i], &y[j], out),
                            },
                            (Some(_), None) => out.push(format!("{p}: removed")),
                            (None, Some(_)) => out.push(format!("{p}: added")),
                            (None, None) => {}
                        }
                    }
                }
                _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
            }
        }
        _ => out.push(format!("{path}: {} → {}", short(a), short(b))),
    }
}

/// Whether a config array's item is marked `removed` (a tombstone).
fn is_removed(v: &toml::Value) -> bool {
    v.get("removed").and_then(|r| r.as_bool()) == Some(true)
}

/// How an item of a config array is named: its id or name, or a subscription's
/// `follower:leader`.
fn item_key(v: &toml::Value) -> Option<String> {
    let t = v.as_table()?;
    let s = |k: &str| t.get(k).and_then(|v| v.as_str());
    if let Some(id) = s("id").or(s("name")) {
        return Some(id.to_string());
    }
    Some(format!("{}:{}", s("follower")?, s("leader")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_model_roundtrips_through_its_toml() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.toml");
        let cfg = load(&path).expect("example config loads");
        assert!(!cfg.followers.is_empty() && !cfg.subscriptions.is_empty());
        let text = cfg.model_toml().expect("serializes");
        let back = load_model(&text).expect("loads back");
        assert_eq!(back, cfg.model());
        assert_eq!(
            back.model_toml().unwrap(),
            text,
            "the encoding is canonical"
        );
    }

    /// Whatever a venue's kind and settings, model v1 writes it as it always has:
    /// the bytes are in the hash of every revision journaled so far.
    #[test]
    fn the_model_writes_every_venue_as_model_v1_did() {
        let text = "[[venues]]\nname = \"v\"\nkind = \"other\"\nport = 9\n[venues.sim]\nseed = 1\n";
        let cfg = load_str(text, Path::new("v.toml")).expect("loads");
        let model = cfg.model_toml().unwrap();
        let venues = model.split_once("[[venues]]").map(|(_, v)| v);
        assert_eq!(
            venues,
            Some(
                "\nname = \"v\"\nkind = \"sim\"\nheartbeat_ms = 250\ndown_after_ms = 1000\n\n\
                 [venues.sim]\nlatency_us = 50\npartial_fill_ppm = 100000\nreject_ppm = 2000\n\
                 transient_failure_ppm = 2000\nseed = 7\n"
            ),
            "{model}"
        );
    }

    #[test]
    fn operational_changes_keep_the_model_and_decisions_do_not() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.toml");
        let cfg = load(&path).expect("example config loads");
        let mut ops = cfg.clone();
        ops.engine.core_cpu = Some(0);
        ops.engine.feed_ring_slots *= 2;
        ops.engine.wait = WaitConfig::Spin;
        ops.sources.clear();
        ops.journal = None;
        ops.control = Some(ControlConfig {
            socket: Some("/run/x.sock".into()),
            enabled: true,
        });
        ops.metrics = Some(MetricsConfig {
            address: "127.0.0.1:9464".into(),
        });
        for v in &mut ops.venues {
            v.kind = "elsewhere".into();
            v.settings.insert("address".into(), "10.0.0.1:9".into());
            v.settings.insert("heartbeat_ms".into(), 251.into());
        }
        assert_eq!(ops.model_toml(), cfg.model_toml());
        assert!(model_diff(&cfg, &ops).is_empty());

        let mut moved = cfg.clone();
        moved.subscriptions.reverse();
        moved.subscriptions[0].allocation += Decimal::ONE;
        moved.engine.max_retries += 1;
        let diff = model_diff(&cfg, &moved);
        assert!(
            diff.iter().any(|d| d.starts_with("engine.max_retries: ")),
            "{diff:?}"
        );
        assert!(
            diff.iter()
                .any(|d| d.starts_with("subscriptions[") && d.contains(".allocation: ")),
            "{diff:?}"
        );
    }
}
