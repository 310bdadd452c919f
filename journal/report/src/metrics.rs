//! Pure performance metrics over equity curves and lists of closed trades.
//!
//! Each function states its exact definition and what it returns when the input
//! cannot support it (too few points, a zero or negative base, no variance): `None`
//! or a documented neutral value, never a panic and never a NaN. Money stays in
//! `Decimal`; only dimensionless ratios that need a square root or a power (Sharpe,
//! annualised return, Calmar) are `f64`.
//!
//! This module knows nothing of SQL or of how a curve was built (see `ledger`).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Maximum drawdown: the largest fall from a running peak to a later point, as a
/// fraction of that peak:
///
/// `max_dd = max_t (peak_t − e_t) / peak_t`, where `peak_t = max_{s ≤ t} e_s`.
///
/// `0` for a curve of fewer than two points or one that never falls. Points whose
/// running peak is not positive are skipped: a fraction of a peak ≤ 0 means nothing.
/// The result is in `[0, 1]` for a curve that stays ≥ 0, and above 1 when equity
/// goes negative.
pub fn max_drawdown(equity: &[Decimal]) -> Decimal {
    drawdown_series(equity)
        .into_iter()
        .max()
        .unwrap_or(Decimal::ZERO)
}

/// The drawdown at every point, `(peak_t − e_t) / peak_t` (0 where the running
/// peak is ≤ 0), same length as `equity`.
pub fn drawdown_series(equity: &[Decimal]) -> Vec<Decimal> {
    let mut peak: Option<Decimal> = None;
    let out: Vec<Decimal> = equity
        .iter()
        .map(|&e| {
            let p = match peak {
                Some(p) if p >= e => p,
                _ => e,
            };
            peak = Some(p);
            if p <= Decimal::ZERO {
                return Decimal::ZERO;
            }
            (p - e).checked_div(p).unwrap_or(Decimal::ZERO)
        })
        .collect();
    debug_assert_eq!(out.len(), equity.len());
    out
}

/// Simple per-period returns `r_i = e_i / e_{i−1} − 1` of consecutive curve points
/// (one point per period: see `ledger::sample`). A period that starts at equity ≤ 0
/// has no defined return and is left out.
pub fn period_returns(equity: &[Decimal]) -> Vec<f64> {
    equity
        .windows(2)
        .filter(|w| w[0] > Decimal::ZERO)
        .filter_map(|w| (w[1] - w[0]).checked_div(w[0]))
        .filter_map(|r| r.to_f64())
        .collect()
}

/// Sharpe ratio with a zero risk-free rate:
///
/// `sharpe = mean(r) / sd(r) × sqrt(periods_per_year)`,
///
/// where `sd` is the sample standard deviation (divisor `n − 1`). `None` with fewer
/// than two returns (no standard deviation exists) and with zero variance (a flat or
/// perfectly steady curve: the ratio is unbounded, not a number to rank by).
pub fn sharpe(returns: &[f64], periods_per_year: f64) -> Option<f64> {
    let n = returns.len();
    if n < 2 || !positive(periods_per_year) {
        return None;
    }
    let mean = returns.iter().sum::<f64>() / n as f64;
    let var = returns.iter().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1) as f64;
    let sd = var.sqrt();
    // Relative to the returns' own size: a steady curve leaves only rounding noise.
    let scale = returns.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    if !sd.is_finite() || sd <= scale * 1e-12 {
        return None;
    }
    let s = mean / sd * periods_per_year.sqrt();
    s.is_finite().then_some(s)
}

/// Sharpe of a curve sampled once per period: `sharpe(period_returns(equity))`.
pub fn sharpe_of_curve(equity: &[Decimal], periods_per_year: f64) -> Option<f64> {
    sharpe(&period_returns(equity), periods_per_year)
}

/// Compound annualised return over `periods` periods:
///
/// `(end / start)^(periods_per_year / periods) − 1`.
///
/// `None` when `start ≤ 0` or `periods ≤ 0`; `-1` (everything lost) when `end ≤ 0`.
pub fn annualised_return(
    start: Decimal,
    end: Decimal,
    periods: f64,
    periods_per_year: f64,
) -> Option<f64> {
    if start <= Decimal::ZERO || !positive(periods) || !positive(periods_per_year) {
        return None;
    }
    if end <= Decimal::ZERO {
        return Some(-1.0);
    }
    let growth = end.checked_div(start)?.to_f64()?;
    let a = growth.powf(periods_per_year / periods) - 1.0;
    a.is_finite().then_some(a)
}

/// Calmar ratio: `annualised return / max drawdown`. `None` when the drawdown is 0
/// (the ratio is unbounded) or the return is undefined.
pub fn calmar(annualised_return: Option<f64>, max_drawdown: Decimal) -> Option<f64> {
    let dd = max_drawdown.to_f64()?;
    if !positive(dd) {
        return None;
    }
    let c = annualised_return? / dd;
    c.is_finite().then_some(c)
}

/// Calmar of a curve sampled once per period: its compound annualised return over
/// `len − 1` periods divided by its maximum drawdown.
pub fn calmar_of_curve(equity: &[Decimal], periods_per_year: f64) -> Option<f64> {
    let (first, last) = (equity.first()?, equity.last()?);
    let periods = (equity.len() - 1) as f64;
    calmar(
        annualised_return(*first, *last, periods, periods_per_year),
        max_drawdown(equity),
    )
}

/// `x > 0`, false for NaN.
fn positive(x: f64) -> bool {
    x.partial_cmp(&0.0) == Some(std::cmp::Ordering::Greater)
}

/// P&L: `end − start` equity.
pub fn pnl(start: Decimal, end: Decimal) -> Decimal {
    end - start
}

/// Return on investment: `(end − start) / start`. `None` when `start ≤ 0`.
pub fn roi(start: Decimal, end: Decimal) -> Option<Decimal> {
    if start <= Decimal::ZERO {
        return None;
    }
    (end - start).checked_div(start)
}

/// Win rate: winning trades (P&L > 0) over all trades. A break-even trade is not a
/// win. `None` for no trades.
pub fn win_rate(trade_pnls: &[Decimal]) -> Option<Decimal> {
    if trade_pnls.is_empty() {
        return None;
    }
    let wins = trade_pnls.iter().filter(|p| **p > Decimal::ZERO).count();
    Decimal::from(wins as u64).checked_div(Decimal::from(trade_pnls.len() as u64))
}

/// Profit factor: gross profit (sum of winning trades) over gross loss (absolute sum
/// of losing trades).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfitFactor {
    /// No winning and no losing trade.
    Undefined,
    /// Wins and no losses.
    Infinite,
    Finite(Decimal),
}

impl ProfitFactor {
    pub fn as_decimal(self) -> Option<Decimal> {
        match self {
            ProfitFactor::Finite(d) => Some(d),
            _ => None,
        }
    }
}

/// `gross_profit / gross_loss`; see `ProfitFactor` for the degenerate cases.
pub fn profit_factor(trade_pnls: &[Decimal]) -> ProfitFactor {
    let (gross_profit, gross_loss) = gross(trade_pnls);
    match (gross_profit.is_zero(), gross_loss.is_zero()) {
        (true, true) => ProfitFactor::Undefined,
        (false, true) => ProfitFactor::Infinite,
        _ => gross_profit
            .checked_div(gross_loss)
            .map_or(ProfitFactor::Undefined, ProfitFactor::Finite),
    }
}

/// (gross profit, gross loss as a positive number).
pub fn gross(trade_pnls: &[Decimal]) -> (Decimal, Decimal) {
    trade_pnls
        .iter()
        .fold((Decimal::ZERO, Decimal::ZERO), |(p, l), &x| {
            if x > Decimal::ZERO {
                (p + x, l)
            } else {
                (p, l - x)
            }
        })
}

/// Average holding time: the mean of `close − open` over closed trades, in ns,
/// rounded toward zero. `None` for no trades.
pub fn average_holding_ns(open_close_ns: &[(i64, i64)]) -> Option<i64> {
    if open_close_ns.is_empty() {
        return None;
    }
    let total: i128 = open_close_ns
        .iter()
        .map(|(o, c)| i128::from(*c) - i128::from(*o))
        .sum();
    i64::try_from(total / open_close_ns.len() as i128).ok()
}

/// One histogram bucket `[lo, hi)` (the last bucket also holds `hi`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub lo: Decimal,
    pub hi: Decimal,
    pub count: u64,
}

/// A histogram of `values` with "nice" equal-width buckets (width 1, 2 or 5 × 10^k)
/// aligned to multiples of the width, at most `buckets_max` of them. Empty for no
/// values; one bucket of width 1 around the value when all values are equal.
pub fn histogram(values: &[Decimal], buckets_max: usize) -> Vec<Bucket> {
    let buckets_max = buckets_max.max(1);
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return Vec::new();
    };
    let width = nice_width(*max - *min, buckets_max);
    let lo0 = floor_to(*min, width);
    let mut n = ((*max - lo0) / width).floor().to_usize().unwrap_or(0) + 1;
    n = n.min(buckets_max + 1);
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| {
            let lo = lo0 + width * Decimal::from(i as u64);
            Bucket {
                lo,
                hi: lo + width,
                count: 0,
            }
        })
        .collect();
    for v in values {
        let i = ((*v - lo0) / width).floor().to_usize().unwrap_or(0);
        out[i.min(n - 1)].count += 1;
    }
    debug_assert_eq!(
        out.iter().map(|b| b.count).sum::<u64>(),
        values.len() as u64
    );
    out
}

fn nice_width(range: Decimal, buckets_max: usize) -> Decimal {
    if range <= Decimal::ZERO {
        return Decimal::ONE;
    }
    let raw = range / Decimal::from(buckets_max as u64);
    let mut p = Decimal::new(1, 20);
    // Bounded: at most ~50 decades between 1e-20 and Decimal's maximum.
    for _ in 0..60 {
        for m in [1u32, 2, 5] {
            let w = p * Decimal::from(m);
            if w >= raw {
                return w;
            }
        }
        match p.checked_mul(Decimal::TEN) {
            Some(q) => p = q,
            None => break,
        }
    }
    range
}

fn floor_to(x: Decimal, width: Decimal) -> Decimal {
    (x / width).floor() * width
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn drawdown_of_edge_cases() {
        assert_eq!(max_drawdown(&[]), Decimal::ZERO);
        assert_eq!(max_drawdown(&[d("5")]), Decimal::ZERO);
        assert_eq!(max_drawdown(&[d("1"), d("2"), d("3")]), Decimal::ZERO);
        assert_eq!(max_drawdown(&[d("0"), d("-1")]), Decimal::ZERO);
        assert_eq!(
            max_drawdown(&[d("100"), d("50"), d("200"), d("150")]),
            d("0.5")
        );
    }

    #[test]
    fn sharpe_degenerate() {
        assert_eq!(sharpe(&[], 365.0), None);
        assert_eq!(sharpe(&[0.1], 365.0), None);
        assert_eq!(sharpe(&[0.01, 0.01, 0.01], 365.0), None);
        assert_eq!(
            sharpe_of_curve(&[d("100"), d("100"), d("100")], 365.0),
            None
        );
    }

    #[test]
    fn histogram_nice() {
        let h = histogram(&[d("-12"), d("3"), d("7"), d("48")], 10);
        assert_eq!(h.first().unwrap().lo, d("-20"));
        assert_eq!(h.iter().map(|b| b.count).sum::<u64>(), 4);
        assert!(h.len() <= 11);
        let one = histogram(&[d("3"), d("3")], 10);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].count, 2);
    }
}
