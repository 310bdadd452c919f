//! The risk filter: how much of an increase of exposure a follower may take, and
//! the reason code when it is cut or refused. Reductions never come here: they
//! always pass. Pure integer arithmetic on what the core's tables hold, so it can
//! be tested and benchmarked alone (`engine/benches/kernels.rs`).

use crate::outputs::Reason;

/// What the filter reads about one subscription, its follower and the increase.
/// Money is in `units::Money` (1e-8); `i64::MAX` / `u32::MAX` mean "no limit".
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct RiskInput {
    /// Lots wanted (> 0) on top of `held` lots (both absolute).
    pub want: i64,
    pub held: i64,
    /// The price in ticks, and money per lot per tick.
    pub px: i64,
    pub mplt: i64,
    pub min_qty: i64,
    pub min_notional: i64,
    /// The opening leg of a flip (it does not open a new position).
    pub is_flip: bool,
    /// A refusal for every follower of this fill (kill switch, leader paused,
    /// leader profile), or `Reason::None`.
    pub blocked: Reason,
    pub sub_paused: bool,
    pub follower_paused: bool,
    pub symbol_allowed: bool,
    pub daily_loss_limit: i64,
    pub realized_today: i64,
    pub open_positions: u32,
    pub max_open_positions: u32,
    pub max_order_notional: i64,
    pub max_position_notional: i64,
    /// The follower's gross exposure, and the part of it this subscription's
    /// position in this symbol added when it last traded.
    pub follower_gross: i64,
    pub own_exposure: i64,
    pub max_gross: i64,
}

/// What the filter allowed: `qty` lots (0 = skipped) and why it is less than
/// wanted (`Reason::None` if it is not).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub qty: i64,
    pub reason: Reason,
}

/// Money value of `qty` lots at `px`, saturating at `i64::MAX`.
#[inline(always)]
pub fn notional(qty: i64, px: i64, mplt: i64) -> i64 {
    let v = qty.unsigned_abs() as i128 * px.unsigned_abs() as i128 * mplt as i128;
    v.min(i64::MAX as i128) as i64
}

/// Lots that fit in `cap` money at `px` (the rare path: a division).
#[inline]
pub fn lots_within(cap: i64, px: i64, mplt: i64) -> i64 {
    if cap <= 0 {
        return 0;
    }
    (cap as i128 / (px as i128 * mplt as i128).max(1)).min(i64::MAX as i128) as i64
}

/// The filter, in DESIGN.md's order: refusals first (paused, symbol blocked,
/// daily loss, open positions), then cuts (order notional, position notional,
/// leverage), then the venue minimum on what is left.
#[inline(always)]
pub fn allow_increase(r: &RiskInput) -> Allowed {
    let skip = |reason| Allowed { qty: 0, reason };
    if r.blocked != Reason::None {
        return skip(r.blocked);
    }
    if r.sub_paused || r.follower_paused {
        return skip(Reason::FollowerPaused);
    }
    if !r.symbol_allowed {
        return skip(Reason::SymbolBlocked);
    }
    if r.daily_loss_limit != i64::MAX && r.realized_today <= -r.daily_loss_limit {
        return skip(Reason::DailyLossLimit);
    }
    if r.held == 0 && !r.is_flip && r.open_positions >= r.max_open_positions {
        return skip(Reason::MaxOpenPositions);
    }
    let (px, mplt, held) = (r.px, r.mplt, r.held);
    let mut qty = r.want;
    let mut reason = Reason::None;
    if notional(qty, px, mplt) > r.max_order_notional {
        qty = lots_within(r.max_order_notional, px, mplt);
        reason = Reason::MaxOrderNotional;
    }
    if notional(held + qty, px, mplt) > r.max_position_notional {
        qty = qty.min((lots_within(r.max_position_notional, px, mplt) - held).max(0));
        reason = Reason::MaxPosition;
    }
    // The follower's gross exposure with this position revalued at the current
    // price (other symbols count at the price of their last order or fill).
    let gross = r
        .follower_gross
        .saturating_sub(r.own_exposure)
        .saturating_add(notional(held, px, mplt));
    if r.max_gross != i64::MAX && gross.saturating_add(notional(qty, px, mplt)) > r.max_gross {
        qty = qty.min(lots_within(r.max_gross - gross, px, mplt));
        reason = Reason::MaxLeverage;
    }
    if qty == 0 {
        return skip(reason);
    }
    if qty < r.min_qty || notional(qty, px, mplt) < r.min_notional {
        return skip(Reason::BelowMin);
    }
    debug_assert!(qty <= r.want);
    debug_assert!(notional(qty, px, mplt) <= r.max_order_notional);
    Allowed { qty, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> RiskInput {
        RiskInput {
            want: 100,
            held: 0,
            px: 1_000,
            mplt: 10, // 1 lot at 1,000 ticks = 10,000 money
            min_qty: 1,
            min_notional: 0,
            symbol_allowed: true,
            daily_loss_limit: i64::MAX,
            max_open_positions: u32::MAX,
            max_order_notional: i64::MAX,
            max_position_notional: i64::MAX,
            max_gross: i64::MAX,
            ..RiskInput::default()
        }
    }

    #[test]
    fn each_limit_cuts_or_refuses_with_its_reason() {
        let all = |r: RiskInput| allow_increase(&r);
        assert_eq!(
            all(open()),
            Allowed {
                qty: 100,
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
                |r| (r.daily_loss_limit, r.realized_today) = (500, -500),
                0,
                Reason::DailyLossLimit,
            ),
            (
                |r| (r.daily_loss_limit, r.realized_today) = (500, -499),
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
                |r| r.max_order_notional = 255_000,
                25,
                Reason::MaxOrderNotional,
            ),
            (
                |r| (r.max_position_notional, r.held) = (300_000, 20),
                10,
                Reason::MaxPosition,
            ),
            (
                |r| (r.max_gross, r.follower_gross) = (1_000_000, 900_000),
                10,
                Reason::MaxLeverage,
            ),
            // The own position is revalued: its old exposure leaves the gross.
            (
                |r| (r.max_gross, r.follower_gross, r.own_exposure) = (1_000_000, 900_000, 900_000),
                100,
                Reason::None,
            ),
            (|r| r.min_qty = 101, 0, Reason::BelowMin),
            (|r| r.min_notional = 1_000_001, 0, Reason::BelowMin),
            (
                |r| (r.max_order_notional, r.min_qty) = (255_000, 30),
                0,
                Reason::BelowMin,
            ),
        ];
        for (i, (edit, qty, reason)) in cases.iter().enumerate() {
            let mut r = open();
            edit(&mut r);
            let got = all(r);
            assert_eq!(got.qty, *qty, "case {i}: {got:?}");
            assert_eq!(got.reason, *reason, "case {i}: {got:?}");
        }
    }

    #[test]
    fn notional_saturates_and_lots_within_never_divides_by_zero() {
        assert_eq!(notional(i64::MAX, i64::MAX, 1), i64::MAX);
        assert_eq!(notional(-3, 10, 2), 60);
        assert_eq!(lots_within(100, 0, 0), 100);
        assert_eq!(lots_within(-1, 10, 1), 0);
        assert_eq!(lots_within(99, 10, 1), 9);
    }
}
