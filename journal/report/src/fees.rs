//! High-water-mark performance fees, per settlement period.
//!
//! At the end of each settlement period (UTC day, ISO week from Monday, or calendar
//! month) the follower's equity in a subscription is compared with its high-water
//! mark (HWM):
//!
//! `fee = rate × max(0, equity_end − HWM)`, then `HWM = equity_end` if a fee was due.
//!
//! The HWM starts at the equity the follower started with (the subscription's
//! allocation), so only profit is ever charged, and each unit of profit once: a
//! follower who loses and then recovers pays nothing until equity passes the old
//! high. Over any history the settled fees add up to `rate × (final HWM − initial)`.
//! The equity compared is *trading* equity (allocation + realized + unrealized −
//! trading fees), before performance fees: that is why raising the HWM to the
//! pre-fee equity charges each unit of profit exactly once.
//!
//! Each fee is split: `leader_share = fee × leader_fraction`, `platform_share = fee −
//! leader_share` (so the two always add up to the fee exactly). The period still
//! running at the report's time is not settled: its fee is *accrued*, shown but not
//! charged, and it does not raise the HWM.
//!
//! Capital the follower adds or withdraws (a change of the subscription's
//! allocation, `CapitalFlow`) is not profit and not loss: a deposit raises the HWM
//! by its amount, a withdrawal lowers it in proportion (`hwm_after_flow`). Without
//! flows, the settled fees add up to `rate × (final HWM − initial)`.
//!
//! Pure: equities in, a schedule out.

use rust_decimal::Decimal;

use super::time::{day_start, month_start, next_month_start, week_start, NS_PER_DAY};

/// How often performance fees are settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settlement {
    Daily,
    Weekly,
    Monthly,
}

impl Settlement {
    pub fn as_str(self) -> &'static str {
        match self {
            Settlement::Daily => "daily",
            Settlement::Weekly => "weekly",
            Settlement::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Settlement> {
        match s {
            "daily" => Some(Settlement::Daily),
            "weekly" => Some(Settlement::Weekly),
            "monthly" => Some(Settlement::Monthly),
            _ => None,
        }
    }

    /// Start of the period holding `ts_ns`.
    pub fn period_start(self, ts_ns: i64) -> i64 {
        match self {
            Settlement::Daily => day_start(ts_ns),
            Settlement::Weekly => week_start(ts_ns),
            Settlement::Monthly => month_start(ts_ns),
        }
    }

    /// Start of the period after the one starting at `start_ns`.
    pub fn next_start(self, start_ns: i64) -> i64 {
        match self {
            Settlement::Daily => start_ns + NS_PER_DAY,
            Settlement::Weekly => start_ns + 7 * NS_PER_DAY,
            Settlement::Monthly => next_month_start(start_ns),
        }
    }
}

/// The performance-fee terms.
#[derive(Clone, Debug, PartialEq)]
pub struct FeePolicy {
    /// Fraction of new profit charged, in `[0, 1]` (0.1 = 10%).
    pub rate: Decimal,
    /// Fraction of each fee paid to the leader, in `[0, 1]`; the platform keeps the rest.
    pub leader_fraction: Decimal,
    pub settlement: Settlement,
}

impl Default for FeePolicy {
    /// 10% of new profit, settled monthly, 80% to the leader and 20% to the platform.
    fn default() -> Self {
        FeePolicy {
            rate: Decimal::new(10, 2),
            leader_fraction: Decimal::new(80, 2),
            settlement: Settlement::Monthly,
        }
    }
}

/// A fee policy outside what a fee can be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    #[error("fee rate {0} is outside [0, 1] (0.1 means 10%)")]
    Rate(Decimal),
    #[error("fee leader_fraction {0} is outside [0, 1]")]
    LeaderFraction(Decimal),
}

impl FeePolicy {
    /// Checks that both fractions lie in `[0, 1]`.
    pub fn validate(&self) -> Result<(), FeeError> {
        let unit = Decimal::ZERO..=Decimal::ONE;
        if !unit.contains(&self.rate) {
            return Err(FeeError::Rate(self.rate));
        }
        if !unit.contains(&self.leader_fraction) {
            return Err(FeeError::LeaderFraction(self.leader_fraction));
        }
        Ok(())
    }

    /// `(leader_share, platform_share)` of a fee; they add up to `fee` exactly.
    pub fn split(&self, fee: Decimal) -> (Decimal, Decimal) {
        let leader = fee * self.leader_fraction;
        (leader, fee - leader)
    }
}

/// The equity at the end of one settlement period.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodEquity {
    pub start_ns: i64,
    pub end_ns: i64,
    pub equity: Decimal,
    /// `false` for the period still running at the report's time.
    pub settled: bool,
}

/// One settlement period's fee.
#[derive(Clone, Debug, PartialEq)]
pub struct FeePeriod {
    pub start_ns: i64,
    pub end_ns: i64,
    pub equity_end: Decimal,
    pub hwm_before: Decimal,
    pub fee: Decimal,
    pub leader_share: Decimal,
    pub platform_share: Decimal,
    pub hwm_after: Decimal,
    pub settled: bool,
}

/// Fees of one account over its periods.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FeeSchedule {
    pub initial_hwm: Decimal,
    pub periods: Vec<FeePeriod>,
    /// Sums over settled periods.
    pub fee: Decimal,
    pub leader_share: Decimal,
    pub platform_share: Decimal,
    /// The fee the running period would owe if it ended now (not charged).
    pub accrued: Decimal,
    pub hwm: Decimal,
    /// The capital flows applied, summed (deposits minus withdrawals).
    pub flows: Decimal,
}

/// Capital the follower added (`amount > 0`) or withdrew, at `ts_ns`: a change of
/// a subscription's allocation.
#[derive(Clone, Debug, PartialEq)]
pub struct CapitalFlow {
    pub ts_ns: i64,
    pub amount: Decimal,
    /// Trading equity just before the flow.
    pub equity_before: Decimal,
}

/// The HWM after `flow`. A deposit raises it by the amount (new capital is not
/// profit). A withdrawal lowers it in proportion to the equity withdrawn, so the
/// profit still needed to pass it, in percent, is what it was: the loss not yet
/// recovered leaves with the capital that bore it. Were it lowered by the amount
/// instead, a follower who withdrew after a loss would owe no fee on a recovery
/// larger than its whole remaining capital's worth. With no positive equity to
/// take a share of, it falls by the amount, never below zero.
pub fn hwm_after_flow(hwm: Decimal, flow: &CapitalFlow) -> Decimal {
    if flow.amount >= Decimal::ZERO {
        return hwm + flow.amount;
    }
    if flow.equity_before > Decimal::ZERO {
        let left = (flow.equity_before + flow.amount).max(Decimal::ZERO);
        // Multiplied first, so that an HWM equal to the equity becomes exactly what
        // is left; then up to the money unit (1e-8), so that a rounding is never
        // charged as profit.
        let hwm = match hwm.checked_mul(left) {
            Some(p) => p / flow.equity_before,
            None => hwm * (left / flow.equity_before),
        };
        hwm.round_dp_with_strategy(8, rust_decimal::RoundingStrategy::AwayFromZero)
    } else {
        (hwm + flow.amount).max(Decimal::ZERO)
    }
}

/// Applies `policy` to period-end equities (in time order), starting from
/// `initial_equity` as the HWM.
pub fn hwm_fees(
    initial_equity: Decimal,
    periods: &[PeriodEquity],
    policy: &FeePolicy,
) -> FeeSchedule {
    hwm_fees_with_flows(initial_equity, periods, &[], policy)
}

/// `hwm_fees` with capital flows (in time order): each moves the HWM
/// (`hwm_after_flow`) before the end of the period it falls in is settled. The
/// period-end equities already hold the flows up to then.
pub fn hwm_fees_with_flows(
    initial_equity: Decimal,
    periods: &[PeriodEquity],
    flows: &[CapitalFlow],
    policy: &FeePolicy,
) -> FeeSchedule {
    let mut s = FeeSchedule {
        initial_hwm: initial_equity,
        hwm: initial_equity,
        ..FeeSchedule::default()
    };
    let mut flows = flows.iter().peekable();
    for p in periods {
        debug_assert!(p.start_ns < p.end_ns);
        // The period's equity is taken at its last instant, `end_ns - 1`.
        while let Some(f) = flows.next_if(|f| f.ts_ns < p.end_ns) {
            s.hwm = hwm_after_flow(s.hwm, f);
            s.flows += f.amount;
        }
        let excess = (p.equity - s.hwm).max(Decimal::ZERO);
        let fee = policy.rate * excess;
        let (leader_share, platform_share) = policy.split(fee);
        let hwm_before = s.hwm;
        if p.settled {
            if fee > Decimal::ZERO {
                s.hwm = p.equity;
            }
            s.fee += fee;
            s.leader_share += leader_share;
            s.platform_share += platform_share;
        } else {
            s.accrued += fee;
        }
        s.periods.push(FeePeriod {
            start_ns: p.start_ns,
            end_ns: p.end_ns,
            equity_end: p.equity,
            hwm_before,
            fee,
            leader_share,
            platform_share,
            hwm_after: s.hwm,
            settled: p.settled,
        });
    }
    for f in flows {
        s.hwm = hwm_after_flow(s.hwm, f);
        s.flows += f.amount;
    }
    debug_assert_eq!(s.leader_share + s.platform_share, s.fee);
    s
}

/// The settlement periods that overlap `[first_ns, as_of_ns]`: `(start, end)` with
/// `end` exclusive, the last one running past `as_of_ns` unless it ends exactly there.
/// At most `periods_max` of them (the latest ones are kept; the HWM then starts
/// at the first kept period).
pub fn periods(
    settlement: Settlement,
    first_ns: i64,
    as_of_ns: i64,
    periods_max: usize,
) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if as_of_ns < first_ns {
        return out;
    }
    // Periods older than `periods_max` months cannot be among the kept ones: start
    // there, so that a bogus early timestamp cannot make this loop run for ages.
    let horizon = as_of_ns.saturating_sub((periods_max as i64).saturating_mul(31 * NS_PER_DAY));
    let mut start = settlement.period_start(first_ns.max(horizon));
    // Bounded: periods only move forward, at least one day at a time.
    while start <= as_of_ns {
        let end = settlement.next_start(start);
        debug_assert!(end > start);
        if start == as_of_ns && !out.is_empty() {
            break;
        }
        out.push((start, end));
        start = end;
    }
    if out.len() > periods_max {
        out.drain(..out.len() - periods_max);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_cover_the_span() {
        let day = NS_PER_DAY;
        let p = periods(Settlement::Daily, day / 2, 3 * day, 100);
        assert_eq!(p, vec![(0, day), (day, 2 * day), (2 * day, 3 * day)]);
        let w = periods(Settlement::Weekly, 0, 10 * day, 100);
        // 1970-01-01 is a Thursday: its week starts Monday 1969-12-29.
        assert_eq!(w[0].0, -3 * day);
        assert_eq!(w.len(), 2);
        assert_eq!(periods(Settlement::Monthly, 5, 4, 100), vec![]);
    }
}
