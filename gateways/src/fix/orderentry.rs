//! The FIX order-entry gateway (`[[venues]] kind = "fix"`): follower orders as
//! NewOrderSingles on one session, their ExecutionReports back as the engine's
//! reports.
//!
//! - While the session is down (or settling), an order is rejected at once with
//!   `VenueDown`: it never left, so the resync may send its catch-up with a fresh
//!   id. Orders the throttle still held when it went down are refused the same way.
//! - The throttle (`rate_per_sec`) holds orders in the gateway's queue so that no
//!   one-second window carries more of our application messages than it allows;
//!   past `QUEUE_MAX` held orders `can_accept` says no and the engine's egress ring
//!   waits (backpressure, never loss). Each `submit` and `poll` writes what it
//!   sent in one socket write.
//! - An order leaves with the next MsgSeqNum; it is in flight until an
//!   ExecutionReport ends it (OrdStatus filled, canceled, rejected, expired), or
//!   a session Reject or BusinessMessageReject names its MsgSeqNum (refused
//!   before it was an order: `Rejected`, reason `Other`).
//! - After a reconnect, every order still in flight is asked about with an
//!   OrderStatusRequest, and the gateway is up again only once each has its
//!   answer; fills made while the session was down come back first, through the
//!   counterparty's resend of the gap (the session resumes its numbers).
//! - After a restart (`Gateway::recover`), the same: the orders the journal holds
//!   unanswered are asked about. After an unclean stop the session asks the
//!   counterparty to resend everything it sent in this session (the session store
//!   may be ahead of the journal: reports the engine read and never journaled),
//!   and the engine counts the fills it already had as duplicates by ExecID.
//! - A report about an order not in flight (a resend of one that ended) changes
//!   nothing, and only its fills are handed on: the engine de-duplicates them.
//!   They are kept a while (`loose_fills`), and go again with the order if a
//!   restart asks about it later.
//! - Fail closed (`Broken`): a report about an order in flight (or any trade)
//!   that cannot be read or taken, a status answer of more filled than the
//!   fills seen, or a refused status request stops the gateway for good, saying
//!   why; the store keeps the expected number at that message, so a restart
//!   reads it again. The engine's position there is unknown until someone
//!   reconciles it with the venue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fillcast_engine::clock;
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, RejectReason};
use fillcast_engine::ids::parse_client_order_id;
use fillcast_engine::model::{FollowerIdx, Side, SymbolIdx, Universe};
use fillcast_engine::port::{AskedOrder, Gateway, VenueError};
use fillcast_engine::units::{Lots, Nanos};

use super::app::{order_report, reject_reason, ClOrdId, Execution, NewOrder, ReduceOnly};
use super::codec::{parse_u64, Message};
use super::conn::{Backoff, Closed, Connection, Peer};
use super::session::State;
use super::store::{resume, SeqStore, StoreError};

/// Orders the throttle may hold before `can_accept` says no.
pub const QUEUE_MAX: usize = 4096;

/// Bytes the socket may leave unwritten before `can_accept` says no.
const UNSENT_MAX: usize = 1 << 20;

/// An order-entry session's settings.
#[derive(Clone, Debug)]
pub struct OrderEntryConfig {
    pub name: String,
    pub peer: Peer,
    /// Follower id → its Account (1) at the venue; a follower not listed trades
    /// under its own id.
    pub accounts: HashMap<String, String>,
    pub reduce_only: ReduceOnly,
    pub store: PathBuf,
    /// The last run did not stop cleanly: see the module doc.
    pub unclean: bool,
    /// Application messages per second at most (`None`: no limit).
    pub rate_per_sec: Option<u32>,
    /// The venue's own OrdRejReason (103) codes, over FIX 4.4's (`reject_reason`).
    pub reject_codes: HashMap<u32, RejectReason>,
    /// How long `recover` may wait for the venue's answers.
    pub recover_timeout: Duration,
}

/// At most `rate` messages in any one-second window: the times of the last
/// `rate` sends.
#[derive(Debug)]
struct Throttle {
    rate: usize,
    sent: VecDeque<u64>,
}

impl Throttle {
    fn new(rate: Option<u32>) -> Throttle {
        let rate = rate.map_or(usize::MAX, |r| r.max(1) as usize);
        Throttle {
            rate,
            sent: VecDeque::with_capacity(if rate == usize::MAX {
                0
            } else {
                rate.min(1 << 20)
            }),
        }
    }

    fn may_send(&self, now: Nanos) -> bool {
        self.sent.len() < self.rate
            || self
                .sent
                .front()
                .is_some_and(|&t| now.0.saturating_sub(t) >= 1_000_000_000)
    }

    fn sent(&mut self, now: Nanos) {
        if self.rate == usize::MAX {
            return;
        }
        if self.sent.len() == self.rate {
            self.sent.pop_front();
        }
        self.sent.push_back(now.0);
    }
}

/// An order in flight: what a status request names, the MsgSeqNum it left
/// with (`None`: its send failed part-way, or it is known from the journal),
/// and what the engine knows filled of it (the journal's, and the fills handed
/// on since, each trade once).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    side: Side,
    symbol: SymbolIdx,
    follower: FollowerIdx,
    seq: Option<u64>,
    filled: Lots,
    /// The first fills' trade ids, so that one resent is not counted again. Past
    /// them a fill counts whatever it is: more filled than true, which can only
    /// hide a shortfall `on_status` would see, never raise a false one.
    trades: [u64; TRADES_KNOWN],
    fills: usize,
}

const TRADES_KNOWN: usize = 4;

impl InFlight {
    /// Fill `r` of this order counts toward `filled`, once; whether it was new.
    fn took(&mut self, r: &ExecReport) -> bool {
        let known = &self.trades[..self.fills.min(TRADES_KNOWN)];
        if known.contains(&r.trade_id) {
            return false;
        }
        if self.fills < TRADES_KNOWN {
            self.trades[self.fills] = r.trade_id;
        }
        self.fills += 1;
        self.filled = Lots(self.filled.0.saturating_add(r.qty.0));
        true
    }
}

/// Why the gateway stopped trusting the session, and the venue's MsgSeqNum of
/// the message that said so: the store keeps the expected number at it, so a
/// restart reads that message again (and stops again, until it is dealt with).
#[derive(Clone, Debug)]
pub(crate) struct Broken {
    why: String,
    seq: u64,
}

/// The orders in flight and the reports waiting to be handed over: apart from
/// the connection, so that each message is handled as the connection hands it
/// out, decoded once.
#[derive(Default)]
pub(crate) struct Orders {
    in_flight: HashMap<u64, InFlight>,
    /// Our MsgSeqNum → the order it carried, for a Reject that names it.
    by_seq: HashMap<u64, u64>,
    /// Our OrderStatusRequests' MsgSeqNums → the order each asked about.
    asked_by_seq: HashMap<u64, u64>,
    /// Orders asked about and not answered yet → the venue's MsgSeqNum we
    /// expected when we asked: an answer is numbered at least that (a status
    /// answer resent from an earlier life is older, and not the answer).
    asking: HashMap<u64, u64>,
    ready: VecDeque<ExecReport>,
    reject_codes: HashMap<u32, RejectReason>,
    /// Reports about orders not in flight that were not fills: dropped.
    stale: u64,
    /// Reports that could not be read, or said what the engine cannot take.
    refused: u64,
    broken: Option<Broken>,
    /// The last fills handed on for orders not in flight (a resend read before
    /// the restart asked about its orders): given again with the order when it
    /// is asked about, and counted in what the engine knows filled.
    loose_fills: VecDeque<ExecReport>,
}

/// Fills of orders not in flight kept for a later question (`loose_fills`);
/// past it, an answer of more filled than the gateway saw fails closed.
const LOOSE_FILLS_MAX: usize = 1 << 16;

impl Orders {
    fn sent(&mut self, o: &AskedOrder, seq: Option<u64>) {
        let mut f = InFlight {
            side: o.side,
            symbol: o.symbol,
            follower: o.follower,
            seq,
            filled: o.filled,
            trades: [0; TRADES_KNOWN],
            fills: 0,
        };
        if seq.is_none() {
            // Asked about: its fills this process already handed on go again
            // (the engine may not have held the order then; it de-duplicates).
            for r in self.loose_fills.iter().filter(|r| r.order_id == o.id) {
                if f.took(r) {
                    self.ready.push_back(*r);
                }
            }
        }
        self.in_flight.insert(o.id, f);
        if let Some(seq) = seq {
            self.by_seq.insert(seq, o.id);
        }
    }

    /// Order `id` has ended (filled, canceled, rejected, expired).
    fn ended(&mut self, id: u64) {
        if let Some(f) = self.in_flight.remove(&id) {
            if let Some(seq) = f.seq {
                self.by_seq.remove(&seq);
            }
        }
        self.asking.remove(&id);
    }

    /// Fail closed: the venue said something about an order that the engine
    /// cannot take; its position there is unknown until someone looks.
    fn break_on(&mut self, seq: u64, why: String) {
        self.refused += 1;
        if self.broken.is_none() {
            self.broken = Some(Broken {
                why: format!(
                    "{why}; the venue's state of the order is unknown to the engine: reconcile it by hand with the venue, then restart (the venue's message {seq} is read again)"
                ),
                seq,
            });
        }
    }

    /// For the fuzzer: order `id` (side buy, symbol 0) left with MsgSeqNum `seq`
    /// and is being asked about; then whether the books still hold together
    /// (every MsgSeqNum names an order in flight, every report names an order
    /// that was in flight or is a fill).
    pub(crate) fn fuzz_sent(&mut self, id: u64, seq: u64) {
        self.sent(
            &AskedOrder {
                id,
                follower: FollowerIdx(0),
                symbol: SymbolIdx(0),
                side: Side::Buy,
                filled: Lots::ZERO,
            },
            Some(seq),
        );
        self.asking.insert(id, 0);
    }

    pub(crate) fn fuzz_check(&mut self, known: &HashSet<u64>) {
        for id in self.by_seq.values() {
            assert!(
                self.in_flight.contains_key(id),
                "MsgSeqNum of an ended order"
            );
        }
        for id in self.asking.keys() {
            assert!(
                self.in_flight.contains_key(id),
                "asking about an ended order"
            );
        }
        for r in self.ready.drain(..) {
            assert!(
                r.kind == ExecKind::Fill || known.contains(&r.order_id),
                "a report other than a fill about an order never sent: {r:?}"
            );
        }
    }

    fn reason(&self, code: Option<u32>) -> RejectReason {
        code.and_then(|c| self.reject_codes.get(&c).copied())
            .unwrap_or_else(|| reject_reason(code))
    }

    pub(crate) fn on_message(&mut self, m: &Message<'_>, u: &Universe, now: Nanos) {
        let seq = m.get(34).and_then(|v| parse_u64(v).ok()).unwrap_or(0);
        match m.msg_type() {
            b"8" => self.on_execution(m, seq, u, now),
            // A session Reject or a BusinessMessageReject of one of ours.
            b"3" | b"j" => {
                let Some(ref_seq) = m.get(45).and_then(|v| parse_u64(v).ok()) else {
                    return;
                };
                if let Some(id) = self.by_seq.get(&ref_seq).copied() {
                    // An order refused before it was one.
                    self.ready.push_back(ExecReport {
                        order_id: id,
                        kind: ExecKind::Rejected,
                        reject: RejectReason::Other,
                        recv_ts: now,
                        ..ExecReport::default()
                    });
                    self.ended(id);
                } else if let Some(id) = self.asked_by_seq.get(&ref_seq).copied() {
                    let text = m.get(58).map(String::from_utf8_lossy).unwrap_or_default();
                    self.break_on(
                        seq,
                        format!(
                            "the venue refused the OrderStatusRequest for order {} (35={}: {text})",
                            ClOrdId::of(id).as_str(),
                            String::from_utf8_lossy(m.msg_type()),
                        ),
                    );
                }
            }
            _ => {}
        }
    }

    fn on_execution(&mut self, m: &Message<'_>, seq: u64, u: &Universe, now: Nanos) {
        // Read only to say why a report is refused.
        let exec_id = || m.get(17).map(String::from_utf8_lossy).unwrap_or_default();
        let id = m
            .get(11)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(parse_client_order_id);
        let ours = id.is_some_and(|id| self.in_flight.contains_key(&id));
        let trade = matches!(m.get(150), Some(b"F" | b"G" | b"H"));
        let e = match Execution::read(m) {
            Ok(e) => e,
            Err(why) if ours || trade => {
                return self.break_on(
                    seq,
                    format!(
                        "ExecutionReport {seq} (ExecID {}) does not read: {why}",
                        exec_id()
                    ),
                );
            }
            Err(_) => {
                self.refused += 1;
                return;
            }
        };
        if e.exec_type == Some(b'I') {
            return self.on_status(&e, seq, u, now);
        }
        let mut r = match order_report(&e, u, now) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(why) if ours || trade => {
                return self.break_on(
                    seq,
                    format!(
                        "ExecutionReport {seq} (ExecID {}) cannot be taken: {why}",
                        exec_id()
                    ),
                );
            }
            Err(_) => {
                self.refused += 1;
                return;
            }
        };
        let Some(f) = self.in_flight.get_mut(&r.order_id) else {
            if r.kind != ExecKind::Fill {
                // A resend of an order that ended: nothing new.
                self.stale += 1;
            } else {
                // The engine de-duplicates it, or counts it unknown.
                self.ready.push_back(r);
                if self.loose_fills.len() == LOOSE_FILLS_MAX {
                    self.loose_fills.pop_front();
                }
                self.loose_fills.push_back(r);
            }
            return;
        };
        if r.kind == ExecKind::Fill {
            f.took(&r);
        }
        if r.kind == ExecKind::Rejected {
            r.reject = self.reason(e.ord_rej_reason);
        }
        self.ready.push_back(r);
        let terminal = matches!(e.ord_status, Some(b'2' | b'4' | b'8' | b'C'));
        if terminal
            || matches!(
                r.kind,
                ExecKind::Rejected | ExecKind::Canceled | ExecKind::Expired
            )
        {
            self.ended(r.order_id);
        }
    }

    /// A status answer: its end, if it has one. Its fills came before it (the
    /// venue's resend of what we missed, in sequence): an answer of more
    /// filled than the engine knows is fills the venue did not resend.
    fn on_status(&mut self, e: &Execution<'_>, seq: u64, u: &Universe, now: Nanos) {
        let Some(id) = e.cl_ord_id.and_then(parse_client_order_id) else {
            self.refused += 1;
            return;
        };
        // Only an answer to the question now out: numbered after it was asked.
        if self.asking.get(&id).is_none_or(|&asked_at| seq < asked_at) {
            self.stale += 1;
            return;
        }
        let Some(f) = self.in_flight.get(&id) else {
            self.asking.remove(&id);
            return;
        };
        let spec = u.symbols.get(f.symbol.0 as usize);
        let known = spec.map(|s| f.filled.to_decimal(s.lot_size));
        if let (Some(cum), Some(known)) = (e.cum_qty, known) {
            if cum > known {
                return self.break_on(
                    seq,
                    format!(
                        "order {} is filled {cum} at the venue (CumQty), the engine knows {known}: fills the venue did not resend",
                        ClOrdId::of(id).as_str()
                    ),
                );
            }
        }
        let kind = match e.ord_status {
            Some(b'4') => Some((ExecKind::Canceled, RejectReason::None)),
            Some(b'C') => Some((ExecKind::Expired, RejectReason::None)),
            // Unknown order (5) is FIX's own answer to a status request.
            Some(b'8') if e.ord_rej_reason == Some(5) => {
                Some((ExecKind::Rejected, RejectReason::UnknownOrder))
            }
            Some(b'8') => Some((ExecKind::Rejected, self.reason(e.ord_rej_reason))),
            _ => None,
        };
        if let Some((kind, reject)) = kind {
            self.ready.push_back(ExecReport {
                order_id: id,
                kind,
                reject,
                recv_ts: now,
                ..ExecReport::default()
            });
        }
        if matches!(e.ord_status, Some(b'2' | b'4' | b'8' | b'C')) {
            self.ended(id);
        } else {
            self.asking.remove(&id);
        }
    }
}

pub struct OrderEntryGateway {
    cfg: OrderEntryConfig,
    universe: Arc<Universe>,
    store: SeqStore,
    seqs: (u64, u64),
    conn: Option<Connection>,
    orders: Orders,
    /// Orders taken and held by the throttle: not sent yet.
    queue: VecDeque<FollowerOrder>,
    throttle: Throttle,
    /// Orders to ask about once the session is active (a reconnect's, a
    /// restart's).
    to_ask: Vec<u64>,
    backoff: Backoff,
    down_reason: Option<String>,
}

impl OrderEntryGateway {
    pub fn open(
        cfg: OrderEntryConfig,
        universe: Arc<Universe>,
    ) -> Result<OrderEntryGateway, StoreError> {
        let (store, saved) = SeqStore::open(&cfg.store)?;
        let mut seqs = resume(saved, cfg.unclean);
        if cfg.unclean {
            // Everything the venue sent this session, again: see the module doc.
            seqs.1 = 1;
        }
        let throttle = Throttle::new(cfg.rate_per_sec);
        let orders = Orders {
            reject_codes: cfg.reject_codes.clone(),
            ..Orders::default()
        };
        Ok(OrderEntryGateway {
            cfg,
            universe,
            store,
            seqs,
            conn: None,
            orders,
            queue: VecDeque::new(),
            throttle,
            to_ask: Vec::new(),
            backoff: Backoff::new(),
            down_reason: Some("not connected yet".into()),
        })
    }

    /// Reports about orders not in flight that changed nothing (resends).
    pub fn stale_reports(&self) -> u64 {
        self.orders.stale
    }

    /// Connects and waits, at most `timeout`, until the session is up: a run
    /// that starts with its venue reachable starts with it up. Whether it is.
    pub fn wait_up(&mut self, timeout: Duration) -> bool {
        let until = clock::now().0.saturating_add(timeout.as_nanos() as u64);
        let mut refused = Vec::new();
        while !self.is_up() && clock::now().0 < until {
            self.step(clock::now(), &mut |r| refused.push(r));
            std::thread::sleep(Duration::from_millis(1));
        }
        // Nothing was queued before the run: nothing can have been refused.
        debug_assert!(refused.is_empty());
        self.is_up()
    }

    /// Orders the throttle holds: taken, not sent yet.
    pub fn held(&self) -> usize {
        self.queue.len()
    }

    fn connect(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        match self.cfg.peer.dial(self.seqs, now) {
            Ok(c) => {
                self.conn = Some(c);
                // What was in flight when the last session ended is asked about.
                self.to_ask = self.orders.in_flight.keys().copied().collect();
            }
            Err(why) => self.down(now, why, out),
        }
    }

    /// The session ended: what the throttle held never left.
    fn down(&mut self, now: Nanos, why: String, out: &mut dyn FnMut(ExecReport)) {
        if let Some(c) = self.conn.take() {
            self.seqs = c.seqs();
        }
        self.orders.asking.clear();
        self.orders.asked_by_seq.clear();
        for o in self.queue.drain(..) {
            out(venue_down(&o, now));
        }
        self.backoff.failed(now);
        self.down_reason = Some(why);
    }

    fn active(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.state() == State::Active)
    }

    /// Sends what may go now: the status requests first, then the orders the
    /// throttle holds; one socket write for all.
    fn send_due(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> Result<(), Closed> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        if conn.state() != State::Active {
            return Ok(());
        }
        // Questions only once the venue's resend of what we missed is over: its
        // answers come after it, numbered past what we expect now.
        while let Some(&id) = self.to_ask.last() {
            if conn.catching_up() || !self.throttle.may_send(now) {
                break;
            }
            self.to_ask.pop();
            let Some(f) = self.orders.in_flight.get(&id) else {
                continue;
            };
            let cl = ClOrdId::of(id);
            let u = &self.universe;
            let (Some(follower), Some(symbol)) = (
                u.followers.get(f.follower.0 as usize),
                u.symbols.get(f.symbol.0 as usize),
            ) else {
                // Not of the model in force (the engine tells the gateway the
                // model before it asks): nothing to name it by.
                let why = format!(
                    "order {} names a follower or symbol the gateway does not know",
                    cl.as_str()
                );
                self.orders.break_on(conn.seqs().1, why);
                continue;
            };
            let account = self.cfg.accounts.get(&follower.id).unwrap_or(&follower.id);
            let seq = conn.send(b"H", now, |w| {
                w.str(11, cl.as_str())?
                    .str(1, account)?
                    .str(55, &symbol.name)?
                    .char(54, if f.side == Side::Buy { b'1' } else { b'2' })?;
                Ok(())
            })?;
            self.throttle.sent(now);
            self.orders.asking.insert(id, conn.seqs().1);
            self.orders.asked_by_seq.insert(seq, id);
        }
        while self.to_ask.is_empty() && self.throttle.may_send(now) {
            let Some(o) = self.queue.pop_front() else {
                break;
            };
            let follower = &self.universe.followers[o.follower.0 as usize].id;
            let account = self.cfg.accounts.get(follower).unwrap_or(follower);
            let n = NewOrder::of(&o, &self.universe, account, self.cfg.reduce_only);
            match conn.send(b"D", now, |w| n.write(w)) {
                Ok(seq) => {
                    self.throttle.sent(now);
                    self.orders.sent(&AskedOrder::from(&o), Some(seq));
                }
                // Nothing of it was written (a value FIX cannot carry): it never left.
                Err(Closed::Encode(_)) => out(ExecReport {
                    reject: RejectReason::Other,
                    ..venue_down(&o, now)
                }),
                Err(e) => return Err(e),
            }
        }
        conn.flush()
    }

    /// Connects when due, reads and handles what arrived, sends what is due.
    fn step(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        if self.conn.is_none() && self.backoff.due(now) {
            self.connect(now, out);
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let (orders, u) = (&mut self.orders, &self.universe);
        let r = conn.poll(now, &mut |m| orders.on_message(m, u, now));
        self.seqs = conn.seqs();
        let r = r.and_then(|()| self.send_due(now, out));
        if let Err(e) = r {
            self.down(now, e.to_string(), out);
        } else if self.active() {
            self.backoff.succeeded();
            if self.settled() {
                self.down_reason = None;
                self.orders.asked_by_seq.clear();
            }
        }
        if let Some(c) = &self.conn {
            self.seqs = c.seqs();
        }
        if let Err(e) = self.store.save_due(self.kept(self.seqs), now.0) {
            // The numbers are not kept: a restart could not resume them. Nothing
            // more may leave on this session.
            let why = format!("{e}");
            self.down(now, why, out);
        }
    }

    /// Active, every question answered, no gap being resent, nothing refused.
    fn settled(&self) -> bool {
        self.active()
            && self.to_ask.is_empty()
            && self.orders.asking.is_empty()
            && self.orders.broken.is_none()
            && self.conn.as_ref().is_some_and(|c| !c.catching_up())
    }

    /// The numbers to keep: after a refused message, the expected one stays at
    /// it, so that a restart reads it again.
    fn kept(&self, seqs: (u64, u64)) -> (u64, u64) {
        match &self.orders.broken {
            Some(b) if b.seq > 0 => (seqs.0, seqs.1.min(b.seq)),
            _ => seqs,
        }
    }

    /// Why the gateway is not up now.
    fn why_not_up(&self) -> Option<String> {
        if let Some(b) = &self.orders.broken {
            return Some(b.why.clone());
        }
        if self.settled() {
            return None;
        }
        let Some(conn) = self.conn.as_ref() else {
            return self.down_reason.clone();
        };
        Some(if conn.state() != State::Active {
            "logging on".to_string()
        } else if conn.catching_up() {
            "waiting for the venue to resend what it sent while the session was down".to_string()
        } else {
            format!(
                "waiting for the venue's answers about {} orders in flight (OrderStatusRequest)",
                self.orders.asking.len() + self.to_ask.len()
            )
        })
    }
}

/// A clean end (the run is over, every order answered): our Logout
/// (`Connection::close`).
impl Drop for OrderEntryGateway {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            let seqs = conn.close(Duration::from_millis(500));
            let _ = self.store.save(self.kept(seqs));
        }
    }
}

fn venue_down(o: &FollowerOrder, now: Nanos) -> ExecReport {
    ExecReport {
        order_id: o.id,
        kind: ExecKind::Rejected,
        reject: RejectReason::VenueDown,
        recv_ts: now,
        ..ExecReport::default()
    }
}

impl Gateway for OrderEntryGateway {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn can_accept(&self, orders: usize) -> bool {
        // Down, it takes (and refuses) every order at once.
        !self.is_up()
            || (self.queue.len() + orders <= QUEUE_MAX.max(orders)
                && self.conn.as_ref().is_none_or(|c| c.unsent() < UNSENT_MAX))
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        if !self.is_up() {
            for o in orders {
                out(venue_down(o, now));
            }
            return;
        }
        self.queue.extend(orders.iter().copied());
        if let Err(e) = self.send_due(now, out) {
            self.down(now, e.to_string(), out);
        }
    }

    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        self.step(now, out);
        let mut n = 0;
        while let Some(r) = self.orders.ready.pop_front() {
            out(r);
            n += 1;
        }
        n
    }

    fn in_flight(&self) -> usize {
        self.orders.in_flight.len() + self.queue.len()
    }

    fn is_up(&self) -> bool {
        self.settled()
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.universe = Arc::clone(universe);
    }

    fn down_reason(&self) -> Option<String> {
        self.why_not_up()
    }

    /// Asks with an OrderStatusRequest about each order (connecting first if it
    /// must), and waits until each is answered and any gap the venue resends is
    /// filled: at most `recover_timeout` with nothing from the venue. `out` gets the answers, and with them
    /// every report that came meanwhile (fills resent after an unclean stop);
    /// nothing if the wait ran out.
    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        for o in orders {
            match self.orders.in_flight.get_mut(&o.id) {
                Some(f) => f.filled = Lots(f.filled.0.max(o.filled.0)),
                None => self.orders.sent(o, None),
            }
            self.to_ask.push(o.id);
        }
        // The wait runs from the last progress: a whole session resent after an
        // unclean stop (a day of reports) may take longer than the timeout and
        // still be on its way; only a venue that goes quiet runs it out.
        let timeout = self.cfg.recover_timeout.as_nanos() as u64;
        let mut deadline = clock::now().0.saturating_add(timeout);
        let mut read = self.seqs.1;
        // Orders refused while waiting (none are queued by a restart).
        let mut refused = Vec::new();
        loop {
            let now = clock::now();
            self.step(now, &mut |r| refused.push(r));
            if self.seqs.1 != read {
                read = self.seqs.1;
                deadline = now.0.saturating_add(timeout);
            }
            if self.settled() {
                break;
            }
            if let Some(b) = &self.orders.broken {
                return Err(VenueError::Failed {
                    venue: self.cfg.name.clone(),
                    what: format!("asking about {} orders", orders.len()),
                    cause: b.why.clone(),
                });
            }
            if now.0 >= deadline {
                return Err(VenueError::Failed {
                    venue: self.cfg.name.clone(),
                    what: format!("asking about {} orders", orders.len()),
                    cause: format!(
                        "nothing from the venue for {:?}: {}",
                        self.cfg.recover_timeout,
                        self.why_not_up().unwrap_or_default()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        for r in refused.into_iter().chain(self.orders.ready.drain(..)) {
            out(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the times the gateway tries to send at, what the throttle
        /// lets through has at most `rate` sends in any one-second window, and
        /// it refuses only when the window is full.
        #[test]
        fn the_throttle_never_lets_more_than_its_rate_into_a_second(
            rate in 1u32..20,
            gaps in proptest::collection::vec(0u64..400_000_000, 1..300),
        ) {
            let mut t = Throttle::new(Some(rate));
            let (mut now, mut sent) = (0u64, Vec::new());
            for gap in gaps {
                now += gap;
                let in_window = sent.iter().filter(|&&s| now - s < 1_000_000_000).count();
                let may = t.may_send(Nanos(now));
                prop_assert_eq!(may, in_window < rate as usize, "at {}", now);
                if may {
                    t.sent(Nanos(now));
                    sent.push(now);
                }
            }
        }
    }

    #[test]
    fn no_rate_is_no_limit_and_keeps_nothing() {
        let mut t = Throttle::new(None);
        for i in 0..10_000 {
            assert!(t.may_send(Nanos(i)));
            t.sent(Nanos(i));
        }
        assert_eq!(t.sent.capacity(), 0);
    }
}
