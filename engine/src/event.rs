//! The fixed-size, `Copy` events that travel on the rings.
//!
//! Ingress: `FeedEvent` (leader fills, marks, funding, equity updates, commands) on
//! the feed ring, `ExecReport` on the exec ring. Egress: `OrderChunk` (up to `ORDER_CHUNK`
//! follower orders) on each gateway's ring. Nothing here owns heap memory.

use crate::model::{FollowerIdx, LeaderIdx, Side, SubIdx, SymbolIdx, VenueIdx};
use crate::units::{FundingRate, Lots, Money, Nanos, Ticks};

/// A leader's fill, already resolved to indices and integer units by its source.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderFill {
    pub leader: LeaderIdx,
    pub symbol: SymbolIdx,
    pub side: Side,
    /// Filled quantity, > 0.
    pub qty: Lots,
    pub price: Ticks,
    /// `ids::leader_event_key(leader, event_id)`; duplicates are ignored.
    pub event_key: u64,
    /// Hash of the leader's order id, 0 when the venue does not send one.
    pub order_key: u64,
    /// The leader order's total quantity; `Lots(0)` when unknown (the fill counts as its own order).
    pub order_qty: Lots,
    pub venue_ts: Nanos,
    pub recv_ts: Nanos,
    /// Who made the order that filled: the leader, or the venue closing its
    /// position. Lineage only: the copy is the same whatever the kind.
    pub kind: FillKind,
}

/// Who made a leader's fill, as its source tells. Every kind changes the
/// leader's position like any fill and is copied like any fill (the followers
/// follow the leader's position, whoever moved it); the kind decides nothing
/// and is kept for lineage (the journal, `leader_fills.kind`, the reports).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum FillKind {
    /// An order of the leader's own: what every source says unless it knows better.
    #[default]
    Trade,
    /// The venue liquidated the position.
    Liquidation,
    /// The venue's auto-deleveraging closed the position against a liquidation.
    Adl,
    /// The venue closed the position at a contract's settlement (delivery, delisting).
    Settlement,
    /// The source could not tell (a fill recovered from a history that does not
    /// name the order that made it).
    Unknown,
}

impl FillKind {
    /// Its stable name (`codes::Coded::name`): SQL's `leader_fills.kind`.
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
    }
}

/// Operator commands (`fillcast ctl`, or injected by tests). Pausing blocks new
/// exposure only: reductions still follow the leader. Stopping closes the copied
/// positions and copies nothing more; flattening closes them and pauses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Command {
    PauseSubscription(SubIdx),
    ResumeSubscription(SubIdx),
    StopSubscription(SubIdx),
    PauseLeader(LeaderIdx),
    ResumeLeader(LeaderIdx),
    /// Stop opening anything, for everyone (closes still go out).
    KillSwitch,
    /// Bring every symbol of a subscription back to its target now, with fresh
    /// attempts (after a person fixed what marked it out of sync).
    Resync(SubIdx),
    /// Every subscription of a follower, as the subscription commands do.
    PauseFollower(FollowerIdx),
    /// The follower and each of its paused subscriptions (after a pause or a
    /// flatten of either); stopped ones stay stopped.
    ResumeFollower(FollowerIdx),
    StopFollower(FollowerIdx),
    /// Every subscription of a leader.
    StopLeader(LeaderIdx),
    /// Lift the kill switch.
    KillSwitchOff,
    /// Close a subscription's copied positions now and pause it: it stays flat
    /// until resumed, and then copies from the leader's next fill.
    Flatten(SubIdx),
    /// `Flatten` for every subscription of a follower.
    FlattenFollower(FollowerIdx),
    /// A person asked for a reload: records who, right before the revision's
    /// config records (which carry no sender). Changes nothing itself.
    Reload,
}

/// `FeedEvent::Command::by` when no person sent the command (tests, simulation,
/// journals written before commands said who sent them).
pub const NO_SENDER: u32 = u32::MAX;

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum FeedEvent {
    /// An empty ring slot.
    #[default]
    Empty,
    LeaderFill(LeaderFill),
    MarkPrice {
        symbol: SymbolIdx,
        price: Ticks,
        ts: Nanos,
    },
    LeaderEquity {
        leader: LeaderIdx,
        equity: Money,
        ts: Nanos,
    },
    /// A follower's account equity: its `max_leverage` limit follows it
    /// (`max_gross = max_leverage × equity`, from the next decision on).
    FollowerEquity {
        follower: FollowerIdx,
        equity: Money,
        ts: Nanos,
    },
    Command {
        cmd: Command,
        ts: Nanos,
        /// The sender's uid (checked by the control socket), or `NO_SENDER`.
        by: u32,
    },
    /// Time passing, for the resync's backoff and the venue-down alarm. The core
    /// reads no clock: its thread makes a tick when the core asks for one
    /// (`Core::wake_at`), and the tick is journaled like any input, so a replay
    /// makes the same resync decisions.
    Tick {
        ts: Nanos,
    },
    /// Where source `source` (its place in `[[sources]]`) stands after everything it
    /// produced before this event: a file's byte offset, a generator's count. The
    /// I/O thread puts one behind each turn's events, so the journal holds each
    /// source's position with the events it produced and a restart resumes the
    /// source there (`Source::resume`). Decides nothing.
    SourceCursor {
        source: u16,
        pos: u64,
    },
    /// The operator's reload (`fillcast ctl reload`, SIGHUP): the core takes the
    /// decision model's revision `revision`, handed over beside the ring
    /// (`pipeline::Reloads`), between this event and the next. Journaled as that
    /// revision's config records, which a replay applies at the same place.
    Revision {
        revision: u64,
        ts: Nanos,
    },
    /// A venue's gateway lost (`up: false`) or regained its session. Travels on the
    /// exec ring, which the core always drains, and is journaled like any input.
    Venue {
        venue: VenueIdx,
        up: bool,
        ts: Nanos,
    },
    /// A perpetual's funding at `ts`: every position open in `symbol` then pays
    /// (a long, for a positive rate) or receives `qty × price × rate`. Moves no
    /// position and decides nothing: journaled so that the sidecar can record
    /// each holder's payment (`funding_payments`) from the positions at this
    /// point of the journal.
    Funding {
        symbol: SymbolIdx,
        rate: FundingRate,
        /// The mark price the rate applies to.
        price: Ticks,
        ts: Nanos,
    },
}

/// What the I/O thread hands the core stage on the exec ring: a venue's report, or
/// a change of a venue's link, which must reach the core even while it takes no
/// feed events (backpressure).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ExecEvent {
    #[default]
    Empty,
    Report(ExecReport),
    /// `FeedEvent::Venue`.
    Venue(FeedEvent),
}

/// What a venue said about one follower order.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ExecKind {
    #[default]
    Ack,
    /// A (partial) fill of `qty` at `price`, identified by `trade_id`.
    Fill,
    /// Canceled by the venue (an IOC remainder, a cancel, a disconnect).
    Canceled,
    Rejected,
    Expired,
    /// The venue's statement of an order it holds, asked after a journal cut
    /// (`Gateway::recover`): `qty` is the order's quantity as the venue received
    /// it, negative for a sell. A decision made again after a cut carries the same
    /// id as the order that left before it but may differ in size or side (reports
    /// arrived in another order); the venue's version wins (`Core::on_exec`).
    Restated,
}

/// Why a venue rejected an order, grouped by what the engine should do about it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum RejectReason {
    #[default]
    None,
    /// Margin or balance insufficient: mark the subscription out of sync.
    InsufficientMargin,
    /// Below the venue's minimum quantity or notional.
    BelowMin,
    /// Over the venue's position limit.
    PositionLimit,
    /// A reduce-only order that would not reduce.
    ReduceOnly,
    /// Rate limited, timed out, or outcome unknown: retry with a fresh id.
    Transient,
    Other,
    /// Asked after a restart, the venue says it never received this order.
    UnknownOrder,
    /// Never sent: the gateway had no working session with its venue. The order
    /// did not leave, so sending the catch-up again with a fresh id is safe.
    VenueDown,
}

impl RejectReason {
    pub fn is_transient(self) -> bool {
        matches!(self, RejectReason::Transient)
    }

    /// Its stable name (`codes::Coded::name`).
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecReport {
    /// The engine's order id (see `ids::client_order_id`).
    pub order_id: u64,
    pub kind: ExecKind,
    /// For fills: the quantity of this fill.
    pub qty: Lots,
    /// For fills: the price of this fill.
    pub price: Ticks,
    /// For fills: the venue's trade id; fills are de-duplicated on it.
    pub trade_id: u64,
    pub fee: Money,
    pub reject: RejectReason,
    pub venue_ts: Nanos,
    pub recv_ts: Nanos,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OrderType {
    /// Immediate-or-cancel limit at `limit`.
    #[default]
    LimitIoc,
    Market,
}

/// One follower order, as handed to a gateway.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowerOrder {
    /// The decision id; the client order id is `ids::client_order_id(id)`.
    pub id: u64,
    pub sub: SubIdx,
    pub follower: FollowerIdx,
    pub symbol: SymbolIdx,
    pub side: Side,
    /// > 0.
    pub qty: Lots,
    pub order_type: OrderType,
    /// The limit price for `LimitIoc`; for `Market`, the leader's price (for reference).
    pub limit: Ticks,
    pub reduce_only: bool,
    /// The leader event this order copies (0 for stops and retries of stops).
    pub leader_event_key: u64,
    /// The engine's time when it made the order (its receive clock).
    pub ts: Nanos,
    /// The venue's time of the input that made the order: the copied leader
    /// fill's `venue_ts`, else (a resync, a stop) the latest venue time the core
    /// has seen in a fill or a mark; 0 when unknown. With `ref_price`, what the
    /// simulated venue prices and stamps the order by, so that a replay of a
    /// history trades in the history's market and time, not the wall clock's.
    /// A hint derived from the inputs, like `ref_price`: not journaled (an order
    /// read back from a journal has 0), and not compared by a replay.
    pub venue_ts: Nanos,
    /// The price the decision copied: the leader fill's price, else the
    /// symbol's last known price (its mark or latest fill).
    pub ref_price: Ticks,
}

impl FollowerOrder {
    /// The order without its market hints (`venue_ts`, `ref_price`): what the
    /// journal holds of it.
    pub fn journaled(&self) -> FollowerOrder {
        FollowerOrder {
            venue_ts: Nanos(0),
            ref_price: Ticks(0),
            ..*self
        }
    }
}

/// Orders per egress ring slot. Chunking amortises the ring's per-slot cost and lets
/// a gateway see orders before the whole fan-out of a leader fill is done.
pub const ORDER_CHUNK: usize = 32;

#[derive(Copy, Clone, Debug)]
pub struct OrderChunk {
    pub len: u32,
    /// Journal chunks that must be appended before these orders may leave.
    pub journal_upto: u64,
    pub orders: [FollowerOrder; ORDER_CHUNK],
}

impl Default for OrderChunk {
    fn default() -> Self {
        OrderChunk {
            len: 0,
            journal_upto: 0,
            orders: [FollowerOrder::default(); ORDER_CHUNK],
        }
    }
}

impl OrderChunk {
    pub fn as_slice(&self) -> &[FollowerOrder] {
        &self.orders[..self.len as usize]
    }
}

// A feed ring slot is one `FeedEvent`, a cache line: the fill's kind sits in
// the fill's padding, and the event's tag in the niches of its enums.
const _: () = assert!(std::mem::size_of::<LeaderFill>() == 64);
const _: () = assert!(std::mem::size_of::<FeedEvent>() == 64);
