//! The risk filter: how much of an increase of exposure a follower may take, and
//! the reason code when it is cut or refused. Reductions never come here: they
//! always pass. Pure integer arithmetic on what the core's tables hold, so it can
//! be tested and benchmarked alone (`engine/benches/kernels.rs`).

use crate::outputs::Reason;
use crate::units::{lots_within, notional, Lots, Money, Ticks};

/// What the filter reads about one subscription, its follower and the increase.
/// `Money::MAX` / `u32::MAX` mean "no limit".
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RiskInput {
    /// Lots wanted (> 0) on top of `held` lots (both absolute).
    pub want: Lots,
    pub held: Lots,
    pub price: Ticks,
    /// Money per lot per tick (`SymbolSpec::money_per_lot_tick`).
    pub money_per_lot_tick: i64,
    pub min_qty: Lots,
    pub min_notional: Money,
    /// The opening leg of a flip (it does not open a new position).
    pub is_flip: bool,
    /// A refusal for every follower of this fill (kill switch, leader paused,
    /// leader profile), or `Reason::None`.
    pub blocked: Reason,
    pub sub_paused: bool,
    pub follower_paused: bool,
    pub symbol_allowed: bool,
    pub daily_loss_limit: Money,
    pub realized_today: Money,
    pub open_positions: u32,
    pub max_open_positions: u32,
    pub max_order_notional: Money,
    pub max_position_notional: Money,
    /// The follower's gross exposure, and the part of it this subscription's
    /// position in this symbol added when it last traded.
    pub follower_gross: Money,
    pub own_exposure: Money,
    pub max_gross: Money,
}

/// What the filter allowed: `qty` lots (0 = skipped) and why it is less than
/// wanted (`Reason::None` if it is not).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub qty: Lots,
    pub reason: Reason,
}

/// The filter, in DESIGN.md's order: refusals first (paused, symbol blocked,
/// daily loss, open positions), then cuts (order notional, position notional,
/// leverage), then the venue minimum on what is left.
#[inline(always)]
pub fn allow_increase(r: &RiskInput) -> Allowed {
    let skip = |reason| Allowed {
        qty: Lots::ZERO,
        reason,
    };
    if r.blocked != Reason::None {
        return skip(r.blocked);
    }
    if r.sub_paused || r.follower_paused {
        return skip(Reason::FollowerPaused);
    }
    if !r.symbol_allowed {
        return skip(Reason::SymbolBlocked);
    }
    if r.daily_loss_limit != Money::MAX && r.realized_today <= -r.daily_loss_limit {
        return skip(Reason::DailyLossLimit);
    }
    if r.held.is_zero() && !r.is_flip && r.open_positions >= r.max_open_positions {
        return skip(Reason::MaxOpenPositions);
    }
    debug_assert!(r.want > Lots::ZERO && r.held >= Lots::ZERO, "{r:?}");
    let (price, per_lot_tick, held) = (r.price, r.money_per_lot_tick, r.held);
    let value = |qty: Lots| notional(qty, price, per_lot_tick);
    let within = |cap: Money| lots_within(cap, price, per_lot_tick);
    let mut qty = r.want;
    let mut reason = Reason::None;
    if value(qty) > r.max_order_notional {
        qty = within(r.max_order_notional);
        reason = Reason::MaxOrderNotional;
    }
    if value(held + qty) > r.max_position_notional {
        qty = qty.min((within(r.max_position_notional) - held).max(Lots::ZERO));
        reason = Reason::MaxPosition;
    }
    // The follower's gross exposure with this position revalued at the current
    // price (other symbols count at the price of their last order or fill).
    let gross = r
        .follower_gross
        .saturating_sub(r.own_exposure)
        .saturating_add(value(held));
    if r.max_gross != Money::MAX && gross.saturating_add(value(qty)) > r.max_gross {
        qty = qty.min(within(r.max_gross.saturating_sub(gross)));
        reason = Reason::MaxLeverage;
    }
    if qty.is_zero() {
        return skip(reason);
    }
    if qty < r.min_qty || value(qty) < r.min_notional {
        return skip(Reason::BelowMin);
    }
    // Paired with the cuts above: what passes is no more than wanted and within
    // every cap that cut it.
    debug_assert!(Lots::ZERO < qty && qty <= r.want);
    debug_assert!(value(qty) <= r.max_order_notional);
    debug_assert!(reason != Reason::MaxPosition || value(held + qty) <= r.max_position_notional);
    Allowed { qty, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> RiskInput {
        RiskInput {
            want: Lots(100),
            held: Lots(0),
            price: Ticks(1_000),
            money_per_lot_tick: 10, // 1 lot at 1,000 ticks = 10,000 money
            min_qty: Lots(1),
            min_notional: Money(0),
            symbol_allowed: true,
            daily_loss_limit: Money::MAX,
            max_open_positions: u32::MAX,
            max_order_notional: Money::MAX,
            max_position_notional: Money::MAX,
            max_gross: Money::MAX,
            ..RiskInput::default()
        }
    }

    #[test]
    fn each_limit_cuts_or_refuses_with_its_reason() {
        let all = |r: RiskInput| allow_increase(&r);
        assert_eq!(
            all(open()),
            Allowed {
                qty: Lots(100),
                reason: Reason::None
            }
        );
        type Case = (fn(&mut RiskInput), i64, Reason);
        let cases: &[Case] = &[
            (|r| r.blocked = Reason::KillSwitch, 0, Reason::KillSwitch),
            (|r| r.sub_paused = true, 0, Reason::FollowerPaused),
            (|r| r.follower_paused = true, 0, Reason::FollowerPaused),
            (|r| r.symbol_allowed = false, 0, Reason::SymbolBlocked),
            (
                |r| (r.daily_loss_limit, r.realized_today) = (Money(500), Money(-500)),
                0,
                Reason::DailyLossLimit,
            ),
            (
                |r| (r.daily_loss_limit, r.realized_today) = (Money(500), Money(-499)),
                100,
                Reason::None,
            ),
            (|r| r.max_open_positions = 0, 0, Reason::MaxOpenPositions),
            (
                |r| (r.max_open_positions, r.is_flip) = (0, true),
                100,
                Reason::None,
            ),
            (
                |r| r.max_order_notional = Money(255_000),
                25,
                Reason::MaxOrderNotional,
            ),
            (
                |r| (r.max_position_notional, r.held) = (Money(300_000), Lots(20)),
                10,
                Reason::MaxPosition,
            ),
            (
                |r| (r.max_gross, r.follower_gross) = (Money(1_000_000), Money(900_000)),
                10,
                Reason::MaxLeverage,
            ),
            // The own position is revalued: its old exposure leaves the gross.
            (
                |r| {
                    (r.max_gross, r.follower_gross, r.own_exposure) =
                        (Money(1_000_000), Money(900_000), Money(900_000))
                },
                100,
                Reason::None,
            ),
            (|r| r.min_qty = Lots(101), 0, Reason::BelowMin),
            (|r| r.min_notional = Money(1_000_001), 0, Reason::BelowMin),
            (
                |r| (r.max_order_notional, r.min_qty) = (Money(255_000), Lots(30)),
                0,
                Reason::BelowMin,
            ),
        ];
        for (i, (edit, qty, reason)) in cases.iter().enumerate() {
            let mut r = open();
            edit(&mut r);
            let got = all(r);
            assert_eq!(got.qty, Lots(*qty), "case {i}: {got:?}");
            assert_eq!(got.reason, *reason, "case {i}: {got:?}");
        }
    }

    #[test]
    fn notional_saturates_and_lots_within_never_divides_by_zero() {
        assert_eq!(notional(Lots(i64::MAX), Ticks(i64::MAX), 1), Money::MAX);
        assert_eq!(notional(Lots(-3), Ticks(10), 2), Money(60));
        assert_eq!(lots_within(Money(100), Ticks(0), 0), Lots(100));
        assert_eq!(lots_within(Money(-1), Ticks(10), 1), Lots(0));
        assert_eq!(lots_within(Money(99), Ticks(10), 1), Lots(9));
    }

    /// The product of three 63-bit factors does not fit an i128: a venue price
    /// near i64::MAX on a large position overflowed the notional's
    /// multiplication (a panic in debug builds, a wrapped value in release).
    #[test]
    fn regression_notional_of_a_huge_price_saturates_instead_of_overflowing() {
        let m = 1 << 20;
        assert_eq!(notional(Lots(1 << 48), Ticks(i64::MAX), m), Money::MAX);
        assert_eq!(
            notional(Lots(-(1 << 48)), Ticks(i64::MAX), i64::MAX),
            Money::MAX
        );
        assert_eq!(
            notional(Lots(i64::MIN), Ticks(i64::MIN), i64::MAX),
            Money::MAX
        );
        // Just below the line, exact.
        assert_eq!(
            notional(Lots(3), Ticks(i64::MAX / 3), 1),
            Money(i64::MAX / 3 * 3)
        );
        assert_eq!(notional(Lots(0), Ticks(i64::MAX), i64::MAX), Money(0));
    }
}
