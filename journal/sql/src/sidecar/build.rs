//! Turning journal records into rows, and the state that crosses batches.
//!
//! Some rows need more than their own record: a leader fill's `position_after`,
//! an order's instruction, a fill's order, a position's cost basis. That state is
//! kept **in SQL and read back on start** (and after a config change): the
//! `leader_positions` and `positions` tables whole, the recent leader event ids
//! (for the engine's duplicate window) from `leader_fills`, and orders one at a
//! time, by client order id, when a report names one that is not cached. In memory
//! there is only a cache of it, bounded by `ORDER_CACHE_MAX` plus the live orders,
//! so a restart at any record rebuilds exactly what an uninterrupted run holds.
//!
//! The journal lays out each input (leader fill, exec report, ...) followed by what
//! the core decided because of it, and for a leader fill each subscription's
//! orders come just before its decision. So an order of a leader fill waits for
//! the decision that follows it to learn its `instruction_seq`; a retry (which
//! follows the exec report that caused it) takes its original order's. The last
//! input is saved with the read position (`sidecar_state.input_seq`).
//!
//! It must never write: it builds rows into a `Batch`, and the driver writes them.

use crate::sidecar::rows::{
    follower_name, leader_name, sub_name, symbol_name, AllocationChangeRow, AuditRow, ConfigRow,
    EquityRow, FillRow, FollowerEquityRow, FollowerRow, FundingPaymentRow, FundingRateRow, Holder,
    Id, InstructionRow, LeaderFillRow, LeaderPositionRow, LeaderRow, MarkRow, Row, SubscriptionRow,
    SymbolRow,
};
use crate::sidecar::schema::{parse_decimal, parse_hex_id};
use crate::sidecar::store::{SavedOrder, Store};
use crate::sidecar::SidecarError;
use fillcast_engine::accounting::{self, Applied, AverageCost};
use fillcast_engine::codes::Coded;
use fillcast_engine::config;
use fillcast_engine::core::restated_lots;
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FollowerOrder, LeaderFill, OrderType, RejectReason,
    NO_SENDER,
};
use fillcast_engine::ids::{decision_id, parse_client_order_id};
use fillcast_engine::model::{Side, SymbolIdx, Universe};
use fillcast_engine::order::{transition, BoundedSet, Oddity, OrderState};
use fillcast_engine::outputs::{Decision, Notice};
use fillcast_engine::units::{FundingRate, Lots, Ticks};
use fillcast_journal::record::{ConfigParts, ConfigRec, Entry};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Orders kept in memory after their batch is written (live orders are kept
/// beyond it); a report about an order not kept reads it back from SQL.
pub(crate) const ORDER_CACHE_MAX: usize = 1 << 18;

/// One follower order: its `follower_orders` row.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Order {
    pub id: u64,
    pub seq: i64,
    pub instruction_seq: Option<i64>,
    pub event_key: u64,
    pub sub: u32,
    pub follower: u32,
    pub symbol: u16,
    pub side: Side,
    pub qty: i64,
    pub limit: i64,
    pub order_type: OrderType,
    pub reduce_only: bool,
    pub state: OrderState,
    pub filled: i64,
    pub reject: Option<RejectReason>,
}

/// One (subscription, symbol) position, with the engine's own arithmetic: `cost`
/// is Σ signed lots × ticks of the open position, `realized` money (1e-8).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub sub: u32,
    pub symbol: u16,
    pub qty: i64,
    pub cost: i128,
    pub realized: i128,
    pub updated_seq: i64,
}

/// Rows built and not yet written, in journal order per table.
#[derive(Default)]
pub(crate) struct Batch {
    /// Write every name table from the current config.
    pub names: bool,
    pub configs: Vec<ConfigRow>,
    pub leader_fills: Vec<LeaderFillRow>,
    pub instructions: Vec<InstructionRow>,
    pub fills: Vec<FillRow>,
    pub marks: Vec<MarkRow>,
    pub equity: Vec<EquityRow>,
    pub follower_equity: Vec<FollowerEquityRow>,
    pub funding_rates: Vec<FundingRateRow>,
    pub funding_payments: Vec<FundingPaymentRow>,
    pub allocations: Vec<AllocationChangeRow>,
    pub audit: Vec<AuditRow>,
    /// Upserts: the latest state of every order, position and leader position
    /// that changed in the batch (`Builder::take_dirty`).
    pub orders: Vec<Order>,
    pub positions: Vec<Position>,
    pub leader_positions: Vec<LeaderPositionRow>,
}

impl Batch {
    /// Rows appended so far (upserts are counted by `Builder::pending_rows`).
    pub fn appended(&self) -> usize {
        self.configs.len()
            + self.leader_fills.len()
            + self.instructions.len()
            + self.fills.len()
            + self.marks.len()
            + self.equity.len()
            + self.follower_equity.len()
            + self.funding_rates.len()
            + self.funding_payments.len()
            + self.allocations.len()
            + self.audit.len()
    }

    /// Rows the batch writes, upserts and name rows included.
    pub fn rows(&self, u: &Universe) -> usize {
        let names = if self.names {
            u.symbols.len() + u.leaders.len() + u.followers.len() + u.subs.len()
        } else {
            0
        };
        self.appended()
            + names
            + self.orders.len()
            + self.positions.len()
            + self.leader_positions.len()
    }

    pub fn clear(&mut self) {
        self.names = false;
        self.configs.clear();
        self.leader_fills.clear();
        self.instructions.clear();
        self.fills.clear();
        self.marks.clear();
        self.equity.clear();
        self.follower_equity.clear();
        self.funding_rates.clear();
        self.funding_payments.clear();
        self.allocations.clear();
        self.audit.clear();
        self.orders.clear();
        self.positions.clear();
        self.leader_positions.clear();
    }
}

/// Where a batch's rows go, table by table: SQLite's prepared inserts or
/// PostgreSQL's COPY.
pub(crate) trait TableWriter {
    /// Writes `rows` into `R::TABLE`; returns how many.
    fn rows<R: Row>(
        &mut self,
        rows: impl IntoIterator<Item = R>,
        u: &Universe,
    ) -> Result<usize, SidecarError>;
}

impl Batch {
    /// Writes every table of the batch, in the one order both stores use.
    pub fn write_to<W: TableWriter>(&self, w: &mut W, u: &Universe) -> Result<(), SidecarError> {
        w.rows(self.configs.iter().cloned(), u)?;
        if self.names {
            w.rows((0..u.symbols.len() as u16).map(SymbolRow), u)?;
            w.rows((0..u.leaders.len() as u32).map(LeaderRow), u)?;
            w.rows((0..u.followers.len() as u32).map(FollowerRow), u)?;
            w.rows((0..u.subs.len() as u32).map(SubscriptionRow), u)?;
        }
        w.rows(self.leader_fills.iter().copied(), u)?;
        w.rows(self.leader_positions.iter().copied(), u)?;
        w.rows(self.instructions.iter().copied(), u)?;
        w.rows(self.orders.iter().copied(), u)?;
        w.rows(self.fills.iter().copied(), u)?;
        w.rows(self.positions.iter().copied(), u)?;
        w.rows(self.marks.iter().copied(), u)?;
        w.rows(self.equity.iter().copied(), u)?;
        w.rows(self.follower_equity.iter().copied(), u)?;
        w.rows(self.funding_rates.iter().copied(), u)?;
        w.rows(self.funding_payments.iter().copied(), u)?;
        w.rows(self.allocations.iter().copied(), u)?;
        w.rows(self.audit.iter().cloned(), u)?;
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
enum InputKind {
    #[default]
    None,
    LeaderFill {
        event_key: u64,
    },
    Exec {
        order_id: u64,
    },
    /// A resync tick: its orders wait for their decisions like a leader fill's.
    Tick,
    Other,
}

/// The last input record: the outputs after it belong to it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
struct Input {
    seq: u64,
    ts: u64,
    kind: InputKind,
}

struct Cached {
    order: Order,
    /// Venue trade ids of the order's fills: a second report of one is ignored.
    trades: Vec<u64>,
    dirty: bool,
}

struct LeaderPos {
    qty: i64,
    updated_seq: i64,
    dirty: bool,
}

pub(crate) struct Builder {
    universe: Option<Arc<Universe>>,
    revision: Option<u64>,
    /// A config revision's records, put back together (`ConfigParts`).
    config_parts: ConfigParts,
    sub_by_name: HashMap<String, u32>,
    known_revisions: HashSet<u64>,
    /// The engine's duplicate window over leader event keys, mirrored so that
    /// `position_after` counts exactly the fills the engine acted on.
    seen_events: Option<BoundedSet>,
    leader_pos: HashMap<(u32, u16), LeaderPos>,
    dirty_leader: Vec<(u32, u16)>,
    positions: HashMap<(u32, u16), (Position, bool)>,
    dirty_positions: Vec<(u32, u16)>,
    orders: HashMap<u64, Cached>,
    dirty_orders: Vec<u64>,
    /// Orders of the current leader fill, waiting for their decision.
    awaiting: Vec<u64>,
    /// A venue's statement about an order the journal has no record of, and its
    /// seq: the core's `venue_held_other` notice right after says it took it over.
    restated_unknown: Option<(i64, ExecReport)>,
    /// The model TOML of the revision in force: a new revision's audit row says
    /// what it changed.
    model_toml: Option<String>,
    input: Input,
    /// Whether this run has read an input yet: until then, the outputs it reads
    /// may belong to an input a previous run wrote.
    seen_input: bool,
}

fn bad(seq: u64, message: impl Into<String>) -> SidecarError {
    SidecarError::Record {
        seq,
        message: message.into(),
    }
}

fn to_i64(seq: u64, what: &str, v: u64) -> Result<i64, SidecarError> {
    i64::try_from(v).map_err(|_| bad(seq, format!("{what} {v} is out of range")))
}

/// A config as the journal stores it: the universe it resolves to, and the
/// engine's duplicate window.
pub(crate) fn load_config(toml: &str) -> Result<(Universe, usize), ModelLoadError> {
    let cfg = config::load_model(toml)?;
    let u = Universe::from_config(&cfg)?;
    Ok((u, cfg.engine.dedup_window))
}

/// Why a journaled decision model does not load.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ModelLoadError {
    #[error(transparent)]
    Config(#[from] config::ConfigErrors),
    #[error(transparent)]
    Model(#[from] fillcast_engine::model::ModelError),
}

impl Builder {
    pub fn new() -> Builder {
        Builder {
            universe: None,
            revision: None,
            config_parts: ConfigParts::default(),
            sub_by_name: HashMap::new(),
            known_revisions: HashSet::new(),
            seen_events: None,
            leader_pos: HashMap::new(),
            dirty_leader: Vec::new(),
            positions: HashMap::new(),
            dirty_positions: Vec::new(),
            orders: HashMap::new(),
            dirty_orders: Vec::new(),
            awaiting: Vec::new(),
            restated_unknown: None,
            model_toml: None,
            input: Input::default(),
            seen_input: false,
        }
    }

    pub fn universe(&self) -> Option<&Arc<Universe>> {
        self.universe.as_ref()
    }

    pub fn revision(&self) -> Option<u64> {
        self.revision
    }

    pub fn input_seq(&self) -> u64 {
        self.input.seq
    }

    /// Upsert rows waiting for the next write.
    pub fn pending_rows(&self) -> usize {
        self.dirty_orders.len() + self.dirty_positions.len() + self.dirty_leader.len()
    }

    /// Picks up where a previous run stopped: its config, its state rows, the
    /// engine's duplicate window, and the input whose outputs may come next.
    pub fn restore(
        &mut self,
        store: &mut dyn Store,
        revision: &str,
        input: Option<(u64, u64, &Entry)>,
    ) -> Result<(), SidecarError> {
        let db = store.name().to_string();
        let state = |message: String| SidecarError::State {
            db: db.clone(),
            message,
        };
        let rev = parse_hex_id(revision)
            .ok_or_else(|| state(format!("sidecar_state.config_revision `{revision}`")))?;
        let toml = store
            .config_toml(revision)?
            .ok_or_else(|| state(format!("config revision {revision} is not stored")))?;
        let (u, window) = load_config(&toml)
            .map_err(|e| state(format!("stored config revision {revision}: {e}")))?;
        for r in store.revisions()? {
            let r = parse_hex_id(&r)
                .ok_or_else(|| state(format!("config_revisions.revision `{r}`")))?;
            self.known_revisions.insert(r);
        }
        self.install(Arc::new(u), rev, window, store)?;
        self.model_toml = Some(toml);
        let mut keys = Vec::new();
        for e in store.recent_events(window)? {
            keys.push(
                parse_hex_id(&e).ok_or_else(|| state(format!("leader_fills.event_id `{e}`")))?,
            );
        }
        if let Some(seen) = self.seen_events.as_mut() {
            for k in keys {
                seen.add(k);
            }
        }
        if let Some((seq, ts, entry)) = input {
            self.input = Input {
                seq,
                ts,
                kind: Self::input_kind(entry),
            };
        }
        Ok(())
    }

    fn input_kind(e: &Entry) -> InputKind {
        match e {
            Entry::Feed(FeedEvent::LeaderFill(f)) => InputKind::LeaderFill {
                event_key: f.event_key,
            },
            Entry::Exec(r) => InputKind::Exec {
                order_id: r.order_id,
            },
            Entry::Feed(FeedEvent::Tick { .. }) => InputKind::Tick,
            Entry::Feed(_) => InputKind::Other,
            _ => InputKind::None,
        }
    }

    /// Makes `u` the config in force and reads back the state kept under it.
    fn install(
        &mut self,
        u: Arc<Universe>,
        revision: u64,
        window: usize,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        debug_assert_eq!(
            self.pending_rows(),
            0,
            "state is reloaded only after a write"
        );
        let db = store.name().to_string();
        let state = |message: String| SidecarError::State {
            db: db.clone(),
            message,
        };
        self.sub_by_name = u
            .subs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i as u32))
            .collect();
        self.positions.clear();
        for p in store.positions()? {
            let (Some(&sub), Some(sym)) = (
                self.sub_by_name.get(&p.subscription_id),
                u.symbol(&p.symbol),
            ) else {
                continue;
            };
            let spec = u.sym(sym);
            let what = |col: &str| {
                state(format!(
                    "positions ({}, {}): {col}",
                    p.subscription_id, p.symbol
                ))
            };
            let qty = parse_lots(&p.qty, spec.lot_size).ok_or_else(|| what("qty"))?;
            let cost = parse_decimal(&p.cost_basis)
                .and_then(|c| c.checked_div(spec.lot_size * spec.tick_size))
                .filter(|c| c.fract().is_zero())
                .and_then(|c| c.to_i128())
                .ok_or_else(|| what("cost_basis"))?;
            let realized = parse_decimal(&p.realized_pnl)
                .and_then(|r| r.checked_mul(Decimal::from(100_000_000)))
                .filter(|r| r.fract().is_zero())
                .and_then(|r| r.to_i128())
                .ok_or_else(|| what("realized_pnl"))?;
            let pos = Position {
                sub,
                symbol: sym.0,
                qty,
                cost,
                realized,
                updated_seq: p.updated_seq,
            };
            self.positions.insert((sub, sym.0), (pos, false));
        }
        self.leader_pos.clear();
        for p in store.leader_positions()? {
            let (Some(l), Some(sym)) = (u.leader_in_model(&p.leader_id), u.symbol(&p.symbol))
            else {
                continue;
            };
            let qty = parse_lots(&p.qty, u.sym(sym).lot_size).ok_or_else(|| {
                state(format!(
                    "leader_positions ({}, {}): qty",
                    p.leader_id, p.symbol
                ))
            })?;
            self.leader_pos.insert(
                (l.0, sym.0),
                LeaderPos {
                    qty,
                    updated_seq: p.updated_seq,
                    dirty: false,
                },
            );
        }
        self.orders.clear();
        self.awaiting.clear();
        if self.seen_events.is_none() {
            self.seen_events = Some(BoundedSet::new(window.max(1)));
        }
        self.universe = Some(u);
        self.revision = Some(revision);
        Ok(())
    }

    /// Whether a config revision's records have begun and not all arrived: no read
    /// position may be committed then, or a resume would start in its middle.
    pub fn config_incomplete(&self) -> bool {
        self.config_parts.incomplete()
    }

    /// Builds the rows of one record into `batch`. A config record with a new
    /// revision must come after a write of everything before it (the driver's job).
    pub fn apply(
        &mut self,
        seq: u64,
        ts: u64,
        entry: Entry,
        batch: &mut Batch,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        let seq_i = to_i64(seq, "sequence", seq)?;
        if let Entry::Config(c) = entry {
            let whole = self
                .config_parts
                .add(c)
                .map_err(|e| bad(seq, e.to_string()))?;
            let Some((revision, toml)) = whole else {
                return Ok(());
            };
            let c = ConfigRec {
                revision,
                part: 0,
                parts: 1,
                toml,
            };
            return self.apply_config(seq, ts, c, batch, store);
        }
        let u = Arc::clone(self.universe.as_ref().ok_or_else(|| {
            bad(
                seq,
                "comes before any config record (a journal starts with its config)",
            )
        })?);
        let chk = Check { u: &u, seq };
        match entry {
            Entry::Config(_) => Ok(()),
            Entry::Feed(FeedEvent::LeaderFill(f)) => {
                self.set_input(
                    seq,
                    ts,
                    InputKind::LeaderFill {
                        event_key: f.event_key,
                    },
                );
                self.leader_fill(&chk, seq_i, &f, batch)
            }
            Entry::Feed(FeedEvent::MarkPrice {
                symbol,
                price,
                ts: t,
            }) => {
                self.set_input(seq, ts, InputKind::Other);
                chk.symbol(symbol.0)?;
                batch.marks.push(MarkRow {
                    seq: seq_i,
                    symbol: symbol.0,
                    ts: to_i64(seq, "timestamp", t.0)?,
                    price: price.0,
                });
                Ok(())
            }
            Entry::Feed(FeedEvent::Funding {
                symbol,
                rate,
                price,
                ts: t,
            }) => {
                self.set_input(seq, ts, InputKind::Other);
                chk.symbol(symbol.0)?;
                let t = to_i64(seq, "timestamp", t.0)?;
                self.funding(chk.u, seq_i, t, symbol, rate, price, batch);
                Ok(())
            }
            Entry::Feed(FeedEvent::LeaderEquity {
                leader,
                equity,
                ts: t,
            }) => {
                self.set_input(seq, ts, InputKind::Other);
                chk.leader(leader.0)?;
                batch.equity.push(EquityRow {
                    seq: seq_i,
                    leader: leader.0,
                    ts: to_i64(seq, "timestamp", t.0)?,
                    equity: equity.0,
                });
                Ok(())
            }
            Entry::Feed(FeedEvent::FollowerEquity {
                follower,
                equity,
                ts: t,
            }) => {
                self.set_input(seq, ts, InputKind::Other);
                chk.follower(follower.0)?;
                batch.follower_equity.push(FollowerEquityRow {
                    seq: seq_i,
                    follower: follower.0,
                    ts: to_i64(seq, "timestamp", t.0)?,
                    equity: equity.0,
                });
                Ok(())
            }
            Entry::Feed(FeedEvent::Command { cmd, ts: t, by }) => {
                self.set_input(seq, ts, InputKind::Other);
                let (subject, reason) = match cmd {
                    Command::PauseSubscription(s) => (chk.sub(s.0)?, "pause_subscription"),
                    Command::ResumeSubscription(s) => (chk.sub(s.0)?, "resume_subscription"),
                    Command::StopSubscription(s) => (chk.sub(s.0)?, "stop_subscription"),
                    Command::PauseLeader(l) => (chk.leader(l.0)?, "pause_leader"),
                    Command::ResumeLeader(l) => (chk.leader(l.0)?, "resume_leader"),
                    Command::KillSwitch => ("*", "kill_switch"),
                    Command::Resync(s) => (chk.sub(s.0)?, "resync_subscription"),
                    Command::PauseFollower(f) => (chk.follower(f.0)?, "pause_follower"),
                    Command::ResumeFollower(f) => (chk.follower(f.0)?, "resume_follower"),
                    Command::StopFollower(f) => (chk.follower(f.0)?, "stop_follower"),
                    Command::StopLeader(l) => (chk.leader(l.0)?, "stop_leader"),
                    Command::KillSwitchOff => ("*", "kill_switch_off"),
                    Command::Reload => ("*", "reload"),
                    Command::Flatten(s) => (chk.sub(s.0)?, "flatten_subscription"),
                    Command::FlattenFollower(f) => (chk.follower(f.0)?, "flatten_follower"),
                };
                batch.audit.push(AuditRow {
                    seq: seq_i,
                    ts: to_i64(seq, "timestamp", t.0)?,
                    kind: "command",
                    subject: subject.to_string(),
                    reason,
                    detail: if by == NO_SENDER {
                        String::new()
                    } else {
                        format!("by uid {by}")
                    },
                });
                Ok(())
            }
            // A revision is journaled as its config records (above); never as itself.
            Entry::Feed(
                FeedEvent::Empty | FeedEvent::SourceCursor { .. } | FeedEvent::Revision { .. },
            ) => {
                self.set_input(seq, ts, InputKind::Other);
                Ok(())
            }
            Entry::Feed(FeedEvent::Tick { .. }) => {
                // The resync's decisions follow, each after its orders.
                self.set_input(seq, ts, InputKind::Tick);
                Ok(())
            }
            Entry::Feed(FeedEvent::Venue { venue, .. }) => {
                // Its audit row comes from the core's notice, made on a change only.
                self.set_input(seq, ts, InputKind::Other);
                chk.venue(venue.0)?;
                Ok(())
            }
            Entry::Exec(r) => {
                self.set_input(
                    seq,
                    ts,
                    InputKind::Exec {
                        order_id: r.order_id,
                    },
                );
                self.exec(&chk, seq_i, ts, &r, batch, store)
            }
            Entry::Decision(d) => self.decision(&chk, seq_i, &d, batch, store),
            Entry::Order(o) => self.order(&chk, seq_i, &o, batch, store),
            Entry::OrderDecision(o, d) => {
                // Both rows carry this record's sequence.
                self.order(&chk, seq_i, &o, batch, store)?;
                self.decision(&chk, seq_i, &d, batch, store)
            }
            Entry::Notice(n) => self.notice(&chk, seq_i, &n, batch),
        }
    }

    fn set_input(&mut self, seq: u64, ts: u64, kind: InputKind) {
        self.input = Input { seq, ts, kind };
        self.seen_input = true;
        self.awaiting.clear();
    }

    fn apply_config(
        &mut self,
        seq: u64,
        ts: u64,
        c: ConfigRec,
        batch: &mut Batch,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        let seq_i = to_i64(seq, "sequence", seq)?;
        let (u, window) = load_config(&c.toml).map_err(|e| {
            bad(
                seq,
                format!("config revision {:016x} does not load: {e}", c.revision),
            )
        })?;
        let previous = self.revision;
        // Counted as they are in force; a reload's removed items keep their places.
        let count = |n: usize, what: &str, removed: usize| match removed {
            0 => format!("{n} {what}"),
            r => format!("{} {what} (and {r} removed)", n - r),
        };
        let mut detail = format!(
            "{}, {}, {}, {}; previous revision {}",
            count(
                u.symbols.len(),
                "symbols",
                u.symbols.iter().filter(|s| s.removed).count()
            ),
            count(
                u.leaders.len(),
                "leaders",
                u.leaders.iter().filter(|l| l.removed).count()
            ),
            count(
                u.followers.len(),
                "followers",
                u.followers.iter().filter(|f| f.removed).count()
            ),
            count(
                u.subs.len(),
                "subscriptions",
                u.subs.iter().filter(|s| s.removed).count()
            ),
            previous.map_or("none".to_string(), |r| format!("{r:016x}")),
        );
        if previous.is_some_and(|p| p != c.revision) {
            let old = self.model_toml.as_deref().map(config::load_model);
            if let (Some(Ok(old)), Ok(new)) = (old, config::load_model(&c.toml)) {
                detail.push_str("; changed: ");
                detail.push_str(&config::model_diff(&old, &new).join("; "));
            }
        }
        self.model_toml = Some(c.toml.clone());
        batch.audit.push(AuditRow {
            seq: seq_i,
            ts: to_i64(seq, "timestamp", ts)?,
            kind: "config",
            subject: Id::hex(c.revision).as_str().to_string(),
            reason: if previous == Some(c.revision) {
                "unchanged"
            } else {
                "applied"
            },
            detail,
        });
        if self.known_revisions.insert(c.revision) {
            batch.configs.push(ConfigRow {
                revision: c.revision,
                seq: seq_i,
                toml: c.toml,
            });
        }
        if previous != Some(c.revision) {
            // Indices are stable for a journal's life (`Config::arranged_after`): the
            // subscription at `i` is the same one in both.
            if let Some(old) = &self.universe {
                for (i, (o, n)) in old.subs.iter().zip(&u.subs).enumerate() {
                    if o.id == n.id && o.allocation != n.allocation {
                        batch.allocations.push(AllocationChangeRow {
                            seq: seq_i,
                            sub: i as u32,
                            ts: to_i64(seq, "timestamp", ts)?,
                            before: o.allocation.0,
                            after: n.allocation.0,
                            revision: c.revision,
                        });
                    }
                }
            }
            self.install(Arc::new(u), c.revision, window, store)?;
            batch.names = true;
        }
        Ok(())
    }

    fn leader_fill(
        &mut self,
        chk: &Check,
        seq: i64,
        f: &LeaderFill,
        batch: &mut Batch,
    ) -> Result<(), SidecarError> {
        chk.leader(f.leader.0)?;
        chk.symbol(f.symbol.0)?;
        // The core's order of checks: invalid first, then the duplicate window.
        let ignored = if f.qty.0 <= 0 || f.price.0 <= 0 {
            "invalid"
        } else if !self
            .seen_events
            .as_mut()
            .is_some_and(|s| s.add(f.event_key))
        {
            "duplicate"
        } else {
            ""
        };
        let key = (f.leader.0, f.symbol.0);
        let before = self.leader_pos.get(&key).map_or(0, |p| p.qty);
        let after = if ignored.is_empty() {
            let after = before
                .checked_add(f.side.sign() * f.qty.0)
                .ok_or_else(|| bad(chk.seq, "leader position overflows"))?;
            let p = self.leader_pos.entry(key).or_insert(LeaderPos {
                qty: 0,
                updated_seq: 0,
                dirty: false,
            });
            p.qty = after;
            p.updated_seq = seq;
            if !p.dirty {
                p.dirty = true;
                self.dirty_leader.push(key);
            }
            after
        } else {
            before
        };
        batch.leader_fills.push(LeaderFillRow {
            seq,
            leader: f.leader.0,
            event_key: f.event_key,
            symbol: f.symbol.0,
            side: f.side,
            qty: f.qty.0,
            price: f.price.0,
            position_after: after,
            order_key: f.order_key,
            order_qty: f.order_qty.0,
            venue_ts: to_i64(chk.seq, "timestamp", f.venue_ts.0)?,
            recv_ts: to_i64(chk.seq, "timestamp", f.recv_ts.0)?,
            ignored,
            kind: f.kind,
        });
        Ok(())
    }

    /// A funding input: its rate row, and a payment row per position open in
    /// the symbol now (leaders', then subscriptions', each by index), by the
    /// accounting rule (`accounting::funding_payment`). One the core counts
    /// invalid pays nothing and is an oddity.
    #[allow(clippy::too_many_arguments)]
    fn funding(
        &self,
        u: &Universe,
        seq: i64,
        ts: i64,
        symbol: SymbolIdx,
        rate: FundingRate,
        price: Ticks,
        batch: &mut Batch,
    ) {
        batch.funding_rates.push(FundingRateRow {
            seq,
            symbol: symbol.0,
            ts,
            rate,
            price: price.0,
        });
        if price.0 <= 0 || !rate.is_within_bounds() {
            batch.audit.push(AuditRow {
                seq,
                ts,
                kind: "oddity",
                subject: symbol_name(u, symbol.0).to_string(),
                reason: "invalid_funding",
                detail: format!(
                    "funding rate {} at {} ticks: not paid",
                    rate.to_decimal(),
                    price.0
                ),
            });
            return;
        }
        let mplt = u.sym(symbol).money_per_lot_tick;
        let mut holders: Vec<(Holder, i64)> = self
            .leader_pos
            .iter()
            .filter(|((_, s), p)| *s == symbol.0 && p.qty != 0)
            .map(|((l, _), p)| (Holder::Leader(*l), p.qty))
            .chain(
                self.positions
                    .iter()
                    .filter(|((_, s), (p, _))| *s == symbol.0 && p.qty != 0)
                    .map(|((sub, _), (p, _))| (Holder::Subscription(*sub), p.qty)),
            )
            .collect();
        holders.sort_unstable();
        for (line, (holder, qty)) in holders.into_iter().enumerate() {
            let amount = accounting::funding_payment(Lots(qty), price, rate, mplt);
            // A long pays a positive rate, a short receives it.
            debug_assert!(amount.0 == 0 || amount.0.signum() == -qty.signum() * rate.0.signum());
            batch.funding_payments.push(FundingPaymentRow {
                seq,
                line: line as i64,
                ts,
                symbol: symbol.0,
                holder,
                qty,
                price: price.0,
                rate,
                amount,
            });
        }
    }

    /// The cached order `id`, read back from SQL if it is not cached.
    fn cached(
        &mut self,
        id: u64,
        store: &mut dyn Store,
    ) -> Result<Option<&mut Cached>, SidecarError> {
        if !self.orders.contains_key(&id) {
            let Some(saved) = store.order(Id::client_order(id).as_str())? else {
                return Ok(None);
            };
            let (order, trades) =
                self.parse_order(&saved)
                    .map_err(|message| SidecarError::State {
                        db: store.name().to_string(),
                        message: format!(
                            "follower_orders row {}: {message}",
                            saved.client_order_id
                        ),
                    })?;
            self.orders.insert(
                id,
                Cached {
                    order,
                    trades,
                    dirty: false,
                },
            );
        }
        Ok(self.orders.get_mut(&id))
    }

    fn parse_order(&self, s: &SavedOrder) -> Result<(Order, Vec<u64>), String> {
        let u = self.universe.as_ref().ok_or("no config")?;
        let id = parse_client_order_id(&s.client_order_id).ok_or("client_order_id")?;
        let sub = *self
            .sub_by_name
            .get(&s.subscription_id)
            .ok_or_else(|| format!("subscription `{}` is not in the config", s.subscription_id))?;
        // A working order of a follower a reload removed is still read back.
        let follower = u
            .follower_in_model(&s.follower_id)
            .ok_or_else(|| format!("follower `{}` is not in the config", s.follower_id))?;
        let symbol = u
            .symbol(&s.symbol)
            .ok_or_else(|| format!("symbol `{}` is not in the config", s.symbol))?;
        let spec = u.sym(symbol);
        let side = Side::from_name(&s.side).ok_or_else(|| format!("side `{}`", s.side))?;
        let order_type = OrderType::from_name(&s.order_type)
            .ok_or_else(|| format!("order_type `{}`", s.order_type))?;
        let limit = parse_decimal(&s.limit_price)
            .and_then(|p| Ticks::from_decimal(p, spec.tick_size).ok())
            .ok_or("limit_price")?;
        let reject = match &s.reject_reason {
            None => None,
            Some(r) => {
                Some(RejectReason::from_name(r).ok_or_else(|| format!("reject_reason `{r}`"))?)
            }
        };
        let event_key = match &s.event_id {
            None => 0,
            Some(e) => parse_hex_id(e).ok_or_else(|| format!("event_id `{e}`"))?,
        };
        let trades = s
            .trades
            .iter()
            .map(|t| {
                t.parse::<u64>()
                    .map_err(|_| format!("venue_trade_id `{t}`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let order = Order {
            id,
            seq: s.seq,
            instruction_seq: s.instruction_seq,
            event_key,
            sub,
            follower: follower.0,
            symbol: symbol.0,
            side,
            qty: parse_lots(&s.qty, spec.lot_size).ok_or("qty")?,
            limit: limit.0,
            order_type,
            reduce_only: s.reduce_only,
            state: OrderState::from_name(&s.status)
                .ok_or_else(|| format!("status `{}`", s.status))?,
            filled: parse_lots(&s.filled_qty, spec.lot_size).ok_or("filled_qty")?,
            reject,
        };
        Ok((order, trades))
    }

    fn mark_order_dirty(&mut self, id: u64) {
        if let Some(c) = self.orders.get_mut(&id) {
            if !c.dirty {
                c.dirty = true;
                self.dirty_orders.push(id);
            }
        }
    }

    fn exec(
        &mut self,
        chk: &Check,
        seq: i64,
        ts: u64,
        r: &ExecReport,
        batch: &mut Batch,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        let ts = to_i64(chk.seq, "timestamp", ts)?;
        let oddity = |reason: &'static str, detail: String| AuditRow {
            seq,
            ts,
            kind: "oddity",
            subject: Id::client_order(r.order_id).as_str().to_string(),
            reason,
            detail,
        };
        let fill = r.kind == ExecKind::Fill;
        let Some(c) = self.cached(r.order_id, store)? else {
            if r.kind == ExecKind::Restated {
                // The core may take this order over; its notice says whether it did.
                self.restated_unknown = Some((seq, *r));
                return Ok(());
            }
            batch.audit.push(oddity(
                "unknown_order",
                format!("{} report for an order not in the journal", r.kind.name()),
            ));
            return Ok(());
        };
        let o = c.order;
        let invalid = || {
            oddity(
                "invalid_fill",
                format!(
                    "trade {} of {} lots at {} ticks",
                    r.trade_id, r.qty.0, r.price.0
                ),
            )
        };
        if fill && (r.qty.0 <= 0 || r.price.0 <= 0) {
            batch.audit.push(invalid());
            return Ok(());
        }
        if fill && c.trades.contains(&r.trade_id) {
            batch
                .audit
                .push(oddity("duplicate_fill", format!("trade {}", r.trade_id)));
            return Ok(());
        }
        if r.kind == ExecKind::Restated {
            // The venue's version of the order wins, exactly as `Core::restate`.
            let Some(venue) = restated_lots(r) else {
                batch.audit.push(oddity(
                    "invalid_restatement",
                    format!("the venue restated the order as {} lots", r.qty.0),
                ));
                return Ok(());
            };
            if let Ok((state, _)) = transition(o.state, r.kind, Lots(o.filled), Lots(o.qty)) {
                c.order.state = state;
            }
            // The core's `Notice::Odd` (`venue_held_other`) makes its audit row.
            let ours = o.side.sign() * o.qty;
            if venue != ours && !o.state.is_terminal() && o.filled == 0 {
                c.order.qty = venue.abs();
                c.order.side = Side::from_sign(venue);
            }
            self.mark_order_dirty(o.id);
            return Ok(());
        }
        // An overflow is past any quantity an order may have: an overfill, as the
        // core counts it.
        let filled = if fill {
            o.filled.checked_add(r.qty.0)
        } else {
            Some(o.filled)
        };
        let Some((filled_after, state)) = filled.and_then(|f| {
            let (state, _) = transition(o.state, r.kind, Lots(f), Lots(o.qty)).ok()?;
            Some((f, state))
        }) else {
            batch.audit.push(oddity(
                "overfill",
                format!(
                    "trade {} of {} lots on an order of {} with {} filled",
                    r.trade_id, r.qty.0, o.qty, o.filled
                ),
            ));
            return Ok(());
        };
        // The core refuses a fill its position cannot account; so does its
        // projection, at the same point (after the overfill check).
        let accounted = if fill {
            let Some(after) = self.position_after_fill(&o, r) else {
                batch.audit.push(invalid());
                return Ok(());
            };
            Some(after)
        } else {
            None
        };
        let c = self.orders.get_mut(&r.order_id).expect("cached above");
        let fill_ts = if r.venue_ts.0 > 0 {
            r.venue_ts.0
        } else {
            r.recv_ts.0
        };
        let fill_ts = to_i64(chk.seq, "timestamp", fill_ts)?;
        if fill {
            c.trades.push(r.trade_id);
        }
        c.order.state = state;
        c.order.filled = filled_after;
        if state == OrderState::Rejected && o.state != OrderState::Rejected {
            c.order.reject = Some(r.reject);
        }
        self.mark_order_dirty(o.id);
        if !fill {
            return Ok(());
        }
        batch.fills.push(FillRow {
            order_id: o.id,
            trade_id: r.trade_id,
            seq,
            follower: o.follower,
            sub: o.sub,
            symbol: o.symbol,
            side: o.side,
            qty: r.qty.0,
            price: r.price.0,
            fee: r.fee.0,
            ts: fill_ts,
        });
        let mplt = chk
            .u
            .sym(fillcast_engine::model::SymbolIdx(o.symbol))
            .money_per_lot_tick;
        let (after, applied) = accounted.expect("a fill is accounted above");
        let key = (o.sub, o.symbol);
        let (p, dirty) = self.positions.entry(key).or_insert((
            Position {
                sub: o.sub,
                symbol: o.symbol,
                qty: 0,
                cost: 0,
                realized: 0,
                updated_seq: 0,
            },
            false,
        ));
        p.qty = after.qty as i64; // fits: checked by position_after_fill
        p.cost = after.cost;
        let realized = accounting::lot_ticks_to_money(applied.realized, mplt);
        p.realized = p.realized.saturating_add(realized.0 as i128);
        p.updated_seq = seq;
        if !*dirty {
            *dirty = true;
            self.dirty_positions.push(key);
        }
        Ok(())
    }

    /// The order's position after a fill of it, by the core's accounting rule
    /// (`Core::position_after_fill`); `None` when it does not fit.
    fn position_after_fill(
        &self,
        o: &Order,
        r: &ExecReport,
    ) -> Option<(AverageCost<i128>, Applied<i128>)> {
        let (qty, cost) = self
            .positions
            .get(&(o.sub, o.symbol))
            .map_or((0, 0), |(p, _)| (p.qty, p.cost));
        AverageCost::after_fill(Lots(qty), cost, o.side, r.qty, r.price)
    }

    fn decision(
        &mut self,
        chk: &Check,
        seq: i64,
        d: &Decision,
        batch: &mut Batch,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        chk.sub(d.sub.0)?;
        chk.symbol(d.symbol.0)?;
        let leader_fill_seq = match self.input.kind {
            InputKind::LeaderFill { event_key } if event_key == d.event_key => {
                Some(to_i64(chk.seq, "sequence", self.input.seq)?)
            }
            _ => None,
        };
        batch.instructions.push(InstructionRow {
            seq,
            leader_fill_seq,
            event_key: d.event_key,
            sub: d.sub.0,
            symbol: d.symbol.0,
            target: d.target.0,
            delta: d.delta.0,
            sent: d.sent.0,
            status: d.status,
            reason: d.reason,
            revision: d.revision,
            resync: d.resync,
        });
        // This decision's orders came just before it.
        let mut mine = Vec::new();
        self.awaiting.retain(|id| {
            let hit = self
                .orders
                .get(id)
                .is_some_and(|c| c.order.sub == d.sub.0 && c.order.event_key == d.event_key);
            if hit {
                mine.push(*id);
            }
            !hit
        });
        if !self.seen_input && d.sent.0 != 0 {
            // A previous run wrote them: their ids say which they are (legs 0 and 1).
            for leg in 0..2 {
                let id = decision_id(d.event_key, d.sub.0, d.revision, leg);
                if let Some(c) = self.cached(id, store)? {
                    if c.order.instruction_seq.is_none()
                        && c.order.sub == d.sub.0
                        && c.order.event_key == d.event_key
                    {
                        mine.push(id);
                    }
                }
            }
        }
        for id in mine {
            if let Some(c) = self.orders.get_mut(&id) {
                c.order.instruction_seq = Some(seq);
            }
            self.mark_order_dirty(id);
        }
        Ok(())
    }

    fn order(
        &mut self,
        chk: &Check,
        seq: i64,
        o: &FollowerOrder,
        batch: &mut Batch,
        store: &mut dyn Store,
    ) -> Result<(), SidecarError> {
        chk.sub(o.sub.0)?;
        chk.follower(o.follower.0)?;
        chk.symbol(o.symbol.0)?;
        if self.orders.contains_key(&o.id) {
            batch.audit.push(AuditRow {
                seq,
                ts: to_i64(chk.seq, "timestamp", self.input.ts)?,
                kind: "oddity",
                subject: Id::client_order(o.id).as_str().to_string(),
                reason: "duplicate_order",
                detail: "an order with this id was already recorded; kept the first".into(),
            });
            return Ok(());
        }
        let mut instruction_seq = None;
        let mut awaits = false;
        if o.leader_event_key != 0 {
            match self.input.kind {
                InputKind::LeaderFill { event_key } if event_key == o.leader_event_key => {
                    awaits = true
                }
                // A resync's order: its decision comes right after.
                InputKind::Tick => awaits = true,
                // A retry: the instruction of the order it retries.
                InputKind::Exec { order_id } => {
                    if let Some(c) = self.cached(order_id, store)? {
                        if c.order.event_key == o.leader_event_key && c.order.sub == o.sub.0 {
                            instruction_seq = c.order.instruction_seq;
                        }
                    }
                }
                _ => {}
            }
        }
        self.orders.insert(
            o.id,
            Cached {
                order: Order {
                    id: o.id,
                    seq,
                    instruction_seq,
                    event_key: o.leader_event_key,
                    sub: o.sub.0,
                    follower: o.follower.0,
                    symbol: o.symbol.0,
                    side: o.side,
                    qty: o.qty.0,
                    limit: o.limit.0,
                    order_type: o.order_type,
                    reduce_only: o.reduce_only,
                    state: OrderState::New,
                    filled: 0,
                    reject: None,
                },
                trades: Vec::new(),
                dirty: false,
            },
        );
        self.mark_order_dirty(o.id);
        if awaits {
            self.awaiting.push(o.id);
        }
        Ok(())
    }

    /// The core took over an order the venue held and the journal had lost
    /// (`Core::adopt`, on the `Restated` report just before): so does the sidecar.
    fn take_over(&mut self, chk: &Check, order_id: u64) -> Result<(), SidecarError> {
        let Some((seq, r)) = self.restated_unknown.take() else {
            return Ok(());
        };
        if r.order_id != order_id || self.orders.contains_key(&order_id) {
            return Ok(());
        }
        let sub = fillcast_engine::ids::order_sub(order_id);
        let sub32 = u32::try_from(sub).map_err(|_| bad(chk.seq, "subscription out of range"))?;
        chk.sub(sub32)?;
        let symbol = u16::try_from(r.trade_id).map_err(|_| bad(chk.seq, "symbol out of range"))?;
        chk.symbol(symbol)?;
        let follower = chk.u.subs[sub].follower.0;
        self.orders.insert(
            order_id,
            Cached {
                order: Order {
                    id: order_id,
                    seq,
                    instruction_seq: None,
                    event_key: 0,
                    sub: sub32,
                    follower,
                    symbol,
                    side: Side::from_sign(r.qty.0),
                    qty: r.qty.0.saturating_abs(),
                    limit: r.price.0,
                    order_type: OrderType::LimitIoc,
                    reduce_only: false,
                    state: OrderState::Acked,
                    filled: 0,
                    reject: None,
                },
                trades: Vec::new(),
                dirty: false,
            },
        );
        self.mark_order_dirty(order_id);
        Ok(())
    }

    fn notice(
        &mut self,
        chk: &Check,
        seq: i64,
        n: &Notice,
        batch: &mut Batch,
    ) -> Result<(), SidecarError> {
        let ts = to_i64(chk.seq, "timestamp", self.input.ts)?;
        if let Notice::Odd {
            order_id,
            oddity: Oddity::VenueHeldOther,
        } = *n
        {
            self.take_over(chk, order_id)?;
        }
        let order = |id: u64| Id::client_order(id).as_str().to_string();
        let (kind, subject, reason, detail) = match *n {
            Notice::Stopped { sub, reason } => {
                ("stop", chk.sub(sub.0)?.to_string(), reason.as_str(), "")
            }
            Notice::Odd { order_id, oddity } => ("oddity", order(order_id), oddity.name(), ""),
            Notice::Rejected {
                order_id,
                reason,
                retried,
            } => (
                "reject",
                order(order_id),
                reason.as_str(),
                if retried { "retried" } else { "" },
            ),
            Notice::OutOfSync { sub, symbol, why } => (
                "out_of_sync",
                chk.sub(sub.0)?.to_string(),
                why.as_str(),
                chk.symbol(symbol.0)?,
            ),
            Notice::VenueLink { venue, up } => (
                if up { "venue_up" } else { "venue_down" },
                chk.venue(venue.0)?.to_string(),
                if up { "reconnected" } else { "venue_down" },
                "",
            ),
            Notice::VenueAlarm {
                venue,
                down_ns,
                stop,
            } => {
                batch.audit.push(AuditRow {
                    seq,
                    ts,
                    kind: "venue_alarm",
                    subject: chk.venue(venue.0)?.to_string(),
                    reason: if stop { "engine_stopped" } else { "venue_down" },
                    detail: format!("down {} ms", down_ns / 1_000_000),
                });
                return Ok(());
            }
        };
        batch.audit.push(AuditRow {
            seq,
            ts,
            kind,
            subject,
            reason,
            detail: detail.to_string(),
        });
        Ok(())
    }

    /// Moves the latest state of everything that changed into `batch`, and puts
    /// the rows keyed by a client order id (a hash: random) in key order, so that
    /// the database inserts them into its index in one sweep, not all over it.
    pub fn take_dirty(&mut self, batch: &mut Batch) {
        for id in self.dirty_orders.drain(..) {
            if let Some(c) = self.orders.get_mut(&id) {
                c.dirty = false;
                batch.orders.push(c.order);
            }
        }
        // Each order is in the batch once; of two reports of one trade (a
        // hostile journal), the stable sort keeps the first first.
        batch.orders.sort_unstable_by_key(|o| o.id);
        batch.fills.sort_by_key(|f| (f.order_id, f.trade_id));
        for key in self.dirty_positions.drain(..) {
            if let Some((p, dirty)) = self.positions.get_mut(&key) {
                *dirty = false;
                batch.positions.push(*p);
            }
        }
        for key in self.dirty_leader.drain(..) {
            if let Some(p) = self.leader_pos.get_mut(&key) {
                p.dirty = false;
                batch.leader_positions.push(LeaderPositionRow {
                    leader: key.0,
                    symbol: key.1,
                    qty: p.qty,
                    updated_seq: p.updated_seq,
                });
            }
        }
    }

    /// After a write: forgets finished orders (SQL has them) past the cache bound.
    pub fn evict(&mut self) {
        if self.orders.len() <= ORDER_CACHE_MAX {
            return;
        }
        let awaiting = &self.awaiting;
        self.orders
            .retain(|id, c| !c.order.state.is_terminal() || awaiting.contains(id));
        if self.orders.len() > ORDER_CACHE_MAX {
            self.orders.retain(|id, _| awaiting.contains(id));
        }
    }
}

fn parse_lots(text: &str, lot_size: Decimal) -> Option<i64> {
    let d = parse_decimal(text)?;
    Lots::from_decimal(d, lot_size).ok().map(|l| l.0)
}

/// Index checks against the config in force, naming the record on failure.
struct Check<'a> {
    u: &'a Universe,
    seq: u64,
}

impl<'a> Check<'a> {
    fn missing(&self, what: &str, i: u64, n: usize) -> SidecarError {
        bad(
            self.seq,
            format!("{what} index {i} is not in the config ({n} {what}s)"),
        )
    }

    fn leader(&self, i: u32) -> Result<&'a str, SidecarError> {
        if (i as usize) < self.u.leaders.len() {
            Ok(leader_name(self.u, i))
        } else {
            Err(self.missing("leader", i.into(), self.u.leaders.len()))
        }
    }

    fn follower(&self, i: u32) -> Result<&'a str, SidecarError> {
        if (i as usize) < self.u.followers.len() {
            Ok(follower_name(self.u, i))
        } else {
            Err(self.missing("follower", i.into(), self.u.followers.len()))
        }
    }

    fn sub(&self, i: u32) -> Result<&'a str, SidecarError> {
        if (i as usize) < self.u.subs.len() {
            Ok(sub_name(self.u, i))
        } else {
            Err(self.missing("subscription", i.into(), self.u.subs.len()))
        }
    }

    fn venue(&self, i: u16) -> Result<&'a str, SidecarError> {
        self.u
            .venues
            .get(i as usize)
            .map(|v| v.name.as_str())
            .ok_or_else(|| self.missing("venue", i as u64, self.u.venues.len()))
    }

    fn symbol(&self, i: u16) -> Result<&'a str, SidecarError> {
        if (i as usize) < self.u.symbols.len() {
            Ok(symbol_name(self.u, i))
        } else {
            Err(self.missing("symbol", i.into(), self.u.symbols.len()))
        }
    }
}
