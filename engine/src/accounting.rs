//! The one accounting rule: a position at average cost.
//!
//! Every place that turns fills into a position and realized P&L uses this rule:
//! the core (integer lots × ticks), the sidecar's `positions` table (the same
//! integers, so its rows equal the core's) and the reports (in `Decimal`, from the
//! SQL tables). Adding to a position adds `qty × price` to its cost basis; reducing
//! it realizes `closed × price − cost × closed / |qty|` on the part that closes; a
//! fill that flips the side closes the old position and opens the rest at the fill
//! price. When a position returns exactly to flat, whatever the cost basis still
//! holds (a rounding residue of a `Decimal` division; integers leave none) is
//! realized, so a flat position never carries cost.
//!
//! Pure and allocation-free: the core calls it on a copy and writes back only a
//! result that fitted, so an overflow changes nothing.

use crate::model::Side;
use crate::units::{FundingRate, Lots, Money, Ticks};
use rust_decimal::Decimal;

/// The arithmetic the rule needs, checked: `None` is an overflow.
pub trait Amount: Copy + Ord {
    const ZERO: Self;
    fn checked_add(self, other: Self) -> Option<Self>;
    fn checked_sub(self, other: Self) -> Option<Self>;
    fn checked_mul(self, other: Self) -> Option<Self>;
    /// `self × part / whole` for `0 < part ≤ whole`, rounded as the type divides
    /// (toward zero for integers), without overflowing where the result fits.
    fn share(self, part: Self, whole: Self) -> Option<Self>;
    fn is_negative(self) -> bool;
    fn checked_abs(self) -> Option<Self>;
    fn checked_neg(self) -> Option<Self>;
}

impl Amount for i128 {
    const ZERO: i128 = 0;
    fn checked_add(self, other: i128) -> Option<i128> {
        i128::checked_add(self, other)
    }
    fn checked_sub(self, other: i128) -> Option<i128> {
        i128::checked_sub(self, other)
    }
    fn checked_mul(self, other: i128) -> Option<i128> {
        i128::checked_mul(self, other)
    }
    fn share(self, part: i128, whole: i128) -> Option<i128> {
        debug_assert!(0 < part && part <= whole, "share {part} of {whole}");
        // The common case: the product fits, one division (an i128 division is a
        // libcall, so it counts).
        if let Some(product) = self.checked_mul(part) {
            return Some(product / whole);
        }
        // self = q·whole + r with |r| < whole and r of self's sign, so
        // self·part/whole = q·part + r·part/whole, both terms of one sign: the
        // truncation of the sum is q·part + trunc(r·part/whole), exactly the
        // truncation of the whole product, without forming self·part.
        let (q, r) = (self / whole, self % whole);
        q.checked_mul(part)?
            .checked_add(r.checked_mul(part)? / whole)
    }
    fn is_negative(self) -> bool {
        self < 0
    }
    fn checked_abs(self) -> Option<i128> {
        i128::checked_abs(self)
    }
    fn checked_neg(self) -> Option<i128> {
        i128::checked_neg(self)
    }
}

impl Amount for Decimal {
    const ZERO: Decimal = Decimal::ZERO;
    fn checked_add(self, other: Decimal) -> Option<Decimal> {
        Decimal::checked_add(self, other)
    }
    fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        Decimal::checked_sub(self, other)
    }
    fn checked_mul(self, other: Decimal) -> Option<Decimal> {
        Decimal::checked_mul(self, other)
    }
    fn share(self, part: Decimal, whole: Decimal) -> Option<Decimal> {
        self.checked_mul(part)?.checked_div(whole)
    }
    fn is_negative(self) -> bool {
        self.is_sign_negative() && !self.is_zero()
    }
    fn checked_abs(self) -> Option<Decimal> {
        Some(self.abs())
    }
    fn checked_neg(self) -> Option<Decimal> {
        Some(-self)
    }
}

/// A position in one symbol: signed quantity and signed cost basis (`Σ qty ×
/// price` of the open part), so `average price = cost / qty` and `unrealized =
/// qty × mark − cost`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct AverageCost<A> {
    pub qty: A,
    pub cost: A,
}

/// What one fill did to a position.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Applied<A> {
    /// Quantity that closed (unsigned; zero when the fill only added).
    pub closed: A,
    /// P&L realized on the closed part, in quantity × price units.
    pub realized: A,
    /// Signed quantity that opened or added (after a flip: the new side's part).
    pub opened: A,
    /// The fill brought the position exactly to flat (before any `opened` part).
    pub flattened: bool,
}

impl<A: Amount> AverageCost<A> {
    pub fn flat() -> AverageCost<A> {
        AverageCost {
            qty: A::ZERO,
            cost: A::ZERO,
        }
    }

    /// The position after a fill of `signed_qty` (positive buys) at `price`, and
    /// what the fill did; `None` when a value overflows (then nothing is known and
    /// the caller keeps the position it had).
    pub fn after(self, signed_qty: A, price: A) -> Option<(AverageCost<A>, Applied<A>)> {
        let zero = A::ZERO;
        let mut next = self;
        let mut applied = Applied {
            closed: zero,
            realized: zero,
            opened: signed_qty,
            flattened: false,
        };
        let reduces = self.qty != zero
            && signed_qty != zero
            && self.qty.is_negative() != signed_qty.is_negative();
        if reduces {
            let held = self.qty.checked_abs()?;
            let closed = signed_qty.checked_abs()?.min(held);
            let removed = self.cost.share(closed, held)?;
            let proceeds = closed.checked_mul(price)?;
            let signed_proceeds = if self.qty.is_negative() {
                proceeds.checked_neg()?
            } else {
                proceeds
            };
            let mut realized = signed_proceeds.checked_sub(removed)?;
            next.cost = self.cost.checked_sub(removed)?;
            let step = if self.qty.is_negative() {
                closed
            } else {
                closed.checked_neg()?
            };
            next.qty = self.qty.checked_add(step)?;
            if next.qty == zero {
                realized = realized.checked_sub(next.cost)?;
                next.cost = zero;
                applied.flattened = true;
            }
            applied.closed = closed;
            applied.realized = realized;
            applied.opened = signed_qty.checked_sub(step)?;
        }
        if applied.opened != zero {
            next.cost = next.cost.checked_add(applied.opened.checked_mul(price)?)?;
            next.qty = next.qty.checked_add(applied.opened)?;
        }
        Some((next, applied))
    }
}

impl AverageCost<i128> {
    /// A position as the core and the sidecar keep it (`held` lots, `cost` in
    /// lots × ticks) after a fill of `qty` on `side` at `price`; `None` when the
    /// result does not fit (a position past `i64` lots, a cost past `i128`).
    pub fn after_fill(
        held: Lots,
        cost: i128,
        side: Side,
        qty: Lots,
        price: Ticks,
    ) -> Option<(AverageCost<i128>, Applied<i128>)> {
        // `after`'s rule, written for this case: the quantities and the price
        // are `i64`, so a product of two of them is below 2^126 and fits, and
        // so does a sum of two quantities. Only the cost basis (any `i128`)
        // and what it is added to or shared into can overflow, and only those
        // are checked. A close of the whole position takes the whole cost
        // (`share` of all of it, without its `i128` division, a libcall). The
        // venue-report path runs this once a fill; `after` cost about 190
        // instructions a fill (callgrind), mostly checked `i128` products.
        // A property test holds the two equal on any input.
        let (q, p) = (held.0 as i128, price.0 as i128);
        let signed_qty = side.sign() as i128 * qty.0 as i128;
        let mut next = AverageCost { qty: q, cost };
        let mut applied = Applied {
            closed: 0,
            realized: 0,
            opened: signed_qty,
            flattened: false,
        };
        if q != 0 && signed_qty != 0 && (q < 0) != (signed_qty < 0) {
            let whole = q.abs();
            let closed = signed_qty.abs().min(whole);
            let removed = if closed == whole {
                cost
            } else {
                cost.share(closed, whole)?
            };
            let proceeds = closed * p;
            let signed_proceeds = if q < 0 { -proceeds } else { proceeds };
            let mut realized = signed_proceeds.checked_sub(removed)?;
            next.cost = cost.checked_sub(removed)?;
            let step = if q < 0 { closed } else { -closed };
            next.qty = q + step;
            if next.qty == 0 {
                realized = realized.checked_sub(next.cost)?;
                next.cost = 0;
                applied.flattened = true;
            }
            applied.closed = closed;
            applied.realized = realized;
            applied.opened = signed_qty - step;
        }
        if applied.opened != 0 {
            next.cost = next.cost.checked_add(applied.opened * p)?;
            next.qty += applied.opened;
        }
        i64::try_from(next.qty).ok()?;
        Some((next, applied))
    }

    /// `qty × mark − cost`, saturating (a mark no venue quotes cannot wrap it).
    pub fn unrealized(self, mark: i128) -> i128 {
        self.qty.saturating_mul(mark).saturating_sub(self.cost)
    }
}

/// Realized P&L in money from lots × ticks, saturating at `i64`'s range (a value
/// beyond it is not a P&L any account can have; saturating keeps its sign).
pub fn lot_ticks_to_money(lot_ticks: i128, money_per_lot_tick: i64) -> Money {
    Money(
        lot_ticks
            .saturating_mul(money_per_lot_tick as i128)
            .clamp(i64::MIN as i128, i64::MAX as i128) as i64,
    )
}

/// What a position of `qty` lots receives (positive) or pays (negative) at one
/// funding instant of rate `rate` at mark `mark` ticks: `−qty × mark × rate` in
/// money, so a long pays a positive rate and a short receives it.
///
/// Rounded once, to the money unit (10^-8 of the quote currency, the precision
/// of fees and realized P&L), half away from zero: a long and a short of the
/// same size pay and receive exactly the same amount. Saturates at `i64`'s
/// range, keeping the sign (as `lot_ticks_to_money`): no account holds such
/// an amount.
pub fn funding_payment(
    qty: Lots,
    mark: Ticks,
    rate: FundingRate,
    money_per_lot_tick: i64,
) -> Money {
    let sign = -qty.0.signum() * mark.0.signum() * rate.0.signum() * money_per_lot_tick.signum();
    if sign == 0 {
        return Money::ZERO;
    }
    // `qty × mark` always fits (|i64|² < 2^127); the rest may not.
    let scaled = (qty.0 as i128 * mark.0 as i128)
        .checked_mul(money_per_lot_tick as i128)
        .and_then(|m| m.checked_mul(rate.0 as i128))
        .and_then(i128::checked_neg);
    let Some(scaled) = scaled else {
        return if sign > 0 {
            Money::MAX
        } else {
            Money(i64::MIN)
        };
    };
    debug_assert_eq!(scaled.signum(), sign as i128);
    let scale = FundingRate::SCALE as i128;
    let (q, r) = (scaled / scale, scaled % scale);
    let rounded = if 2 * r.abs() >= scale {
        q + scaled.signum()
    } else {
        q
    };
    Money(rounded.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// 0.5 BTC (500 lots of 0.001) at 65,000.1 (650,001 ticks of 0.1): one lot
    /// × one tick is 0.0001 USDT, 10,000 money units.
    const BTC_MPLT: i64 = 10_000;

    #[test]
    fn funding_a_long_pays_a_positive_rate_and_a_short_receives_it() {
        let rate = FundingRate(10_000); // 0.01%
                                        // Notional 32,500.05; × 0.0001 = 3.250005 exactly.
        let long = funding_payment(Lots(500), Ticks(650_001), rate, BTC_MPLT);
        assert_eq!(long, Money(-325_000_500));
        assert_eq!(long.to_decimal(), dec!(-3.250005));
        let short = funding_payment(Lots(-500), Ticks(650_001), rate, BTC_MPLT);
        assert_eq!(short, Money(325_000_500));
        // A negative rate: shorts pay longs. 121,875,187.5 money units: the
        // half goes away from zero.
        let rate = FundingRate(-3_750);
        assert_eq!(
            funding_payment(Lots(500), Ticks(650_001), rate, BTC_MPLT).to_decimal(),
            dec!(1.21875188)
        );
        assert_eq!(
            funding_payment(Lots(-500), Ticks(650_001), rate, BTC_MPLT).to_decimal(),
            dec!(-1.21875188)
        );
        // Flat, a zero rate: nothing.
        assert_eq!(
            funding_payment(Lots(0), Ticks(650_001), rate, BTC_MPLT),
            Money::ZERO
        );
        assert_eq!(
            funding_payment(Lots(7), Ticks(650_001), FundingRate::ZERO, BTC_MPLT),
            Money::ZERO
        );
    }

    #[test]
    fn funding_rounds_once_half_away_from_zero() {
        // 1 lot × 1 tick × 1 unit of money × rate 1e-8: 1e-8 money units.
        let unit =
            |lots: i64, rate: i64| funding_payment(Lots(lots), Ticks(1), FundingRate(rate), 1).0;
        // Exactly half a money unit: away from zero, both sides alike.
        assert_eq!(unit(1, 50_000_000), -1);
        assert_eq!(unit(-1, 50_000_000), 1);
        assert_eq!(unit(1, -50_000_000), 1);
        // Just below half: toward zero.
        assert_eq!(unit(1, 49_999_999), 0);
        assert_eq!(unit(-1, 49_999_999), 0);
        // Just above: away.
        assert_eq!(unit(3, 16_666_667), -1);
        // 0.75 → 1, 1.5 → 2, 2.4999… → 2.
        assert_eq!(unit(3, 25_000_000), -1);
        assert_eq!(unit(3, 50_000_000), -2);
        assert_eq!(unit(-5, 49_999_999), 2);
        // The same as the exact decimal rounded half away from zero.
        for (lots, ticks, rate, mplt) in [
            (123_457i64, 650_001i64, 12_345i64, 10_000i64),
            (-98_765, 34_012_345, -777, 1_000_000),
            (1, 1, 1, 1),
            (-3, 7, 99_999_999, 3),
        ] {
            let got = funding_payment(Lots(lots), Ticks(ticks), FundingRate(rate), mplt);
            let exact = -Decimal::from(lots)
                * Decimal::from(ticks)
                * Decimal::from(mplt)
                * Decimal::from(rate)
                / Decimal::from(FundingRate::SCALE);
            let want = exact
                .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            assert_eq!(Decimal::from(got.0), want, "{lots} {ticks} {rate} {mplt}");
        }
    }

    #[test]
    fn funding_saturates_keeping_its_sign() {
        let huge = |lots: i64, rate: i64| {
            funding_payment(Lots(lots), Ticks(i64::MAX), FundingRate(rate), i64::MAX)
        };
        assert_eq!(huge(i64::MAX, 1), Money(i64::MIN));
        assert_eq!(huge(-i64::MAX, 1), Money::MAX);
        assert_eq!(huge(i64::MIN, -FundingRate::SCALE), Money(i64::MIN));
        // Past i64 after the division, within i128 before it.
        assert_eq!(
            funding_payment(
                Lots(1 << 48),
                Ticks(1 << 40),
                FundingRate(FundingRate::SCALE),
                1
            ),
            Money(i64::MIN)
        );
    }

    fn fill(p: &mut AverageCost<i128>, q: i128, price: i128) -> Applied<i128> {
        let (next, applied) = p.after(q, price).expect("fits");
        *p = next;
        applied
    }

    #[test]
    fn fills_realize_at_average_cost() {
        let mut p = AverageCost::flat();
        // Buy 10 @ 100, buy 10 @ 200: average 150.
        fill(&mut p, 10, 100);
        fill(&mut p, 10, 200);
        assert_eq!((p.qty, p.cost), (20, 3000));
        // Sell 5 @ 170: realizes 5 × (170 − 150) = 100.
        let a = fill(&mut p, -5, 170);
        assert_eq!((p.qty, p.cost, a.realized, a.closed), (15, 2250, 100, 5));
        // Sell 25 @ 140: closes 15 (realizes 15 × −10), opens 10 short at 140.
        let a = fill(&mut p, -25, 140);
        assert_eq!((p.qty, p.cost, a.realized), (-10, -1400, -150));
        assert_eq!((a.closed, a.opened, a.flattened), (15, -10, true));
        // Buy back 10 @ 150 from the short at 140: loses 100, flat, no cost left.
        let a = fill(&mut p, 10, 150);
        assert_eq!((p, a.realized, a.opened), (AverageCost::flat(), -100, 0));
    }

    #[test]
    fn decimal_realizes_the_residue_at_flat() {
        let mut p = AverageCost::<Decimal>::flat();
        for (q, price) in [(dec!(1), dec!(1)), (dec!(1), dec!(1)), (dec!(1), dec!(2))] {
            p = p.after(q, price).expect("fits").0;
        }
        // Average 4/3: closing one third at a time leaves a rounding residue
        // that the last close realizes, so the total is exact.
        let mut total = Decimal::ZERO;
        for _ in 0..3 {
            let (next, a) = p.after(dec!(-1), dec!(2)).expect("fits");
            total += a.realized;
            p = next;
        }
        assert_eq!((p.qty, p.cost, total), (dec!(0), dec!(0), dec!(2)));
    }

    #[test]
    fn integer_share_is_the_truncated_product() {
        for cost in [-7i128, -1, 0, 1, 7, 1_000_003, -1_000_003] {
            for (part, whole) in [(1i128, 3i128), (2, 3), (3, 3), (5, 7)] {
                assert_eq!(cost.share(part, whole), Some(cost * part / whole));
            }
        }
    }

    #[test]
    fn regression_a_fill_at_a_huge_price_overflowed_the_cost_basis() {
        // 2^40 lots at 2^62 ticks: cost 2^102; closing all of it formed
        // cost × closed = 2^142 and overflowed i128 (a panic in debug builds, a
        // wrapped P&L in release). The share is computed without that product.
        let mut p = AverageCost::flat();
        fill(&mut p, 1 << 40, 1 << 62);
        let a = fill(&mut p, -(1 << 40), 1 << 62);
        assert_eq!((p, a.realized), (AverageCost::flat(), 0));
    }

    #[test]
    fn an_overflow_is_none_and_the_caller_keeps_its_position() {
        let p = AverageCost {
            qty: i128::MAX,
            cost: 0,
        };
        assert_eq!(p.after(1, 1), None);
    }

    #[test]
    fn money_saturates_with_its_sign() {
        assert_eq!(lot_ticks_to_money(3, 5), Money(15));
        assert_eq!(lot_ticks_to_money(i128::MAX, 2), Money::MAX);
        assert_eq!(lot_ticks_to_money(-(1 << 100), 1), Money(i64::MIN));
    }

    /// Values from every scale: small, near the edges of `i64` and (costs)
    /// of `i128`, where the checked paths of `after` answer `None`.
    fn wide_i64() -> impl proptest::strategy::Strategy<Value = i64> {
        use proptest::prelude::*;
        prop_oneof![
            -1_000i64..1_000,
            any::<i64>(),
            Just(i64::MAX),
            Just(i64::MIN + 1)
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 4_000, ..Default::default() })]

        /// `after_fill`'s own arithmetic is `after`'s rule exactly: the same
        /// position, the same P&L and the same refusals.
        #[test]
        fn after_fill_is_the_generic_rule(
            held in wide_i64(),
            cost in proptest::prop_oneof![
                -1_000_000i128..1_000_000,
                proptest::prelude::any::<i128>(),
                proptest::strategy::Just(i128::MAX),
                proptest::strategy::Just(i128::MIN + 1),
            ],
            buy in proptest::prelude::any::<bool>(),
            qty in wide_i64(),
            price in wide_i64(),
        ) {
            let (qty, price) = (qty.unsigned_abs().clamp(1, i64::MAX as u64) as i64, price.unsigned_abs().clamp(1, i64::MAX as u64) as i64);
            let side = if buy { Side::Buy } else { Side::Sell };
            let generic = AverageCost { qty: held as i128, cost }
                .after(side.sign() as i128 * qty as i128, price as i128)
                .filter(|(next, _)| i64::try_from(next.qty).is_ok());
            proptest::prop_assert_eq!(
                AverageCost::after_fill(Lots(held), cost, side, Lots(qty), Ticks(price)),
                generic
            );
        }
    }
}
