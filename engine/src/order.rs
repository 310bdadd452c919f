//! Follower order state: one transition table for every venue's odd sequences, and
//! the bounded table of orders the core stage tracks.
//!
//! The table never allocates after construction: capacity is fixed at start-up and
//! terminal orders are evicted oldest-first to make room (a late fill for an evicted
//! order is counted as unknown, never applied twice).

use crate::event::ExecKind;
use crate::ids::mix64;
use crate::model::{LeaderIdx, Side, SubIdx, SymbolIdx};
use crate::units::{Lots, Ticks};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum OrderState {
    #[default]
    New,
    Acked,
    PartiallyFilled,
    Filled,
    Canceled,
    Rejected,
    Expired,
}

impl OrderState {
    pub fn is_terminal(self) -> bool {
        matches!(self, OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::New => "new",
            OrderState::Acked => "acked",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::Filled => "filled",
            OrderState::Canceled => "canceled",
            OrderState::Rejected => "rejected",
            OrderState::Expired => "expired",
        }
    }
}

/// A transition the table admits but that a well-behaved venue would not send.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Oddity {
    None,
    /// A fill arrived before the ack.
    FillBeforeAck,
    /// An ack arrived after the order was already filled or done.
    LateAck,
    /// A fill arrived after the order was canceled, rejected or expired.
    FillAfterTerminal,
    /// A terminal report for an order already terminal.
    RepeatedTerminal,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TransitionError {
    /// A fill that would take the filled quantity past the order quantity.
    Overfill,
}

/// `(state, event) → state'`. `filled_after` is the cumulative filled quantity after
/// this event (already checked to be ≤ the order quantity when the event is a fill).
pub fn transition(
    state: OrderState,
    kind: ExecKind,
    filled_after: Lots,
    qty: Lots,
) -> Result<(OrderState, Oddity), TransitionError> {
    use ExecKind as E;
    use OrderState as S;
    if filled_after.0 > qty.0 {
        return Err(TransitionError::Overfill);
    }
    let complete = filled_after == qty;
    let filled_state = if complete { S::Filled } else { S::PartiallyFilled };
    Ok(match (state, kind) {
        (S::New, E::Ack) => (S::Acked, Oddity::None),
        (S::New, E::Fill) => (filled_state, Oddity::FillBeforeAck),
        (S::Acked | S::PartiallyFilled, E::Fill) => (filled_state, Oddity::None),
        (S::Acked | S::PartiallyFilled, E::Ack) => (state, Oddity::LateAck),
        (S::Filled, E::Ack) => (S::Filled, Oddity::LateAck),
        // A partial that arrives after the report that completed the order: the
        // quantity check above already proved it fits, so it is an out-of-order fill.
        (S::Filled, E::Fill) => (S::Filled, Oddity::None),
        (S::New | S::Acked | S::PartiallyFilled, E::Canceled) => (S::Canceled, Oddity::None),
        (S::New | S::Acked | S::PartiallyFilled, E::Rejected) => (S::Rejected, Oddity::None),
        (S::New | S::Acked | S::PartiallyFilled, E::Expired) => (S::Expired, Oddity::None),
        (S::Canceled | S::Rejected | S::Expired, E::Fill) => (state, Oddity::FillAfterTerminal),
        (S::Canceled | S::Rejected | S::Expired, E::Ack) => (state, Oddity::LateAck),
        (_, E::Canceled | E::Rejected | E::Expired) => (state, Oddity::RepeatedTerminal),
    })
}

/// One tracked follower order.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderSlot {
    pub id: u64,
    pub sub: SubIdx,
    pub leader: LeaderIdx,
    /// Index of the subscription inside its leader's book.
    pub slot: u32,
    pub symbol: SymbolIdx,
    pub side: Side,
    pub qty: Lots,
    pub filled: Lots,
    pub limit: Ticks,
    pub reduce_only: bool,
    pub market: bool,
    pub state: OrderState,
    /// Retries already made with fresh ids for this instruction.
    pub attempt: u32,
    pub leg: u32,
    pub leader_event_key: u64,
}

impl OrderSlot {
    pub fn remaining(&self) -> Lots {
        Lots(self.qty.0 - self.filled.0)
    }
}

/// Hashes a u64 id with splitmix64: ids from venues may be sequential.
#[derive(Copy, Clone, Debug, Default)]
pub struct IdHash;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = mix64(self.0 ^ b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = mix64(v);
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// A set of the last `capacity` ids (leader event keys, venue trade ids), for
/// duplicate detection with bounded memory. Preallocated; never grows.
pub struct BoundedSet {
    set: HashMap<u64, (), IdHash>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl BoundedSet {
    pub fn new(capacity: usize) -> BoundedSet {
        assert!(capacity > 0, "BoundedSet capacity must be positive");
        BoundedSet {
            set: HashMap::with_capacity_and_hasher(capacity, IdHash),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Inserts `id`; returns false when it was already present (a duplicate).
    pub fn insert(&mut self, id: u64) -> bool {
        if self.set.contains_key(&id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id, ());
        self.order.push_back(id);
        debug_assert!(self.set.len() <= self.capacity);
        true
    }

    pub fn contains(&self, id: u64) -> bool {
        self.set.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// The orders the core stage tracks, by order id. Fixed capacity.
pub struct OrderTable {
    map: HashMap<u64, OrderSlot, IdHash>,
    order: VecDeque<u64>,
    capacity: usize,
    live: usize,
}

impl OrderTable {
    pub fn new(capacity: usize) -> OrderTable {
        assert!(capacity > 0, "OrderTable capacity must be positive");
        OrderTable {
            map: HashMap::with_capacity_and_hasher(capacity, IdHash),
            order: VecDeque::with_capacity(capacity),
            capacity,
            live: 0,
        }
    }

    /// Tracks a new order. Returns false when the table is full of live orders
    /// (the caller skips the order) or the id is already tracked.
    pub fn insert(&mut self, slot: OrderSlot) -> bool {
        if self.map.contains_key(&slot.id) {
            return false;
        }
        if self.map.len() == self.capacity {
            match self.order.front().and_then(|id| self.map.get(id)) {
                Some(oldest) if oldest.state.is_terminal() => {
                    let id = oldest.id;
                    self.order.pop_front();
                    self.map.remove(&id);
                }
                _ => return false,
            }
        }
        self.live += 1;
        self.order.push_back(slot.id);
        self.map.insert(slot.id, slot);
        true
    }

    pub fn get(&self, id: u64) -> Option<&OrderSlot> {
        self.map.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut OrderSlot> {
        self.map.get_mut(&id)
    }

    /// Call once when an order becomes terminal.
    pub fn mark_done(&mut self) {
        debug_assert!(self.live > 0);
        self.live -= 1;
    }

    /// Orders not yet in a terminal state.
    pub fn live(&self) -> usize {
        self.live
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &OrderSlot> {
        self.order.iter().filter_map(|id| self.map.get(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecKind as E;
    use OrderState as S;

    /// (state, event, filled_after, qty) → expected (state, oddity) or error.
    #[test]
    fn transition_table() {
        let q = Lots(10);
        let cases: &[(S, E, i64, Result<(S, Oddity), TransitionError>)] = &[
            (S::New, E::Ack, 0, Ok((S::Acked, Oddity::None))),
            (S::New, E::Fill, 10, Ok((S::Filled, Oddity::FillBeforeAck))),
            (S::New, E::Fill, 4, Ok((S::PartiallyFilled, Oddity::FillBeforeAck))),
            (S::Acked, E::Fill, 4, Ok((S::PartiallyFilled, Oddity::None))),
            (S::PartiallyFilled, E::Fill, 10, Ok((S::Filled, Oddity::None))),
            (S::Filled, E::Fill, 10, Ok((S::Filled, Oddity::None))),
            (S::Filled, E::Ack, 10, Ok((S::Filled, Oddity::LateAck))),
            (S::PartiallyFilled, E::Canceled, 4, Ok((S::Canceled, Oddity::None))),
            (S::Canceled, E::Fill, 6, Ok((S::Canceled, Oddity::FillAfterTerminal))),
            (S::Acked, E::Rejected, 0, Ok((S::Rejected, Oddity::None))),
            (S::Rejected, E::Rejected, 0, Ok((S::Rejected, Oddity::RepeatedTerminal))),
            (S::New, E::Expired, 0, Ok((S::Expired, Oddity::None))),
            (S::Acked, E::Fill, 11, Err(TransitionError::Overfill)),
        ];
        for (i, (s, e, filled, want)) in cases.iter().enumerate() {
            assert_eq!(transition(*s, *e, Lots(*filled), q), *want, "case {i}: {s:?} + {e:?}");
        }
    }

    #[test]
    fn bounded_set_forgets_oldest() {
        let mut s = BoundedSet::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert!(!s.contains(1));
        assert!(s.contains(2) && s.contains(3));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn order_table_refuses_when_full_of_live_orders() {
        let mut t = OrderTable::new(2);
        assert!(t.insert(OrderSlot { id: 1, ..Default::default() }));
        assert!(t.insert(OrderSlot { id: 2, ..Default::default() }));
        assert!(!t.insert(OrderSlot { id: 3, ..Default::default() }));
        t.get_mut(1).unwrap().state = S::Filled;
        t.mark_done();
        assert!(t.insert(OrderSlot { id: 3, ..Default::default() }));
        assert!(t.get(1).is_none());
        assert_eq!(t.live(), 2);
    }
}
