//! Stable one-byte codes for the enums that leave the process: the journal's
//! records and the simulated venue's wire store these, never an enum's position in
//! a list, so a variant added anywhere changes no existing journal. Each enum's
//! codes are written here once; `code` matches every variant, so a new variant
//! without a code does not compile, and `every_code_is_distinct_and_roundtrips`
//! refuses a code given twice.

use crate::event::{ExecKind, OrderType, RejectReason};
use crate::model::Side;
use crate::order::Oddity;
use crate::outputs::{DecisionStatus, Reason};

/// An enum with a stable code per variant.
pub trait Coded: Copy + PartialEq + std::fmt::Debug + 'static {
    /// Every variant, in code order.
    const ALL: &'static [Self];

    fn code(self) -> u8;

    fn from_code(c: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.code() == c)
    }
}

macro_rules! coded {
    ($t:ident { $($v:ident = $c:literal),* $(,)? }) => {
        impl Coded for $t {
            const ALL: &'static [Self] = &[$($t::$v),*];

            #[inline]
            fn code(self) -> u8 {
                match self {
                    $($t::$v => $c),*
                }
            }
        }
    };
}

coded!(Side { Buy = 0, Sell = 1 });

coded!(ExecKind {
    Ack = 0,
    Fill = 1,
    Canceled = 2,
    Rejected = 3,
    Expired = 4,
    Restated = 5,
});

coded!(RejectReason {
    None = 0,
    InsufficientMargin = 1,
    BelowMin = 2,
    PositionLimit = 3,
    ReduceOnly = 4,
    Transient = 5,
    Other = 6,
    UnknownOrder = 7,
    VenueDown = 8,
});

coded!(OrderType {
    LimitIoc = 0,
    Market = 1
});

coded!(DecisionStatus {
    Sent = 0,
    Reduced = 1,
    Skipped = 2,
    Deferred = 3,
});

coded!(Oddity {
    None = 0,
    FillBeforeAck = 1,
    LateAck = 2,
    FillAfterTerminal = 3,
    RepeatedTerminal = 4,
    VenueHeldOther = 5,
});

coded!(Reason {
    None = 0,
    NoChange = 1,
    FollowerPaused = 2,
    FollowerStopped = 3,
    LeaderPaused = 4,
    SymbolBlocked = 5,
    MaxOrderNotional = 6,
    MaxPosition = 7,
    MaxLeverage = 8,
    MaxOpenPositions = 9,
    BelowMin = 10,
    DailyLossLimit = 11,
    TotalStopLoss = 12,
    LeaderDrawdown = 13,
    LeaderProfile = 14,
    KillSwitch = 15,
    OrderTableFull = 16,
    VenueDown = 17,
    VenueLimit = 18,
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
        }
        let unused = (0..=u8::MAX).find(|c| !seen.contains(c)).unwrap();
        assert_eq!(T::from_code(unused), None);
    }

    #[test]
    fn every_code_is_distinct_and_roundtrips() {
        check::<Side>();
        check::<ExecKind>();
        check::<RejectReason>();
        check::<OrderType>();
        check::<DecisionStatus>();
        check::<Oddity>();
        check::<Reason>();
    }
}
