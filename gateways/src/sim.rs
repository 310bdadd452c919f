//! The simulated venue: a fill model with latency, partial fills, rejects and
//! transient failures, reproducible from a seed, and the venue-side books a real venue
//! would keep (positions per follower and symbol, orders received, duplicate client
//! order ids).
//!
//! Owns its report queue (bounded: `can_accept` says when it is full), its books, and
//! the history of the last `HISTORY_ORDERS_DEFAULT` orders it received (what it did
//! with each: ack, fill with its trade id, cancel or reject), which answers `query`
//! after the client that sent them is gone, the way a real venue answers an order
//! status request after a reconnect (`answer`, and `Gateway::recover` for the
//! in-process venue). An id older than that window is answered `Unknown`, as a real
//! venue answers for an order past its retention, so a restarted engine must ask only
//! about recent orders.
//!
//! Never reads the wall clock: time is the `now` given to `submit` and `poll`, and the
//! random stream advances only in `submit`, so the same orders submitted at the same
//! times give the same reports whatever the polling pattern.

use crate::config::{SettingsError, SimVenueConfig, VenueSettings};
use crate::simmarket::{MarketModel, Mids};
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, OrderType, RejectReason};
use fillcast_engine::ids::{fnv1a, mix64};
use fillcast_engine::model::{FollowerIdx, Side, SymbolIdx, SymbolSpec, Universe, VenueIdx};
use fillcast_engine::order::IdHash;
use fillcast_engine::port::{AskedOrder, Gateway, VenueBooks, VenueError};
use fillcast_engine::units::{Lots, Money, Nanos, Ticks};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Reports the queue holds by default.
pub const QUEUE_REPORTS_DEFAULT: usize = 1 << 20;

/// Most reports one order produces (ack, partial fill, cancel of the remainder).
pub const REPORTS_PER_ORDER_MAX: usize = 3;

/// Client order ids remembered for duplicate detection by default.
pub const DEDUP_IDS_DEFAULT: usize = 1 << 20;

/// Orders whose history `query` can describe by default: the same window as duplicate
/// detection (one structure serves both). About 120 bytes per order (record and
/// index), allocated as orders arrive (about 120 MiB when the window is full), never
/// beyond the window.
pub const HISTORY_ORDERS_DEFAULT: usize = DEDUP_IDS_DEFAULT;

/// Taker fee of a venue made without a config (`SimVenue::new` takes the
/// config's `taker_fee_ppm`), in parts per million of notional (2 bps).
pub const FEE_PPM_DEFAULT: u32 = 200;

const PPM: u32 = 1_000_000;

/// Counters of everything the venue did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Orders received (duplicates and rejected ones included).
    pub orders: u64,
    /// Orders whose client order id was seen before.
    pub duplicate_ids: u64,
    pub acks: u64,
    /// Fill reports (partial or full).
    pub fills: u64,
    /// Orders that filled only in part (each also counts one `canceled`).
    pub partial_fills: u64,
    pub canceled: u64,
    /// All rejects, including the kinds counted below.
    pub rejected: u64,
    pub rejected_transient: u64,
    pub rejected_below_min: u64,
    /// Orders submitted while the queue was full (the caller ignored `can_accept`);
    /// rejected at once as transient, never dropped.
    pub rejected_queue_full: u64,
    /// Malformed orders (unknown symbol, quantity or price not positive).
    pub rejected_invalid: u64,
    /// Reports handed out by `submit` and `poll`.
    pub delivered: u64,
}

/// What the venue knows about one client order id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryAnswer {
    /// The venue never received this id, or it is older than the history window.
    Unknown {
        order_id: u64,
    },
    Known(OrderHistory),
}

/// Most reports `QueryAnswer::reports` gives for one order: its terms, its fill
/// and its end.
pub const ANSWER_REPORTS_MAX: usize = 3;

impl QueryAnswer {
    pub fn order_id(&self) -> u64 {
        match self {
            QueryAnswer::Unknown { order_id } => *order_id,
            QueryAnswer::Known(h) => h.order_id,
        }
    }

    /// The answer as the reports `Gateway::recover` promises: the order's terms as
    /// received (`Restated`: its quantity, negative for a sell, its limit and its
    /// symbol), each fill (with its
    /// trade id) and then the ending report if the order ended other than by filling
    /// in full; an unknown order is one `Rejected` report with `UnknownOrder`. The ack
    /// is left out: the restatement says the venue has the order.
    pub fn reports(&self) -> Vec<ExecReport> {
        match self {
            QueryAnswer::Unknown { order_id } => vec![ExecReport {
                order_id: *order_id,
                kind: ExecKind::Rejected,
                reject: RejectReason::UnknownOrder,
                ..ExecReport::default()
            }],
            QueryAnswer::Known(h) => {
                let mut reports = Vec::with_capacity(h.fills.len() + 2);
                reports.push(ExecReport {
                    order_id: h.order_id,
                    kind: ExecKind::Restated,
                    qty: Lots(h.side.sign() * h.qty.0),
                    price: h.limit,
                    trade_id: h.symbol.0 as u64,
                    ..ExecReport::default()
                });
                reports.extend_from_slice(&h.fills);
                reports.extend(h.end);
                debug_assert!(reports.iter().all(|r| r.order_id == h.order_id));
                reports
            }
        }
    }
}

/// The venue's record of one order: every report it made for it, in venue terms
/// (`recv_ts` is 0: the venue does not know when the client got them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderHistory {
    pub order_id: u64,
    /// The order's quantity, side, symbol and limit as received.
    pub qty: Lots,
    pub side: Side,
    pub symbol: SymbolIdx,
    pub limit: Ticks,
    pub acked: bool,
    /// Each fill, with its trade id, quantity, price and fee.
    pub fills: Vec<ExecReport>,
    /// How it ended when not by filling in full: `Canceled` (with the canceled
    /// quantity) or `Rejected` (with its reason).
    pub end: Option<ExecReport>,
}

impl OrderHistory {
    pub fn filled(&self) -> Lots {
        Lots(self.fills.iter().map(|f| f.qty.0).sum())
    }

    /// Whether the order can change no more: it ended, or it filled in full.
    pub fn is_done(&self) -> bool {
        self.end.is_some() || self.filled() >= self.qty
    }
}

#[derive(Copy, Clone, Debug)]
struct Pending {
    due: Nanos,
    report: ExecReport,
    /// The `tag` of the `submit_tagged` call that made the report (0 for `submit`).
    tag: u64,
}

/// What the venue needs of a symbol: its minimums and what one lot × one tick is
/// worth (for notionals and fees). A remote venue gets them from the engine
/// (`simwire::ClientMsg::Symbols`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SymbolTerms {
    pub min_qty: Lots,
    pub min_notional: Money,
    pub money_per_lot_tick: i64,
}

impl SymbolTerms {
    pub fn of(spec: &SymbolSpec) -> SymbolTerms {
        SymbolTerms {
            min_qty: spec.min_qty,
            min_notional: spec.min_notional,
            money_per_lot_tick: spec.money_per_lot_tick,
        }
    }

    fn notional(&self, qty: Lots, price: Ticks) -> Money {
        fillcast_engine::units::notional(qty, price, self.money_per_lot_tick)
    }
}

/// An in-process simulated venue. See the module docs.
pub struct SimVenue {
    name: String,
    latency: Nanos,
    partial_fill_ppm: u32,
    reject_ppm: u32,
    transient_failure_ppm: u32,
    fee_ppm: u32,
    /// The book around each symbol's mid (`simmarket`).
    market: MarketModel,
    mids: Mids,
    /// `symbols[i]` is what the venue knows of `SymbolIdx(i)`.
    symbols: Vec<SymbolTerms>,
    rng: ChaCha8Rng,
    queue: VecDeque<Pending>,
    queue_reports_max: usize,
    /// Due time of the newest queued report; later reports are never due earlier, so
    /// the queue stays in time order even if `now` goes backwards.
    due_last: Nanos,
    trade_salt: u64,
    trades: u64,
    positions: HashMap<(FollowerIdx, SymbolIdx), Lots, IdHash>,
    history: History,
    /// The tag of the `submit_tagged` call under way, for the reports it queues.
    tag: u64,
    stats: SimStats,
}

impl SimVenue {
    /// A venue named `name` with the fill model `cfg`; `symbols[i]` must be the spec of
    /// `SymbolIdx(i)` (pass the universe's whole symbol list).
    pub fn new(
        name: impl Into<String>,
        cfg: &SimVenueConfig,
        symbols: Vec<SymbolSpec>,
    ) -> SimVenue {
        let name = name.into();
        let latency_ns = cfg.latency_us.saturating_mul(1_000);
        SimVenue {
            trade_salt: fnv1a(name.as_bytes()) ^ mix64(cfg.seed),
            name,
            latency: Nanos(latency_ns),
            partial_fill_ppm: cfg.partial_fill_ppm.min(PPM),
            reject_ppm: cfg.reject_ppm.min(PPM),
            transient_failure_ppm: cfg.transient_failure_ppm.min(PPM - cfg.reject_ppm.min(PPM)),
            fee_ppm: cfg.taker_fee_ppm,
            // A depth `check-config` refuses cannot reach here from a config file;
            // from code, it means no impact.
            market: cfg.market().unwrap_or(MarketModel {
                spread_ppm: cfg.spread_ppm,
                impact_ppm: 0,
                depth: Money(i64::MAX),
            }),
            mids: Mids::default(),
            symbols: symbols.iter().map(SymbolTerms::of).collect(),
            rng: ChaCha8Rng::seed_from_u64(cfg.seed),
            queue: VecDeque::with_capacity(4096),
            queue_reports_max: QUEUE_REPORTS_DEFAULT,
            due_last: Nanos(0),
            trades: 0,
            positions: HashMap::with_hasher(IdHash),
            history: History::new(HISTORY_ORDERS_DEFAULT),
            tag: 0,
            stats: SimStats::default(),
        }
    }

    /// The venue `venue` of `universe`, with its configured fill model.
    pub fn for_venue(universe: &Universe, venue: VenueIdx) -> Result<SimVenue, SettingsError> {
        let spec = universe
            .venues
            .get(venue.0 as usize)
            .ok_or(SettingsError::NoSuchVenue(venue.0))?;
        let settings = VenueSettings::of(&spec.config)?;
        Ok(SimVenue::new(
            spec.name.clone(),
            &settings.sim,
            universe.symbols.clone(),
        ))
    }

    /// Every order acked and filled in full: no rejects, transient failures or partials
    /// (minimum-size rejects still apply).
    pub fn fill_all(mut self) -> SimVenue {
        self.partial_fill_ppm = 0;
        self.reject_ppm = 0;
        self.transient_failure_ppm = 0;
        self
    }

    /// Hold at most `reports_max` queued reports (default `QUEUE_REPORTS_DEFAULT`, at
    /// least `REPORTS_PER_ORDER_MAX`).
    pub fn with_queue_capacity(mut self, reports_max: usize) -> SimVenue {
        self.queue_reports_max = reports_max.max(REPORTS_PER_ORDER_MAX);
        self
    }

    /// Taker fee in parts per million of notional (default: the config's
    /// `taker_fee_ppm`).
    pub fn with_fee_ppm(mut self, fee_ppm: u32) -> SimVenue {
        self.fee_ppm = fee_ppm;
        self
    }

    /// The book around each mid (default: the config's spread, impact and depth).
    pub fn with_market(mut self, market: MarketModel) -> SimVenue {
        self.market = market;
        self
    }

    /// `symbol`'s mid: the newest reference price an order brought.
    pub fn mid(&self, symbol: SymbolIdx) -> Option<Ticks> {
        self.mids.get(symbol.0 as usize)
    }

    /// Remember at most `ids_max` client order ids (at least 1), for duplicate
    /// detection and for `query` (default `DEDUP_IDS_DEFAULT`); the oldest are
    /// forgotten first.
    pub fn with_dedup_window(mut self, ids_max: usize) -> SimVenue {
        self.history = History::new(ids_max);
        self
    }

    /// What the venue did with the order `order_id`: its ack, fills and end, made when
    /// the order arrived (so possibly before their reports are due). For a client order
    /// id received more than once (a duplicate), the history describes the first order
    /// only; the duplicates still count in `positions` and `duplicate_client_ids`.
    pub fn query(&self, order_id: u64) -> QueryAnswer {
        match self.history.get(order_id) {
            Some(record) => QueryAnswer::Known(record.to_history()),
            None => QueryAnswer::Unknown { order_id },
        }
    }

    /// Every order the venue remembers whose own time (`FollowerOrder::ts`) is
    /// `since` or later, oldest first: what a client asks after it lost its record
    /// of what it sent (`Gateway::orders_since`).
    pub fn orders_since(&self, since: Nanos) -> Vec<u64> {
        self.history.ids_since(since)
    }

    /// `query` as reports (see `QueryAnswer::reports`): the fills the venue made for
    /// `order_id` and its ending report, or one `Rejected`/`UnknownOrder` report for an
    /// id it never received or no longer remembers. At most `ANSWER_REPORTS_MAX`.
    pub fn answer(&self, order_id: u64) -> Vec<ExecReport> {
        let reports = self.query(order_id).reports();
        debug_assert!(!reports.is_empty() && reports.len() <= ANSWER_REPORTS_MAX);
        reports
    }

    /// The engine's symbols from index `first` on, in place of the venue's own
    /// (which it may have read from an older config); the list may grow, never
    /// with a gap. `Err` names what is wrong.
    pub fn set_symbols(&mut self, first: usize, terms: &[SymbolTerms]) -> Result<(), String> {
        if first > self.symbols.len() {
            return Err(format!(
                "symbols from index {first}, but the venue knows {} (a gap)",
                self.symbols.len()
            ));
        }
        let end = first + terms.len();
        let known = self.symbols.len().min(end);
        self.symbols[first..known].copy_from_slice(&terms[..known - first]);
        self.symbols.extend_from_slice(&terms[known - first..]);
        Ok(())
    }

    /// What the venue knows of each symbol, by index.
    pub fn symbols(&self) -> &[SymbolTerms] {
        &self.symbols
    }

    /// When the next queued report is due, if any.
    pub fn next_due(&self) -> Option<Nanos> {
        self.queue.front().map(|p| p.due)
    }

    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Orders received, duplicates and rejected ones included.
    pub fn orders_received(&self) -> u64 {
        self.stats.orders
    }

    /// Orders whose client order id the venue had seen before (within the dedup
    /// window). The engine must keep this at zero. Such an order is still executed, as
    /// venues that check uniqueness only among open orders would.
    pub fn duplicate_client_ids(&self) -> u64 {
        self.stats.duplicate_ids
    }

    /// The venue's position of `follower` in `symbol`, from the fills it made (a fill
    /// counts when the venue makes it, before its report is delivered).
    pub fn position(&self, follower: FollowerIdx, symbol: SymbolIdx) -> Lots {
        self.positions
            .get(&(follower, symbol))
            .copied()
            .unwrap_or(Lots::ZERO)
    }

    /// Every non-zero venue position, in no particular order.
    pub fn positions(&self) -> impl Iterator<Item = (FollowerIdx, SymbolIdx, Lots)> + '_ {
        self.positions
            .iter()
            .filter(|(_, lots)| lots.0 != 0)
            .map(|(&(f, s), &lots)| (f, s, lots))
    }

    fn next_trade_id(&mut self) -> u64 {
        // mix64 is a bijection, so distinct counters give distinct ids; skip the one
        // counter value that would map to 0 (0 means "no trade id").
        loop {
            self.trades += 1;
            let id = mix64(self.trade_salt ^ self.trades);
            if id != 0 {
                return id;
            }
        }
    }

    fn push(&mut self, due: Nanos, report: ExecReport) {
        debug_assert!(self.queue.len() < self.queue_reports_max);
        debug_assert!(due >= self.due_last);
        let tag = self.tag;
        self.queue.push_back(Pending { due, report, tag });
    }

    /// Decides the fate of one order, queues its reports (tagged with `self.tag`) and
    /// returns what it did.
    fn execute(&mut self, order: &FollowerOrder, due: Nanos) -> Record {
        // The venue's clock is the input's: an order made from a leader fill
        // happens the venue latency after it, in the input's time (a replayed
        // history trades on its own dates); one without (read back from a
        // journal) happens when it arrives.
        let stamp = if order.venue_ts.0 > 0 {
            Nanos(order.venue_ts.0.saturating_add(self.latency.0))
        } else {
            due
        };
        let mut record = Record::new(order, stamp);
        let base = ExecReport {
            order_id: order.id,
            venue_ts: stamp,
            ..ExecReport::default()
        };
        let reject = |reason| ExecReport {
            kind: ExecKind::Rejected,
            reject: reason,
            ..base
        };
        let sym = order.symbol.0 as usize;
        if sym >= self.symbols.len() || order.qty.0 <= 0 || order.limit.0 <= 0 {
            self.stats.rejected += 1;
            self.stats.rejected_invalid += 1;
            self.push(due, reject(RejectReason::Other));
            return record.ended(ExecKind::Rejected, RejectReason::Other, Lots::ZERO);
        }
        let spec = &self.symbols[sym];
        let below_min =
            order.qty < spec.min_qty || spec.notional(order.qty, order.limit) < spec.min_notional;
        if below_min && !order.reduce_only {
            self.stats.rejected += 1;
            self.stats.rejected_below_min += 1;
            self.push(due, reject(RejectReason::BelowMin));
            return record.ended(ExecKind::Rejected, RejectReason::BelowMin, Lots::ZERO);
        }

        let draw = self.rng.gen_range(0..PPM);
        if draw < self.reject_ppm {
            let reason = if self.rng.gen::<bool>() {
                RejectReason::InsufficientMargin
            } else {
                RejectReason::PositionLimit
            };
            self.stats.rejected += 1;
            self.push(due, reject(reason));
            return record.ended(ExecKind::Rejected, reason, Lots::ZERO);
        }
        if draw - self.reject_ppm < self.transient_failure_ppm {
            self.stats.rejected += 1;
            self.stats.rejected_transient += 1;
            self.push(due, reject(RejectReason::Transient));
            return record.ended(ExecKind::Rejected, RejectReason::Transient, Lots::ZERO);
        }

        // Some of the quantity may be gone before the order reaches the book
        // (others' orders ahead of it): the venue offers part of it.
        let partial = order.qty.0 >= 2 && self.rng.gen_range(0..PPM) < self.partial_fill_ppm;
        let offered = if partial {
            Lots(self.rng.gen_range(1..order.qty.0))
        } else {
            order.qty
        };
        // The market's price for it (`simmarket`); an order that never had a
        // reference meets a book around its own price.
        self.mids
            .observe(sym, order.ref_price, Nanos(order.venue_ts.0));
        // An order that never had a reference, in a symbol no order brought one
        // for, knows no market: it fills at its own price.
        let (market, mid) = match self.mids.get(sym) {
            Some(mid) => (self.market, mid),
            None => (MarketModel::FLAT, order.limit),
        };
        let limit = (order.order_type == OrderType::LimitIoc).then_some(order.limit);
        let taken = market.take(
            order.side,
            offered,
            mid,
            limit,
            self.symbols[sym].money_per_lot_tick,
        );
        record.acked = true;
        self.stats.acks += 1;
        self.push(
            due,
            ExecReport {
                kind: ExecKind::Ack,
                ..base
            },
        );
        let Some((fill_qty, price)) = taken else {
            // Not one lot at the limit or better: the IOC is canceled in full.
            self.stats.canceled += 1;
            self.push(
                due,
                ExecReport {
                    kind: ExecKind::Canceled,
                    qty: order.qty,
                    ..base
                },
            );
            return record.ended(ExecKind::Canceled, RejectReason::None, order.qty);
        };
        let partial = fill_qty < order.qty;
        debug_assert!(fill_qty.0 > 0 && fill_qty <= order.qty);
        let fee = fee_of(&self.symbols[sym], fill_qty, price, self.fee_ppm);
        let trade_id = self.next_trade_id();
        record.fill = Some(FillRecord {
            trade_id,
            qty: fill_qty,
            price,
            fee,
        });
        self.stats.fills += 1;
        self.push(
            due,
            ExecReport {
                kind: ExecKind::Fill,
                qty: fill_qty,
                price,
                trade_id,
                fee,
                ..base
            },
        );
        let position = self
            .positions
            .entry((order.follower, order.symbol))
            .or_insert(Lots::ZERO);
        position.0 = position.0.saturating_add(order.side.sign() * fill_qty.0);
        if partial {
            self.stats.partial_fills += 1;
            self.stats.canceled += 1;
            // An IOC remainder: `qty` says how much was canceled.
            let remainder = Lots(order.qty.0 - fill_qty.0);
            self.push(
                due,
                ExecReport {
                    kind: ExecKind::Canceled,
                    qty: remainder,
                    ..base
                },
            );
            return record.ended(ExecKind::Canceled, RejectReason::None, remainder);
        }
        record
    }

    fn deliver_due(&mut self, now: Nanos, mut out: impl FnMut(u64, ExecReport)) -> usize {
        let mut delivered = 0;
        // Bounded by the queue length.
        while let Some(head) = self.queue.front() {
            if head.due > now {
                break;
            }
            let (mut report, tag) = (head.report, head.tag);
            self.queue.pop_front();
            report.recv_ts = now;
            out(tag, report);
            delivered += 1;
        }
        self.stats.delivered += delivered as u64;
        delivered
    }

    /// `Gateway::submit` for a venue several clients share: every report comes with
    /// the `tag` of the call that submitted its order (the sim server passes the
    /// client's session), so that reports go back to whoever sent the order, even for
    /// a client order id that two clients used. The reports due at once may include
    /// earlier calls' reports, each with its own tag.
    pub fn submit_tagged(
        &mut self,
        orders: &[FollowerOrder],
        now: Nanos,
        tag: u64,
        mut out: impl FnMut(u64, ExecReport),
    ) {
        self.tag = tag;
        let due = Nanos(now.0.saturating_add(self.latency.0)).max(self.due_last);
        for order in orders {
            self.stats.orders += 1;
            let first = !self.history.contains(order.id);
            if !first {
                self.stats.duplicate_ids += 1;
            }
            if self.queue.len() + REPORTS_PER_ORDER_MAX > self.queue_reports_max {
                self.stats.rejected += 1;
                self.stats.rejected_transient += 1;
                self.stats.rejected_queue_full += 1;
                self.stats.delivered += 1;
                out(
                    tag,
                    ExecReport {
                        order_id: order.id,
                        kind: ExecKind::Rejected,
                        reject: RejectReason::Transient,
                        venue_ts: now,
                        recv_ts: now,
                        ..ExecReport::default()
                    },
                );
                if first {
                    let record = Record::new(order, now).ended(
                        ExecKind::Rejected,
                        RejectReason::Transient,
                        Lots::ZERO,
                    );
                    self.history.insert(record);
                }
                continue;
            }
            let record = self.execute(order, due);
            if first {
                self.history.insert(record);
            }
        }
        self.due_last = due;
        debug_assert!(self.queue.len() <= self.queue_reports_max);
        self.deliver_due(now, out);
    }

    /// `Gateway::poll` with each report's tag (see `submit_tagged`).
    pub fn poll_tagged(&mut self, now: Nanos, out: impl FnMut(u64, ExecReport)) -> usize {
        self.deliver_due(now, out)
    }
}

impl Gateway for SimVenue {
    fn name(&self) -> &str {
        &self.name
    }

    fn can_accept(&self, orders: usize) -> bool {
        orders
            .checked_mul(REPORTS_PER_ORDER_MAX)
            .and_then(|r| r.checked_add(self.queue.len()))
            .is_some_and(|total| total <= self.queue_reports_max)
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        self.submit_tagged(orders, now, 0, |_, r| out(r));
    }

    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        self.deliver_due(now, |_, r| out(r))
    }

    fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// The engine's symbols in force, by the indices its orders carry: a symbol
    /// a reload added is traded from its first order on, and a removed one keeps
    /// its place and spec for the closes. (The venue may have been built from a
    /// config file whose indices a journal's model lays out otherwise: the
    /// engine tells it the model before its first order.)
    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.symbols.clear();
        self.symbols
            .extend(universe.symbols.iter().map(SymbolTerms::of));
    }

    /// Answers from the venue's history (`answer`). Reports already delivered may come
    /// again (the engine de-duplicates fills by trade id); `recv_ts` is 0. A venue
    /// created by the restarted process knows nothing: every id is `UnknownOrder`,
    /// which is the truth when the venue died with the engine.
    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        for o in orders {
            for r in self.answer(o.id) {
                out(r);
            }
        }
        Ok(())
    }

    fn orders_since(
        &mut self,
        since: Nanos,
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        for id in SimVenue::orders_since(self, since) {
            for r in self.answer(id) {
                out(r);
            }
        }
        Ok(())
    }

    fn books(&mut self) -> Option<Result<VenueBooks, VenueError>> {
        Some(Ok(VenueBooks {
            orders_received: Some(self.orders_received()),
            duplicate_client_ids: Some(self.duplicate_client_ids()),
            positions: self.positions().collect(),
        }))
    }
}

/// The fee of a fill: `fee_ppm` of its notional, rounded up to the next money unit
/// (venues round fees in their own favour).
fn fee_of(spec: &SymbolTerms, qty: Lots, price: Ticks, fee_ppm: u32) -> Money {
    let notional = spec.notional(qty, price).0 as i128;
    let fee = (notional * fee_ppm as i128 + (PPM as i128 - 1)) / PPM as i128;
    debug_assert!(fee >= 0);
    Money(fee.min(i64::MAX as i128) as i64)
}

#[derive(Copy, Clone, Debug)]
struct FillRecord {
    trade_id: u64,
    qty: Lots,
    price: Ticks,
    fee: Money,
}

/// What the venue did with one order, compactly (every report of an order shares
/// its `venue_ts`).
#[derive(Copy, Clone, Debug)]
struct Record {
    order_id: u64,
    qty: Lots,
    side: Side,
    symbol: SymbolIdx,
    limit: Ticks,
    /// The order's own time (`FollowerOrder::ts`, the engine's clock).
    order_ts: Nanos,
    venue_ts: Nanos,
    acked: bool,
    fill: Option<FillRecord>,
    /// Kind, reason and quantity of the ending report, when it ended other than filled.
    end: Option<(ExecKind, RejectReason, Lots)>,
}

impl Record {
    fn new(order: &FollowerOrder, venue_ts: Nanos) -> Record {
        Record {
            order_id: order.id,
            qty: order.qty,
            side: order.side,
            symbol: order.symbol,
            limit: order.limit,
            order_ts: order.ts,
            venue_ts,
            acked: false,
            fill: None,
            end: None,
        }
    }

    fn ended(mut self, kind: ExecKind, reject: RejectReason, qty: Lots) -> Record {
        debug_assert!(matches!(kind, ExecKind::Canceled | ExecKind::Rejected));
        self.end = Some((kind, reject, qty));
        self
    }

    fn to_history(self) -> OrderHistory {
        let base = ExecReport {
            order_id: self.order_id,
            venue_ts: self.venue_ts,
            ..ExecReport::default()
        };
        OrderHistory {
            order_id: self.order_id,
            qty: self.qty,
            side: self.side,
            symbol: self.symbol,
            limit: self.limit,
            acked: self.acked,
            fills: self
                .fill
                .iter()
                .map(|f| ExecReport {
                    kind: ExecKind::Fill,
                    qty: f.qty,
                    price: f.price,
                    trade_id: f.trade_id,
                    fee: f.fee,
                    ..base
                })
                .collect(),
            end: self.end.map(|(kind, reject, qty)| ExecReport {
                kind,
                reject,
                qty,
                ..base
            }),
        }
    }
}

/// The last `capacity` distinct client order ids with their records: a ring of
/// records (grown as orders arrive, never beyond `capacity`) and an index into it.
/// Storing into a slot evicts the record it held, so the index never outgrows the ring.
struct History {
    index: HashMap<u64, usize, IdHash>,
    ring: Vec<Record>,
    capacity: usize,
    next_slot: usize,
}

impl History {
    fn new(capacity: usize) -> History {
        History {
            index: HashMap::with_hasher(IdHash),
            ring: Vec::new(),
            capacity: capacity.max(1),
            next_slot: 0,
        }
    }

    fn contains(&self, order_id: u64) -> bool {
        self.index.contains_key(&order_id)
    }

    fn get(&self, order_id: u64) -> Option<&Record> {
        let record = self.ring.get(*self.index.get(&order_id)?)?;
        debug_assert_eq!(record.order_id, order_id);
        Some(record)
    }

    /// The ids of the remembered orders whose own time is `since` or later, oldest
    /// first.
    fn ids_since(&self, since: Nanos) -> Vec<u64> {
        let (newer, older) = self.ring.split_at(self.next_slot.min(self.ring.len()));
        older
            .iter()
            .chain(newer)
            .filter(|r| r.order_ts >= since)
            .map(|r| r.order_id)
            .collect()
    }

    /// Remembers a record for an id not yet present, forgetting the oldest when full.
    fn insert(&mut self, record: Record) {
        debug_assert!(!self.contains(record.order_id));
        let slot = self.next_slot;
        if slot < self.ring.len() {
            let old = self.ring[slot].order_id;
            self.index.remove(&old);
            self.ring[slot] = record;
        } else {
            self.ring.push(record);
        }
        self.index.insert(record.order_id, slot);
        self.next_slot = (slot + 1) % self.capacity;
        debug_assert!(self.index.len() <= self.capacity && self.ring.len() <= self.capacity);
    }
}
