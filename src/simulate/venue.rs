//! The venue side, which outlives engine crashes (like a `fillcast sim-venue`
//! process), and the engine's gateway to it, which dies with the engine.
//!
//! `VenueSide` holds the product's `SimVenue` (matching, books, per-order history),
//! the venue's front end (orders it refused outright, kept so that its answers agree
//! with what it said), the network both ways (orders in transit, reports in flight,
//! reports held for a session during an outage) and the link's outage schedule.
//! `GatewaySide` is what the engine's gateway knows: its view of the link, orders
//! waiting to be handed over, and orders in flight (sent, not yet ended), which it
//! settles from the venue's history after a reconnect, as `SimClient` does.

use super::world::{Outage, VenueFaults};
use fillcast_engine::event::{ExecKind, ExecReport, FollowerOrder};
use fillcast_gateways::sim::{QueryAnswer, SimVenue};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where the link is in its current outage.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Working; the next outage (if any) is ahead.
    Working,
    /// Broken; the gateway has not noticed yet.
    Broken,
    /// Broken, and the gateway knows.
    Noticed,
    /// Working again; the gateway has not reconnected yet.
    Repaired,
}

pub struct VenueSide {
    pub sim: SimVenue,
    pub faults: VenueFaults,
    pub phase: Phase,
    /// Index of the current (or next) outage in `faults.outages`.
    pub outage: usize,
    /// Gateway → venue: (arrival, order), in arrival order.
    pub transit: VecDeque<(u64, FollowerOrder)>,
    pub transit_last: u64,
    /// Orders on the wire when the link broke that get through once it works
    /// again (before the gateway reconnects and asks about them).
    pub stalled: Vec<FollowerOrder>,
    /// Venue → gateway: reports in flight by (arrival, sequence).
    pub net: BTreeMap<(u64, u64), ExecReport>,
    pub net_seq: u64,
    /// Per order, when its last report other than an ack arrives: the session
    /// delivers an order's fills and end in order.
    pub net_last: BTreeMap<u64, u64>,
    /// Reports the venue holds for the session during an outage.
    pub held: Vec<ExecReport>,
    /// Orders the front end refused, with the report it made.
    pub refused: BTreeMap<u64, ExecReport>,
    /// Every order that reached the venue (executed or refused), by id.
    pub orders: BTreeMap<u64, FollowerOrder>,
    /// Orders that reached the front end with an id it had seen.
    pub duplicates: u64,
}

impl VenueSide {
    pub fn new(sim: SimVenue, faults: VenueFaults) -> VenueSide {
        VenueSide {
            sim,
            faults,
            phase: Phase::Working,
            outage: 0,
            transit: VecDeque::new(),
            transit_last: 0,
            stalled: Vec::new(),
            net: BTreeMap::new(),
            net_seq: 0,
            net_last: BTreeMap::new(),
            held: Vec::new(),
            refused: BTreeMap::new(),
            orders: BTreeMap::new(),
            duplicates: 0,
        }
    }

    pub fn link_works(&self) -> bool {
        matches!(self.phase, Phase::Working | Phase::Repaired)
    }

    pub fn current_outage(&self) -> Option<&Outage> {
        (self.phase != Phase::Working)
            .then(|| self.faults.outages.get(self.outage))
            .flatten()
    }

    /// When the link's state changes next.
    pub fn next_transition(&self) -> Option<u64> {
        let o = self.faults.outages.get(self.outage)?;
        Some(match self.phase {
            Phase::Working => o.down_at,
            Phase::Broken => o.noticed_at,
            Phase::Noticed => o.up_at,
            Phase::Repaired => o.reconnect_at,
        })
    }

    /// Whether the order is known to the venue, and the reports that say what
    /// became of it (`Gateway::recover`'s promise): refused orders by their
    /// refusal, others from the `SimVenue`'s history.
    pub fn answer(&self, order_id: u64) -> (bool, Vec<ExecReport>) {
        if let Some(r) = self.refused.get(&order_id) {
            return (true, vec![*r]);
        }
        let known = matches!(self.sim.query(order_id), QueryAnswer::Known(_));
        (known, self.sim.answer(order_id))
    }

    /// Whether `trade_id` is a trade the venue made for `order_id`, of `qty`.
    pub fn is_trade(&self, order_id: u64, trade_id: u64, qty: i64) -> bool {
        match self.sim.query(order_id) {
            QueryAnswer::Known(h) => h
                .fills
                .iter()
                .any(|f| f.trade_id == trade_id && f.qty.0 == qty),
            QueryAnswer::Unknown { .. } => false,
        }
    }

    /// Whether a reduce-only order would reduce the follower's position on the
    /// venue's books (which net every subscription of the follower).
    pub fn reduces(&self, o: &FollowerOrder) -> bool {
        let held = self.sim.position(o.follower, o.symbol).0;
        held != 0 && held.signum() == -o.side.sign() && o.qty.0 <= held.abs()
    }
}

/// An order the gateway handed over and has not seen end.
#[derive(Copy, Clone, Debug)]
pub struct InFlight {
    pub qty: i64,
    pub filled: i64,
    pub last_trade: u64,
}

pub struct GatewaySide {
    /// The gateway's view of its link.
    pub up: bool,
    /// Orders whose journal records are written, waiting to be handed over: (due, order).
    pub egress: VecDeque<(u64, FollowerOrder)>,
    pub in_flight: BTreeMap<u64, InFlight>,
    /// Orders a settle answered in full: their later reports are repeats.
    pub answered: BTreeSet<u64>,
}

impl GatewaySide {
    pub fn new(up: bool) -> GatewaySide {
        GatewaySide {
            up,
            egress: VecDeque::new(),
            in_flight: BTreeMap::new(),
            answered: BTreeSet::new(),
        }
    }

    /// Follows a report on its way to the engine: an order in flight ends with its
    /// terminal report or its last fill.
    pub fn track(&mut self, r: &ExecReport) {
        let Some(w) = self.in_flight.get_mut(&r.order_id) else {
            return;
        };
        let ended = match r.kind {
            ExecKind::Fill => {
                w.filled += r.qty.0;
                w.last_trade = r.trade_id;
                w.filled >= w.qty
            }
            ExecKind::Ack => false,
            ExecKind::Restated => {
                w.qty = r.qty.0.saturating_abs();
                false
            }
            ExecKind::Canceled | ExecKind::Rejected | ExecKind::Expired => true,
        };
        if ended {
            self.in_flight.remove(&r.order_id);
        }
    }
}
