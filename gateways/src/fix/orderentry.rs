//! The FIX order-entry gateway: follower orders as NewOrderSingles on one
//! session, their ExecutionReports back as the engine's reports.
//!
//! - While the session is down (or settling), an order is rejected at once with
//!   `VenueDown`: it never left, so the resync may send its catch-up with a fresh
//!   id.
//! - An order leaves with the next MsgSeqNum; it is in flight until an
//!   ExecutionReport ends it (OrdStatus filled, canceled, rejected, expired), or
//!   a session Reject or BusinessMessageReject names its MsgSeqNum (refused
//!   before it was an order: `Rejected`, reason `Other`).
//! - After a reconnect, every order still in flight is asked about with an
//!   OrderStatusRequest, and the gateway is up again only once each has its
//!   answer; fills made while the session was down come back first, through the
//!   counterparty's resend of the gap (the session resumes its numbers).
//!
//! Not built yet: `Gateway::recover` after a restart (FIX 4.4's
//! OrderStatusRequest needs the order's Side and Symbol, which `recover` is not
//! given), a throttle, and config (`[[venues]] kind = "fix"`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder, RejectReason};
use fillcast_engine::ids::parse_client_order_id;
use fillcast_engine::model::{Side, SymbolIdx, Universe};
use fillcast_engine::port::Gateway;
use fillcast_engine::units::Nanos;

use super::app::{order_report, reject_reason, ClOrdId, Execution, NewOrder, ReduceOnly};
use super::codec::{parse_u64, Message};
use super::conn::{dial, Backoff, Closed, Connection};
use super::session::{CompIds, SessionConfig, State};
use super::store::{resume, SeqStore, StoreError};

/// An order-entry session's settings.
#[derive(Clone, Debug)]
pub struct OrderEntryConfig {
    pub name: String,
    pub address: String,
    pub sender_comp_id: String,
    pub target_comp_id: String,
    pub session: SessionConfig,
    /// Follower id → its Account (1) at the venue; a follower not listed trades
    /// under its own id.
    pub accounts: HashMap<String, String>,
    pub reduce_only: ReduceOnly,
    pub store: PathBuf,
    pub unclean: bool,
}

/// An order in flight: what a status request names, and the MsgSeqNum it left
/// with (`None`: its send failed part-way, so it may or may not have left).
#[derive(Clone, Copy, Debug)]
struct InFlight {
    side: Side,
    symbol: SymbolIdx,
    seq: Option<u64>,
}

/// The orders in flight and the reports waiting to be handed over: apart from
/// the connection, so that each message is handled as the connection hands it
/// out, decoded once.
#[derive(Default)]
struct Orders {
    in_flight: HashMap<u64, InFlight>,
    /// Our MsgSeqNum → the order it carried, for a Reject that names it.
    by_seq: HashMap<u64, u64>,
    /// Orders asked about after a reconnect and not answered yet.
    asking: HashSet<u64>,
    ready: VecDeque<ExecReport>,
}

impl Orders {
    fn sent(&mut self, o: &FollowerOrder, seq: Option<u64>) {
        let f = InFlight {
            side: o.side,
            symbol: o.symbol,
            seq,
        };
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

    fn on_message(&mut self, m: &Message<'_>, u: &Universe, now: Nanos) {
        match m.msg_type() {
            b"8" => {
                let Ok(e) = Execution::read(m) else { return };
                let terminal = matches!(e.ord_status, Some(b'2' | b'4' | b'8' | b'C'));
                if e.exec_type == Some(b'I') {
                    // A status answer: its end, if it has one (its fills came through
                    // the resend); an unknown order is one that never arrived.
                    let Some(id) = e.cl_ord_id.and_then(parse_client_order_id) else {
                        return;
                    };
                    let kind = match e.ord_status {
                        Some(b'4') => Some((ExecKind::Canceled, RejectReason::None)),
                        Some(b'C') => Some((ExecKind::Expired, RejectReason::None)),
                        Some(b'8') => Some((ExecKind::Rejected, reject_reason(e.ord_rej_reason))),
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
                    if terminal {
                        self.ended(id);
                    } else {
                        self.asking.remove(&id);
                    }
                    return;
                }
                if let Ok(Some(r)) = order_report(&e, u, now) {
                    self.ready.push_back(r);
                    if terminal
                        || matches!(
                            r.kind,
                            ExecKind::Rejected | ExecKind::Canceled | ExecKind::Expired
                        )
                    {
                        self.ended(r.order_id);
                    }
                }
            }
            // A session Reject or a BusinessMessageReject of one of our orders.
            b"3" | b"j" => {
                let seq = m.get(45).and_then(|v| parse_u64(v).ok());
                if let Some(id) = seq.and_then(|s| self.by_seq.get(&s).copied()) {
                    self.ready.push_back(ExecReport {
                        order_id: id,
                        kind: ExecKind::Rejected,
                        reject: RejectReason::Other,
                        recv_ts: now,
                        ..ExecReport::default()
                    });
                    self.ended(id);
                }
            }
            _ => {}
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
    /// A reconnect's status requests are still to be sent.
    settle: bool,
    backoff: Backoff,
    down_reason: Option<String>,
}

impl OrderEntryGateway {
    pub fn open(
        cfg: OrderEntryConfig,
        universe: Arc<Universe>,
    ) -> Result<OrderEntryGateway, StoreError> {
        let (store, saved) = SeqStore::open(&cfg.store)?;
        let seqs = resume(saved, cfg.unclean);
        Ok(OrderEntryGateway {
            cfg,
            universe,
            store,
            seqs,
            conn: None,
            orders: Orders::default(),
            settle: false,
            backoff: Backoff::new(),
            down_reason: Some("not connected yet".into()),
        })
    }

    fn connect(&mut self, now: Nanos) {
        let ids = CompIds {
            sender: self.cfg.sender_comp_id.as_bytes(),
            target: self.cfg.target_comp_id.as_bytes(),
        };
        match dial(&self.cfg.address, &self.cfg.session, ids, self.seqs, now) {
            Ok(c) => {
                self.conn = Some(c);
                // What was in flight when the last session ended is asked about.
                self.settle = !self.orders.in_flight.is_empty();
            }
            Err(why) => self.down(now, why),
        }
    }

    fn down(&mut self, now: Nanos, why: String) {
        if let Some(c) = self.conn.take() {
            self.seqs = c.seqs();
        }
        self.orders.asking.clear();
        self.backoff.failed(now);
        self.down_reason = Some(why);
    }

    fn ask_status(&mut self, now: Nanos) -> Result<(), Closed> {
        let conn = self.conn.as_mut().expect("asked on a connection");
        for (&id, f) in &self.orders.in_flight {
            let cl = ClOrdId::of(id);
            conn.send(b"H", now, |w| {
                w.str(11, cl.as_str())?
                    .str(55, &self.universe.sym(f.symbol).name)?
                    .char(54, if f.side == Side::Buy { b'1' } else { b'2' })?;
                Ok(())
            })?;
            self.orders.asking.insert(id);
        }
        Ok(())
    }
}

impl Gateway for OrderEntryGateway {
    fn name(&self) -> &str {
        &self.cfg.name
    }

    fn can_accept(&self, _orders: usize) -> bool {
        true
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        let down = |o: &FollowerOrder| ExecReport {
            order_id: o.id,
            kind: ExecKind::Rejected,
            reject: RejectReason::VenueDown,
            recv_ts: now,
            ..ExecReport::default()
        };
        for (i, o) in orders.iter().enumerate() {
            if !self.is_up() {
                out(down(o));
                continue;
            }
            let follower = &self.universe.followers[o.follower.0 as usize].id;
            let account = self.cfg.accounts.get(follower).unwrap_or(follower);
            let n = NewOrder::of(o, &self.universe, account, self.cfg.reduce_only);
            let conn = self.conn.as_mut().expect("up");
            match conn.send(b"D", now, |w| n.write(w)) {
                Ok(seq) => self.orders.sent(o, Some(seq)),
                // Nothing of it was written (a value FIX cannot carry): it never left.
                Err(Closed::Encode(_)) => out(ExecReport {
                    reject: RejectReason::Other,
                    ..down(o)
                }),
                Err(e) => {
                    // It may have left: asked about after the reconnect.
                    self.orders.sent(o, None);
                    self.down(now, e.to_string());
                    for o in &orders[i + 1..] {
                        out(down(o));
                    }
                    return;
                }
            }
        }
    }

    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        if self.conn.is_none() && self.backoff.due(now) {
            self.connect(now);
        }
        if let Some(conn) = self.conn.as_mut() {
            let (orders, u) = (&mut self.orders, &self.universe);
            let r = conn.poll(now, &mut |m| orders.on_message(m, u, now));
            let active = conn.state() == State::Active;
            self.seqs = conn.seqs();
            match r {
                Err(e) => self.down(now, e.to_string()),
                Ok(()) if active => {
                    self.backoff.succeeded();
                    if self.settle {
                        self.settle = false;
                        if let Err(e) = self.ask_status(now) {
                            self.down(now, e.to_string());
                        }
                    }
                    if self.orders.asking.is_empty() {
                        self.down_reason = None;
                    }
                }
                Ok(()) => {}
            }
            if let Some(c) = &self.conn {
                self.seqs = c.seqs();
            }
            let _ = self.store.save(self.seqs);
        }
        let mut n = 0;
        while let Some(r) = self.orders.ready.pop_front() {
            out(r);
            n += 1;
        }
        n
    }

    fn in_flight(&self) -> usize {
        self.orders.in_flight.len()
    }

    fn is_up(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.state() == State::Active)
            && !self.settle
            && self.orders.asking.is_empty()
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.universe = Arc::clone(universe);
    }

    fn down_reason(&self) -> Option<String> {
        self.down_reason.clone()
    }
}
