//! One follower's own report: its subscriptions, positions, P&L, fees, the sync of
//! its positions and a summary of its instructions, orders and fills.
//!
//! **Invariant:** a `FollowerView` holds nothing of any other follower. Its P&L
//! and fees are computed from its own subscriptions only (the others are not
//! passed to `followers::followers`), its reconciliation pairs and orders are
//! filtered by its id, and it carries no operator figure that sums over followers
//! (leader AUM and follower counts, fee totals, P&L distribution, audit log). What
//! it shares with every report is market data: marks and, for a symbol without a
//! mark, the latest trade price in it, and the report's time (the latest
//! timestamp in the database unless set).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::followers::{self, FollowerReport, SubInfo};
use super::query::{self, Dataset, Source};
use super::recon::{self, PairSync};
use super::{status_label, tally, PriceBasis, ReportError, ReportOptions};

/// One follower's report.
#[derive(Clone, Debug, PartialEq)]
pub struct FollowerView {
    pub as_of_ns: Option<i64>,
    pub options: ReportOptions,
    pub notes: Vec<String>,
    /// P&L, fees and open positions per subscription, and their sums.
    pub follower: FollowerReport,
    /// Every (subscription, symbol) pair of the follower: target, venue, deviation.
    pub sync: Vec<PairSync>,
    pub activity: FollowerActivity,
}

/// The follower's instructions, orders and fills, counted; its orders listed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FollowerActivity {
    pub instructions: u64,
    /// `status (reason)` counts.
    pub instructions_by_status: Vec<(String, u64)>,
    pub orders: u64,
    pub orders_by_status: Vec<(String, u64)>,
    pub reject_reasons: Vec<(String, u64)>,
    pub fills: u64,
    /// Σ |qty| × price over its fills.
    pub filled_notional: Decimal,
    /// Its orders, latest first.
    pub orders_list: Vec<OrderLine>,
}

/// One order of the follower.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderLine {
    pub seq: i64,
    pub client_order_id: String,
    pub subscription_id: String,
    pub symbol: String,
    pub side: String,
    pub qty: Decimal,
    pub order_type: String,
    pub status: String,
    pub filled_qty: Decimal,
    pub reject_reason: Option<String>,
}

/// The report of follower `follower_id`; an error naming it when no row names it.
pub(crate) fn build(
    src: &mut dyn Source,
    opts: &ReportOptions,
    follower_id: &str,
) -> Result<FollowerView, ReportError> {
    super::validate(opts)?;
    let ds = query::load(src, 0)?;
    let as_of = opts.as_of_ns.or_else(|| ds.last_ts());
    let as_of_ns = as_of.unwrap_or(0);

    let mine: BTreeMap<String, SubInfo> = followers::subscription_index(&ds)
        .into_iter()
        .filter(|(_, s)| s.follower_id == follower_id)
        .collect();
    let named = ds.followers.contains_key(follower_id)
        || ds.instructions.iter().any(|i| i.follower_id == follower_id)
        || ds.orders.iter().any(|o| o.follower_id == follower_id)
        || ds.fills.iter().any(|f| f.follower_id == follower_id);
    if mine.is_empty() && !named {
        return Err(ReportError::UnknownFollower(follower_id.to_string()));
    }
    let (all, _) = followers::followers(&ds, &mine, as_of_ns, opts)?;
    let follower = all
        .into_iter()
        .find(|f| f.follower_id == follower_id)
        .unwrap_or_else(|| empty(follower_id));
    debug_assert!(follower
        .subscriptions
        .iter()
        .all(|s| s.follower_id == follower_id));

    let sync: Vec<PairSync> = recon::reconcile(&ds, &mine, as_of_ns, opts)
        .pairs
        .into_iter()
        .filter(|p| p.follower_id == follower_id)
        .collect();
    let activity = activity(&ds, follower_id);

    let mut notes = Vec::new();
    let unmarked: std::collections::BTreeSet<&str> = follower
        .subscriptions
        .iter()
        .flat_map(|s| &s.open_positions)
        .filter(|p| p.basis == PriceBasis::LatestTrade)
        .map(|p| p.symbol.as_str())
        .collect();
    if !unmarked.is_empty() {
        notes.push(format!(
            "no mark price for {}: open positions in them are valued at the latest trade in the symbol",
            unmarked.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if activity.fills > 0 && ds.funding_payments.is_none() {
        notes.push(
            "funding not recorded (a database from before schema version 7): P&L excludes funding"
                .to_string(),
        );
    }
    Ok(FollowerView {
        as_of_ns: as_of,
        options: opts.clone(),
        notes,
        follower,
        sync,
        activity,
    })
}

/// A follower named only by rows the P&L does not read.
fn empty(follower_id: &str) -> FollowerReport {
    FollowerReport {
        follower_id: follower_id.to_string(),
        account_equity: None,
        account_equity_source: None,
        realized_pnl: Decimal::ZERO,
        unrealized_pnl: Decimal::ZERO,
        fees_paid: Decimal::ZERO,
        funding: None,
        net_pnl: Decimal::ZERO,
        capital_flows: Decimal::ZERO,
        performance_fee: Decimal::ZERO,
        leader_share: Decimal::ZERO,
        platform_share: Decimal::ZERO,
        performance_fee_accrued: Decimal::ZERO,
        subscriptions: Vec::new(),
    }
}

fn activity(ds: &Dataset, follower_id: &str) -> FollowerActivity {
    let instructions: Vec<_> = ds
        .instructions
        .iter()
        .filter(|i| i.follower_id == follower_id)
        .collect();
    let orders: Vec<_> = ds
        .orders
        .iter()
        .filter(|o| o.follower_id == follower_id)
        .collect();
    let fills: Vec<_> = ds
        .fills
        .iter()
        .filter(|f| f.follower_id == follower_id)
        .collect();
    let mut orders_list: Vec<OrderLine> = orders
        .iter()
        .map(|o| OrderLine {
            seq: o.seq,
            client_order_id: o.client_order_id.clone(),
            subscription_id: o.subscription_id.clone(),
            symbol: o.symbol.clone(),
            side: o.side.clone(),
            qty: o.qty,
            order_type: o.order_type.clone(),
            status: o.status.clone(),
            filled_qty: o.filled_qty,
            reject_reason: o.reject_reason.clone(),
        })
        .collect();
    orders_list.sort_by_key(|o| std::cmp::Reverse(o.seq));
    FollowerActivity {
        instructions: instructions.len() as u64,
        instructions_by_status: tally(instructions.iter().map(|i| status_label(i))),
        orders: orders.len() as u64,
        orders_by_status: tally(orders.iter().map(|o| o.status.clone())),
        reject_reasons: tally(orders.iter().filter_map(|o| o.reject_reason.clone())),
        fills: fills.len() as u64,
        filled_notional: fills.iter().map(|f| f.qty.abs() * f.price).sum(),
        orders_list,
    }
}
