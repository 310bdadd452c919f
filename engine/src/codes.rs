//! Stable one-byte codes for the enums that leave the process: the journal's
//! records and the simulated venue's wire store these, never an enum's position in
//! a list, so a variant added anywhere changes no existing journal. Each enum's
//! codes are written here once; `code` matches every variant, so a new variant
//! without a code does not compile, and `every_code_is_distinct_and_roundtrips`
//! refuses a code given twice.

use crate::event::{ExecKind, FillKind, OrderType, RejectReason};
use crate::model::{Mode, Side};
use crate::order::{Oddity, OrderState};
use crate::outputs::{DecisionStatus, Reason};

/// An enum with a stable code and a stable name per variant. The name is what
/// SQL, JSON, reports and messages show; both are public interfaces.
pub trait Coded: Copy + PartialEq + std::fmt::Debug + 'static {
    /// Every variant, in code order.
    const ALL: &'static [Self];

    fn code(self) -> u8;

    fn name(self) -> &'static str;

    fn from_code(c: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.code() == c)
    }

    fn from_name(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.name() == s)
    }
}

macro_rules! coded {
    ($t:ident { $($v:ident = $c:literal => $n:literal),* $(,)? }) => {
        impl Coded for $t {
            const ALL: &'static [Self] = &[$($t::$v),*];

            #[inline]
            fn code(self) -> u8 {
                match self {
                    $($t::$v => $c),*
                }
            }

            fn name(self) -> &'static str {
                match self {
                    $($t::$v => $n),*
                }
            }
        }
    };
}

coded!(Side { Buy = 0 => "buy", Sell = 1 => "sell" });

// The names are also the config's (`ModeConfig`, serde's snake case) and SQL's
// `subscriptions.mode`.
coded!(Mode {
    Proportional = 0 => "proportional",
    FixedRatio = 1 => "fixed_ratio",
    FixedAmount = 2 => "fixed_amount",
    FixedLeverage = 3 => "fixed_leverage",
});

coded!(ExecKind {
    Ack = 0 => "ack",
    Fill = 1 => "fill",
    Canceled = 2 => "canceled",
    Rejected = 3 => "rejected",
    Expired = 4 => "expired",
    Restated = 5 => "restated",
});

coded!(RejectReason {
    None = 0 => "none",
    InsufficientMargin = 1 => "insufficient_margin",
    BelowMin = 2 => "below_min",
    PositionLimit = 3 => "position_limit",
    ReduceOnly = 4 => "reduce_only",
    Transient = 5 => "transient",
    Other = 6 => "other",
    UnknownOrder = 7 => "unknown_order",
    VenueDown = 8 => "venue_down",
});

// The names are also SQL's `leader_fills.kind` and the file source's `kind`.
coded!(FillKind {
    Trade = 0 => "trade",
    Liquidation = 1 => "liquidation",
    Adl = 2 => "adl",
    Settlement = 3 => "settlement",
    Unknown = 4 => "unknown",
});

coded!(OrderType {
    LimitIoc = 0 => "limit_ioc",
    Market = 1 => "market"
});

coded!(DecisionStatus {
    Sent = 0 => "sent",
    Reduced = 1 => "reduced",
    Skipped = 2 => "skipped",
    Deferred = 3 => "deferred",
});

// Not on disk as a code (SQL holds the name); coded for its one name table.
coded!(OrderState {
    New = 0 => "new",
    Acked = 1 => "acked",
    PartiallyFilled = 2 => "partially_filled",
    Filled = 3 => "filled",
    Canceled = 4 => "canceled",
    Rejected = 5 => "rejected",
    Expired = 6 => "expired",
});

coded!(Oddity {
    None = 0 => "none",
    FillBeforeAck = 1 => "fill_before_ack",
    LateAck = 2 => "late_ack",
    FillAfterTerminal = 3 => "fill_after_terminal",
    RepeatedTerminal = 4 => "repeated_terminal",
    VenueHeldOther = 5 => "venue_held_other",
});

coded!(Reason {
    None = 0 => "",
    NoChange = 1 => "no_change",
    FollowerPaused = 2 => "follower_paused",
    FollowerStopped = 3 => "follower_stopped",
    LeaderPaused = 4 => "leader_paused",
    SymbolBlocked = 5 => "symbol_blocked",
    MaxOrderNotional = 6 => "max_order_notional",
    MaxPosition = 7 => "max_position",
    MaxLeverage = 8 => "max_leverage",
    MaxOpenPositions = 9 => "max_open_positions",
    BelowMin = 10 => "below_min",
    DailyLossLimit = 11 => "daily_loss_limit",
    TotalStopLoss = 12 => "total_stop_loss",
    LeaderDrawdown = 13 => "leader_drawdown",
    LeaderProfile = 14 => "leader_profile",
    KillSwitch = 15 => "kill_switch",
    OrderTableFull = 16 => "order_table_full",
    VenueDown = 17 => "venue_down",
    VenueLimit = 18 => "venue_limit",
    SymbolRemoved = 19 => "symbol_removed",
});

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: Coded>() {
        let mut seen = std::collections::BTreeSet::new();
        for &v in T::ALL {
            assert!(
                seen.insert(v.code()),
                "{v:?}: code {} given twice",
                v.code()
            );
            assert_eq!(T::from_code(v.code()), Some(v));
            assert_eq!(T::from_name(v.name()), Some(v), "{v:?}: name given twice");
        }
        let unused = (0..=u8::MAX).find(|c| !seen.contains(c)).unwrap();
        assert_eq!(T::from_code(unused), None);
    }

    #[test]
    fn every_code_is_distinct_and_roundtrips() {
        check::<Side>();
        check::<Mode>();
        check::<ExecKind>();
        check::<FillKind>();
        check::<RejectReason>();
        check::<OrderType>();
        check::<DecisionStatus>();
        check::<Oddity>();
        check::<OrderState>();
        check::<Reason>();
    }

    #[test]
    fn a_modes_name_is_the_configs() {
        use crate::config::ModeConfig;
        for m in [
            ModeConfig::Proportional,
            ModeConfig::FixedRatio,
            ModeConfig::FixedAmount,
            ModeConfig::FixedLeverage,
        ] {
            let config_name = toml::Value::try_from(m).expect("a string");
            assert_eq!(config_name.as_str(), Some(Mode::from(m).name()));
        }
    }
}
