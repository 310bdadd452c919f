//! The `synthetic` source: deterministic leader trading for the demo, the tests and the
//! bench.
//!
//! Each leader trades episodes in the symbols it may trade (its declared profile, or
//! all): it opens from flat, adds, closes in part, flips and closes in full. A leader
//! order is split into 1–4 fills that share its `order_key` and `order_qty`; an order
//! that adds exposure sometimes fills only in part. Prices follow a bounded random
//! walk in ticks, timestamps increase, and a `MarkPrice` for the traded symbol follows
//! every few fills. Every 8 hours of venue time, on the UTC hours 0, 8 and 16 (the
//! funding times of Binance's perpetuals), each symbol a leader trades has a
//! `Funding` at its current price, with a rate within ±0.01% drawn from the seed,
//! the time and the symbol (a hash, not the fills' random stream: the fills are
//! the same with or without funding).
//!
//! Owns the leaders' positions as it generates them: each stays within a limit sized
//! from the leader's equity (and its declared maximum position), and the fill budget is
//! planned so that every leader is flat after the last fill. Same universe, seed, fill
//! count and start prices ⇒ the same events; `now` only paces them (`with_rate`).

use fillcast_engine::event::{FeedEvent, FillKind, LeaderFill};
use fillcast_engine::ids::{leader_event_key, mix64};
use fillcast_engine::model::{LeaderIdx, Side, SymbolIdx, Universe};
use fillcast_engine::port::{ResumeError, Source, SourcePoll};
use fillcast_engine::units::{FundingRate, Lots, Nanos, Ticks};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Arc;

/// Venue time of the first event by default: 2024-11-20T00:00:00Z.
pub const START_TS_DEFAULT: Nanos = Nanos(1_732_060_800_000_000_000);

/// Start price of every symbol by default: fine enough that a 5 bp step is 50 ticks.
pub const START_PRICE_DEFAULT: Ticks = Ticks(100_000);

/// Fills one leader order is split into, at most.
pub const FILLS_PER_ORDER_MAX: usize = 4;

/// A leader order's notional is about 1/`ORDER_EQUITY_DIVISOR` of its equity per unit.
const ORDER_EQUITY_DIVISOR: i64 = 50;

/// A leader's position in one symbol stays within this many order units.
const POSITION_UNITS_MAX: i64 = 20;

/// Order units per order, at most (opens and flips; adds use up to 3).
const ORDER_UNITS_MAX: i64 = 5;

/// Gap between two fills without a rate, in ns: 1 ms to 100 ms.
const GAP_NS_MIN: u64 = 1_000_000;
const GAP_NS_MAX: u64 = 100_000_000;

/// Percent chance that an order adding exposure fills only in part.
const UNDERFILL_PCT: u32 = 15;

/// Venue time between two fundings: funding falls on the multiples of it since the
/// epoch (00:00, 08:00 and 16:00 UTC).
pub const FUNDING_INTERVAL_NS: u64 = 8 * 3_600 * 1_000_000_000;

/// The largest funding rate drawn, either sign: 0.01% per interval.
pub const FUNDING_RATE_MAX: FundingRate = FundingRate(10_000);

/// The demo's leader-trading generator. See the module docs.
pub struct SyntheticLeaders {
    universe: Arc<Universe>,
    seed: u64,
    rng: ChaCha8Rng,
    fills_total: u64,
    fills_planned: u64,
    fills_emitted: u64,
    orders: u64,
    marks: u64,
    fundings: u64,
    /// Leaders that trade, with the symbols each may trade.
    traders: Vec<Trader>,
    /// Every symbol some leader trades, in index order: the ones with funding.
    traded: Vec<SymbolIdx>,
    /// Per symbol.
    books: Vec<Book>,
    /// Per (leader, symbol), at `leader * symbols + symbol`.
    cells: Vec<Cell>,
    /// Cells with a non-zero planned position.
    open: usize,
    pending: VecDeque<FeedEvent>,
    ts: Nanos,
    fills_until_mark: u32,
    /// Fills per second, 0 = as fast as polled.
    rate: u64,
    rate_start: Option<Nanos>,
    id_buf: String,
    started: bool,
    /// Events returned (fills, marks and fundings): the source's position.
    returned: u64,
    /// `fills_emitted` when pacing began: a resumed generator paces from there.
    paced_from: u64,
}

struct Trader {
    leader: LeaderIdx,
    symbols: Vec<SymbolIdx>,
}

#[derive(Clone, Copy)]
struct Book {
    price: Ticks,
    price_min: Ticks,
    price_max: Ticks,
    step_max: i64,
}

#[derive(Clone, Copy, Default)]
struct Cell {
    /// Position after every fill generated so far.
    planned: Lots,
    /// Position after every fill handed out so far.
    emitted: Lots,
    unit: Lots,
    limit: Lots,
}

/// One leader order, decided before its fills are drawn.
struct Plan {
    trader: usize,
    symbol: SymbolIdx,
    side: Side,
    order_qty: Lots,
    filled: Lots,
    fills: usize,
}

impl SyntheticLeaders {
    /// `total_fills` leader fills over the universe's leaders and symbols, drawn from
    /// `seed`. Start prices default to `START_PRICE_DEFAULT` (see `with_start_price`).
    pub fn new(universe: Arc<Universe>, seed: u64, total_fills: u64) -> SyntheticLeaders {
        let books = universe
            .symbols
            .iter()
            .map(|_| book(START_PRICE_DEFAULT))
            .collect();
        let mut generator = SyntheticLeaders {
            seed,
            rng: ChaCha8Rng::seed_from_u64(seed),
            fills_total: total_fills,
            fills_planned: 0,
            fills_emitted: 0,
            orders: 0,
            marks: 0,
            fundings: 0,
            traders: Vec::new(),
            traded: Vec::new(),
            books,
            cells: Vec::new(),
            open: 0,
            pending: VecDeque::with_capacity(2 * FILLS_PER_ORDER_MAX),
            ts: START_TS_DEFAULT,
            fills_until_mark: 3,
            rate: 0,
            rate_start: None,
            id_buf: String::with_capacity(32),
            started: false,
            returned: 0,
            paced_from: 0,
            universe,
        };
        generator.size_tables();
        generator
    }

    /// Start `symbol`'s random walk at `price`; order sizes and position limits follow
    /// from it. No effect once events have been drawn, for an unknown symbol, or for a
    /// price below one tick.
    pub fn with_start_price(mut self, symbol: SymbolIdx, price: Ticks) -> SyntheticLeaders {
        if self.started || price.0 < 1 {
            return self;
        }
        if let Some(b) = self.books.get_mut(symbol.0 as usize) {
            *b = book(price);
            self.size_tables();
        }
        self
    }

    /// Hand out at most `fills_per_sec` fills per second of `now` (0 = no limit);
    /// `next` returns `Idle` until the next fill is due. Venue timestamps then advance
    /// by exactly one interval per fill.
    pub fn with_rate(mut self, fills_per_sec: u64) -> SyntheticLeaders {
        self.rate = fills_per_sec;
        self
    }

    /// Venue time of the first fill (default `START_TS_DEFAULT`).
    pub fn with_start_ts(mut self, ts: Nanos) -> SyntheticLeaders {
        if !self.started {
            self.ts = ts;
        }
        self
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Leader fills handed out so far.
    pub fn fills_emitted(&self) -> u64 {
        self.fills_emitted
    }

    /// Leader orders generated so far.
    pub fn orders(&self) -> u64 {
        self.orders
    }

    /// Mark prices generated so far.
    pub fn marks(&self) -> u64 {
        self.marks
    }

    /// Funding events generated so far.
    pub fn fundings(&self) -> u64 {
        self.fundings
    }

    /// The leader's position in `symbol` after the fills handed out so far.
    pub fn position(&self, leader: LeaderIdx, symbol: SymbolIdx) -> Lots {
        self.cell_index(leader, symbol)
            .and_then(|i| self.cells.get(i))
            .map_or(Lots::ZERO, |c| c.emitted)
    }

    /// Every non-zero leader position after the fills handed out so far.
    pub fn positions(&self) -> impl Iterator<Item = (LeaderIdx, SymbolIdx, Lots)> + '_ {
        let symbols = self.universe.symbols.len().max(1);
        self.cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.emitted.0 != 0)
            .map(move |(i, c)| {
                (
                    LeaderIdx((i / symbols) as u32),
                    SymbolIdx((i % symbols) as u16),
                    c.emitted,
                )
            })
    }

    /// Whether every leader is flat after the fills handed out so far.
    pub fn all_flat(&self) -> bool {
        self.cells.iter().all(|c| c.emitted.0 == 0)
    }

    fn cell_index(&self, leader: LeaderIdx, symbol: SymbolIdx) -> Option<usize> {
        let symbols = self.universe.symbols.len();
        let (l, s) = (leader.0 as usize, symbol.0 as usize);
        (l < self.universe.leaders.len() && s < symbols).then_some(l * symbols + s)
    }

    /// Order units and position limits per (leader, symbol), and who trades what.
    fn size_tables(&mut self) {
        let u = &*self.universe;
        let symbols = u.symbols.len();
        self.cells = vec![Cell::default(); u.leaders.len() * symbols];
        self.traders.clear();
        for (l, leader) in u.leaders.iter().enumerate() {
            if leader.removed {
                // A reload removed it: it keeps its index and trades no more.
                continue;
            }
            let allowed: Vec<SymbolIdx> = match &leader.profile_symbols {
                Some(list) => list.clone(),
                None => (0..symbols).map(|s| SymbolIdx(s as u16)).collect(),
            };
            let mut trades = Vec::with_capacity(allowed.len());
            for s in allowed {
                let (Some(spec), Some(b)) =
                    (u.symbols.get(s.0 as usize), self.books.get(s.0 as usize))
                else {
                    continue;
                };
                let lot_money = spec.notional(Lots(1), b.price).0.max(1);
                let lot_money_max = spec.notional(Lots(1), b.price_max).0.max(1);
                let unit = (leader.equity.0 / ORDER_EQUITY_DIVISOR / lot_money)
                    .max(spec.min_qty.0)
                    .max(1);
                let mut limit = unit.saturating_mul(POSITION_UNITS_MAX);
                if let Some(max) = leader.profile_max_position {
                    // Stay inside the declared profile even at the top of the walk.
                    limit = limit.min(max.0 / 5 * 4 / lot_money_max);
                }
                if limit < 1 {
                    continue;
                }
                self.cells[l * symbols + s.0 as usize] = Cell {
                    unit: Lots(unit.min(limit)),
                    limit: Lots(limit),
                    ..Cell::default()
                };
                trades.push(s);
            }
            if !trades.is_empty() {
                self.traders.push(Trader {
                    leader: LeaderIdx(l as u32),
                    symbols: trades,
                });
            }
        }
        self.traded = self
            .traders
            .iter()
            .flat_map(|t| t.symbols.iter().copied())
            .collect();
        self.traded.sort_unstable();
        self.traded.dedup();
    }

    fn cell_of(&self, trader: usize, symbol: SymbolIdx) -> usize {
        self.traders[trader].leader.0 as usize * self.universe.symbols.len() + symbol.0 as usize
    }

    /// Draws the next order, keeping the budget so that every leader can be flat by the
    /// last fill: with `remaining` fills left and `open` non-flat positions, the state
    /// must keep `remaining >= open` and never reach one fill left with all flat.
    fn plan(&mut self) -> Option<Plan> {
        let remaining = self.fills_total - self.fills_planned;
        let open = self.open as u64;
        debug_assert!(remaining >= open);
        if remaining == 0 || self.traders.is_empty() || (remaining == 1 && open == 0) {
            return None;
        }
        if remaining > open + 1 {
            if let Some(plan) = self.plan_random(remaining) {
                return Some(plan);
            }
        }
        self.plan_wind_down(remaining)
    }

    fn plan_random(&mut self, remaining: u64) -> Option<Plan> {
        let trader = self.rng.gen_range(0..self.traders.len());
        let symbols = &self.traders[trader].symbols;
        let symbol = symbols[self.rng.gen_range(0..symbols.len())];
        let cell = self.cells[self.cell_of(trader, symbol)];
        let (p, unit, limit) = (cell.planned.0, cell.unit.0, cell.limit.0);
        let held = p.abs();
        let units = |rng: &mut ChaCha8Rng, max: i64| unit.saturating_mul(rng.gen_range(1..=max));

        let (side, order_qty, may_underfill) = if p == 0 {
            let side = if self.rng.gen() {
                Side::Buy
            } else {
                Side::Sell
            };
            (side, units(&mut self.rng, ORDER_UNITS_MAX).min(limit), true)
        } else {
            let with = Side::from_sign(p);
            let against = Side::from_sign(-p);
            match self.rng.gen_range(0..100u32) {
                0..=34 if held < limit => (with, units(&mut self.rng, 3).min(limit - held), true),
                0..=64 if held >= 2 => (against, self.rng.gen_range(1..held), false),
                0..=84 => (against, held, false),
                _ => {
                    let beyond = units(&mut self.rng, ORDER_UNITS_MAX).min(limit);
                    (against, held + beyond, false)
                }
            }
        };
        debug_assert!(order_qty > 0);
        let filled =
            if may_underfill && order_qty >= 2 && self.rng.gen_range(0..100) < UNDERFILL_PCT {
                self.rng.gen_range(1..order_qty)
            } else {
                order_qty
            };
        let after = p + side.sign() * filled;
        debug_assert!(after.abs() <= limit);
        let open_after = self.open as u64 - u64::from(p != 0) + u64::from(after != 0);
        let mut fills = (self.rng.gen_range(1..=FILLS_PER_ORDER_MAX) as u64)
            .min(filled as u64)
            .min(remaining.saturating_sub(open_after));
        if open_after == 0 && remaining - fills == 1 {
            fills -= 1;
        }
        (fills >= 1).then_some(Plan {
            trader,
            symbol,
            side,
            order_qty: Lots(order_qty),
            filled: Lots(filled),
            fills: fills as usize,
        })
    }

    /// Near the end of the budget (or when a random order does not fit it): with no
    /// fill to spare, close a position in one fill; otherwise reduce one by a lot (or
    /// flip a one-lot position) in one fill, which keeps the same positions open.
    fn plan_wind_down(&mut self, remaining: u64) -> Option<Plan> {
        let symbols = self.universe.symbols.len();
        let cell = self.cells.iter().position(|c| c.planned.0 != 0)?;
        let leader = LeaderIdx((cell / symbols) as u32);
        let symbol = SymbolIdx((cell % symbols) as u16);
        let trader = self.traders.iter().position(|t| t.leader == leader)?;
        let held = self.cells[cell].planned.0.abs();
        let order_qty = if remaining == self.open as u64 {
            held
        } else if held >= 2 {
            1
        } else {
            2
        };
        Some(Plan {
            trader,
            symbol,
            side: Side::from_sign(-self.cells[cell].planned.0),
            order_qty: Lots(order_qty),
            filled: Lots(order_qty),
            fills: 1,
        })
    }

    /// Draws the fills (and marks) of `plan` into `pending`.
    fn expand(&mut self, plan: Plan) {
        debug_assert!(plan.fills >= 1 && plan.fills <= FILLS_PER_ORDER_MAX);
        debug_assert!(plan.filled.0 >= plan.fills as i64 && plan.filled <= plan.order_qty);
        let mut parts = [0i64; FILLS_PER_ORDER_MAX];
        let spare = plan.filled.0 - plan.fills as i64;
        let mut cuts = [0i64; FILLS_PER_ORDER_MAX];
        for cut in cuts.iter_mut().take(plan.fills - 1) {
            *cut = self.rng.gen_range(0..=spare);
        }
        cuts[..plan.fills - 1].sort_unstable();
        let mut prev = 0;
        for i in 0..plan.fills {
            let cut = if i + 1 < plan.fills { cuts[i] } else { spare };
            parts[i] = 1 + cut - prev;
            prev = cut;
        }
        debug_assert_eq!(parts[..plan.fills].iter().sum::<i64>(), plan.filled.0);

        self.orders += 1;
        let order_key = mix64(self.seed ^ mix64(self.orders)).max(1);
        let leader = self.traders[plan.trader].leader;
        let cell = self.cell_of(plan.trader, plan.symbol);
        let was_open = self.cells[cell].planned.0 != 0;
        for &qty in &parts[..plan.fills] {
            let price = self.walk(plan.symbol);
            let before = self.ts;
            self.ts = Nanos(self.ts.0.saturating_add(self.gap_ns()));
            self.fund_after(before, self.ts);
            self.fills_planned += 1;
            self.id_buf.clear();
            // Writing to a String cannot fail.
            let _ = write!(self.id_buf, "syn-{}-{}", self.seed, self.fills_planned);
            let leader_id = &self.universe.leaders[leader.0 as usize].id;
            self.pending.push_back(FeedEvent::LeaderFill(LeaderFill {
                leader,
                symbol: plan.symbol,
                side: plan.side,
                qty: Lots(qty),
                price,
                event_key: leader_event_key(leader_id, &self.id_buf),
                order_key,
                order_qty: plan.order_qty,
                venue_ts: self.ts,
                recv_ts: Nanos(0),
                kind: FillKind::Trade,
            }));
            self.fills_until_mark = self.fills_until_mark.saturating_sub(1);
            if self.fills_until_mark == 0 {
                self.marks += 1;
                self.pending.push_back(FeedEvent::MarkPrice {
                    symbol: plan.symbol,
                    price,
                    ts: self.ts,
                });
                self.fills_until_mark = self.rng.gen_range(2..=5);
            }
        }
        let c = &mut self.cells[cell];
        c.planned.0 += plan.side.sign() * plan.filled.0;
        debug_assert!(c.planned.0.abs() <= c.limit.0.max(1));
        let is_open = c.planned.0 != 0;
        self.open = self.open + usize::from(is_open) - usize::from(was_open);
        debug_assert!(self.fills_total - self.fills_planned >= self.open as u64);
    }

    /// A `Funding` of every traded symbol at each funding time in `(from, to]`, at
    /// its price now. A gap is at most a second (`gap_ns`), so this is one
    /// funding time at most; bounded by the span anyway.
    fn fund_after(&mut self, from: Nanos, to: Nanos) {
        let first = (from.0 / FUNDING_INTERVAL_NS).saturating_add(1);
        let last = to.0 / FUNDING_INTERVAL_NS;
        for k in first..=last {
            let at = k.saturating_mul(FUNDING_INTERVAL_NS);
            for i in 0..self.traded.len() {
                let symbol = self.traded[i];
                let rate = funding_rate(self.seed, at, symbol);
                debug_assert!(rate.0.abs() <= FUNDING_RATE_MAX.0);
                self.fundings += 1;
                self.pending.push_back(FeedEvent::Funding {
                    symbol,
                    rate,
                    price: self.books[symbol.0 as usize].price,
                    ts: Nanos(at),
                });
            }
        }
    }

    fn walk(&mut self, symbol: SymbolIdx) -> Ticks {
        let b = &mut self.books[symbol.0 as usize];
        let step = self.rng.gen_range(-b.step_max..=b.step_max);
        b.price = Ticks(
            b.price
                .0
                .saturating_add(step)
                .clamp(b.price_min.0, b.price_max.0),
        );
        debug_assert!(b.price.0 >= 1);
        b.price
    }

    fn gap_ns(&mut self) -> u64 {
        match 1_000_000_000u64.checked_div(self.rate) {
            Some(gap) => gap.max(1),
            None => self.rng.gen_range(GAP_NS_MIN..=GAP_NS_MAX),
        }
    }

    /// When the `n`-th fill (0-based) is due under the rate limit.
    fn due(&self, start: Nanos, n: u64) -> Nanos {
        let offset = n as u128 * 1_000_000_000 / self.rate.max(1) as u128;
        Nanos(start.0.saturating_add(offset.min(u64::MAX as u128) as u64))
    }
}

impl Source for SyntheticLeaders {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        self.step(now, true)
    }

    fn position(&self) -> Option<u64> {
        Some(self.returned)
    }

    /// Generates the first `pos` events again and drops them: the generator is a
    /// pure function of its seed, so it stands where the earlier run stood.
    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        if self.returned != 0 {
            return Err(ResumeError::AlreadyStarted {
                origin: "synthetic".into(),
                doing: "generating",
            });
        }
        while self.returned < pos {
            if self.step(Nanos(0), false) == SourcePoll::Finished {
                return Err(ResumeError::Short {
                    holds: format!(
                        "synthetic (seed {}): generates {} events",
                        self.seed, self.returned
                    ),
                    pos,
                    taken: "taken",
                    likely: "was `fills` lowered?",
                });
            }
        }
        self.paced_from = self.fills_emitted;
        Ok(())
    }
}

impl SyntheticLeaders {
    fn step(&mut self, now: Nanos, paced: bool) -> SourcePoll {
        self.started = true;
        if self.pending.is_empty() {
            match self.plan() {
                Some(plan) => self.expand(plan),
                None => {
                    debug_assert!(self.all_flat());
                    return SourcePoll::Finished;
                }
            }
        }
        let Some(event) = self.pending.front().copied() else {
            return SourcePoll::Finished;
        };
        let FeedEvent::LeaderFill(mut fill) = event else {
            self.pending.pop_front();
            self.returned += 1;
            return SourcePoll::Event(event);
        };
        if self.rate > 0 && paced {
            let start = *self.rate_start.get_or_insert(now);
            if now < self.due(start, self.fills_emitted - self.paced_from) {
                return SourcePoll::Idle;
            }
        }
        self.pending.pop_front();
        self.returned += 1;
        self.fills_emitted += 1;
        let symbols = self.universe.symbols.len();
        let cell = &mut self.cells[fill.leader.0 as usize * symbols + fill.symbol.0 as usize];
        cell.emitted.0 += fill.side.sign() * fill.qty.0;
        fill.recv_ts = now;
        SourcePoll::Event(FeedEvent::LeaderFill(fill))
    }
}

/// The funding rate of `symbol` at `at` under `seed`: uniform in ±`FUNDING_RATE_MAX`.
fn funding_rate(seed: u64, at: u64, symbol: SymbolIdx) -> FundingRate {
    let h = mix64(seed ^ mix64(at ^ (u64::from(symbol.0) << 48)));
    let span = 2 * FUNDING_RATE_MAX.0 as u64 + 1;
    FundingRate((h % span) as i64 - FUNDING_RATE_MAX.0)
}

fn book(start: Ticks) -> Book {
    let p = start.0.max(1);
    let price_min = (p / 5 * 4).max(1);
    let price_max = (p / 5 * 6).max(price_min + 1);
    Book {
        price: Ticks(p),
        price_min: Ticks(price_min),
        price_max: Ticks(price_max),
        step_max: (p / 2000).max(1),
    }
}
