//! Follower P&L and performance fees, from the venue's fills (`follower_fills`)
//! and the marks, never from what the engine meant to do.
//!
//! Per subscription: realized P&L (average cost), unrealized P&L of the open
//! positions at the mark (else the latest trade in the symbol by anyone, see
//! `ledger`), trading fees paid, funding received (negative: paid; the
//! sidecar's `funding_payments` rows of the subscription), and `net = realized +
//! unrealized − fees + funding`.
//! Its *equity* is `allocation + net`, the allocation as it stood at each instant:
//! a change of it (`allocation_changes`, a config reload) is capital added or
//! withdrawn, neither profit nor loss, so it moves equity and the high-water mark
//! (`fees::hwm_after_flow`) but not P&L, and returns are time-weighted across it.
//! High-water-mark performance fees (see
//! `fees`) are charged on that equity at each settlement period's end. A follower's
//! figures are the sums over its subscriptions.
//!
//! **Funding** moves equity at its time (`ledger`), as cash: the drawdowns, the
//! time-weighted return and the high-water-mark fees see it. A database without
//! the `funding_payments` table (from before schema version 7) recorded none:
//! funding is then `None` (not recorded), never zero, and net P&L leaves it out.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::fees::{self, CapitalFlow, FeeSchedule, PeriodEquity};
use super::ledger::{self, LedgerFill, LedgerFunding, OpenPosition};
use super::metrics::{self, Bucket};
use super::query::{signed, AllocationChange, Dataset};
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
    /// Funding received (negative: paid) up to the report's time; `None` when
    /// the database does not record funding.
    pub funding: Option<Decimal>,
    /// `realized + unrealized − fees + funding`.
    pub net_pnl: Decimal,
    /// Capital added (positive) or withdrawn since the subscription started: the
    /// changes of its allocation (`allocation_changes`) up to the report's time.
    pub capital_flows: Decimal,
    /// `starting allocation + capital_flows + net_pnl`.
    pub equity: Decimal,
    /// The return with the capital flows taken out: the product over the spans
    /// between flows of (equity at the span's end ÷ equity at its start), minus 1.
    /// `None` when a span starts with no positive equity.
    pub time_weighted_return: Option<Decimal>,
    pub open_positions: Vec<OpenPosition>,
    pub performance_fee: FeeSchedule,
}

/// One follower: the sums over its subscriptions.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerReport {
    pub follower_id: String,
    /// The account's equity: the latest `follower_equity` row at or before the
    /// report's time (what a source reported), else `followers.equity` (config).
    pub account_equity: Option<Decimal>,
    /// Where `account_equity` comes from: `follower_equity` or `followers`.
    pub account_equity_source: Option<&'static str>,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    pub fees_paid: Decimal,
    /// Funding received (negative: paid), over its subscriptions; `None` when
    /// the database does not record funding (`funding_payments`).
    pub funding: Option<Decimal>,
    pub net_pnl: Decimal,
    /// Capital added (positive) or withdrawn, over its subscriptions.
    pub capital_flows: Decimal,
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

    let mut funding: BTreeMap<&str, Vec<LedgerFunding>> = BTreeMap::new();
    for p in ds.funding_payments.iter().flatten() {
        if let Some(sub) = &p.subscription_id {
            funding
                .entry(sub.as_str())
                .or_default()
                .push(LedgerFunding {
                    ts_ns: p.ts,
                    seq: p.seq,
                    amount: p.amount,
                });
        }
    }
    let recorded = ds.funding_payments.is_some();

    let mut changes: BTreeMap<&str, Vec<&AllocationChange>> = BTreeMap::new();
    for c in ds.allocation_changes.iter().filter(|c| c.ts <= as_of_ns) {
        changes
            .entry(c.subscription_id.as_str())
            .or_default()
            .push(c);
    }

    let mut by_follower: BTreeMap<String, Vec<SubscriptionPnl>> = BTreeMap::new();
    for id in ds.followers.keys() {
        by_follower.entry(id.clone()).or_default();
    }
    for (sub_id, info) in subs {
        let empty = Vec::new();
        let sf = fills.get(sub_id.as_str()).unwrap_or(&empty);
        let no_funding = Vec::new();
        let paid = funding.get(sub_id.as_str()).unwrap_or(&no_funding);
        let changed = changes.get(sub_id.as_str()).map_or(&[][..], |c| &c[..]);
        // The allocation the subscription started with: before its first change.
        let base = changed
            .first()
            .map(|c| c.before)
            .or(info.allocation)
            .unwrap_or_default();
        let periods = sf
            .iter()
            .map(|f| f.ts_ns)
            .min()
            .map(|first| fees::periods(opts.fee.settlement, first, as_of_ns, opts.fee_periods_max))
            .unwrap_or_default();
        // Equity is needed only at each period's end (the last instant inside it),
        // at each change of the allocation and at the report's time: value there,
        // not at every mark.
        let at = |(_, e): (i64, i64)| if e <= as_of_ns { e - 1 } else { as_of_ns };
        let mut times: Vec<i64> = periods.iter().copied().map(at).collect();
        times.extend(changed.iter().map(|c| c.ts));
        times.sort_unstable();
        let r = ledger::replay(
            base,
            sf,
            paid,
            &ds.marks,
            &ds.trades,
            as_of_ns,
            ledger::Valuation::At(&times),
        )
        .map_err(|o| ReportError::Overflow {
            what: format!("subscription {sub_id}"),
            ts_ns: o.ts_ns,
        })?;
        let capital = Capital::new(base, changed);
        let net_at = |t: i64| ledger::value_at(&r.curve, t, base) - base;
        let equity_at = |t: i64| base + capital.added_by(t) + net_at(t);
        let flows = capital.flows(net_at);
        let period_equities: Vec<PeriodEquity> = periods
            .iter()
            .map(|&(s, e)| PeriodEquity {
                start_ns: s,
                end_ns: e,
                equity: equity_at(at((s, e))),
                settled: e <= as_of_ns,
            })
            .collect();
        let schedule = fees::hwm_fees_with_flows(base, &period_equities, &flows, &opts.fee);
        // `r.funding` is zero when none is recorded: net is then what it was.
        let net = r.realized + r.unrealized - r.fees + r.funding;
        let equity = base + capital.added + net;
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
                funding: recorded.then_some(r.funding),
                net_pnl: net,
                capital_flows: capital.added,
                equity,
                time_weighted_return: time_weighted_return(base, &flows, equity),
                open_positions: r.open,
                performance_fee: schedule,
            });
    }

    // The latest reported equity per follower, up to the report's time.
    let mut reported: BTreeMap<&str, Decimal> = BTreeMap::new();
    for (f, _, e) in ds.follower_equity.iter().filter(|e| e.1 <= as_of_ns) {
        reported.insert(f.as_str(), *e);
    }
    let mut totals = FeeTotals::default();
    let mut by_leader: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut out: Vec<FollowerReport> = by_follower
        .into_iter()
        .map(|(follower_id, mut subscriptions)| {
            subscriptions.sort_by(|a, b| id_cmp(&a.subscription_id, &b.subscription_id));
            let sum =
                |f: fn(&SubscriptionPnl) -> Decimal| subscriptions.iter().map(f).sum::<Decimal>();
            let reported = reported.get(follower_id.as_str()).copied();
            let configured = ds.followers.get(&follower_id).copied().flatten();
            let (account_equity, account_equity_source) = match (reported, configured) {
                (Some(e), _) => (Some(e), Some("follower_equity")),
                (None, Some(e)) => (Some(e), Some("followers")),
                (None, None) => (None, None),
            };
            let fr = FollowerReport {
                account_equity,
                account_equity_source,
                realized_pnl: sum(|s| s.realized_pnl),
                unrealized_pnl: sum(|s| s.unrealized_pnl),
                fees_paid: sum(|s| s.fees_paid),
                funding: recorded.then(|| sum(|s| s.funding.unwrap_or_default())),
                net_pnl: sum(|s| s.net_pnl),
                capital_flows: sum(|s| s.capital_flows),
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

/// A subscription's capital over time: its starting allocation and the changes.
struct Capital<'a> {
    changes: &'a [&'a AllocationChange],
    /// All of them, summed.
    added: Decimal,
}

impl<'a> Capital<'a> {
    fn new(base: Decimal, changes: &'a [&'a AllocationChange]) -> Capital<'a> {
        let added = changes.last().map_or(Decimal::ZERO, |c| c.after - base);
        Capital { changes, added }
    }

    /// Capital added up to and including `ts_ns`.
    fn added_by(&self, ts_ns: i64) -> Decimal {
        let n = self.changes.partition_point(|c| c.ts <= ts_ns);
        match n {
            0 => Decimal::ZERO,
            // Each change states the allocation before it: a change missed (none is
            // written without its revision) cannot skew the ones after it.
            _ => self.changes[n - 1].after - self.changes[0].before,
        }
    }

    /// The changes as flows, each with the equity just before it: the
    /// allocation it changes plus the P&L by then (`net_at`).
    fn flows(&self, net_at: impl Fn(i64) -> Decimal) -> Vec<CapitalFlow> {
        self.changes
            .iter()
            .map(|c| CapitalFlow {
                ts_ns: c.ts,
                amount: c.after - c.before,
                equity_before: c.before + net_at(c.ts),
            })
            .collect()
    }
}

/// The time-weighted return from `start` (the starting equity) through `flows` to
/// `end`: `Π (equity before flow ÷ equity after the previous one) × (end ÷ equity
/// after the last) − 1`.
fn time_weighted_return(start: Decimal, flows: &[CapitalFlow], end: Decimal) -> Option<Decimal> {
    let mut growth = Decimal::ONE;
    let mut from = start;
    for f in flows {
        if from <= Decimal::ZERO {
            return None;
        }
        growth = growth.checked_mul(f.equity_before.checked_div(from)?)?;
        from = f.equity_before + f.amount;
    }
    if from <= Decimal::ZERO {
        return None;
    }
    Some(growth.checked_mul(end.checked_div(from)?)? - Decimal::ONE)
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
