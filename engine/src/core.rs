//! The core stage: sizing, risk and order state for every subscription.
//!
//! One `Core` is owned by one thread and handles events strictly in the order it is
//! given them. All memory is allocated in `Core::new`; the event handlers do no
//! allocation, no locking, no I/O and no logging, and read only integer tables that
//! were precomputed from the config (see `Book`).
//!
//! Sizing follows DESIGN.md's target-position model: per (subscription, symbol) an
//! episode ratio `r` (Q32 follower lots per leader lot), a target `T = r × P1`
//! rounded toward zero, and a delta `D = T − F` where `F` counts working orders.

use crate::config::{EngineConfig, Status};
use crate::event::{
    Command, ExecKind, ExecReport, FeedEvent, FollowerOrder, LeaderFill, OrderType, RejectReason,
};
use crate::ids::{decision_id, mix64};
use crate::model::{FollowerIdx, LeaderIdx, Mode, Side, SubIdx, SymbolIdx, Universe};
use crate::order::{transition, BoundedSet, Oddity, OrderSlot, OrderState, OrderTable};
use crate::risk::{allow_increase, notional, Allowed, RiskInput};
use crate::sizing::{LeaderMove, NOT_COPYING};
use crate::units::{Lots, Money, Nanos, Ticks, Q32};
use std::sync::Arc;

/// Why an instruction was skipped or reduced. The strings are a public interface.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Reason {
    #[default]
    None,
    /// The follower already holds its target: nothing to send.
    NoChange,
    FollowerPaused,
    FollowerStopped,
    LeaderPaused,
    SymbolBlocked,
    MaxOrderNotional,
    MaxPosition,
    MaxLeverage,
    MaxOpenPositions,
    BelowMin,
    DailyLossLimit,
    TotalStopLoss,
    LeaderDrawdown,
    LeaderProfile,
    KillSwitch,
    /// The order table is full of live orders (see `engine.max_working_orders`).
    OrderTableFull,
}

impl Reason {
    pub const ALL: [Reason; 17] = [
        Reason::None,
        Reason::NoChange,
        Reason::FollowerPaused,
        Reason::FollowerStopped,
        Reason::LeaderPaused,
        Reason::SymbolBlocked,
        Reason::MaxOrderNotional,
        Reason::MaxPosition,
        Reason::MaxLeverage,
        Reason::MaxOpenPositions,
        Reason::BelowMin,
        Reason::DailyLossLimit,
        Reason::TotalStopLoss,
        Reason::LeaderDrawdown,
        Reason::LeaderProfile,
        Reason::KillSwitch,
        Reason::OrderTableFull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::None => "",
            Reason::NoChange => "no_change",
            Reason::FollowerPaused => "follower_paused",
            Reason::FollowerStopped => "follower_stopped",
            Reason::LeaderPaused => "leader_paused",
            Reason::SymbolBlocked => "symbol_blocked",
            Reason::MaxOrderNotional => "max_order_notional",
            Reason::MaxPosition => "max_position",
            Reason::MaxLeverage => "max_leverage",
            Reason::MaxOpenPositions => "max_open_positions",
            Reason::BelowMin => "below_min",
            Reason::DailyLossLimit => "daily_loss_limit",
            Reason::TotalStopLoss => "total_stop_loss",
            Reason::LeaderDrawdown => "leader_drawdown",
            Reason::LeaderProfile => "leader_profile",
            Reason::KillSwitch => "kill_switch",
            Reason::OrderTableFull => "order_table_full",
        }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum DecisionStatus {
    #[default]
    Sent,
    Reduced,
    Skipped,
}

impl DecisionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionStatus::Sent => "sent",
            DecisionStatus::Reduced => "reduced",
            DecisionStatus::Skipped => "skipped",
        }
    }
}

/// The decision for one (leader fill, subscription).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub event_key: u64,
    pub sub: SubIdx,
    pub symbol: SymbolIdx,
    /// Target position after this fill.
    pub target: Lots,
    /// `T − F`: what the model asked for.
    pub delta: Lots,
    /// What was sent (signed sum of the legs).
    pub sent: Lots,
    pub status: DecisionStatus,
    pub reason: Reason,
    pub revision: u64,
}

/// Something worth an audit line that is not a per-fill decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    Stopped {
        sub: SubIdx,
        reason: Reason,
    },
    Odd {
        order_id: u64,
        oddity: Oddity,
    },
    Rejected {
        order_id: u64,
        reason: RejectReason,
        retried: bool,
    },
    OutOfSync {
        sub: SubIdx,
    },
}

/// Where the core stage's output goes: an egress ring in the pipeline, a vector in tests.
pub trait Outputs {
    fn order(&mut self, order: &FollowerOrder);
    fn decision(&mut self, _decision: &Decision) {}
    fn notice(&mut self, _notice: &Notice) {}
}

/// Counters kept by the core stage (plain integers: the core thread is their only writer).
#[derive(Clone, Debug, Default)]
pub struct CoreStats {
    pub leader_fills: u64,
    pub duplicate_events: u64,
    pub invalid_events: u64,
    pub mark_prices: u64,
    pub commands: u64,
    pub decisions: u64,
    pub by_status: [u64; 3],
    pub by_reason: [u64; Reason::ALL.len()],
    pub orders_sent: u64,
    pub reduce_only_orders: u64,
    pub exec_reports: u64,
    pub fills: u64,
    pub duplicate_fills: u64,
    pub unknown_reports: u64,
    pub overfills: u64,
    pub rejects: u64,
    pub retries: u64,
    pub oddities: u64,
    pub stops: u64,
}

impl CoreStats {
    pub fn reason_count(&self, r: Reason) -> u64 {
        self.by_reason[r as usize]
    }
    pub fn status_count(&self, s: DecisionStatus) -> u64 {
        self.by_status[s as usize]
    }
}

/// Per (leader, symbol): the leader's position and, per subscription, SoA arrays in
/// the order of the leader's subscriptions, so the fan-out is one linear pass.
struct SymbolBook {
    leader_pos: i64,
    ratio: Vec<u64>,
    /// Filled position, lots.
    pos: Vec<i64>,
    /// Signed lots of live orders.
    working: Vec<i64>,
    /// Σ signed lots × ticks of the open position (cost basis).
    cost: Vec<i128>,
    /// Last exposure this slot added to its follower's gross, money.
    expo: Vec<i64>,
}

/// Per leader: its subscriptions' fill-independent parameters, laid out for the loop.
struct Book {
    paused: bool,
    equity: Money,
    peak_equity: Money,
    subs: Vec<SubIdx>,
    follower: Vec<u32>,
    mode: Vec<Mode>,
    base: Vec<u64>,
    amount: Vec<u64>,
    market: Vec<bool>,
    slippage_bps: Vec<i64>,
    max_order: Vec<i64>,
    max_pos: Vec<i64>,
    status: Vec<Status>,
    symbols: Vec<SymbolBook>,
}

struct FollowerBook {
    status: Vec<Status>,
    gross: Vec<i64>,
    max_gross: Vec<i64>,
    open_positions: Vec<u32>,
    max_open_positions: Vec<u32>,
    day: Vec<u64>,
    realized_today: Vec<i64>,
    daily_loss_limit: Vec<i64>,
    /// `allowed[f * n_symbols + s]`.
    allowed: Vec<bool>,
}

/// Per subscription, not on the fan-out path.
struct SubBook {
    leader: Vec<u32>,
    slot: Vec<u32>,
    realized: Vec<i64>,
    stop_loss: Vec<i64>,
    leader_drawdown_ppm: Vec<u32>,
    out_of_sync: Vec<bool>,
}

pub struct Core {
    universe: Arc<Universe>,
    revision: u64,
    max_retries: u32,
    kill_switch: bool,
    books: Vec<Book>,
    followers: FollowerBook,
    subs: SubBook,
    marks: Vec<i64>,
    orders: OrderTable,
    seen_events: BoundedSet,
    seen_trades: BoundedSet,
    stats: CoreStats,
}

/// How many subscriptions ahead the fan-out prefetches: far enough for a memory
/// load (~100 ns) to land while the loop works on the ones before.
const PREFETCH_AHEAD: usize = 8;

const NANOS_PER_DAY: u64 = 86_400_000_000_000;

impl Core {
    pub fn new(universe: Arc<Universe>, cfg: &EngineConfig) -> Core {
        let n_sym = universe.symbols.len();
        let mut books: Vec<Book> = universe
            .leaders
            .iter()
            .map(|l| Book {
                paused: l.paused,
                equity: l.equity,
                peak_equity: l.equity,
                subs: Vec::new(),
                follower: Vec::new(),
                mode: Vec::new(),
                base: Vec::new(),
                amount: Vec::new(),
                market: Vec::new(),
                slippage_bps: Vec::new(),
                max_order: Vec::new(),
                max_pos: Vec::new(),
                status: Vec::new(),
                symbols: Vec::new(),
            })
            .collect();
        let n_subs = universe.subs.len();
        let mut subs = SubBook {
            leader: vec![0; n_subs],
            slot: vec![0; n_subs],
            realized: vec![0; n_subs],
            stop_loss: vec![0; n_subs],
            leader_drawdown_ppm: vec![0; n_subs],
            out_of_sync: vec![false; n_subs],
        };
        for (i, s) in universe.subs.iter().enumerate() {
            let b = &mut books[s.leader.0 as usize];
            subs.leader[i] = s.leader.0;
            subs.slot[i] = b.subs.len() as u32;
            subs.stop_loss[i] = s.stop_loss.0;
            subs.leader_drawdown_ppm[i] = s.leader_drawdown_ppm;
            b.subs.push(SubIdx(i as u32));
            b.follower.push(s.follower.0);
            b.mode.push(s.mode);
            b.base.push(s.base_ratio.0);
            b.amount.push(s.amount.0.max(0) as u64);
            b.market.push(s.market_orders);
            b.slippage_bps.push(s.slippage_bps as i64);
            b.max_order.push(s.max_order_notional.0);
            b.max_pos.push(s.max_position_notional.0);
            b.status.push(s.status);
        }
        for b in &mut books {
            let n = b.subs.len();
            b.symbols = (0..n_sym)
                .map(|_| SymbolBook {
                    leader_pos: 0,
                    ratio: vec![NOT_COPYING; n],
                    pos: vec![0; n],
                    working: vec![0; n],
                    cost: vec![0; n],
                    expo: vec![0; n],
                })
                .collect();
        }
        let nf = universe.followers.len();
        let mut allowed = Vec::with_capacity(nf * n_sym);
        for f in &universe.followers {
            allowed.extend_from_slice(&f.allowed);
        }
        let followers = FollowerBook {
            status: universe.followers.iter().map(|f| f.status).collect(),
            gross: vec![0; nf],
            max_gross: universe.followers.iter().map(|f| f.max_gross.0).collect(),
            open_positions: vec![0; nf],
            max_open_positions: universe
                .followers
                .iter()
                .map(|f| f.max_open_positions)
                .collect(),
            day: vec![0; nf],
            realized_today: vec![0; nf],
            daily_loss_limit: universe
                .followers
                .iter()
                .map(|f| f.daily_loss_limit.0)
                .collect(),
            allowed,
        };
        Core {
            revision: universe.revision,
            max_retries: cfg.max_retries,
            kill_switch: false,
            books,
            followers,
            subs,
            marks: vec![0; n_sym],
            orders: OrderTable::new(universe.subs.len(), cfg.max_working_orders),
            seen_events: BoundedSet::new(cfg.dedup_window),
            seen_trades: BoundedSet::new(cfg.dedup_window),
            stats: CoreStats::default(),
            universe,
        }
    }

    pub fn universe(&self) -> &Arc<Universe> {
        &self.universe
    }

    pub fn stats(&self) -> &CoreStats {
        &self.stats
    }

    /// Orders sent and not yet in a terminal state.
    pub fn live_orders(&self) -> usize {
        self.orders.live()
    }

    /// The filled position of a subscription in a symbol.
    pub fn position(&self, sub: SubIdx, symbol: SymbolIdx) -> Lots {
        let (b, k) = self.locate(sub);
        Lots(self.books[b].symbols[symbol.0 as usize].pos[k])
    }

    /// The position the model wants for a subscription now (`r × P`), 0 when not copying.
    pub fn target(&self, sub: SubIdx, symbol: SymbolIdx) -> Lots {
        let (b, k) = self.locate(sub);
        let sb = &self.books[b].symbols[symbol.0 as usize];
        if sb.ratio[k] == NOT_COPYING || self.books[b].status[k] == Status::Stopped {
            return Lots(0);
        }
        Q32(sb.ratio[k]).mul_lots_trunc(Lots(sb.leader_pos))
    }

    pub fn leader_position(&self, leader: LeaderIdx, symbol: SymbolIdx) -> Lots {
        Lots(self.books[leader.0 as usize].symbols[symbol.0 as usize].leader_pos)
    }

    pub fn subscription_status(&self, sub: SubIdx) -> Status {
        let (b, k) = self.locate(sub);
        self.books[b].status[k]
    }

    /// Realized P&L of a subscription, money.
    pub fn realized(&self, sub: SubIdx) -> Money {
        Money(self.subs.realized[sub.0 as usize])
    }

    pub fn follower_gross(&self, f: FollowerIdx) -> Money {
        Money(self.followers.gross[f.0 as usize])
    }

    fn locate(&self, sub: SubIdx) -> (usize, usize) {
        (
            self.subs.leader[sub.0 as usize] as usize,
            self.subs.slot[sub.0 as usize] as usize,
        )
    }

    pub fn on_feed<O: Outputs>(&mut self, ev: &FeedEvent, out: &mut O) {
        match *ev {
            FeedEvent::Empty => {}
            FeedEvent::LeaderFill(ref f) => self.on_leader_fill(f, out),
            FeedEvent::MarkPrice { symbol, price, ts } => self.on_mark(symbol, price, ts, out),
            FeedEvent::LeaderEquity { leader, equity, ts } => {
                self.on_leader_equity(leader, equity, ts, out)
            }
            FeedEvent::Command { cmd, ts } => self.on_command(cmd, ts, out),
        }
    }

    fn on_leader_fill<O: Outputs>(&mut self, f: &LeaderFill, out: &mut O) {
        let li = f.leader.0 as usize;
        let si = f.symbol.0 as usize;
        if li >= self.books.len() || si >= self.marks.len() || f.qty.0 <= 0 || f.price.0 <= 0 {
            self.stats.invalid_events += 1;
            return;
        }
        if !self.seen_events.add(f.event_key) {
            self.stats.duplicate_events += 1;
            return;
        }
        self.stats.leader_fills += 1;
        let px = f.price.0;
        self.marks[si] = px;
        let ts = if f.venue_ts.0 > 0 {
            f.venue_ts
        } else {
            f.recv_ts
        };
        let day = ts.0 / NANOS_PER_DAY;

        let universe = Arc::clone(&self.universe);
        let spec = &universe.symbols[si];
        let mplt = spec.money_per_lot_tick;
        let min_qty = spec.min_qty.0;
        let min_notional = spec.min_notional.0;
        let leader_spec = &universe.leaders[li];
        let n_sym = universe.symbols.len();

        let book = &mut self.books[li];
        let p0 = book.symbols[si].leader_pos;
        let p1 = p0 + f.side.sign() * f.qty.0;
        book.symbols[si].leader_pos = p1;

        // Everything that depends on the fill alone, once per fill.
        let mv = LeaderMove::new(p0, p1, f.qty.0, f.order_qty.0, px, mplt);

        let blocked_all = if self.kill_switch {
            Reason::KillSwitch
        } else if book.paused {
            Reason::LeaderPaused
        } else if leader_profile_violated(leader_spec, f.symbol, p1, px, mplt) {
            Reason::LeaderProfile
        } else {
            Reason::None
        };

        let per_fill = PerFill {
            px,
            mplt,
            min_qty,
            min_notional,
            blocked: blocked_all,
            n_sym,
        };
        let mut desk = Desk {
            followers: &mut self.followers,
            orders: &mut self.orders,
            stats: &mut self.stats,
            revision: self.revision,
        };
        let n = book.subs.len();
        for k in 0..n {
            if let Some(ahead) = book.subs.get(k + PREFETCH_AHEAD) {
                desk.orders.prefetch_for(ahead.0 as usize);
            }
            let sb = &mut book.symbols[si];
            // 1. The episode ratio, 2. the target.
            let r = mv.ratio(
                sb.ratio[k],
                book.mode[k].is_fixed_notional(),
                book.base[k],
                book.amount[k],
            );
            sb.ratio[k] = r;
            let target = mv.target(r);
            let sub = book.subs[k];
            let fi = book.follower[k] as usize;
            let mut decision = Decision {
                event_key: f.event_key,
                sub,
                symbol: f.symbol,
                target: Lots(target),
                revision: self.revision,
                ..Decision::default()
            };
            if book.status[k] == Status::Stopped || desk.followers.status[fi] == Status::Stopped {
                decision.status = DecisionStatus::Skipped;
                decision.reason = Reason::FollowerStopped;
                desk.stats.record(&decision);
                out.decision(&decision);
                continue;
            }
            self.subs.out_of_sync[sub.0 as usize] = false;
            let held = sb.pos[k] + sb.working[k];
            let delta = target - held;
            decision.delta = Lots(delta);
            if delta == 0 {
                decision.status = DecisionStatus::Skipped;
                decision.reason = Reason::NoChange;
                desk.stats.record(&decision);
                out.decision(&decision);
                continue;
            }
            if desk.followers.day[fi] != day {
                desk.followers.day[fi] = day;
                desk.followers.realized_today[fi] = 0;
            }

            let ctx = Leg {
                event_key: f.event_key,
                leader: f.leader,
                slot: k,
                symbol: f.symbol,
                px,
                mplt,
                ts: f.recv_ts,
            };
            let flips = held != 0 && target != 0 && held.signum() != target.signum();
            if flips || target.unsigned_abs() < held.unsigned_abs() || target == 0 {
                // Reduction first (the whole close leg of a flip).
                let reduce = if flips { -held } else { delta };
                let to_flat = flips || target == 0;
                let q = reduce.unsigned_abs() as i64;
                let below_min = q < min_qty || notional(q, px, mplt) < min_notional;
                if below_min && !to_flat {
                    decision.status = DecisionStatus::Skipped;
                    decision.reason = Reason::BelowMin;
                } else if send(
                    book,
                    &mut desk,
                    &ctx,
                    OrderReq {
                        qty: reduce,
                        leg_no: 0,
                        reduce_only: true,
                        limit: None,
                    },
                    out,
                )
                .is_none()
                {
                    decision.status = DecisionStatus::Skipped;
                    decision.reason = Reason::OrderTableFull;
                } else {
                    decision.sent = Lots(reduce);
                }
                if flips && decision.reason == Reason::None {
                    let allowed = filter(
                        book,
                        desk.followers,
                        k,
                        si,
                        target.unsigned_abs() as i64,
                        0,
                        &per_fill,
                        true,
                    );
                    let open = target.signum() * allowed.qty;
                    decision.reason = allowed.reason;
                    if allowed.qty > 0
                        && send(
                            book,
                            &mut desk,
                            &ctx,
                            OrderReq {
                                qty: open,
                                leg_no: 1,
                                reduce_only: false,
                                limit: None,
                            },
                            out,
                        )
                        .is_none()
                    {
                        decision.reason = Reason::OrderTableFull;
                    } else {
                        decision.sent.0 += open;
                    }
                    decision.status = if allowed.reason == Reason::None {
                        DecisionStatus::Sent
                    } else {
                        DecisionStatus::Reduced
                    };
                }
            } else {
                let allowed = filter(
                    book,
                    desk.followers,
                    k,
                    si,
                    delta.unsigned_abs() as i64,
                    held.unsigned_abs() as i64,
                    &per_fill,
                    false,
                );
                decision.reason = allowed.reason;
                if allowed.qty == 0 {
                    decision.status = DecisionStatus::Skipped;
                } else if send(
                    book,
                    &mut desk,
                    &ctx,
                    OrderReq {
                        qty: delta.signum() * allowed.qty,
                        leg_no: 0,
                        reduce_only: false,
                        limit: None,
                    },
                    out,
                )
                .is_none()
                {
                    decision.status = DecisionStatus::Skipped;
                    decision.reason = Reason::OrderTableFull;
                } else {
                    decision.sent = Lots(delta.signum() * allowed.qty);
                    decision.status = if allowed.qty < delta.abs() {
                        DecisionStatus::Reduced
                    } else {
                        DecisionStatus::Sent
                    };
                }
            }
            debug_assert!(decision.sent.0.abs() <= delta.abs() + held.abs());
            desk.stats.record(&decision);
            out.decision(&decision);
        }
    }

    fn on_mark<O: Outputs>(&mut self, symbol: SymbolIdx, price: Ticks, ts: Nanos, out: &mut O) {
        let si = symbol.0 as usize;
        if si >= self.marks.len() || price.0 <= 0 {
            self.stats.invalid_events += 1;
            return;
        }
        self.stats.mark_prices += 1;
        self.marks[si] = price.0;
        for b in 0..self.books.len() {
            for k in 0..self.books[b].subs.len() {
                if self.books[b].symbols[si].pos[k] != 0 {
                    let sub = self.books[b].subs[k];
                    self.check_stop_loss(sub, ts, out);
                }
            }
        }
    }

    fn on_leader_equity<O: Outputs>(
        &mut self,
        leader: LeaderIdx,
        equity: Money,
        ts: Nanos,
        out: &mut O,
    ) {
        let li = leader.0 as usize;
        if li >= self.books.len() || equity.0 < 0 {
            self.stats.invalid_events += 1;
            return;
        }
        let book = &mut self.books[li];
        book.equity = equity;
        book.peak_equity = book.peak_equity.max(equity);
        let peak = book.peak_equity.0.max(1) as i128;
        let dd_ppm = ((peak - equity.0 as i128) * 1_000_000 / peak) as u32;
        // Proportional ratios follow the leader's equity for the next episodes.
        for k in 0..book.subs.len() {
            if book.mode[k] == Mode::Proportional {
                let s = &self.universe.subs[book.subs[k].0 as usize];
                let num = s.multiplier * s.allocation.to_decimal();
                if let Some(r) = crate::model::proportional_ratio(
                    num,
                    rust_decimal::Decimal::ONE,
                    equity.to_decimal(),
                ) {
                    book.base[k] = r.0;
                }
            }
        }
        for k in 0..self.books[li].subs.len() {
            let sub = self.books[li].subs[k];
            if self.books[li].status[k] != Status::Stopped
                && dd_ppm >= self.subs.leader_drawdown_ppm[sub.0 as usize]
            {
                self.stop(sub, Reason::LeaderDrawdown, ts, out);
            }
        }
    }

    fn on_command<O: Outputs>(&mut self, cmd: Command, ts: Nanos, out: &mut O) {
        self.stats.commands += 1;
        let valid_sub = |s: SubIdx| (s.0 as usize) < self.subs.leader.len();
        match cmd {
            Command::PauseSubscription(s)
            | Command::ResumeSubscription(s)
            | Command::StopSubscription(s)
                if !valid_sub(s) =>
            {
                self.stats.invalid_events += 1;
            }
            Command::PauseSubscription(s) => self.set_status(s, Status::Paused),
            Command::ResumeSubscription(s) => self.set_status(s, Status::Active),
            Command::StopSubscription(s) => self.stop(s, Reason::FollowerStopped, ts, out),
            Command::PauseLeader(l) | Command::ResumeLeader(l)
                if l.0 as usize >= self.books.len() =>
            {
                self.stats.invalid_events += 1;
            }
            Command::PauseLeader(l) => self.books[l.0 as usize].paused = true,
            Command::ResumeLeader(l) => self.books[l.0 as usize].paused = false,
            Command::KillSwitch => self.kill_switch = true,
        }
    }

    fn set_status(&mut self, sub: SubIdx, status: Status) {
        let (b, k) = self.locate(sub);
        self.books[b].status[k] = status;
    }

    /// Stop a subscription and close all its copied positions with reduce-only orders.
    fn stop<O: Outputs>(&mut self, sub: SubIdx, reason: Reason, ts: Nanos, out: &mut O) {
        let (b, k) = self.locate(sub);
        if self.books[b].status[k] == Status::Stopped {
            return;
        }
        self.books[b].status[k] = Status::Stopped;
        self.stats.stops += 1;
        out.notice(&Notice::Stopped { sub, reason });
        let stop_key = mix64(sub.0 as u64 ^ ts.0.rotate_left(21) ^ 0x5709);
        for si in 0..self.marks.len() {
            let sb = &self.books[b].symbols[si];
            let held = sb.pos[k] + sb.working[k];
            self.books[b].symbols[si].ratio[k] = NOT_COPYING;
            if held == 0 {
                continue;
            }
            let px = if self.marks[si] > 0 {
                self.marks[si]
            } else {
                1
            };
            let mplt = self.universe.symbols[si].money_per_lot_tick;
            let ctx = Leg {
                event_key: stop_key,
                leader: LeaderIdx(b as u32),
                slot: k,
                symbol: SymbolIdx(si as u16),
                px,
                mplt,
                ts,
            };
            let mut desk = Desk {
                followers: &mut self.followers,
                orders: &mut self.orders,
                stats: &mut self.stats,
                revision: self.revision,
            };
            send(
                &mut self.books[b],
                &mut desk,
                &ctx,
                OrderReq {
                    qty: -held,
                    leg_no: 2,
                    reduce_only: true,
                    limit: None,
                },
                out,
            );
        }
    }

    fn check_stop_loss<O: Outputs>(&mut self, sub: SubIdx, ts: Nanos, out: &mut O) {
        let si_ = sub.0 as usize;
        if self.subs.stop_loss[si_] == i64::MAX {
            return;
        }
        let (b, k) = self.locate(sub);
        if self.books[b].status[k] == Status::Stopped {
            return;
        }
        let mut pnl = self.subs.realized[si_] as i128;
        for (s, sb) in self.books[b].symbols.iter().enumerate() {
            if sb.pos[k] != 0 && self.marks[s] > 0 {
                let mplt = self.universe.symbols[s].money_per_lot_tick as i128;
                pnl += (sb.pos[k] as i128 * self.marks[s] as i128 - sb.cost[k]) * mplt;
            }
        }
        if pnl <= -(self.subs.stop_loss[si_] as i128) {
            self.stop(sub, Reason::TotalStopLoss, ts, out);
        }
    }

    /// Handle one venue report about a follower order.
    pub fn on_exec<O: Outputs>(&mut self, r: &ExecReport, out: &mut O) {
        self.stats.exec_reports += 1;
        let Some(place) = self.orders.place_of(r.order_id) else {
            self.stats.unknown_reports += 1;
            return;
        };
        let o = *self.orders.at(place);
        if r.kind == ExecKind::Fill {
            if r.qty.0 <= 0 || r.price.0 <= 0 {
                self.stats.invalid_events += 1;
                return;
            }
            let inline = (o.fills as usize).min(OrderSlot::TRADES_INLINE);
            let duplicate = o.trades[..inline].contains(&r.trade_id)
                || (o.fills as usize >= OrderSlot::TRADES_INLINE
                    && !self.seen_trades.add(mix64(r.trade_id) ^ o.id));
            if duplicate {
                self.stats.duplicate_fills += 1;
                return;
            }
        }
        let filled_after = if r.kind == ExecKind::Fill {
            Lots(o.filled.0 + r.qty.0)
        } else {
            o.filled
        };
        let (state, oddity) = match transition(o.state, r.kind, filled_after, o.qty) {
            Ok(t) => t,
            Err(_) => {
                self.stats.overfills += 1;
                return;
            }
        };
        if oddity != Oddity::None {
            self.stats.oddities += 1;
            out.notice(&Notice::Odd {
                order_id: o.id,
                oddity,
            });
        }
        let was_live = !o.state.is_terminal();
        let (b, k, si) = (o.leader.0 as usize, o.slot as usize, o.symbol.0 as usize);
        let sign = o.side.sign();
        let sub = o.sub;
        if r.kind == ExecKind::Fill {
            self.stats.fills += 1;
            let q = r.qty.0;
            let sb = &mut self.books[b].symbols[si];
            let pos = sb.pos[k];
            let mplt = self.universe.symbols[si].money_per_lot_tick as i128;
            // Realized P&L on the part that closes, then the new cost basis.
            let closing = if pos != 0 && pos.signum() != sign {
                q.min(pos.abs())
            } else {
                0
            };
            if closing > 0 {
                let removed = sb.cost[k] * closing as i128 / pos.abs() as i128;
                let realized_lt =
                    pos.signum() as i128 * closing as i128 * r.price.0 as i128 - removed;
                sb.cost[k] -= removed;
                let realized =
                    (realized_lt * mplt).clamp(i64::MIN as i128, i64::MAX as i128) as i64;
                self.subs.realized[sub.0 as usize] += realized;
                let fi = self.books[b].follower[k] as usize;
                self.followers.realized_today[fi] += realized - r.fee.0;
            }
            let sb = &mut self.books[b].symbols[si];
            sb.cost[k] += sign as i128 * (q - closing) as i128 * r.price.0 as i128;
            sb.pos[k] += sign * q;
            if was_live {
                sb.working[k] -= sign * q;
            } else {
                // A late fill after the order's remainder was released: F moved.
                update_exposure(
                    &mut self.books[b],
                    &mut self.followers,
                    k,
                    si,
                    r.price.0,
                    self.universe.symbols[si].money_per_lot_tick,
                );
            }
            // The place is still this order's: nothing was inserted since the lookup.
            let slot = self.orders.at_mut(place);
            if (slot.fills as usize) < OrderSlot::TRADES_INLINE {
                slot.trades[slot.fills as usize] = r.trade_id;
            }
            slot.fills += 1;
            slot.filled = filled_after;
            slot.state = state;
            // A stop-loss here may insert orders, but never into a live order's
            // place, and this one is still marked live until below.
            self.check_stop_loss(sub, r.recv_ts, out);
        } else {
            self.orders.at_mut(place).state = state;
        }
        if was_live && state.is_terminal() {
            debug_assert_eq!(self.orders.at(place).id, o.id);
            self.orders.mark_done_at(place);
            let remaining = o.qty.0 - filled_after.0;
            if remaining > 0 {
                self.books[b].symbols[si].working[k] -= sign * remaining;
                let px = if self.marks[si] > 0 {
                    self.marks[si]
                } else {
                    o.limit.0
                };
                update_exposure(
                    &mut self.books[b],
                    &mut self.followers,
                    k,
                    si,
                    px,
                    self.universe.symbols[si].money_per_lot_tick,
                );
            }
            if r.kind == ExecKind::Rejected {
                self.stats.rejects += 1;
            }
            if remaining > 0 {
                self.on_unfilled(&o, r.kind, r.reject, remaining, out);
            }
        }
    }

    /// What to do with the unfilled part of an order that ended: retry transient
    /// failures, and the remainder of a reduce-only order (a close must not wait for
    /// the leader's next fill), with a fresh id; mark the subscription out of sync on
    /// a margin reject; otherwise let the next target recomputation heal it.
    fn on_unfilled<O: Outputs>(
        &mut self,
        o: &OrderSlot,
        kind: ExecKind,
        reason: RejectReason,
        remaining: i64,
        out: &mut O,
    ) {
        let rejected = kind == ExecKind::Rejected;
        let retryable = if rejected {
            reason.is_transient()
        } else {
            o.reduce_only
        };
        let retry = retryable && o.attempt < self.max_retries;
        if rejected {
            out.notice(&Notice::Rejected {
                order_id: o.id,
                reason,
                retried: retry,
            });
        }
        if retry {
            self.stats.retries += 1;
            let (b, k) = (o.leader.0 as usize, o.slot as usize);
            let mplt = self.universe.symbols[o.symbol.0 as usize].money_per_lot_tick;
            let ctx = Leg {
                event_key: o.leader_event_key,
                leader: o.leader,
                slot: k,
                symbol: o.symbol,
                px: o.limit.0,
                mplt,
                ts: Nanos(0),
            };
            let leg = o.leg + 16 * (o.attempt + 1);
            let qty = o.side.sign() * remaining;
            let mut desk = Desk {
                followers: &mut self.followers,
                orders: &mut self.orders,
                stats: &mut self.stats,
                revision: self.revision,
            };
            if let Some(id) = send(
                &mut self.books[b],
                &mut desk,
                &ctx,
                OrderReq {
                    qty,
                    leg_no: leg,
                    reduce_only: o.reduce_only,
                    limit: Some(o.limit.0),
                },
                out,
            ) {
                if let Some(slot) = self.orders.get_mut(id) {
                    slot.attempt = o.attempt + 1;
                    slot.leg = o.leg;
                }
            }
        } else if rejected && reason == RejectReason::InsufficientMargin {
            self.subs.out_of_sync[o.sub.0 as usize] = true;
            out.notice(&Notice::OutOfSync { sub: o.sub });
        }
    }

    /// Whether a subscription is waiting for the next leader fill to heal it.
    pub fn out_of_sync(&self, sub: SubIdx) -> bool {
        self.subs.out_of_sync[sub.0 as usize]
    }

    pub fn orders(&self) -> impl Iterator<Item = &OrderSlot> {
        self.orders.iter()
    }
}

impl CoreStats {
    fn record(&mut self, d: &Decision) {
        self.decisions += 1;
        self.by_status[d.status as usize] += 1;
        self.by_reason[d.reason as usize] += 1;
    }
}

fn leader_profile_violated(
    l: &crate::model::LeaderSpec,
    symbol: SymbolIdx,
    p1: i64,
    px: i64,
    mplt: i64,
) -> bool {
    if let Some(list) = &l.profile_symbols {
        if !list.contains(&symbol) {
            return true;
        }
    }
    matches!(l.profile_max_position, Some(cap) if notional(p1, px, mplt) > cap.0)
}

/// What the risk filter needs that is the same for every follower of a fill.
struct PerFill {
    px: i64,
    mplt: i64,
    min_qty: i64,
    min_notional: i64,
    blocked: Reason,
    n_sym: usize,
}

/// The risk filter (`risk::allow_increase`) on slot `k`'s subscription and
/// follower, for an increase of `want` lots on `held` (absolute values).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter(
    book: &Book,
    followers: &FollowerBook,
    k: usize,
    si: usize,
    want: i64,
    held: i64,
    p: &PerFill,
    is_flip: bool,
) -> Allowed {
    let fi = book.follower[k] as usize;
    allow_increase(&RiskInput {
        want,
        held,
        px: p.px,
        mplt: p.mplt,
        min_qty: p.min_qty,
        min_notional: p.min_notional,
        is_flip,
        blocked: p.blocked,
        sub_paused: book.status[k] == Status::Paused,
        follower_paused: followers.status[fi] == Status::Paused,
        symbol_allowed: followers.allowed[fi * p.n_sym + si],
        daily_loss_limit: followers.daily_loss_limit[fi],
        realized_today: followers.realized_today[fi],
        open_positions: followers.open_positions[fi],
        max_open_positions: followers.max_open_positions[fi],
        max_order_notional: book.max_order[k],
        max_position_notional: book.max_pos[k],
        follower_gross: followers.gross[fi],
        own_exposure: book.symbols[si].expo[k],
        max_gross: followers.max_gross[fi],
    })
}

/// Where an order comes from: the leader event, the subscription's slot, the price.
struct Leg {
    event_key: u64,
    leader: LeaderIdx,
    slot: usize,
    symbol: SymbolIdx,
    px: i64,
    mplt: i64,
    ts: Nanos,
}

/// The parts of the core an order touches besides its leader's book.
struct Desk<'a> {
    followers: &'a mut FollowerBook,
    orders: &'a mut OrderTable,
    stats: &'a mut CoreStats,
    revision: u64,
}

/// One order to make: signed quantity, leg number (part of its id), and a limit
/// price to reuse (retries keep the original order's limit).
struct OrderReq {
    qty: i64,
    leg_no: u32,
    reduce_only: bool,
    limit: Option<i64>,
}

/// Create, track and emit one order. Returns the order id, or `None` when the order
/// table is full.
#[inline(always)]
fn send<O: Outputs>(
    book: &mut Book,
    desk: &mut Desk,
    leg: &Leg,
    req: OrderReq,
    out: &mut O,
) -> Option<u64> {
    let OrderReq {
        qty,
        leg_no,
        reduce_only,
        limit,
    } = req;
    debug_assert!(qty != 0);
    let k = leg.slot;
    let sub = book.subs[k];
    let side = Side::from_sign(qty);
    let id = decision_id(leg.event_key, sub.0, desk.revision, leg_no);
    let market = reduce_only || book.market[k];
    let limit = match limit {
        Some(l) => l,
        None if market => leg.px,
        None => {
            // i64 unless the product overflows: an i128 division is a libcall.
            let bps = book.slippage_bps[k];
            let slip = match leg.px.checked_mul(bps) {
                Some(v) => v / 10_000,
                None => (leg.px as i128 * bps as i128 / 10_000) as i64,
            };
            (leg.px + side.sign() * slip).max(1)
        }
    };
    let slot = OrderSlot {
        id,
        sub,
        leader: leg.leader,
        slot: k as u32,
        symbol: leg.symbol,
        side,
        qty: Lots(qty.abs()),
        filled: Lots(0),
        limit: Ticks(limit),
        reduce_only,
        market,
        state: OrderState::New,
        attempt: 0,
        leg: leg_no,
        leader_event_key: leg.event_key,
        trades: [0; OrderSlot::TRADES_INLINE],
        fills: 0,
    };
    if !desk.orders.insert(slot) {
        return None;
    }
    let si = leg.symbol.0 as usize;
    book.symbols[si].working[k] += qty;
    update_exposure(book, desk.followers, k, si, leg.px, leg.mplt);
    out.order(&FollowerOrder {
        id,
        sub,
        follower: FollowerIdx(book.follower[k]),
        symbol: leg.symbol,
        side,
        qty: Lots(qty.abs()),
        order_type: if market {
            OrderType::Market
        } else {
            OrderType::LimitIoc
        },
        limit: Ticks(limit),
        reduce_only,
        leader_event_key: leg.event_key,
        ts: leg.ts,
    });
    desk.stats.orders_sent += 1;
    desk.stats.reduce_only_orders += reduce_only as u64;
    Some(id)
}

/// Recompute a slot's contribution to its follower's gross exposure and open count.
fn update_exposure(
    book: &mut Book,
    followers: &mut FollowerBook,
    k: usize,
    si: usize,
    px: i64,
    mplt: i64,
) {
    let sb = &mut book.symbols[si];
    let held = sb.pos[k] + sb.working[k];
    let new = notional(held, px, mplt);
    let fi = book.follower[k] as usize;
    let old = sb.expo[k];
    followers.gross[fi] = followers.gross[fi].saturating_sub(old).saturating_add(new);
    if (old == 0) != (new == 0) {
        if new == 0 {
            followers.open_positions[fi] = followers.open_positions[fi].saturating_sub(1);
        } else {
            followers.open_positions[fi] += 1;
        }
    }
    sb.expo[k] = new;
}
