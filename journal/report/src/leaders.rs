//! Leader metrics: each leader's trades and equity curve rebuilt from
//! `leader_fills` and `mark_prices` (else the latest trade in the symbol by anyone),
//! and its metrics over trailing windows
//! (7, 30, 90 days by default) and over all time.
//!
//! **Capital.** A leader's equity curve starts from its capital: the earliest
//! `leader_equity` row of that leader if there is one, else `leaders.equity`. Without
//! either, P&L is still reported but ROI, drawdown, Sharpe and Calmar are not (they
//! are fractions of a capital nobody stated).
//!
//! **Windows.** A window `[as_of − N days, as_of]` opens at the equity in force at
//! its start (or at the leader's first fill, if later) and closes at the equity at
//! `as_of`, open positions valued at the mark (else the latest trade in the symbol,
//! see `ledger`): an open losing position lowers the window's P&L, ROI and drawdown.
//!
//! **Trades.** The headline trade figures (count, win rate, profit factor, holding
//! time) count the trades closed inside the window *and* every trade still open at
//! `as_of`, valued at the mark (its P&L is what it realized by partial closes plus its
//! unrealized P&L; its holding time is its age at `as_of`): a leader cannot look
//! flawless by holding a loss open. The same figures over the closed trades alone are
//! kept beside them (`closed_only`), labelled "closed trades only".
//!
//! **Funding.** A leader's own funding (the sidecar's `funding_payments` rows of
//! the leader with no subscription, computed from its `leader_positions`) enters
//! its equity curve at its time, as cash: P&L, ROI, drawdown and Sharpe include
//! it. It is not counted twice through `leader_equity`: a reported equity is
//! only ever the curve's starting capital (its earliest row), never a point on
//! the curve, and the curve is rebuilt from fills, marks and funding alone. A
//! database without `funding_payments` recorded none: `funding` is `None`.
//!
//! **Annualised figures** (annualised return, Sharpe, Calmar) are `None` for a window
//! with less than `ReportOptions::annualise_min_ns` (30 days by default) of data:
//! compounding a few days to a year says nothing about a leader.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use super::followers::SubInfo;
use super::ledger::{self, LedgerFill, LedgerFunding, OpenPosition, Trade};
use super::metrics::{self, ProfitFactor};
use super::query::{signed, Dataset};
use super::time::NS_PER_DAY;
use super::{id_cmp, ReportError, ReportOptions};

/// One leader's report.
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderReport {
    pub leader_id: String,
    /// Starting capital of the equity curve.
    pub capital: Option<Decimal>,
    /// Where `capital` came from: `leader_equity`, `leaders`, or `none`.
    pub capital_source: &'static str,
    /// Equity at the report's time (capital + realized + unrealized + funding).
    pub equity: Option<Decimal>,
    pub realized_pnl: Decimal,
    pub unrealized_pnl: Decimal,
    /// Funding received (negative: paid) on the leader's own positions up to the
    /// report's time; `None` when the database does not record funding.
    pub funding: Option<Decimal>,
    /// Distinct followers subscribed to this leader (from `subscriptions`, or named by
    /// its instructions and orders).
    pub followers: usize,
    /// Assets under management: the sum of those subscriptions' allocations (known
    /// only from `subscriptions`).
    pub aum: Decimal,
    /// Fills the engine acted on (the ones in the metrics).
    pub fills: usize,
    /// Fills the engine ignored (`leader_fills.ignored`: duplicates, invalid).
    pub ignored_fills: usize,
    pub trades_closed: usize,
    pub open_positions: Vec<OpenPosition>,
    /// Fills whose `position_after` disagreed with the rebuilt position (missing
    /// fills, or a position older than the first fill seen); each was healed.
    pub position_gaps: u32,
    /// The trailing windows, then `all`.
    pub windows: Vec<WindowMetrics>,
    /// The equity curve, thinned for drawing (see `ledger::thin`).
    pub curve: Vec<(i64, Decimal)>,
    /// The drawdown (fraction of the running peak) along the full curve, thinned.
    pub drawdown: Vec<(i64, Decimal)>,
}

/// A leader's metrics over one window.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowMetrics {
    /// `7d`, `30d`, `90d`, or `all`.
    pub label: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub start_equity: Decimal,
    pub end_equity: Decimal,
    pub pnl: Decimal,
    pub roi: Option<Decimal>,
    pub max_drawdown: Option<Decimal>,
    pub sharpe: Option<f64>,
    pub annualised_return: Option<f64>,
    pub calmar: Option<f64>,
    /// Complete Sharpe periods in the window.
    pub periods: usize,
    /// The window holds less data than `ReportOptions::annualise_min_ns`: Sharpe,
    /// annualised return and Calmar are `None` for that reason.
    pub too_short_to_annualise: bool,
    /// Trades closed in the window and trades still open at its end, at the mark.
    pub trades: TradeStats,
    /// Trades closed in the window only (the open ones left out).
    pub closed_only: TradeStats,
}

/// Win rate, profit factor and holding time over a set of trades.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeStats {
    /// Trades counted, open ones included.
    pub count: usize,
    /// Of which still open (valued at the mark, held up to the report's time).
    pub open: usize,
    pub wins: usize,
    pub losses: usize,
    pub win_rate: Option<Decimal>,
    pub profit_factor: ProfitFactor,
    pub gross_profit: Decimal,
    pub gross_loss: Decimal,
    pub avg_holding_ns: Option<i64>,
}

impl TradeStats {
    /// `(pnl, open_ns, close_or_as_of_ns)` per trade; `open` of them still open.
    fn of(trades: &[(Decimal, i64, i64)], open: usize) -> TradeStats {
        debug_assert!(open <= trades.len());
        let pnls: Vec<Decimal> = trades.iter().map(|t| t.0).collect();
        let holds: Vec<(i64, i64)> = trades.iter().map(|t| (t.1, t.2)).collect();
        let (gross_profit, gross_loss) = metrics::gross(&pnls);
        TradeStats {
            count: trades.len(),
            open,
            wins: pnls.iter().filter(|p| **p > Decimal::ZERO).count(),
            losses: pnls.iter().filter(|p| **p < Decimal::ZERO).count(),
            win_rate: metrics::win_rate(&pnls),
            profit_factor: metrics::profit_factor(&pnls),
            gross_profit,
            gross_loss,
            avg_holding_ns: metrics::average_holding_ns(&holds),
        }
    }
}

/// Every leader that appears in `leaders`, `leader_fills` or a subscription (from
/// `subscriptions`, or named by instructions, orders and positions).
pub(crate) fn leaders(
    ds: &Dataset,
    subs: &BTreeMap<String, SubInfo>,
    as_of_ns: i64,
    opts: &ReportOptions,
) -> Result<Vec<LeaderReport>, ReportError> {
    let mut fills: BTreeMap<&str, Vec<LedgerFill>> = BTreeMap::new();
    let mut ignored: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &ds.leader_fills {
        if !f.ignored.is_empty() {
            *ignored.entry(f.leader_id.as_str()).or_default() += 1;
            continue;
        }
        fills
            .entry(f.leader_id.as_str())
            .or_default()
            .push(LedgerFill {
                ts_ns: f.ts(),
                seq: f.seq,
                symbol: f.symbol.clone(),
                signed_qty: signed(&f.side, f.qty),
                price: f.price,
                fee: Decimal::ZERO,
                position_after: f.position_after,
            });
    }
    let mut funding: BTreeMap<&str, Vec<LedgerFunding>> = BTreeMap::new();
    for p in ds.funding_payments.iter().flatten() {
        if p.subscription_id.is_none() {
            funding
                .entry(p.leader_id.as_str())
                .or_default()
                .push(LedgerFunding {
                    ts_ns: p.ts,
                    seq: p.seq,
                    amount: p.amount,
                });
        }
    }
    let mut ids: BTreeSet<&str> = ds.leaders.keys().map(String::as_str).collect();
    ids.extend(fills.keys().copied());
    ids.extend(ignored.keys().copied());
    ids.extend(
        subs.values()
            .map(|s| s.leader_id.as_str())
            .filter(|s| !s.is_empty()),
    );
    let mut ids: Vec<&str> = ids.into_iter().collect();
    ids.sort_by(|a, b| id_cmp(a, b));

    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let (capital, capital_source) = capital(ds, id);
        let empty = Vec::new();
        let lf = fills.get(id).unwrap_or(&empty);
        let no_funding = Vec::new();
        let paid = funding.get(id).unwrap_or(&no_funding);
        let base = capital.unwrap_or_default();
        let r = ledger::replay(
            base,
            lf,
            paid,
            &ds.marks,
            &ds.trades,
            as_of_ns,
            ledger::Valuation::EveryMark,
        )
        .map_err(|o| ReportError::Overflow {
            what: format!("leader {id}"),
            ts_ns: o.ts_ns,
        })?;
        let mine: Vec<&SubInfo> = subs.values().filter(|s| s.leader_id == id).collect();
        let followers: BTreeSet<&str> = mine.iter().map(|s| s.follower_id.as_str()).collect();
        let aum = mine.iter().filter_map(|s| s.allocation).sum();

        let mut windows: Vec<WindowMetrics> = opts
            .windows_days
            .iter()
            .map(|d| {
                let start = as_of_ns.saturating_sub(i64::from(*d) * NS_PER_DAY);
                window_metrics(
                    format!("{d}d"),
                    &r.curve,
                    base,
                    capital.is_some(),
                    &r.trades,
                    &r.open,
                    start,
                    as_of_ns,
                    opts,
                )
            })
            .collect();
        let all_start = r.curve.first().map_or(as_of_ns, |p| p.0);
        windows.push(window_metrics(
            "all".into(),
            &r.curve,
            base,
            capital.is_some(),
            &r.trades,
            &r.open,
            all_start,
            as_of_ns,
            opts,
        ));

        let values: Vec<Decimal> = r.curve.iter().map(|p| p.1).collect();
        let dd: Vec<(i64, Decimal)> = r
            .curve
            .iter()
            .map(|p| p.0)
            .zip(metrics::drawdown_series(&values))
            .collect();
        out.push(LeaderReport {
            leader_id: id.to_string(),
            capital,
            capital_source,
            equity: capital.map(|_| ledger::value_at(&r.curve, as_of_ns, base)),
            realized_pnl: r.realized,
            unrealized_pnl: r.unrealized,
            funding: ds.funding_payments.is_some().then_some(r.funding),
            followers: followers.len(),
            aum,
            fills: lf.len(),
            ignored_fills: ignored.get(id).copied().unwrap_or(0),
            trades_closed: r.trades.len(),
            open_positions: r.open,
            position_gaps: r.position_gaps,
            windows,
            curve: ledger::thin(&r.curve, opts.chart_points_max),
            drawdown: if capital.is_some() {
                ledger::thin(&dd, opts.chart_points_max)
            } else {
                Vec::new()
            },
        });
    }
    Ok(out)
}

fn capital(ds: &Dataset, leader: &str) -> (Option<Decimal>, &'static str) {
    // `leader_equity` is in time order: the first row of the leader is its earliest.
    if let Some((_, _, e)) = ds.leader_equity.iter().find(|e| e.0 == leader) {
        return (Some(*e), "leader_equity");
    }
    match ds.leaders.get(leader) {
        Some(Some(e)) => (Some(*e), "leaders"),
        _ => (None, "none"),
    }
}

#[allow(clippy::too_many_arguments)]
fn window_metrics(
    label: String,
    curve: &[(i64, Decimal)],
    base: Decimal,
    has_capital: bool,
    trades: &[Trade],
    open: &[OpenPosition],
    start_ns: i64,
    end_ns: i64,
    opts: &ReportOptions,
) -> WindowMetrics {
    let from = curve
        .first()
        .map_or(start_ns, |p| start_ns.max(p.0))
        .min(end_ns);
    let e0 = ledger::value_at(curve, from, base);
    let e1 = ledger::value_at(curve, end_ns, base);
    let period_ns = opts.sharpe_period_ns.max(1);
    let ppy = opts.periods_per_year();
    let too_short = end_ns - from < opts.annualise_min_ns;
    let (roi, max_dd, sharpe, annualised, periods) = if has_capital && !curve.is_empty() {
        let values: Vec<Decimal> = ledger::window(curve, base, from, end_ns)
            .into_iter()
            .map(|p| p.1)
            .collect();
        let samples = ledger::sample(curve, base, from, end_ns, period_ns);
        let elapsed = (end_ns - from) as f64 / period_ns as f64;
        let annualised = if elapsed >= 1.0 && !too_short {
            metrics::annualised_return(e0, e1, elapsed, ppy)
        } else {
            None
        };
        (
            metrics::roi(e0, e1),
            Some(metrics::max_drawdown(&values)),
            metrics::sharpe_of_curve(&samples, ppy).filter(|_| !too_short),
            annualised,
            samples.len().saturating_sub(1),
        )
    } else {
        (None, None, None, None, 0)
    };
    let closed: Vec<(Decimal, i64, i64)> = trades
        .iter()
        .filter_map(|t| {
            let c = t.close_ns.filter(|c| *c > start_ns && *c <= end_ns)?;
            Some((t.pnl, t.open_ns, c))
        })
        .collect();
    // Every window ends at the report's time, so every position open then is a
    // trade of every window, at its whole P&L so far (as a closed trade counts with
    // its whole P&L), held from its opening to the report's time.
    let mut all = closed.clone();
    all.extend(
        open.iter()
            .map(|p| (p.realized + p.unrealized, p.open_ns.min(end_ns), end_ns)),
    );
    WindowMetrics {
        label,
        start_ns: from,
        end_ns,
        start_equity: e0,
        end_equity: e1,
        pnl: metrics::pnl(e0, e1),
        roi,
        max_drawdown: max_dd,
        sharpe,
        annualised_return: annualised,
        calmar: annualised.and_then(|a| metrics::calmar(Some(a), max_dd?)),
        periods,
        too_short_to_annualise: too_short,
        trades: TradeStats::of(&all, open.len()),
        closed_only: TradeStats::of(&closed, 0),
    }
}
