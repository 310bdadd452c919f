//! The sizing kernel: a follower's episode ratio (follower lots per leader lot)
//! and target position after a leader fill. Integer fixed point only (`Q32`,
//! `Factor`); everything that depends on the fill alone is computed once per fill
//! in `LeaderMove`, so the per-follower work is a few multiplications. Tested and
//! benchmarked alone (`engine/benches/kernels.rs`); the rules are DESIGN.md's.

use crate::units::{Factor, Lots, Q32};

/// The ratio of a subscription that copies nothing: no episode open, or it has not
/// joined the leader's open episode (it copies new episodes only, unless
/// `copy_open_positions`).
pub const NOT_COPYING: u64 = u64::MAX;

/// A leader fill's effect on the leader's position, with the per-fill factors the
/// per-follower kernel needs.
#[derive(Copy, Clone, Debug, Default)]
pub struct LeaderMove {
    /// The leader's position after the fill, lots.
    pub p1: i64,
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
    /// The leader goes from `p0` to `p1` lots on a fill of `fill_qty` lots, part of
    /// an order of `order_qty` lots (fixed-notional copies spread their amount over
    /// the order's fills), at `px` ticks worth `mplt` money per lot per tick.
    pub fn new(p0: i64, p1: i64, fill_qty: i64, order_qty: i64, px: i64, mplt: i64) -> Self {
        let opens_episode = p1 != 0 && (p0 == 0 || p0.signum() != p1.signum());
        let add_qty = if opens_episode {
            p1.unsigned_abs()
        } else {
            p1.unsigned_abs().saturating_sub(p0.unsigned_abs())
        };
        let order_qty = order_qty.max(fill_qty).max(1) as u128;
        let per_amount = if add_qty > 0 {
            Factor::ratio(
                add_qty as u128,
                order_qty * px.max(1) as u128 * mplt.max(1) as u128,
            )
            .unwrap_or_default()
        } else {
            Factor::default()
        };
        LeaderMove {
            p1,
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
    pub fn ratio(&self, prev: u64, fixed_notional: bool, base: u64, amount: u64) -> u64 {
        if self.p1 == 0 {
            return NOT_COPYING;
        }
        if self.opens_episode {
            return if fixed_notional {
                self.inv_p1.apply(self.per_amount.apply_q32(amount))
            } else {
                base
            };
        }
        if self.add_qty > 0 && fixed_notional && prev != NOT_COPYING {
            let held_q32 = (prev as u128 * self.abs_p0).min(u64::MAX as u128) as u64;
            return self
                .inv_p1
                .apply(held_q32.saturating_add(self.per_amount.apply_q32(amount)));
        }
        prev
    }

    /// The follower's target position, lots: ratio × the leader's position,
    /// rounded toward zero (0 when not copying).
    #[inline(always)]
    pub fn target(&self, ratio: u64) -> i64 {
        if ratio == NOT_COPYING {
            0
        } else {
            Q32(ratio).mul_lots_trunc(Lots(self.p1)).0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF: u64 = 1 << 31;

    #[test]
    fn ratio_modes_fix_the_ratio_at_the_opening_fill() {
        let open = LeaderMove::new(0, 10, 10, 10, 100, 1);
        assert!(open.opens_episode);
        let r = open.ratio(NOT_COPYING, false, HALF, 0);
        assert_eq!((r, open.target(r)), (HALF, 5));
        let add = LeaderMove::new(10, 13, 3, 3, 100, 1);
        let r = add.ratio(r, false, 7, 0);
        assert_eq!(
            (r, add.target(r)),
            (HALF, 6),
            "an add keeps the ratio; 6.5 → 6"
        );
        let flat = LeaderMove::new(13, 0, 13, 13, 100, 1);
        assert_eq!(flat.ratio(r, false, HALF, 0), NOT_COPYING);
        assert_eq!(flat.target(NOT_COPYING), 0);
        let flip = LeaderMove::new(4, -4, 8, 8, 100, 1);
        assert!(flip.opens_episode);
        assert_eq!(flip.target(flip.ratio(HALF, false, HALF, 0)), -2);
    }

    #[test]
    fn fixed_notional_spreads_the_amount_over_the_orders_fills() {
        // 1,000 money per leader order of 10 lots at 100 ticks × 1 money/lot/tick:
        // the whole order buys 10 follower lots, 4 on a fill of 4 lots.
        let first = LeaderMove::new(0, 4, 4, 10, 100, 1);
        let r = first.ratio(NOT_COPYING, true, 0, 1_000);
        assert_eq!(first.target(r), 4);
        let rest = LeaderMove::new(4, 10, 6, 10, 100, 1);
        let r = rest.ratio(r, true, 0, 1_000);
        assert_eq!(rest.target(r), 10);
        // A reduction keeps the ratio.
        let cut = LeaderMove::new(10, 5, 5, 5, 100, 1);
        assert_eq!(cut.target(cut.ratio(r, true, 0, 1_000)), 5);
    }
}
