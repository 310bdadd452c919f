//! The sizing kernel: a follower's episode ratio (follower lots per leader lot)
//! and target position after a leader fill. Integer fixed point only (`Q32`,
//! `Factor`); everything that depends on the fill alone is computed once per fill
//! in `LeaderMove`, so the per-follower work is a few multiplications. Tested and
//! benchmarked alone (`engine/benches/kernels.rs`); the rules are DESIGN.md's.

use crate::units::{Factor, Lots, Money, Ticks, Q32};

/// The ratio of a subscription that copies nothing: no episode open, or it has not
/// joined the leader's open episode (it copies new episodes only, unless
/// `copy_open_positions`).
pub const NOT_COPYING: Q32 = Q32(u64::MAX);

/// A leader fill's effect on the leader's position, with the per-fill factors the
/// per-follower kernel needs.
#[derive(Copy, Clone, Debug, Default)]
pub struct LeaderMove {
    pub position_after: Lots,
    /// The fill opens an episode: from flat, or across zero (a flip).
    pub opens_episode: bool,
    /// Lots the fill adds to the leader's exposure (0 for a reduction).
    pub add_qty: u64,
    /// Follower lots per unit of money, for this fill's share of its order.
    per_amount: Factor,
    /// 1 / |p1|.
    inv_p1: Factor,
    abs_p0: u128,
}

impl LeaderMove {
    /// The leader goes from `position_before` to `position_after` on a fill of
    /// `fill_qty`, part of an order of `order_qty` (fixed-notional copies spread
    /// their amount over the order's fills), at `price` worth `money_per_lot_tick`.
    pub fn new(
        position_before: Lots,
        position_after: Lots,
        fill_qty: Lots,
        order_qty: Lots,
        price: Ticks,
        money_per_lot_tick: i64,
    ) -> Self {
        let (p0, p1) = (position_before.0, position_after.0);
        let opens_episode = p1 != 0 && (p0 == 0 || p0.signum() != p1.signum());
        let add_qty = if opens_episode {
            p1.unsigned_abs()
        } else {
            p1.unsigned_abs().saturating_sub(p0.unsigned_abs())
        };
        let order_qty = order_qty.0.max(fill_qty.0).max(1) as u128;
        let per_amount = if add_qty > 0 {
            // The order's notional in money units; three 63-bit factors can pass
            // u128 (a price near i64::MAX ticks): saturated, the share is 0 as
            // it would be exactly, where the product used to wrap.
            let notional = order_qty
                .saturating_mul(price.0.max(1) as u128)
                .saturating_mul(money_per_lot_tick.max(1) as u128);
            Factor::ratio(add_qty as u128, notional).unwrap_or_default()
        } else {
            Factor::default()
        };
        LeaderMove {
            position_after,
            opens_episode,
            add_qty,
            per_amount,
            inv_p1: Factor::ratio(1, p1.unsigned_abs().max(1) as u128).unwrap_or_default(),
            abs_p0: p0.unsigned_abs() as u128,
        }
    }

    /// The subscription's ratio after this fill, from its ratio before (`prev`):
    /// fixed at the episode's opening fill (`base` for ratio-based modes, `amount`
    /// money ÷ the leader's position for fixed-notional ones), grown by each
    /// adding fill's share for fixed-notional modes, `NOT_COPYING` once flat.
    #[inline(always)]
    pub fn ratio(&self, prev: Q32, fixed_notional: bool, base: Q32, amount: Money) -> Q32 {
        if self.position_after.is_zero() {
            return NOT_COPYING;
        }
        let amount = amount.0.max(0) as u64;
        if self.opens_episode {
            return if fixed_notional {
                Q32(self.inv_p1.apply(self.per_amount.apply_q32(amount)))
            } else {
                base
            };
        }
        if self.add_qty > 0 && fixed_notional && prev != NOT_COPYING {
            let held_q32 = (prev.0 as u128 * self.abs_p0).min(u64::MAX as u128) as u64;
            return Q32(self
                .inv_p1
                .apply(held_q32.saturating_add(self.per_amount.apply_q32(amount))));
        }
        prev
    }

    /// The follower's target position, lots: ratio × the leader's position,
    /// rounded toward zero (0 when not copying).
    #[inline(always)]
    pub fn target(&self, ratio: Q32) -> Lots {
        if ratio == NOT_COPYING {
            Lots::ZERO
        } else {
            ratio.mul_lots_trunc(self.position_after)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: Q32 = Q32(1 << 31);

    fn mv(p0: i64, p1: i64, fill: i64, order: i64, px: i64, mplt: i64) -> LeaderMove {
        LeaderMove::new(Lots(p0), Lots(p1), Lots(fill), Lots(order), Ticks(px), mplt)
    }

    #[test]
    fn ratio_modes_fix_the_ratio_at_the_opening_fill() {
        let open = mv(0, 10, 10, 10, 100, 1);
        assert!(open.opens_episode);
        let r = open.ratio(NOT_COPYING, false, HALF, Money(0));
        assert_eq!((r, open.target(r)), (HALF, Lots(5)));
        let add = mv(10, 13, 3, 3, 100, 1);
        let r = add.ratio(r, false, Q32(7), Money(0));
        assert_eq!(
            (r, add.target(r)),
            (HALF, Lots(6)),
            "an add keeps the ratio; 6.5 → 6"
        );
        let flat = mv(13, 0, 13, 13, 100, 1);
        assert_eq!(flat.ratio(r, false, HALF, Money(0)), NOT_COPYING);
        assert_eq!(flat.target(NOT_COPYING), Lots(0));
        let flip = mv(4, -4, 8, 8, 100, 1);
        assert!(flip.opens_episode);
        assert_eq!(
            flip.target(flip.ratio(HALF, false, HALF, Money(0))),
            Lots(-2)
        );
    }

    #[test]
    fn fixed_notional_spreads_the_amount_over_the_orders_fills() {
        // 1,000 money per leader order of 10 lots at 100 ticks × 1 money/lot/tick:
        // the whole order buys 10 follower lots, 4 on a fill of 4 lots.
        let first = mv(0, 4, 4, 10, 100, 1);
        let r = first.ratio(NOT_COPYING, true, Q32(0), Money(1_000));
        assert_eq!(first.target(r), Lots(4));
        let rest = mv(4, 10, 6, 10, 100, 1);
        let r = rest.ratio(r, true, Q32(0), Money(1_000));
        assert_eq!(rest.target(r), Lots(10));
        // A reduction keeps the ratio.
        let cut = mv(10, 5, 5, 5, 100, 1);
        assert_eq!(
            cut.target(cut.ratio(r, true, Q32(0), Money(1_000))),
            Lots(5)
        );
    }

    /// The order's notional (its lots × price × money per lot-tick) passed
    /// u128 for an order near `Lots::MAX` at a price near `i64::MAX` ticks: a
    /// panic in debug builds, a wrapped denominator in release, so a
    /// fixed-amount follower's share could come out large. It saturates; the
    /// share is then 0, as it is exactly.
    #[test]
    fn regression_an_order_notional_past_u128_saturates() {
        let m = LeaderMove::new(
            Lots(0),
            Lots(1000),
            Lots(1000),
            Lots(1 << 48),
            Ticks(i64::MAX),
            i64::MAX,
        );
        assert_eq!(m.per_amount.mant, 0);
        let r = m.ratio(NOT_COPYING, true, Q32(0), Money(i64::MAX));
        assert_eq!(m.target(r), Lots(0));
    }
}
