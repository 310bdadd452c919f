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
        matches!(
            self,
            OrderState::Filled | OrderState::Canceled | OrderState::Rejected | OrderState::Expired
        )
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
    let filled_state = if complete {
        S::Filled
    } else {
        S::PartiallyFilled
    };
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
    /// Trade ids of this order's first fills: duplicates are caught here without a
    /// lookup in the global trade-id set, which only sees fills past these.
    pub trades: [u64; OrderSlot::TRADES_INLINE],
    pub fills: u32,
}

impl OrderSlot {
    pub const TRADES_INLINE: usize = 4;

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

/// The last `capacity` ids (leader event keys, venue trade ids, client order ids),
/// each with a small value, for duplicate detection with bounded memory.
/// Preallocated; never grows; forgets the oldest id first.
pub struct BoundedMap<V: Copy> {
    map: HashMap<u64, V, IdHash>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl<V: Copy> BoundedMap<V> {
    pub fn new(capacity: usize) -> BoundedMap<V> {
        assert!(capacity > 0, "BoundedMap capacity must be positive");
        BoundedMap {
            map: HashMap::with_capacity_and_hasher(capacity, IdHash),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Remembers `id` with `value` and returns `None`, or returns the value it was
    /// first seen with (a duplicate), leaving that value in place.
    pub fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if let Some(first) = self.map.get(&id) {
            return Some(*first);
        }
        if self.order.len() == self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.map.insert(id, value);
        self.order.push_back(id);
        debug_assert!(self.map.len() <= self.capacity);
        None
    }

    pub fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A `BoundedMap` without values.
pub type BoundedSet = BoundedMap<()>;

impl BoundedMap<()> {
    /// Inserts `id`; returns false when it was already present (a duplicate).
    pub fn add(&mut self, id: u64) -> bool {
        self.insert(id, ()).is_none()
    }
}

/// Terminal orders remembered after they end, so that a late fill (a fill after a
/// cancel) still finds its order; older ones are forgotten and such a fill is
/// counted as unknown, never applied twice.
pub const FINISHED_ORDERS_KEPT: usize = 1 << 16;

/// The orders the core stage tracks, by order id: every live order, and the last
/// `FINISHED_ORDERS_KEPT` that ended. Fixed capacity; the map stays small (live +
/// recent), which keeps the per-order lookups in cache.
pub struct OrderTable {
    map: HashMap<u64, OrderSlot, IdHash>,
    finished: VecDeque<u64>,
    live: usize,
    live_max: usize,
}

impl OrderTable {
    pub fn new(live_max: usize) -> OrderTable {
        assert!(live_max > 0, "OrderTable capacity must be positive");
        OrderTable {
            map: HashMap::with_capacity_and_hasher(live_max + FINISHED_ORDERS_KEPT, IdHash),
            finished: VecDeque::with_capacity(FINISHED_ORDERS_KEPT),
            live: 0,
            live_max,
        }
    }

    /// Tracks a new order. Returns false when `live_max` orders are live (the caller
    /// skips the order) or the id is already tracked.
    pub fn insert(&mut self, slot: OrderSlot) -> bool {
        if self.live == self.live_max || self.map.contains_key(&slot.id) {
            return false;
        }
        self.live += 1;
        self.map.insert(slot.id, slot);
        debug_assert!(self.map.len() <= self.live_max + FINISHED_ORDERS_KEPT);
        true
    }

    pub fn get(&self, id: u64) -> Option<&OrderSlot> {
        self.map.get(&id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut OrderSlot> {
        self.map.get_mut(&id)
    }

    /// Call once when order `id` becomes terminal.
    pub fn mark_done(&mut self, id: u64) {
        debug_assert!(self.live > 0);
        self.live -= 1;
        if self.finished.len() == FINISHED_ORDERS_KEPT {
            if let Some(old) = self.finished.pop_front() {
                self.map.remove(&old);
            }
        }
        self.finished.push_back(id);
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

    /// Tracked orders, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &OrderSlot> {
        self.map.values()
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
        type Case = (S, E, i64, Result<(S, Oddity), TransitionError>);
        let cases: &[Case] = &[
            (S::New, E::Ack, 0, Ok((S::Acked, Oddity::None))),
            (S::New, E::Fill, 10, Ok((S::Filled, Oddity::FillBeforeAck))),
            (
                S::New,
                E::Fill,
                4,
                Ok((S::PartiallyFilled, Oddity::FillBeforeAck)),
            ),
            (S::Acked, E::Fill, 4, Ok((S::PartiallyFilled, Oddity::None))),
            (
                S::PartiallyFilled,
                E::Fill,
                10,
                Ok((S::Filled, Oddity::None)),
            ),
            (S::Filled, E::Fill, 10, Ok((S::Filled, Oddity::None))),
            (S::Filled, E::Ack, 10, Ok((S::Filled, Oddity::LateAck))),
            (
                S::PartiallyFilled,
                E::Canceled,
                4,
                Ok((S::Canceled, Oddity::None)),
            ),
            (
                S::Canceled,
                E::Fill,
                6,
                Ok((S::Canceled, Oddity::FillAfterTerminal)),
            ),
            (S::Acked, E::Rejected, 0, Ok((S::Rejected, Oddity::None))),
            (
                S::Rejected,
                E::Rejected,
                0,
                Ok((S::Rejected, Oddity::RepeatedTerminal)),
            ),
            (S::New, E::Expired, 0, Ok((S::Expired, Oddity::None))),
            (S::Acked, E::Fill, 11, Err(TransitionError::Overfill)),
        ];
        for (i, (s, e, filled, want)) in cases.iter().enumerate() {
            assert_eq!(
                transition(*s, *e, Lots(*filled), q),
                *want,
                "case {i}: {s:?} + {e:?}"
            );
        }
    }

    #[test]
    fn bounded_set_forgets_oldest() {
        let mut s = BoundedSet::new(2);
        assert!(s.add(1));
        assert!(!s.add(1));
        assert!(s.add(2));
        assert!(s.add(3));
        assert!(!s.contains(1));
        assert!(s.contains(2) && s.contains(3));
        assert_eq!(s.len(), 2);
        let mut m = BoundedMap::new(4);
        assert_eq!(m.insert(9, 'a'), None);
        assert_eq!(m.insert(9, 'b'), Some('a'));
    }

    #[test]
    fn order_table_bounds_live_orders_and_forgets_finished_ones() {
        let mut t = OrderTable::new(2);
        assert!(t.insert(OrderSlot {
            id: 1,
            ..Default::default()
        }));
        assert!(
            !t.insert(OrderSlot {
                id: 1,
                ..Default::default()
            }),
            "same id twice"
        );
        assert!(t.insert(OrderSlot {
            id: 2,
            ..Default::default()
        }));
        assert!(
            !t.insert(OrderSlot {
                id: 3,
                ..Default::default()
            }),
            "two live orders at most"
        );
        t.get_mut(1).unwrap().state = S::Filled;
        t.mark_done(1);
        assert!(t.insert(OrderSlot {
            id: 3,
            ..Default::default()
        }));
        assert!(
            t.get(1).is_some(),
            "a finished order is remembered for late fills"
        );
        assert_eq!(t.live(), 2);
        t.mark_done(2);
        t.mark_done(3);
        for id in 10..10 + FINISHED_ORDERS_KEPT as u64 {
            assert!(t.insert(OrderSlot {
                id,
                ..Default::default()
            }));
            t.mark_done(id);
        }
        assert_eq!(t.len(), FINISHED_ORDERS_KEPT);
        assert!(t.get(1).is_none(), "… but not forever");
    }
}
