//! Follower P&L and performance fees, from the venue's fills (`follower_fills`)
//! and the marks, never from what the engine meant to do.
//!
//! Per subscription: realized P&L (average cost), unrealized P&L of the open
//! positions at the mark (else the latest trade in the symbol by anyone, see
//! `ledger`), trading fees paid, and `net = realized + unrealized − fees`.
//! Its *equity* is `allocation + net`; high-water-mark performance fees (see
//! `fees`) are charged on that equity at each settlement period's end. A follower's
//! figures are the sums over its subscriptions. Funding payments are not in the
//! schema and are reported as not recorded (`None`), never as zero.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::fees::{self, FeeSchedule, PeriodEquity};
use super::ledger::{self, LedgerFill, OpenPosition};
use super::metrics::{self, Bucket};
use super::query::{signed, Dataset};
use super::{id_cmp, ReportError, ReportOptions};

/// One subscription's P&L and fees.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionPnl {
    pub subscription_id: String,
    pub follower_id: String,
    pub leader_id: String,
    pub mode: Option<String>,
    pub allocation: Option<Decimal>,
    pub fills: usize,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    /// Trading fees paid to the venue (negative: rebates).
    pub fees_paid: Decimal,
    pub net_pnl: Decimal,
    /// `allocation + net_pnl`.
    pub equity: Decimal,
    pub open_positions: Vec<OpenPosition>,
    pub performance_fee: FeeSchedule,
}

/// One follower: the sums over its subscriptions.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerReport {
    pub follower_id: String,
    /// `followers.equity`, when the table has it.
    pub account_equity: Option<Decimal>,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees_paid: Decimal,
    /// Funding is not in the schema: always `None` (not recorded).
    pub funding: Option<Decimal>,
    pub net_pnl: Decimal,
    /// Settled performance fees, and their split.
    pub performance_fee: Decimal,
    pub leader_share: Decimal,
    pub platform_share: Decimal,
    /// Performance fee of the running period, not yet charged.
    pub performance_fee_accrued: Decimal,
    pub subscriptions: Vec<SubscriptionPnl>,
}

/// Performance fees over all followers.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FeeTotals {
    pub fee: Decimal,
    pub leader_share: Decimal,
    pub platform_share: Decimal,
    pub accrued: Decimal,
    /// Leader share per leader.
    pub by_leader: Vec<(String, Decimal)>,
}

/// Who a subscription belongs to, from whichever table names it.
#[derive(Clone, Debug, Default)]
pub(crate) struct SubInfo {
    pub follower_id: String,
    pub leader_id: String,
    pub mode: Option<String>,
    pub allocation: Option<Decimal>,
}

pub(crate) fn subscription_index(ds: &Dataset) -> BTreeMap<String, SubInfo> {
    let mut m: BTreeMap<String, SubInfo> = BTreeMap::new();
    for s in &ds.subscriptions {
        m.insert(
            s.subscription_id.clone(),
            SubInfo {
                follower_id: s.follower_id.clone(),
                leader_id: s.leader_id.clone(),
                mode: s.mode.clone(),
                allocation: s.allocation,
            },
        );
    }
    let mut fill_in = |sub: &str, follower: &str, leader: &str| {
        let e = m.entry(sub.to_string()).or_default();
        if e.follower_id.is_empty() {
            e.follower_id = follower.to_string();
        }
        if e.leader_id.is_empty() {
            e.leader_id = leader.to_string();
        }
    };
    for i in &ds.instructions {
        fill_in(&i.subscription_id, &i.follower_id, &i.leader_id);
    }
    for o in &ds.orders {
        fill_in(&o.subscription_id, &o.follower_id, &o.leader_id);
    }
    for p in &ds.positions {
        fill_in(&p.subscription_id, &p.follower_id, &p.leader_id);
    }
    for f in &ds.fills {
        fill_in(&f.subscription_id, &f.follower_id, "");
    }
    m
}

pub(crate) fn followers(
    ds: &Dataset,
    subs: &BTreeMap<String, SubInfo>,
    as_of_ns: i64,
    opts: &ReportOptions,
) -> Result<(Vec<FollowerReport>, FeeTotals), ReportError> {
    let mut fills: BTreeMap<&str, Vec<LedgerFill>> = BTreeMap::new();
    for f in &ds.fills {
        fills
            .entry(f.subscription_id.as_str())
            .or_default()
            .push(LedgerFill {
                ts_ns: f.ts,
                seq: f.seq,
                symbol: f.symbol.clone(),
                signed_qty: signed(&f.side, f.qty),
                price: f.price,
                fee: f.fee,
                position_after: None,
            });
    }

    let mut by_follower: BTreeMap<String, Vec<SubscriptionPnl>> = BTreeMap::new();
    for id in ds.followers.keys() {
        by_follower.entry(id.clone()).or_default();
    }
    for (sub_id, info) in subs {
        let empty = Vec::new();
        let sf = fills.get(sub_id.as_str()).unwrap_or(&empty);
        let base = info.allocation.unwrap_or_default();
        let periods = sf
            .iter()
            .map(|f| f.ts_ns)
            .min()
            .map(|first| fees::periods(opts.fee.settlement, first, as_of_ns, opts.fee_periods_max))
            .unwrap_or_default();
        // Equity is needed only at each period's end (the last instant inside it)
        // and at the report's time: value there, not at every mark.
        let at = |(_, e): (i64, i64)| if e <= as_of_ns { e - 1 } else { as_of_ns };
        let times: Vec<i64> = periods.iter().copied().map(at).collect();
        let r = ledger::replay(
            base,
            sf,
            &ds.marks,
            &ds.trades,
            as_of_ns,
            ledger::Valuation::At(&times),
        )
        .map_err(|o| ReportError::Overflow {
            what: format!("subscription {sub_id}"),
            ts_ns: o.ts_ns,
        })?;
        let period_equities: Vec<PeriodEquity> = periods
            .iter()
            .map(|&(s, e)| PeriodEquity {
                start_ns: s,
                end_ns: e,
                equity: ledger::value_at(&r.curve, at((s, e)), base),
                settled: e <= as_of_ns,
            })
            .collect();
        let schedule = fees::hwm_fees(base, &period_equities, &opts.fee);
        let net = r.realized + r.unrealized - r.fees;
        by_follower
            .entry(info.follower_id.clone())
            .or_default()
            .push(SubscriptionPnl {
                subscription_id: sub_id.clone(),
                follower_id: info.follower_id.clone(),
                leader_id: info.leader_id.clone(),
                mode: info.mode.clone(),
                allocation: info.allocation,
                fills: sf.len(),
                realized_pnl: r.realized,
                unrealized_pnl: r.unrealized,
                fees_paid: r.fees,
                net_pnl: net,
                equity: base + net,
                open_positions: r.open,
                performance_fee: schedule,
            });
    }

    let mut totals = FeeTotals::default();
    let mut by_leader: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut out: Vec<FollowerReport> = by_follower
        .into_iter()
        .map(|(follower_id, mut subscriptions)| {
            subscriptions.sort_by(|a, b| id_cmp(&a.subscription_id, &b.subscription_id));
            let sum =
                |f: fn(&SubscriptionPnl) -> Decimal| subscriptions.iter().map(f).sum::<Decimal>();
            let fr = FollowerReport {
                account_equity: ds.followers.get(&follower_id).copied().flatten(),
                realized_pnl: sum(|s| s.realized_pnl),
                unrealized_pnl: sum(|s| s.unrealized_pnl),
                fees_paid: sum(|s| s.fees_paid),
                funding: None,
                net_pnl: sum(|s| s.net_pnl),
                performance_fee: sum(|s| s.performance_fee.fee),
                leader_share: sum(|s| s.performance_fee.leader_share),
                platform_share: sum(|s| s.performance_fee.platform_share),
                performance_fee_accrued: sum(|s| s.performance_fee.accrued),
                follower_id,
                subscriptions,
            };
            for s in &fr.subscriptions {
                *by_leader.entry(s.leader_id.clone()).or_default() +=
                    s.performance_fee.leader_share;
            }
            totals.fee += fr.performance_fee;
            totals.leader_share += fr.leader_share;
            totals.platform_share += fr.platform_share;
            totals.accrued += fr.performance_fee_accrued;
            fr
        })
        .collect();
    out.sort_by(|a, b| id_cmp(&a.follower_id, &b.follower_id));
    let mut by_leader: Vec<(String, Decimal)> = by_leader.into_iter().collect();
    by_leader.sort_by(|a, b| id_cmp(&a.0, &b.0));
    totals.by_leader = by_leader;
    debug_assert_eq!(totals.leader_share + totals.platform_share, totals.fee);
    Ok((out, totals))
}

/// The distribution of followers' net P&L, in "nice" buckets.
pub(crate) fn pnl_distribution(followers: &[FollowerReport], buckets_max: usize) -> Vec<Bucket> {
    let values: Vec<Decimal> = followers
        .iter()
        .filter(|f| !f.subscriptions.is_empty())
        .map(|f| f.net_pnl)
        .collect();
    metrics::histogram(&values, buckets_max)
}
