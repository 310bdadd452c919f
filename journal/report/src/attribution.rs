//! Where the followers' P&L came from: the leaders' trading, the spread and
//! impact their own fills paid, trading fees and funding.
//!
//! Each follower fill `i` (signed quantity `q`, price `p`) has a *reference*
//! `r`: the price the decision copied. For a copy of a leader fill it is that
//! fill's price (through `follower_orders.event_id`); for any other order (a
//! resync, a stop, a close) it is the symbol's last known price just before the
//! fill, a mark or a leader fill, whichever is later, as the engine priced it.
//! With `V` the price a still-open position is valued at (the report's mark):
//!
//! - **leaders' trading** = Σ q × (V − r): what the fills would have made had
//!   each traded at the price it copied;
//! - **spread and impact** = Σ q × (r − p): what the market took between the
//!   leader's price and the follower's (negative: a cost);
//! - **fees** = − the trading fees paid; **funding** = the funding received.
//!
//! Their sum is the followers' net P&L (realized + unrealized − fees +
//! funding): Σ q × (V − p) is realized plus unrealized P&L whatever the
//! accounting. `residual` is what the report's net P&L and the parts differ
//! by, to the money unit (1e-8, below which the ledger's average prices
//! round), which is zero unless the data is inconsistent; it is shown, never
//! hidden.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::followers::FollowerReport;
use super::ledger::Trades;
use super::query::{signed, Dataset};

/// The followers' P&L, split by source (see the module docs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PnlAttribution {
    pub leaders_trading: Decimal,
    pub spread_and_impact: Decimal,
    /// Minus the trading fees paid (rebates count positive).
    pub fees: Decimal,
    /// Funding received (negative: paid); `None` when not recorded.
    pub funding: Option<Decimal>,
    /// The followers' net P&L, as the follower section has it.
    pub total: Decimal,
    /// `total` minus the sum of the parts, to the money unit (1e-8).
    pub residual: Decimal,
    /// Fills whose reference is the leader fill their order copied.
    pub fills_at_leader_price: u64,
    /// Fills whose reference is the last known price (no leader fill copied).
    pub fills_at_last_price: u64,
}

pub(crate) fn attribute(
    ds: &Dataset,
    followers: &[FollowerReport],
    as_of_ns: i64,
) -> PnlAttribution {
    // The leader fill each order copied, by client order id.
    let leader_price: HashMap<(&str, &str), Decimal> = ds
        .leader_fills
        .iter()
        .filter(|f| f.ignored.is_empty())
        .map(|f| ((f.leader_id.as_str(), f.event_id.as_str()), f.price))
        .collect();
    let copied: HashMap<&str, Decimal> = ds
        .orders
        .iter()
        .filter(|o| !o.event_id.is_empty())
        .filter_map(|o| {
            let p = leader_price.get(&(o.leader_id.as_str(), o.event_id.as_str()))?;
            Some((o.client_order_id.as_str(), *p))
        })
        .collect();
    // The engine's last known price: marks and leader fills, the later wins.
    let symbols: std::collections::BTreeSet<&str> =
        ds.fills.iter().map(|f| f.symbol.as_str()).collect();
    let last_known = Trades::new(
        ds.leader_fills
            .iter()
            .filter(|f| f.ignored.is_empty())
            .map(|f| (f.symbol.as_str(), f.ts(), f.seq, f.price))
            .chain(
                symbols
                    .iter()
                    .flat_map(|&s| ds.marks.of(s).iter().map(move |&(ts, p)| (s, ts, 0, p))),
            ),
    );
    // The valuation price of each subscription's open positions.
    let mut value: HashMap<(&str, &str), Decimal> = HashMap::new();
    let mut out = PnlAttribution::default();
    for s in followers.iter().flat_map(|f| &f.subscriptions) {
        for p in &s.open_positions {
            value.insert((s.subscription_id.as_str(), p.symbol.as_str()), p.mark);
        }
        out.total += s.net_pnl;
        out.fees -= s.fees_paid;
    }
    for f in followers {
        if let Some(x) = f.funding {
            *out.funding.get_or_insert(Decimal::ZERO) += x;
        }
    }
    for f in ds.fills.iter().filter(|f| f.ts <= as_of_ns) {
        let q = signed(&f.side, f.qty);
        let r = match copied.get(f.client_order_id.as_str()) {
            Some(&r) => {
                out.fills_at_leader_price += 1;
                r
            }
            None => {
                out.fills_at_last_price += 1;
                last_known.at(&f.symbol, f.ts - 1).unwrap_or(f.price)
            }
        };
        out.spread_and_impact += q * (r - f.price);
        // A flat position's quantities sum to zero, so any common V gives the
        // same Σ q × (V − r): 0 will do. An open one is valued as the report does.
        let v = value
            .get(&(f.subscription_id.as_str(), f.symbol.as_str()))
            .copied()
            .unwrap_or_default();
        out.leaders_trading += q * (v - r);
    }
    let parts =
        out.leaders_trading + out.spread_and_impact + out.fees + out.funding.unwrap_or_default();
    // The ledger's average prices are divisions: what they leave below the
    // money unit (1e-8) is rounding, not a difference.
    out.residual = (out.total - parts).round_dp(8);
    out
}
