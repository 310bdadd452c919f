//! The core's vocabulary: what it decides and says about each input (`Decision`,
//! its `DecisionStatus` and `Reason`, the resync's `SyncReason`, `Notice`), and the
//! `Outputs` it says them to. The risk kernel, the ports, the journal, the sidecar
//! and the reports speak it; none of them needs the core itself.

use crate::event::{FollowerOrder, RejectReason};
use crate::model::{SubIdx, SymbolIdx, VenueIdx};
use crate::order::Oddity;
use crate::units::Lots;

/// Why an instruction was skipped or reduced. The strings are a public interface.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    #[default]
    None,
    /// The follower already holds its target: nothing to send.
    NoChange,
    FollowerPaused,
    FollowerStopped,
    LeaderPaused,
    SymbolBlocked,
    MaxOrderNotional,
    MaxPosition,
    MaxLeverage,
    MaxOpenPositions,
    BelowMin,
    DailyLossLimit,
    TotalStopLoss,
    LeaderDrawdown,
    LeaderProfile,
    KillSwitch,
    /// A resync sent less than the catch-up because the venue refused the full
    /// size (`engine.resync` policy `reduce`).
    VenueLimit,
    /// No place in the order table (`engine.orders_per_subscription`,
    /// `engine.max_working_orders`): the order waits for the resync (`deferred`).
    OrderTableFull,
    /// The symbol's venue is down: the order waits for the resync (`deferred`).
    VenueDown,
    /// A leader fill in a symbol a reload removed (taken by a source before the
    /// revision): not copied (`skipped`).
    SymbolRemoved,
}

impl Reason {
    /// Its stable name (`codes::Coded::name`).
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum DecisionStatus {
    #[default]
    Sent,
    Reduced,
    Skipped,
    /// Not sent yet, for a reason that heals (`venue_down`, `order_table_full`): the
    /// resync sends the catch-up when it can.
    Deferred,
}

impl DecisionStatus {
    /// Its stable name (`codes::Coded::name`).
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
    }
}

/// Why a (subscription, symbol) pair's held quantity differs from its target for
/// a reason that can heal, so the resync brings it back. On a decision, why the
/// resync made it (`None`: a leader fill did).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum SyncReason {
    #[default]
    None,
    /// Part of an order ended unfilled (an IOC remainder canceled, an expiry).
    Unfilled,
    /// The venue rejected an order.
    Rejected(RejectReason),
    /// No place in the order table for an order made outside a leader fill.
    Capacity,
    /// The venue was down: the order was not sent, or the decision was deferred.
    VenueDown,
    /// A person asked (`Command::Resync`).
    Command,
    /// The venue held an order under a decision's id with other terms, and they
    /// were taken (`ExecKind::Restated`): the pair's gap is no longer that order's.
    VenueHeldOther,
    /// A reload: a removed subscription's positions closing (`engine.on_remove =
    /// "close"`), or a new one opening the leader's (`copy_open_positions`).
    Revision,
    /// A reload removed the subscription and `engine.on_remove = "keep"` left its
    /// positions: not a gap the resync closes.
    Kept,
}

impl SyncReason {
    /// The stable string of this reason (`reject_<venue reason>` for rejects).
    pub fn as_str(self) -> &'static str {
        match self {
            SyncReason::None => "",
            SyncReason::Unfilled => "unfilled",
            SyncReason::Capacity => "order_table_full",
            SyncReason::VenueDown => "venue_down",
            SyncReason::Command => "command",
            SyncReason::VenueHeldOther => "venue_held_other",
            SyncReason::Revision => "revision",
            SyncReason::Kept => "removed_kept",
            SyncReason::Rejected(r) => match r {
                RejectReason::None => "reject",
                RejectReason::InsufficientMargin => "reject_insufficient_margin",
                RejectReason::BelowMin => "reject_below_min",
                RejectReason::PositionLimit => "reject_position_limit",
                RejectReason::ReduceOnly => "reject_reduce_only",
                RejectReason::Transient => "reject_transient",
                RejectReason::Other => "reject_other",
                RejectReason::UnknownOrder => "reject_unknown_order",
                RejectReason::VenueDown => "venue_down",
            },
        }
    }

    /// A one-byte code for journals: 0–7 the plain reasons, 16 + n a reject whose
    /// code (`codes::Coded`) is n.
    pub fn code(self) -> u8 {
        match self {
            SyncReason::None => 0,
            SyncReason::Unfilled => 1,
            SyncReason::Capacity => 2,
            SyncReason::VenueDown => 3,
            SyncReason::Command => 4,
            SyncReason::VenueHeldOther => 5,
            SyncReason::Revision => 6,
            SyncReason::Kept => 7,
            SyncReason::Rejected(r) => 16 + crate::codes::Coded::code(r),
        }
    }

    pub fn from_code(c: u8) -> Option<SyncReason> {
        Some(match c {
            0 => SyncReason::None,
            1 => SyncReason::Unfilled,
            2 => SyncReason::Capacity,
            3 => SyncReason::VenueDown,
            4 => SyncReason::Command,
            5 => SyncReason::VenueHeldOther,
            6 => SyncReason::Revision,
            7 => SyncReason::Kept,
            16.. => SyncReason::Rejected(crate::codes::Coded::from_code(c - 16)?),
            _ => return None,
        })
    }
}

/// The decision for one (leader fill, subscription).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub event_key: u64,
    pub sub: SubIdx,
    pub symbol: SymbolIdx,
    /// Target position after this fill.
    pub target: Lots,
    /// `T − F`: what the model asked for.
    pub delta: Lots,
    /// What was sent (signed sum of the legs).
    pub sent: Lots,
    pub status: DecisionStatus,
    pub reason: Reason,
    pub revision: u64,
    /// Why the resync made this decision; `None` for a leader fill's.
    pub resync: SyncReason,
}

/// Something worth an audit line that is not a per-fill decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Stopped {
        sub: SubIdx,
        reason: Reason,
    },
    Odd {
        order_id: u64,
        oddity: Oddity,
    },
    Rejected {
        order_id: u64,
        reason: RejectReason,
        retried: bool,
    },
    /// The resync gave up on a pair (attempts spent, or a policy said so): it stays
    /// off its target, for this reason, until a person (`Command::Resync`) or the
    /// leader's next fill in the symbol.
    OutOfSync {
        sub: SubIdx,
        symbol: SymbolIdx,
        why: SyncReason,
    },
    /// A venue's link changed (the gateway lost it, or has it back with its
    /// in-flight orders settled). Only changes: a link reported as it already was
    /// (every start reports them all) makes none.
    VenueLink {
        venue: VenueIdx,
        up: bool,
    },
    /// A venue has been down for `engine.venue_down_alarm_ms`; `stop` when
    /// `engine.on_venue_down = "stop"` made the engine stop.
    VenueAlarm {
        venue: VenueIdx,
        down_ns: u64,
        stop: bool,
    },
}

/// Where the core stage's output goes: an egress ring in the pipeline, a vector in tests.
pub trait Outputs {
    fn order(&mut self, order: &FollowerOrder);
    fn decision(&mut self, _decision: &Decision) {}
    fn notice(&mut self, _notice: &Notice) {}
}
