//! Units of the hot path: integer lots, ticks, money and nanoseconds.
//!
//! Owns the newtypes and their exact conversions from `rust_decimal` at the edges.
//! Never rounds silently: a conversion that would lose precision is an error unless
//! the function name says how it rounds.

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use thiserror::Error;

/// A signed quantity in lots of one symbol's lot size (positive = long/buy).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Lots(pub i64);

/// A price in ticks of one symbol's tick size.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Ticks(pub i64);

/// Money in the quote currency, in units of 10^-8 (`Money::SCALE`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Money(pub i64);

/// Nanoseconds since the Unix epoch (timestamps) or a duration.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Nanos(pub u64);

/// A perpetual's funding rate for one funding interval, in units of 10^-8
/// (`FundingRate::SCALE`): Binance's 8-decimal `"0.00010000"` is `FundingRate(10_000)`.
/// A positive rate means longs pay shorts.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct FundingRate(pub i64);

/// An unsigned ratio in Q32 fixed point: `value / 2^32`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Q32(pub u64);

/// `+`, `-` and unary `-` within one unit (`Lots + Lots`, `Money - Money`): a sum
/// of two units is a compile error. They overflow as `i64` does (a panic in debug
/// builds); the hot path's inputs are bounded at the edge (`Lots::MAX`), and where
/// a value may still be out of range the code names it with `saturating_*`.
macro_rules! signed_unit_ops {
    ($($t:ident),*) => {$(
        impl std::ops::Add for $t {
            type Output = $t;
            #[inline(always)]
            fn add(self, other: $t) -> $t {
                $t(self.0 + other.0)
            }
        }
        impl std::ops::Sub for $t {
            type Output = $t;
            #[inline(always)]
            fn sub(self, other: $t) -> $t {
                $t(self.0 - other.0)
            }
        }
        impl std::ops::Neg for $t {
            type Output = $t;
            #[inline(always)]
            fn neg(self) -> $t {
                $t(-self.0)
            }
        }
        impl std::ops::AddAssign for $t {
            #[inline(always)]
            fn add_assign(&mut self, other: $t) {
                self.0 += other.0;
            }
        }
        impl std::ops::SubAssign for $t {
            #[inline(always)]
            fn sub_assign(&mut self, other: $t) {
                self.0 -= other.0;
            }
        }
        impl $t {
            #[inline(always)]
            pub fn saturating_add(self, other: $t) -> $t {
                $t(self.0.saturating_add(other.0))
            }
            #[inline(always)]
            pub fn saturating_sub(self, other: $t) -> $t {
                $t(self.0.saturating_sub(other.0))
            }
            #[inline(always)]
            pub fn checked_add(self, other: $t) -> Option<$t> {
                self.0.checked_add(other.0).map($t)
            }
            #[inline(always)]
            pub fn is_zero(self) -> bool {
                self.0 == 0
            }
        }
    )*};
}
signed_unit_ops!(Lots, Money);

/// Money value of `qty` lots at `price` ticks worth `money_per_lot_tick` each
/// (signs ignored), saturating at `i64::MAX`. A product past `u64::MAX` is
/// past `i64::MAX` too, so two checked `u64` multiplications say it exactly.
/// (Three 63-bit factors in one `i128` product overflowed it for a price near
/// `i64::MAX`: a panic in debug builds, a wrapped value in release.)
#[inline(always)]
pub fn notional(qty: Lots, price: Ticks, money_per_lot_tick: i64) -> Money {
    let v = qty
        .0
        .unsigned_abs()
        .checked_mul(price.0.unsigned_abs())
        .and_then(|v| v.checked_mul(money_per_lot_tick.unsigned_abs()));
    match v {
        Some(v) if v <= i64::MAX as u64 => Money(v as i64),
        _ => Money::MAX,
    }
}

/// Whole lots whose notional at `price` fits in `cap` (the rare path: a division).
#[inline]
pub fn lots_within(cap: Money, price: Ticks, money_per_lot_tick: i64) -> Lots {
    if cap.0 <= 0 {
        return Lots::ZERO;
    }
    let lot_value = (price.0 as i128 * money_per_lot_tick as i128).max(1);
    Lots((cap.0 as i128 / lot_value).min(i64::MAX as i128) as i64)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("{value} is not a whole multiple of {step}")]
    NotMultiple { value: Decimal, step: Decimal },
    #[error("{value} is out of range")]
    OutOfRange { value: Decimal },
    #[error("{value} has more than 8 decimal places")]
    TooPrecise { value: Decimal },
    #[error("step must be positive, got {step}")]
    BadStep { step: Decimal },
}

fn exact_steps(value: Decimal, step: Decimal) -> Result<i64, UnitError> {
    if step <= Decimal::ZERO {
        return Err(UnitError::BadStep { step });
    }
    let n = value
        .checked_div(step)
        .ok_or(UnitError::OutOfRange { value })?;
    if !n.fract().is_zero() {
        return Err(UnitError::NotMultiple { value, step });
    }
    n.to_i64().ok_or(UnitError::OutOfRange { value })
}

impl Lots {
    pub const ZERO: Lots = Lots(0);
    /// The largest quantity an input may carry and a leader position may reach
    /// (2^48 lots): far above any venue's, and small enough that sizing and
    /// position arithmetic cannot overflow.
    pub const MAX: Lots = Lots(1 << 48);

    /// Exact conversion: `qty` must be a whole number of `lot_size`.
    pub fn from_decimal(qty: Decimal, lot_size: Decimal) -> Result<Lots, UnitError> {
        exact_steps(qty, lot_size).map(Lots)
    }

    /// Rounds toward zero to a whole number of lots.
    pub fn from_decimal_trunc(qty: Decimal, lot_size: Decimal) -> Result<Lots, UnitError> {
        if lot_size <= Decimal::ZERO {
            return Err(UnitError::BadStep { step: lot_size });
        }
        let n = qty
            .checked_div(lot_size)
            .ok_or(UnitError::OutOfRange { value: qty })?;
        n.trunc()
            .to_i64()
            .map(Lots)
            .ok_or(UnitError::OutOfRange { value: qty })
    }

    pub fn to_decimal(self, lot_size: Decimal) -> Decimal {
        (Decimal::from(self.0) * lot_size).normalize()
    }

    pub fn abs(self) -> Lots {
        Lots(self.0.abs())
    }

    #[inline(always)]
    pub fn unsigned_abs(self) -> u64 {
        self.0.unsigned_abs()
    }

    pub fn signum(self) -> i64 {
        self.0.signum()
    }

    /// `self` lots with the sign of `sign` (its magnitude ignored; zero keeps 0).
    #[inline(always)]
    pub fn signed(self, sign: i64) -> Lots {
        Lots(self.0 * sign.signum())
    }
}

impl Ticks {
    /// Exact conversion: `price` must be a whole number of `tick_size`.
    pub fn from_decimal(price: Decimal, tick_size: Decimal) -> Result<Ticks, UnitError> {
        exact_steps(price, tick_size).map(Ticks)
    }

    pub fn to_decimal(self, tick_size: Decimal) -> Decimal {
        (Decimal::from(self.0) * tick_size).normalize()
    }
}

/// `value` in units of 1e-8, exactly (`Money` and `FundingRate` both count
/// those): more than 8 decimal places, or past `i64`, is an error.
fn eighths(value: Decimal) -> Result<i64, UnitError> {
    const _: () = assert!(Money::SCALE == 100_000_000 && FundingRate::SCALE == 100_000_000);
    let scaled = value
        .checked_mul(Decimal::from(100_000_000))
        .ok_or(UnitError::OutOfRange { value })?;
    if !scaled.fract().is_zero() {
        return Err(UnitError::TooPrecise { value });
    }
    scaled.to_i64().ok_or(UnitError::OutOfRange { value })
}

impl Money {
    pub const SCALE: i64 = 100_000_000;
    pub const ZERO: Money = Money(0);
    /// "No limit": a cap at `Money::MAX` never cuts.
    pub const MAX: Money = Money(i64::MAX);

    /// Exact conversion; more than 8 decimal places is an error.
    pub fn from_decimal(value: Decimal) -> Result<Money, UnitError> {
        eighths(value).map(Money)
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(self.0 as i128, 8).normalize()
    }
}

impl FundingRate {
    pub const SCALE: i64 = 100_000_000;
    pub const ZERO: FundingRate = FundingRate(0);
    /// The largest rate an input may carry, either sign: 100% of the notional per
    /// interval. Venues cap theirs far below (Binance: a few percent); anything
    /// past this is a mistake, refused at the edge and counted invalid by the core.
    pub const MAX: FundingRate = FundingRate(Self::SCALE);

    /// Exact conversion: more than 8 decimal places, or a rate beyond ±`MAX`, is
    /// an error.
    pub fn from_decimal(value: Decimal) -> Result<FundingRate, UnitError> {
        Some(FundingRate(eighths(value)?))
            .filter(|r| r.is_within_bounds())
            .ok_or(UnitError::OutOfRange { value })
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(self.0 as i128, 8).normalize()
    }

    /// Whether `|self| ≤ MAX`.
    #[inline(always)]
    pub fn is_within_bounds(self) -> bool {
        self.0.unsigned_abs() <= Self::MAX.0 as u64
    }
}

impl Q32 {
    pub const ONE: Q32 = Q32(1 << 32);

    /// `num / den` rounded toward zero. `None` when `den` is zero or the ratio
    /// does not fit (ratios above 2^32 are not meaningful follower-per-leader lots).
    pub fn from_ratio(num: u128, den: u128) -> Option<Q32> {
        if den == 0 {
            return None;
        }
        let q = num.checked_shl(32)? / den;
        u64::try_from(q).ok().map(Q32)
    }

    /// Exact-as-possible conversion of a non-negative decimal, rounded toward zero.
    pub fn from_decimal(value: Decimal) -> Option<Q32> {
        if value.is_sign_negative() {
            return None;
        }
        let scaled = value.checked_mul(Decimal::from(1u64 << 32))?;
        scaled.trunc().to_u64().map(Q32)
    }

    /// `self × lots`, rounded toward zero. A ratio that went through fixed-point
    /// arithmetic may sit a few units of 2^-32 below its exact rational value, which
    /// would turn an exact 10 into 9.999… and then 9; so the product is allowed
    /// `RATIO_SLACK_ULP` ulp per leader lot before truncation. The result can exceed
    /// the exact truncation only when the exact value is within that slack (≤ 2^-20
    /// lots for positions under 2^11 … 2^20 lots) below an integer.
    ///
    /// The slack is at most half a lot (`RATIO_SLACK_MAX`): past 2^29 leader
    /// lots, 4 ulp a lot would be a lot or more, and a ratio of 0 on a leader
    /// position of 2^47 lots targeted 131,072 lots. Below 2^29 lots nothing
    /// changes; above, the capped slack may not cover a ratio's few ulp of
    /// error, so an exact whole number of lots may come out one lot under.
    /// (Past 2^32 lots a Q32 ratio's own precision is more than a lot anyway.)
    #[inline(always)]
    pub fn mul_lots_trunc(self, lots: Lots) -> Lots {
        let abs = lots.0.unsigned_abs() as u128;
        let slack = (RATIO_SLACK_ULP * abs).min(RATIO_SLACK_MAX);
        let mag = (self.0 as u128 * abs + slack) >> 32;
        let mag = mag.min(i64::MAX as u128) as i64;
        Lots(if lots.0 < 0 { -mag } else { mag })
    }
}

/// Units of 2^-32 per leader lot that `Q32::mul_lots_trunc` forgives (see there).
pub const RATIO_SLACK_ULP: u128 = 4;
/// The most `Q32::mul_lots_trunc` forgives in all: half a lot, in 2^-32 lots.
pub const RATIO_SLACK_MAX: u128 = 1 << 31;

/// A positive factor `mant / 2^shift` kept with ~62 significant bits, so that one
/// factor computed per leader fill can be applied to every follower with a single
/// 128-bit multiply and shift (no division in the per-follower loop).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Factor {
    pub mant: u64,
    pub shift: u32,
}

impl Factor {
    /// `num / den`, or `None` when `den` is zero or the factor is astronomically large.
    pub fn ratio(num: u128, den: u128) -> Option<Factor> {
        if den == 0 {
            return None;
        }
        if num == 0 {
            return Some(Factor { mant: 0, shift: 0 });
        }
        let lz_num = num.leading_zeros();
        let bits_den = 128 - den.leading_zeros();
        let bits_num = 128 - lz_num;
        // Choose shift so that (num << shift) / den has about 62 bits.
        let want = 62i64 + bits_den as i64 - bits_num as i64;
        let shift = want.clamp(0, lz_num as i64) as u32;
        let mant = (num << shift) / den;
        let mant = u64::try_from(mant).ok()?;
        Some(Factor { mant, shift })
    }

    /// `value × self` in Q32 (i.e. the result is scaled by 2^32), rounded to nearest, saturating.
    #[inline(always)]
    pub fn apply_q32(self, value: u64) -> u64 {
        let p = value as u128 * self.mant as u128;
        let r = if self.shift > 32 {
            let s = self.shift - 32;
            (p + (1u128 << (s - 1))) >> s
        } else if self.shift == 32 {
            p
        } else {
            p.checked_shl(32 - self.shift).unwrap_or(u128::MAX)
        };
        r.min(u64::MAX as u128) as u64
    }

    /// `value × self`, rounded to nearest, saturating.
    #[inline(always)]
    pub fn apply(self, value: u64) -> u64 {
        let p = value as u128 * self.mant as u128;
        let p = if self.shift == 0 {
            p
        } else {
            (p + (1u128 << (self.shift - 1))) >> self.shift
        };
        p.min(u64::MAX as u128) as u64
    }
}

/// A non-negative decimal `mant / 10^scale` with the mantissa and scale
/// `rust_decimal` holds it with (`mant < 2^96`, `scale ≤ 28`): what integer
/// code needs to mirror a `Decimal` computation, whose rounding depends on the
/// scale it holds and not only on the value (so it is not normalized).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct DecParts {
    mant: u128,
    scale: u32,
}

impl DecParts {
    /// `value`'s parts as stored; `None` for a negative value (or -0).
    pub fn of(value: Decimal) -> Option<DecParts> {
        if value.is_sign_negative() {
            return None;
        }
        Some(DecParts {
            mant: value.mantissa().unsigned_abs(),
            scale: value.scale(),
        })
    }
}

/// What an integer kernel that mirrors a `rust_decimal` computation found: its
/// result, proven equal to the decimal one, or no proof, and the caller computes
/// it with `rust_decimal` (each kernel says how rare that is).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Exact<T> {
    Proven(T),
    Unproven,
}

/// `10^i` for every scale a `Decimal` can have.
const POW10: [u128; 29] = {
    let mut t = [1u128; 29];
    let mut i = 1;
    while i < t.len() {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `model::max_gross_of(Some(lev), equity.to_decimal())` without `Decimal`:
/// `lev × equity` rounded half to even to 8 places, in money, `None` past
/// `i64::MAX` units.
///
/// Why it is the same: `equity.to_decimal()` is `e / 10^s` with trailing zeros
/// stripped, and `Decimal::checked_mul` keeps the product `lev.mant × e` at scale
/// `lev.scale + s` as it is when that mantissa fits 96 bits and the scale is at
/// most 28 (rust_decimal 1.43, `ops/mul.rs`, `finish_mul`). Then `round_dp(8)`
/// (midpoint to even) is the only rounding, and `Money::from_decimal` of its
/// result is exact or out of range; so the result is the exact
/// `lev.mant × equity units / 10^lev.scale` rounded once, half to even.
///
/// `Unproven` when rust_decimal would round the product first (a 96-bit
/// overflow or a scale past 28: leverages of twenty-odd digits) or the inputs
/// are outside their domain (a negative equity, parts a `Decimal` cannot have).
/// Config leverages such as "3", "2.5" or "0.123456789" are always proven.
#[inline]
pub fn leverage_times_money(lev: DecParts, equity: Money) -> Exact<Option<Money>> {
    debug_assert!(lev.mant >> 96 == 0 && lev.scale <= 28);
    if equity.0 < 0 {
        return Exact::Unproven;
    }
    if lev.mant == 0 || equity.0 == 0 {
        // rust_decimal's product of a zero is `Decimal::ZERO`.
        return Exact::Proven(Some(Money::ZERO));
    }
    let mut e = equity.0 as u128;
    let mut s = 8u32;
    while s > 0 && e.is_multiple_of(10) {
        e /= 10;
        s -= 1;
    }
    let Some(product) = lev.mant.checked_mul(e) else {
        return Exact::Unproven;
    };
    if product >> 96 != 0 || lev.scale + s > 28 {
        return Exact::Unproven;
    }
    // The product in units of 10^-8 before rounding is `units / 10^lev.scale`;
    // `units < 2^96 × 10^8 < 2^123`.
    let units = product * POW10[(8 - s) as usize];
    let pow = POW10[lev.scale as usize];
    let (q, r) = (units / pow, units % pow);
    let half = pow / 2;
    let up = lev.scale > 0 && (r > half || (r == half && q & 1 == 1));
    let q = q + up as u128;
    debug_assert!(q.abs_diff(units / pow) <= 1);
    Exact::Proven(i64::try_from(q).ok().map(Money))
}

/// A proportional ratio's numerator (`multiplier × allocation`), laid out once
/// so that its ratio to a leader equity is one `u128` division
/// (`ratio_of_money`): the ratio to `e` money units is `units ÷ (e × den)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct RatioNum {
    units: u128,
    den: u128,
}

impl RatioNum {
    /// `num` in units of 10^-8 over a power of ten (1 for up to 8 places).
    /// Only the value counts here (`ratio_of_money` bounds rust_decimal's error
    /// rather than replaying its digits), so trailing zeros go: smaller operands.
    pub fn of(num: DecParts) -> RatioNum {
        let (mut mant, mut scale) = (num.mant, num.scale);
        while scale > 0 && mant.is_multiple_of(10) {
            mant /= 10;
            scale -= 1;
        }
        if scale <= 8 {
            // Below 2^96 × 10^8: no overflow.
            RatioNum {
                units: mant * POW10[(8 - scale) as usize],
                den: 1,
            }
        } else {
            RatioNum {
                units: mant,
                den: POW10[(scale - 8) as usize],
            }
        }
    }
}

/// `model::proportional_ratio(num, Decimal::ONE, leader_equity.to_decimal())`
/// without `Decimal`, where `num` is what `RatioNum::of` laid out: the ratio
/// `q = num ÷ equity` in Q32, rounded toward zero; `None` for an equity of zero
/// or less and for a ratio of 2^32 or more.
///
/// Why it is the same: rust_decimal divides to at most 28 places or until its
/// 96-bit mantissa is full (then ≥ 2^96/10), rounding once (`ops/div.rs`), and
/// multiplies by 2^32 rounding once more to 96 bits (`finish_mul`): so the value
/// it truncates is within `2^32 × 10^-28 + X × 2^-88` of the exact `X = q × 2^32`,
/// less than 2^-47 for X < 2^40 and 2^-23 for X ≤ 2^64 + 1. This computes X's exact
/// floor F and remainder; when X is farther than 2^-44 (X < 2^40) or 2^-20 from
/// every integer, both truncations are F. When X is an integer, rust_decimal is
/// exact if and only if q has a decimal form it can hold (a 96-bit mantissa at
/// scale ≤ 28): its division stops at the first zero remainder, and the
/// multiplication only drops zeros. Past 2^64 both give `None`.
///
/// `Unproven` (the caller asks rust_decimal) when X is within that tolerance of
/// an integer but not one (about 2^-43 of ratios below 256, 2^-19 above), when it
/// is an integer rust_decimal cannot reach exactly (a ratio whose binary fraction
/// has 29 to 32 places, or one with a mantissa past 2^96), and for operands past
/// 128 bits (a numerator past ~7.9e20; a leader equity × 10^(places − 8) past
/// 2^128 for a numerator with more than 8 places, at 28 places an equity past
/// ~3.4e18 units).
#[inline]
pub fn ratio_of_money(num: RatioNum, leader_equity: Money) -> Exact<Option<Q32>> {
    if leader_equity.0 <= 0 {
        return Exact::Proven(None);
    }
    if num.units == 0 {
        return Exact::Proven(Some(Q32(0)));
    }
    if num.units >> 96 != 0 {
        return Exact::Unproven;
    }
    let Some(den) = (leader_equity.0 as u128).checked_mul(num.den) else {
        return Exact::Unproven;
    };
    let n = num.units << 32;
    let (floor, rem) = (n / den, n % den);
    if floor > 1 << 64 {
        return Exact::Proven(None);
    }
    let proven = if rem == 0 {
        dyadic_fits_decimal(floor)
    } else {
        let tolerance = den >> if floor < 1 << 40 { 44 } else { 20 };
        rem > tolerance && den - rem > tolerance
    };
    if !proven {
        return Exact::Unproven;
    }
    Exact::Proven(u64::try_from(floor).ok().map(Q32))
}

/// Whether `x / 2^32` (`0 < x ≤ 2^64`) is a `Decimal`: a mantissa under 2^96 at
/// a scale of at most 28. With `x = odd × 2^v`, it is `odd × 5^k / 10^k` for
/// `k = 32 − v` places, and that mantissa, odd, has no shorter form.
fn dyadic_fits_decimal(x: u128) -> bool {
    let v = x.trailing_zeros();
    if v >= 32 {
        return true;
    }
    let k = 32 - v;
    k <= 28
        && (x >> v)
            .checked_mul(5u128.pow(k))
            .is_some_and(|m| m >> 96 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    /// Regression: the slack grew with the leader's position without bound,
    /// so past 2^30 lots it was a whole lot or more, and a ratio of 0 (a
    /// fixed amount far below one lot's value) targeted lots of its own.
    #[test]
    fn regression_the_ratio_slack_made_lots_from_nothing_on_huge_positions() {
        for p in [1i64 << 29, 1 << 30, 1 << 40, 1 << 47, Lots::MAX.0] {
            assert_eq!(Q32(0).mul_lots_trunc(Lots(p)), Lots(0), "{p}");
            assert_eq!(Q32(0).mul_lots_trunc(Lots(-p)), Lots(0), "{p}");
            assert_eq!(Q32::ONE.mul_lots_trunc(Lots(p)), Lots(p), "{p}");
            assert_eq!(Q32(2 << 32).mul_lots_trunc(Lots(-p)), Lots(-2 * p), "{p}");
            // Within a lot of the exact truncation: the slack (at most half a
            // lot) may carry a value just under an integer up to it.
            let v = (1u64 << 31) - 1;
            let exact = ((v as u128 * p as u128) >> 32) as i64;
            let got = Q32(v).mul_lots_trunc(Lots(p)).0;
            assert!(
                (exact - 1..=exact + 1).contains(&got),
                "{p}: {got} vs {exact}"
            );
        }
        // Below 2^29 lots the slack is what it was: 4 ulp a lot.
        assert_eq!(Q32(0).mul_lots_trunc(Lots((1 << 29) - 1)), Lots(0));
        let just_under_ten = Q32((10 << 32) - 4);
        assert_eq!(just_under_ten.mul_lots_trunc(Lots(1 << 20)), Lots(10 << 20));
    }

    #[test]
    fn lots_exact_and_trunc() {
        assert_eq!(Lots::from_decimal(dec!(0.5), dec!(0.001)), Ok(Lots(500)));
        assert!(matches!(
            Lots::from_decimal(dec!(0.0005), dec!(0.001)),
            Err(UnitError::NotMultiple { .. })
        ));
        assert_eq!(
            Lots::from_decimal_trunc(dec!(-0.0015), dec!(0.001)),
            Ok(Lots(-1))
        );
        assert!(matches!(
            Lots::from_decimal(dec!(1), dec!(0)),
            Err(UnitError::BadStep { .. })
        ));
    }

    #[test]
    fn money_roundtrip_and_precision() {
        let m = Money::from_decimal(dec!(65000.12345678)).unwrap();
        assert_eq!(m.to_decimal(), dec!(65000.12345678));
        assert!(matches!(
            Money::from_decimal(dec!(0.000000001)),
            Err(UnitError::TooPrecise { .. })
        ));
    }

    #[test]
    fn funding_rates_are_exact_and_bounded() {
        assert_eq!(
            FundingRate::from_decimal(dec!(0.00010000)),
            Ok(FundingRate(10_000))
        );
        assert_eq!(
            FundingRate::from_decimal(dec!(-0.0375)),
            Ok(FundingRate(-3_750_000))
        );
        assert_eq!(FundingRate::from_decimal(dec!(1)), Ok(FundingRate::MAX));
        assert_eq!(
            FundingRate::from_decimal(dec!(-1)),
            Ok(FundingRate(-FundingRate::SCALE))
        );
        assert_eq!(FundingRate(-12_345).to_decimal(), dec!(-0.00012345));
        for (v, too_precise) in [
            (dec!(0.000000001), true),
            (dec!(1.00000001), false),
            (dec!(-1.00000001), false),
            (dec!(79228162514264337593543950335), false),
        ] {
            let got = FundingRate::from_decimal(v);
            if too_precise {
                assert!(matches!(got, Err(UnitError::TooPrecise { .. })), "{v}");
            } else {
                assert!(matches!(got, Err(UnitError::OutOfRange { .. })), "{v}");
            }
        }
        assert!(!FundingRate(i64::MIN).is_within_bounds());
    }

    #[test]
    fn q32_mul_truncates_toward_zero() {
        let half = Q32::from_ratio(1, 2).unwrap();
        assert_eq!(half.mul_lots_trunc(Lots(3)), Lots(1));
        assert_eq!(half.mul_lots_trunc(Lots(-3)), Lots(-1));
        assert_eq!(Q32::from_ratio(1, 0), None);
    }

    #[test]
    fn factor_matches_division() {
        for (n, d) in [
            (1u128, 3u128),
            (7, 6_500_000_000),
            (1000, 1),
            (123_456_789, 987),
        ] {
            let f = Factor::ratio(n, d).unwrap();
            for v in [1u64, 1000, 100_000_000_000] {
                let exact = (v as u128 * n + d / 2) / d;
                let got = f.apply(v) as u128;
                assert!(
                    exact.abs_diff(got) <= 1 + exact / (1 << 50),
                    "{n}/{d}*{v}: {got} vs {exact}"
                );
            }
        }
    }
}
