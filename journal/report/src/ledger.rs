//! Rebuilding positions, trades and equity curves from fills and mark prices.
//!
//! One account (a leader, or one follower subscription) is replayed from its fills
//! in time order, with average-cost accounting per symbol: the engine's own rule,
//! `fillcast_engine::accounting`, in `Decimal`. A *trade* (an episode) runs from
//! flat to flat; a fill that flips the side closes one trade and opens the next with
//! the remainder.
//!
//! **Equity** at time `t` = base capital + realized P&L + unrealized P&L − fees paid
//! plus funding received (negative when paid: `funding_payments`, each at its
//! time), where open positions are valued at the latest market price known at `t`: the
//! latest `mark_prices` row of the symbol at or before `t`; without one (a symbol
//! with no mark, or before its first), the latest trade in the symbol by anyone at or
//! before `t` (any leader or follower fill, see `Trades`), never the account's own
//! older fill when someone traded since; only with no trade known at all, the
//! account's own latest fill. Each open position says which (`PriceBasis`). A held
//! loss therefore shows in equity at once.
//!
//! This module is pure: it takes rows already loaded and returns values.

use std::collections::{BTreeMap, HashMap};

use fillcast_engine::accounting::AverageCost;
use rust_decimal::Decimal;

/// One fill of the replayed account, in the units of the SQL tables.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerFill {
    pub ts_ns: i64,
    pub seq: i64,
    pub symbol: String,
    /// Positive for a buy, negative for a sell.
    pub signed_qty: Decimal,
    pub price: Decimal,
    /// Fee paid on this fill (negative for a rebate).
    pub fee: Decimal,
    /// The account's position in the symbol after this fill, when the source
    /// reports it (leader fills do): a disagreement with the replay means fills are
    /// missing (or the position predates the first fill seen) and is healed by a
    /// synthetic fill at this fill's price.
    pub position_after: Option<Decimal>,
}

/// A funding payment of the replayed account (`funding_payments`): `amount`
/// received at `ts_ns`, negative when paid. It moves equity at its time and no
/// position.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerFunding {
    pub ts_ns: i64,
    pub seq: i64,
    pub amount: Decimal,
}

/// A trade: a position in one symbol from flat to flat.
#[derive(Clone, Debug, PartialEq)]
pub struct Trade {
    pub symbol: String,
    /// `true` for a long position.
    pub long: bool,
    pub open_ns: i64,
    /// `None` while the position is still open.
    pub close_ns: Option<i64>,
    /// Largest absolute position held during the trade.
    pub qty_max: Decimal,
    /// Realized P&L of the trade (for an open trade: realized so far).
    pub pnl: Decimal,
    pub fills: u32,
}

/// An open position at the end of the replay, valued at the latest market price.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenPosition {
    pub symbol: String,
    /// Signed: negative for a short.
    pub qty: Decimal,
    pub avg_price: Decimal,
    /// The valuation price: a mark, or the latest trade (see `basis`).
    pub mark: Decimal,
    /// Where `mark` came from.
    pub basis: PriceBasis,
    pub unrealized: Decimal,
    /// P&L already realized by partial closes since the trade opened: the open
    /// trade's P&L at the mark is `realized + unrealized`.
    pub realized: Decimal,
    pub open_ns: i64,
}

/// What an open position is valued at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PriceBasis {
    /// The latest `mark_prices` row of the symbol at or before the instant.
    Mark,
    /// No mark then: the latest trade in the symbol by anyone (a leader or follower
    /// fill), or, with none known, the account's own latest fill (then the latest
    /// trade anyway).
    #[default]
    LatestTrade,
}

impl PriceBasis {
    /// `mark` or `latest_trade`, as the JSON says it.
    pub fn as_str(self) -> &'static str {
        match self {
            PriceBasis::Mark => "mark",
            PriceBasis::LatestTrade => "latest_trade",
        }
    }
}

/// Everything the replay of one account yields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Replay {
    /// `(ts, equity)`: the base 1 ns before the first fill (or funding payment),
    /// then one point per fill, funding payment or mark that changed equity
    /// (several events at one instant collapse to the last).
    pub curve: Vec<(i64, Decimal)>,
    /// Closed trades in closing order.
    pub trades: Vec<Trade>,
    pub open: Vec<OpenPosition>,
    pub realized: Decimal,
    pub unrealized: Decimal,
    pub fees: Decimal,
    /// Funding received (negative: paid) up to the replay's end.
    pub funding: Decimal,
    /// Fills whose reported `position_after` disagreed with the replay.
    pub position_gaps: u32,
}

/// Prices per symbol, each list sorted by time: what marks and trades share.
#[derive(Clone, Debug, Default)]
struct PriceSeries {
    by_symbol: HashMap<String, Vec<(i64, Decimal)>>,
}

impl PriceSeries {
    /// The latest price of `symbol` at or before `ts_ns`.
    fn at(&self, symbol: &str, ts_ns: i64) -> Option<Decimal> {
        let list = self.by_symbol.get(symbol)?;
        let i = list.partition_point(|(t, _)| *t <= ts_ns);
        (i > 0).then(|| list[i - 1].1)
    }

    fn of(&self, symbol: &str) -> &[(i64, Decimal)] {
        self.by_symbol.get(symbol).map_or(&[], Vec::as_slice)
    }
}

/// Mark prices per symbol, each list sorted by time.
#[derive(Clone, Debug, Default)]
pub struct Marks {
    series: PriceSeries,
}

impl Marks {
    /// Adds a mark; marks of one symbol must come in non-decreasing time.
    pub fn push(&mut self, symbol: &str, ts_ns: i64, price: Decimal) {
        let list = self.series.by_symbol.entry(symbol.to_string()).or_default();
        debug_assert!(list.last().is_none_or(|(t, _)| *t <= ts_ns));
        list.push((ts_ns, price));
    }

    /// The latest mark of `symbol` at or before `ts_ns`.
    pub fn at(&self, symbol: &str, ts_ns: i64) -> Option<Decimal> {
        self.series.at(symbol, ts_ns)
    }

    pub fn of(&self, symbol: &str) -> &[(i64, Decimal)] {
        self.series.of(symbol)
    }

    pub fn len(&self) -> usize {
        self.series.by_symbol.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn last_ts(&self) -> Option<i64> {
        self.series
            .by_symbol
            .values()
            .filter_map(|l| l.last())
            .map(|(t, _)| *t)
            .max()
    }
}

/// The latest trade price per symbol over every account: the prices an open
/// position falls back to when its symbol has no mark.
///
/// Built from `(symbol, ts, seq, price)`: time order is by `ts` (the time the replay
/// gives the fill, as `mark_prices.ts` is a mark's), then by `seq` (the journal's
/// sequence, shared by every table), then by the order given. Kept per symbol as
/// `(ts, price)`: one entry per instant (its last trade), and only where the price
/// changes, so a lookup is exact and a replay has an event only per price change.
#[derive(Clone, Debug, Default)]
pub struct Trades {
    series: PriceSeries,
}

impl Trades {
    pub fn new<'a>(trades: impl IntoIterator<Item = (&'a str, i64, i64, Decimal)>) -> Trades {
        let mut raw: HashMap<&str, Vec<(i64, i64, usize, Decimal)>> = HashMap::new();
        for (i, (symbol, ts, seq, price)) in trades.into_iter().enumerate() {
            raw.entry(symbol).or_default().push((ts, seq, i, price));
        }
        let by_symbol = raw
            .into_iter()
            .map(|(symbol, mut list)| {
                list.sort_unstable_by_key(|e| (e.0, e.1, e.2));
                let mut out: Vec<(i64, Decimal)> = Vec::new();
                for (ts, _, _, price) in list {
                    // The last trade of an instant is the price after it.
                    if out.last().is_some_and(|l| l.0 == ts) {
                        out.pop();
                    }
                    // The same price again (same digits too): no change to record.
                    if !out.last().is_some_and(|l| same(l.1, price)) {
                        out.push((ts, price));
                    }
                }
                (symbol.to_string(), out)
            })
            .collect();
        Trades {
            series: PriceSeries { by_symbol },
        }
    }

    /// The price of the latest trade in `symbol` at or before `ts_ns`.
    pub fn at(&self, symbol: &str, ts_ns: i64) -> Option<Decimal> {
        self.series.at(symbol, ts_ns)
    }

    /// `(ts, price)` of each price change of `symbol`, in time order.
    pub fn of(&self, symbol: &str) -> &[(i64, Decimal)] {
        self.series.of(symbol)
    }

    /// Every symbol with a trade, in no particular order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.series.by_symbol.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.series.by_symbol.is_empty()
    }
}

/// Equal in value and in digits (`110` and `110.0` are kept apart: they print
/// differently).
fn same(a: Decimal, b: Decimal) -> bool {
    a == b && a.scale() == b.scale()
}

/// The price an open position in `symbol` is valued at, at `ts_ns`: the mark, else
/// the latest trade by anyone, else `own`, the account's own latest fill.
fn price_at(
    marks: &Marks,
    trades: &Trades,
    symbol: &str,
    ts_ns: i64,
    own: Option<Decimal>,
) -> Option<(Decimal, PriceBasis)> {
    if let Some(p) = marks.at(symbol, ts_ns) {
        return Some((p, PriceBasis::Mark));
    }
    trades
        .at(symbol, ts_ns)
        .or(own)
        .map(|p| (p, PriceBasis::LatestTrade))
}

/// Arithmetic overflowed `Decimal` (28 digits) while replaying: the data is absurd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overflow {
    /// Time of the event being replayed.
    pub ts_ns: i64,
}

/// When a replay values open positions.
#[derive(Clone, Copy, Debug)]
pub enum Valuation<'a> {
    /// At every mark of a traded symbol, and before its first mark at every change
    /// of its latest trade price: the full equity curve (for drawdown).
    EveryMark,
    /// Only at these instants (and at fills, at the latest known price): cheap
    /// when only a few points are needed (settlement period ends).
    At(&'a [i64]),
}

/// Replays one account: `fills` and `funding` in any order (sorted here by time,
/// then seq), valued with `marks`, else `trades`, as `valuation` says, up to and
/// including `until_ns`. `trades` should hold every account's fills, this one's
/// included (the account's own latest fill is used only where `trades` knows no
/// trade at all).
pub fn replay(
    base: Decimal,
    fills: &[LedgerFill],
    funding: &[LedgerFunding],
    marks: &Marks,
    trades: &Trades,
    until_ns: i64,
    valuation: Valuation<'_>,
) -> Result<Replay, Overflow> {
    let mut fills: Vec<&LedgerFill> = fills.iter().filter(|f| f.ts_ns <= until_ns).collect();
    fills.sort_by_key(|f| (f.ts_ns, f.seq));
    let mut payments: Vec<&LedgerFunding> =
        funding.iter().filter(|p| p.ts_ns <= until_ns).collect();
    payments.sort_by_key(|p| (p.ts_ns, p.seq));
    let mut out = Replay::default();
    let start_ns = match (fills.first(), payments.first()) {
        (None, None) => return Ok(out),
        (Some(f), None) => f.ts_ns,
        (None, Some(p)) => p.ts_ns,
        (Some(f), Some(p)) => f.ts_ns.min(p.ts_ns),
    };
    // The base, 1 ns before the first event, so that a loss at the first instant
    // still shows as a fall from it.
    out.curve.push((start_ns.saturating_sub(1), base));
    // Funding without a fill (a position from before the data) has no symbol to
    // value: mark events start at the first fill.
    let first_fill_ns = fills.first().map_or(start_ns, |f| f.ts_ns);

    // Two time-ordered streams, merged below (a fill before a price update at one
    // instant): the fills, and the price updates `(ts, symbol index)` of the symbols
    // this account trades, starting with the price in force at the first fill; the
    // price at an update is looked up then (`price_at`).
    let mut symbols: Vec<&str> = fills.iter().map(|f| f.symbol.as_str()).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let mut mark_events: Vec<(i64, usize)> = Vec::new();
    match valuation {
        Valuation::EveryMark => {
            // The points of `list` in `[first fill, until]`, the one in force at the
            // first fill moved to it; trades count only before the first mark.
            let mut extend = |list: &[(i64, Decimal)], si: usize, before: i64| {
                let lo = list
                    .partition_point(|(t, _)| *t < first_fill_ns)
                    .saturating_sub(1);
                let hi = list.partition_point(|(t, _)| *t <= until_ns && *t < before);
                mark_events.extend(
                    list[lo..hi.max(lo)]
                        .iter()
                        .map(|(t, _)| (*t.max(&first_fill_ns), si)),
                );
            };
            for (si, sym) in symbols.iter().enumerate() {
                let list = marks.of(sym);
                extend(list, si, i64::MAX);
                extend(trades.of(sym), si, list.first().map_or(i64::MAX, |m| m.0));
            }
        }
        Valuation::At(times) => {
            let mut times: Vec<i64> = times
                .iter()
                .copied()
                .filter(|t| *t >= first_fill_ns && *t <= until_ns)
                .chain(std::iter::once(until_ns))
                .collect();
            times.sort_unstable();
            times.dedup();
            for t in times {
                mark_events.extend((0..symbols.len()).map(|si| (t, si)));
            }
        }
    }
    mark_events.sort_unstable();
    mark_events.dedup();

    let mut books: BTreeMap<&str, Book> = BTreeMap::new();
    let mut unrealized: BTreeMap<&str, Decimal> = BTreeMap::new();
    let mut realized = Decimal::ZERO;
    let mut fees = Decimal::ZERO;
    let mut funded = Decimal::ZERO;

    // Three time-ordered streams merged; at one instant a fill first, then a
    // funding payment, then a price update. Bounded by their total length.
    let (mut fi, mut pi, mut mi) = (0usize, 0usize, 0usize);
    while fi < fills.len() || pi < payments.len() || mi < mark_events.len() {
        let ts_of = |t: Option<i64>| t.unwrap_or(i64::MAX);
        let (f_ts, p_ts, m_ts) = (
            ts_of(fills.get(fi).map(|f| f.ts_ns)),
            ts_of(payments.get(pi).map(|p| p.ts_ns)),
            ts_of(mark_events.get(mi).map(|m| m.0)),
        );
        let take_fill = fi < fills.len() && f_ts <= p_ts && f_ts <= m_ts;
        let take_funding = !take_fill && pi < payments.len() && p_ts <= m_ts;
        if take_funding {
            let p = payments[pi];
            pi += 1;
            funded = add(funded, p.amount, p.ts_ns)?;
            let total_u = unrealized
                .values()
                .try_fold(Decimal::ZERO, |a, b| a.checked_add(*b))
                .ok_or(Overflow { ts_ns: p.ts_ns })?;
            let equity = equity_of(base, realized, total_u, fees, funded)
                .ok_or(Overflow { ts_ns: p.ts_ns })?;
            push_point(&mut out.curve, p.ts_ns, equity);
            continue;
        }
        let (ts, symbol) = if take_fill {
            let f = fills[fi];
            fi += 1;
            let book = books.entry(f.symbol.as_str()).or_default();
            let before = book.realized;
            if let Some(after) = f.position_after {
                let expected_before = after - f.signed_qty;
                if expected_before != book.qty {
                    out.position_gaps += 1;
                    let gap = expected_before - book.qty;
                    if let Some(t) = book.apply(gap, f.price, f.ts_ns)? {
                        out.trades.push(Trade {
                            symbol: f.symbol.clone(),
                            ..t
                        });
                    }
                }
            }
            if let Some(t) = book.apply(f.signed_qty, f.price, f.ts_ns)? {
                out.trades.push(Trade {
                    symbol: f.symbol.clone(),
                    ..t
                });
            }
            book.last_fill = Some(f.price);
            if let Some((p, basis)) = price_at(marks, trades, &f.symbol, f.ts_ns, book.last_fill) {
                (book.price, book.basis) = (p, basis);
            }
            realized = add(realized, book.realized - before, f.ts_ns)?;
            fees = add(fees, f.fee, f.ts_ns)?;
            (f.ts_ns, f.symbol.as_str())
        } else {
            let (ts, si) = mark_events[mi];
            mi += 1;
            let symbol = symbols[si];
            let book = books.entry(symbol).or_default();
            if let Some((p, basis)) = price_at(marks, trades, symbol, ts, book.last_fill) {
                (book.price, book.basis) = (p, basis);
            }
            (ts, symbol)
        };
        let book = &books[symbol];
        let u = book.unrealized().ok_or(Overflow { ts_ns: ts })?;
        unrealized.insert(symbol, u);
        let total_u = unrealized
            .values()
            .try_fold(Decimal::ZERO, |a, b| a.checked_add(*b))
            .ok_or(Overflow { ts_ns: ts })?;
        let equity =
            equity_of(base, realized, total_u, fees, funded).ok_or(Overflow { ts_ns: ts })?;
        push_point(&mut out.curve, ts, equity);
    }

    out.realized = realized;
    out.fees = fees;
    out.funding = funded;
    for (symbol, book) in &books {
        if book.qty.is_zero() {
            continue;
        }
        let u = book.unrealized().ok_or(Overflow { ts_ns: until_ns })?;
        out.unrealized += u;
        out.open.push(OpenPosition {
            symbol: symbol.to_string(),
            qty: book.qty,
            avg_price: book.cost.checked_div(book.qty).unwrap_or_default(),
            mark: book.price,
            basis: book.basis,
            unrealized: u,
            realized: book.open.as_ref().map_or(Decimal::ZERO, |t| t.pnl),
            open_ns: book.open.as_ref().map_or(0, |t| t.open_ns),
        });
    }
    debug_assert!(out.curve.windows(2).all(|w| w[0].0 < w[1].0));
    Ok(out)
}

/// `base + realized + unrealized − fees + funding`; `None` past 28 digits.
fn equity_of(
    base: Decimal,
    realized: Decimal,
    unrealized: Decimal,
    fees: Decimal,
    funding: Decimal,
) -> Option<Decimal> {
    base.checked_add(realized)?
        .checked_add(unrealized)?
        .checked_sub(fees)?
        .checked_add(funding)
}

fn push_point(curve: &mut Vec<(i64, Decimal)>, ts: i64, equity: Decimal) {
    match curve.last_mut() {
        Some(last) if last.0 == ts => last.1 = equity,
        Some(last) if last.1 == equity => {}
        _ => curve.push((ts, equity)),
    }
}

fn add(a: Decimal, b: Decimal, ts_ns: i64) -> Result<Decimal, Overflow> {
    a.checked_add(b).ok_or(Overflow { ts_ns })
}

/// One symbol's position: signed quantity and signed cost basis (`Σ qty × price`
/// of the open part), so `avg = cost / qty` and `unrealized = qty × mark − cost`.
#[derive(Clone, Debug, Default)]
struct Book {
    qty: Decimal,
    cost: Decimal,
    realized: Decimal,
    /// Valuation price (see `price_at`) and where it came from.
    price: Decimal,
    basis: PriceBasis,
    /// The account's own latest fill price in the symbol.
    last_fill: Option<Decimal>,
    open: Option<Trade>,
}

impl Book {
    /// Applies a signed fill by the engine's accounting rule; returns the trade
    /// it closed, if any.
    fn apply(
        &mut self,
        signed_qty: Decimal,
        price: Decimal,
        ts: i64,
    ) -> Result<Option<Trade>, Overflow> {
        let of = || Overflow { ts_ns: ts };
        if signed_qty.is_zero() {
            return Ok(None);
        }
        let held = AverageCost {
            qty: self.qty,
            cost: self.cost,
        };
        let (next, applied) = held.after(signed_qty, price).ok_or_else(of)?;
        self.realized = self.realized.checked_add(applied.realized).ok_or_else(of)?;
        (self.qty, self.cost) = (next.qty, next.cost);
        let mut closed_trade = None;
        if !applied.closed.is_zero() {
            if let Some(t) = self.open.as_mut() {
                t.pnl += applied.realized;
                t.fills += 1;
            }
            if applied.flattened {
                closed_trade = self.open.take().map(|mut t| {
                    t.close_ns = Some(ts);
                    t
                });
            }
        }
        if !applied.opened.is_zero() {
            let t = self.open.get_or_insert_with(|| Trade {
                symbol: String::new(),
                long: applied.opened.is_sign_positive(),
                open_ns: ts,
                close_ns: None,
                qty_max: Decimal::ZERO,
                pnl: Decimal::ZERO,
                fills: 0,
            });
            t.fills += 1;
        }
        if let Some(t) = self.open.as_mut() {
            t.qty_max = t.qty_max.max(self.qty.abs());
        }
        debug_assert!(self.qty.is_zero() == self.open.is_none());
        Ok(closed_trade)
    }

    fn unrealized(&self) -> Option<Decimal> {
        self.qty.checked_mul(self.price)?.checked_sub(self.cost)
    }
}

/// Equity at `ts_ns` on a curve: the value of the last point at or before it, or
/// `before` when `ts_ns` precedes the curve.
pub fn value_at(curve: &[(i64, Decimal)], ts_ns: i64, before: Decimal) -> Decimal {
    let i = curve.partition_point(|(t, _)| *t <= ts_ns);
    if i == 0 {
        before
    } else {
        curve[i - 1].1
    }
}

/// Most samples `sample` takes (the latest ones).
pub const SAMPLES_MAX: i64 = 100_000;

/// The curve sampled once per period, counted back from the end:
/// `end − n·period, …, end − period, end`, with `n` the number of complete periods
/// in `[start, end]` (a leading partial period is left out, so the last sample is
/// always the equity at `end`).
pub fn sample(
    curve: &[(i64, Decimal)],
    before: Decimal,
    start_ns: i64,
    end_ns: i64,
    period_ns: i64,
) -> Vec<Decimal> {
    let period_ns = period_ns.max(1);
    if end_ns < start_ns {
        return Vec::new();
    }
    // Bounded: ten years of days is 3,650 samples; absurd spans are cut.
    let n = (end_ns.saturating_sub(start_ns) / period_ns).min(SAMPLES_MAX);
    (0..=n)
        .rev()
        .map(|k| value_at(curve, end_ns - k * period_ns, before))
        .collect()
}

/// The points of `curve` inside `[start, end]`, preceded by the value in force at
/// `start` (so a window's first point is its opening equity).
pub fn window(
    curve: &[(i64, Decimal)],
    before: Decimal,
    start_ns: i64,
    end_ns: i64,
) -> Vec<(i64, Decimal)> {
    let mut out = vec![(start_ns, value_at(curve, start_ns, before))];
    out.extend(
        curve
            .iter()
            .filter(|(t, _)| *t > start_ns && *t <= end_ns)
            .copied(),
    );
    out
}

/// At most about `points_max` points of a curve for drawing: the first and last
/// points and, per horizontal slice, the slice's lowest and highest points (so no
/// peak or trough disappears).
pub fn thin(curve: &[(i64, Decimal)], points_max: usize) -> Vec<(i64, Decimal)> {
    let points_max = points_max.max(4);
    if curve.len() <= points_max {
        return curve.to_vec();
    }
    let slices = points_max / 2 - 1;
    let (t0, t1) = (curve[0].0, curve[curve.len() - 1].0);
    let span = (t1 - t0).max(1) as i128;
    let mut out = vec![curve[0]];
    let mut i = 1;
    for s in 0..slices {
        let end = t0 as i128 + span * (s as i128 + 1) / slices as i128;
        let start = i;
        while i < curve.len() - 1 && (curve[i].0 as i128) <= end {
            i += 1;
        }
        let slice = &curve[start..i];
        if let (Some(lo), Some(hi)) = (
            slice.iter().min_by_key(|p| p.1),
            slice.iter().max_by_key(|p| p.1),
        ) {
            let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
            out.push(*a);
            if b != a {
                out.push(*b);
            }
        }
    }
    out.push(curve[curve.len() - 1]);
    out.dedup_by_key(|p| p.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn fill(ts: i64, sym: &str, q: &str, p: &str) -> LedgerFill {
        LedgerFill {
            ts_ns: ts,
            seq: ts,
            symbol: sym.into(),
            signed_qty: d(q),
            price: d(p),
            fee: Decimal::ZERO,
            position_after: None,
        }
    }

    #[test]
    fn flip_closes_and_opens() {
        let fills = [
            fill(1, "X", "2", "100"),
            fill(2, "X", "-1", "110"),
            fill(3, "X", "-3", "120"),
            fill(4, "X", "2", "100"),
        ];
        let r = replay(
            d("1000"),
            &fills,
            &[],
            &Marks::default(),
            &Trades::default(),
            i64::MAX,
            Valuation::EveryMark,
        )
        .unwrap();
        // Long 2 @100: sell 1 @110 (+10), sell 1 @120 (+20) closes; short 2 @120,
        // buy 2 @100 (+40) closes.
        assert_eq!(r.trades.len(), 2);
        assert_eq!(r.trades[0].pnl, d("30"));
        assert!(r.trades[0].long);
        assert_eq!(r.trades[1].pnl, d("40"));
        assert!(!r.trades[1].long);
        assert_eq!(r.realized, d("70"));
        assert!(r.open.is_empty());
        assert_eq!(r.curve.last().unwrap().1, d("1070"));
    }

    #[test]
    fn marks_value_open_positions() {
        let mut marks = Marks::default();
        marks.push("X", 5, d("90"));
        let r = replay(
            d("1000"),
            &[fill(1, "X", "1", "100")],
            &[],
            &marks,
            &Trades::default(),
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.unrealized, d("-10"));
        assert_eq!(r.curve, vec![(0, d("1000")), (5, d("990"))]);
        // Valued only at 3 and at the end: the same end, fewer points.
        let r = replay(
            d("1000"),
            &[fill(1, "X", "1", "100")],
            &[],
            &marks,
            &Trades::default(),
            10,
            Valuation::At(&[3]),
        )
        .unwrap();
        assert_eq!(r.unrealized, d("-10"));
        assert_eq!(r.curve, vec![(0, d("1000")), (10, d("990"))]);
    }

    #[test]
    fn trades_keep_the_last_of_an_instant_and_each_price_change() {
        // (symbol, ts, seq, price) out of order; at ts 5 seq 9 is the later trade.
        let t = Trades::new([
            ("X", 5, 9, d("102")),
            ("X", 1, 1, d("100")),
            ("X", 5, 8, d("101")),
            ("X", 3, 2, d("100")),
            ("X", 7, 3, d("100.0")),
            ("Y", 2, 4, d("7")),
        ]);
        // 100 at 1 (3 repeats it), 102 at 5, 100.0 at 7 (same value, other digits).
        assert_eq!(t.of("X"), [(1, d("100")), (5, d("102")), (7, d("100.0"))]);
        assert_eq!(t.at("X", 0), None);
        assert_eq!(t.at("X", 4), Some(d("100")));
        assert_eq!(t.at("X", 5), Some(d("102")));
        assert_eq!(t.at("Y", 9), Some(d("7")));
        assert_eq!(t.at("Z", 9), None);
    }

    #[test]
    fn without_a_mark_the_latest_trade_by_anyone_values_open_positions() {
        // Bought 1 @ 100 at 1; someone else trades at 90 at 4, then 120 at 6.
        let own = [fill(1, "X", "1", "100")];
        let trades = Trades::new([
            ("X", 1, 1, d("100")),
            ("X", 4, 2, d("90")),
            ("X", 6, 3, d("120")),
        ]);
        let none = Marks::default();
        let r = replay(
            d("1000"),
            &own,
            &[],
            &none,
            &trades,
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.unrealized, d("20"));
        assert_eq!(r.open[0].mark, d("120"));
        assert_eq!(r.open[0].basis, PriceBasis::LatestTrade);
        // Every price change is a point of the curve (the fall to 990 too).
        assert_eq!(r.curve, vec![(0, d("1000")), (4, d("990")), (6, d("1020"))]);
        // Valued only at the end: the same figure.
        let r = replay(d("1000"), &own, &[], &none, &trades, 10, Valuation::At(&[])).unwrap();
        assert_eq!(r.curve.last(), Some(&(10, d("1020"))));
        // Before the later trades, the price is still the fill's own.
        let r = replay(
            d("1000"),
            &own,
            &[],
            &none,
            &trades,
            3,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.unrealized, Decimal::ZERO);

        // A mark wins over a later trade: from its time on, trades no longer count.
        let mut marks = Marks::default();
        marks.push("X", 5, d("95"));
        let r = replay(
            d("1000"),
            &own,
            &[],
            &marks,
            &trades,
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.open[0].mark, d("95"));
        assert_eq!(r.open[0].basis, PriceBasis::Mark);
        assert_eq!(r.curve, vec![(0, d("1000")), (4, d("990")), (5, d("995"))]);
        let r = replay(
            d("1000"),
            &own,
            &[],
            &marks,
            &trades,
            10,
            Valuation::At(&[]),
        )
        .unwrap();
        assert_eq!(r.unrealized, d("-5"));

        // No trade known at all: the account's own latest fill.
        let empty = Trades::default();
        let r = replay(
            d("1000"),
            &own,
            &[],
            &none,
            &empty,
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(
            (r.open[0].mark, r.open[0].basis),
            (d("100"), PriceBasis::LatestTrade)
        );
    }

    fn paid(ts: i64, amount: &str) -> LedgerFunding {
        LedgerFunding {
            ts_ns: ts,
            seq: ts,
            amount: d(amount),
        }
    }

    /// Issue 16: funding moves equity at its time, like cash, and no position;
    /// the valuation points see it, and `funding` is the sum up to the end.
    #[test]
    fn funding_moves_equity_at_its_time() {
        let mut marks = Marks::default();
        marks.push("X", 5, d("90"));
        let fills = [fill(1, "X", "1", "100")];
        let funding = [paid(3, "-2.5"), paid(7, "0.25"), paid(20, "-100")];
        let r = replay(
            d("1000"),
            &fills,
            &funding,
            &marks,
            &Trades::default(),
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        // 1000 → pays 2.5 at 3 → marked down 10 at 5 → receives 0.25 at 7; the
        // payment at 20 is after the end.
        assert_eq!(
            r.curve,
            vec![
                (0, d("1000")),
                (3, d("997.5")),
                (5, d("987.5")),
                (7, d("987.75")),
            ]
        );
        assert_eq!(r.funding, d("-2.25"));
        assert_eq!(
            (r.realized, r.unrealized, r.fees),
            (d("0"), d("-10"), d("0"))
        );
        assert_eq!(value_at(&r.curve, 6, d("1000")), d("987.5"));
        // Valued only at the end: the same end, the payments still in the curve.
        let r = replay(
            d("1000"),
            &fills,
            &funding,
            &marks,
            &Trades::default(),
            10,
            Valuation::At(&[]),
        )
        .unwrap();
        assert_eq!(r.curve.last(), Some(&(10, d("987.75"))));
        assert!(r.curve.contains(&(3, d("997.5"))), "{:?}", r.curve);
        // A payment before the first fill starts the curve.
        let r = replay(
            d("1000"),
            &fills,
            &[paid(0, "-1")],
            &marks,
            &Trades::default(),
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.curve[..2], [(-1, d("1000")), (0, d("999"))]);
        assert_eq!(r.curve.last(), Some(&(5, d("989"))));
        // Funding alone (the position predates the data): cash only.
        let r = replay(
            d("1000"),
            &[],
            &[paid(4, "3")],
            &marks,
            &Trades::default(),
            10,
            Valuation::EveryMark,
        )
        .unwrap();
        assert_eq!(r.curve, vec![(3, d("1000")), (4, d("1003"))]);
        assert!(r.open.is_empty());
    }

    #[test]
    fn thin_keeps_extremes() {
        let curve: Vec<(i64, Decimal)> = (0..10_000)
            .map(|i| (i, Decimal::from(if i == 5_555 { -100 } else { i % 7 })))
            .collect();
        let t = thin(&curve, 200);
        assert!(t.len() <= 200);
        assert!(t.iter().any(|p| p.1 == Decimal::from(-100)));
    }
}
