//! Follower order state: one transition table for every venue's odd sequences, and
//! the bounded table of orders the core stage tracks.
//!
//! The tables never allocate after construction: capacity is fixed at start-up and
//! terminal orders are evicted to make room (a late fill for an evicted order is
//! counted as unknown, never applied twice).

use crate::event::ExecKind;
use crate::ids::{mix64, order_sub};
use crate::model::{LeaderIdx, Side, SubIdx, SymbolIdx};
use crate::units::{Lots, Ticks};

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

    /// Its stable name (`codes::Coded::name`), as SQL shows it.
    pub fn as_str(self) -> &'static str {
        crate::codes::Coded::name(self)
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
    /// The venue holds this id with another size or side than the engine's
    /// decision (made again after a journal cut): the venue's version was taken.
    VenueHeldOther,
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
        // The venue says it holds the order: as good as an ack; its terms are the
        // core's business (`Core::on_exec`), not the state machine's.
        (S::New, E::Restated) => (S::Acked, Oddity::None),
        (_, E::Restated) => (state, Oddity::None),
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

/// One tracked follower order: one cache line, the one a fan-out writes per
/// order (at 128 bytes, with its trade ids inline, it was two, and the order
/// table's inserts were a third of the fan-out's cache misses). The trade ids
/// of its first fills live beside it in the table (`OrderTable::trades_at`),
/// read and written only by fills.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct OrderSlot {
    pub id: u64,
    pub leader_event_key: u64,
    pub qty: Lots,
    pub filled: Lots,
    pub limit: Ticks,
    pub sub: SubIdx,
    pub leader: LeaderIdx,
    /// Index of the subscription inside its leader's book.
    pub slot: u32,
    /// Fills taken so far (the first `TRADES_INLINE` trade ids are kept).
    pub fills: u32,
    pub symbol: SymbolIdx,
    /// Retries already made with fresh ids for this instruction (at most
    /// `engine.max_retries`, which is at most 64).
    pub attempt: u8,
    pub side: Side,
    pub reduce_only: bool,
    pub market: bool,
    pub state: OrderState,
}

const _: () = assert!(std::mem::size_of::<OrderSlot>() == 64);

impl OrderSlot {
    pub const TRADES_INLINE: usize = 4;

    pub fn remaining(&self) -> Lots {
        Lots(self.qty.0 - self.filled.0)
    }
}

/// Hashes a u64 id with splitmix64 (ids from venues may be sequential), for the
/// std maps outside the core stage (the simulated venue's books).
#[derive(Copy, Clone, Debug, Default)]
pub struct IdHash;

#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
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

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Asks the CPU to start loading `p`'s cache line; only a hint.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint, not an access: it reads nothing in Rust's
    // memory model and cannot fault, even on an invalid address; it needs only
    // SSE, which is in the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// An open-addressing index from 64-bit ids to small values: one flat array of
/// 16-byte entries, linear probing, deletion by backward shift (no tombstones, so
/// lookups stay short however long the engine runs). Preallocated; never grows.
///
/// A std `HashMap` holding whole order slots was the fan-out's main cost (an
/// insert and an eviction per order, each touching several random cache lines of
/// a multi-megabyte table); here an insert touches one line of a table at most
/// at most 2/3 full.
pub struct IdIndex<V: Copy> {
    entries: Box<[Entry<V>]>,
    mask: usize,
    len: usize,
    capacity: usize,
}

#[derive(Copy, Clone)]
struct Entry<V: Copy> {
    id: u64,
    val: V,
    used: bool,
}

/// Where an insert found its id.
pub enum Probe<V> {
    Inserted,
    Present(V),
}

impl<V: Copy + Default> IdIndex<V> {
    /// Room for `capacity` ids at a load factor of at most about 2/3.
    pub fn with_capacity(capacity: usize) -> IdIndex<V> {
        let slots = (capacity.max(1) + capacity / 2).next_power_of_two().max(8);
        IdIndex {
            entries: vec![
                Entry {
                    id: 0,
                    val: V::default(),
                    used: false,
                };
                slots
            ]
            .into_boxed_slice(),
            mask: slots - 1,
            len: 0,
            capacity: capacity.max(1),
        }
    }

    #[inline(always)]
    fn home(&self, id: u64) -> usize {
        // Ids from venues may be sequential; decision ids are hashes already.
        mix64(id) as usize & self.mask
    }

    /// Where `id` is (`Ok`), or the empty entry ending its probe run (`Err`).
    #[inline]
    fn probe(&self, id: u64) -> Result<usize, usize> {
        let mut i = self.home(id);
        loop {
            let e = &self.entries[i];
            if !e.used {
                return Err(i);
            }
            if e.id == id {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    pub fn get(&self, id: u64) -> Option<V> {
        self.probe(id).ok().map(|i| self.entries[i].val)
    }

    /// Inserts `id` unless present. The caller keeps `len() < capacity`.
    #[inline]
    pub fn insert(&mut self, id: u64, val: V) -> Probe<V> {
        debug_assert!(self.len < self.capacity, "IdIndex over capacity");
        match self.probe(id) {
            Ok(i) => Probe::Present(self.entries[i].val),
            Err(i) => {
                self.entries[i] = Entry {
                    id,
                    val,
                    used: true,
                };
                self.len += 1;
                Probe::Inserted
            }
        }
    }

    /// Removes `id`; returns its value if it was present.
    pub fn remove(&mut self, id: u64) -> Option<V> {
        let i = self.probe(id).ok()?;
        let val = self.entries[i].val;
        // Backward shift: pull later entries of the run into the hole when the hole
        // lies on their probe path (between their home and where they sit).
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & self.mask;
            let e = self.entries[j];
            if !e.used {
                break;
            }
            let from_home = j.wrapping_sub(self.home(e.id)) & self.mask;
            let from_hole = j.wrapping_sub(hole) & self.mask;
            if from_home >= from_hole {
                self.entries[hole] = e;
                hole = j;
            }
        }
        self.entries[hole].used = false;
        self.len -= 1;
        Some(val)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The last `capacity` ids (leader event keys, venue trade ids, client order ids),
/// each with a small value, for duplicate detection with bounded memory.
/// Preallocated; never grows; forgets the oldest id first.
pub struct BoundedMap<V: Copy + Default> {
    index: IdIndex<V>,
    /// The remembered ids, oldest at `head`, as a ring.
    ring: Box<[u64]>,
    head: usize,
}

impl<V: Copy + Default> BoundedMap<V> {
    pub fn new(capacity: usize) -> BoundedMap<V> {
        assert!(capacity > 0, "BoundedMap capacity must be positive");
        BoundedMap {
            index: IdIndex::with_capacity(capacity),
            ring: vec![0; capacity].into_boxed_slice(),
            head: 0,
        }
    }

    /// Remembers `id` with `value` and returns `None`, or returns the value it was
    /// first seen with (a duplicate), leaving that value in place.
    pub fn insert(&mut self, id: u64, value: V) -> Option<V> {
        if let Some(first) = self.index.get(id) {
            return Some(first);
        }
        let cap = self.ring.len();
        if self.index.len() == cap {
            // Full: the oldest id, at `head`, leaves first.
            self.index.remove(self.ring[self.head]);
            self.ring[self.head] = id;
            self.head = (self.head + 1) % cap;
        } else {
            self.ring[(self.head + self.index.len()) % cap] = id;
        }
        self.index.insert(id, value);
        None
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
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

/// Places per subscription in the order table by default
/// (`engine.orders_per_subscription`): the most orders one subscription can have
/// live at once, and how many of its finished orders are remembered for late fills.
pub const ORDERS_PER_SUBSCRIPTION: usize = 8;

/// Where `id` is among the `N` ids from `base`.
#[inline(always)]
fn position<const N: usize>(ids: &[u64], base: usize, id: u64) -> Option<usize> {
    let ids: &[u64; N] = ids.get(base..base + N)?.try_into().ok()?;
    ids.iter().position(|x| *x == id)
}

/// The most places per subscription (`live_mask` is a u64).
pub const ORDERS_PER_SUBSCRIPTION_MAX: usize = 64;

/// Places one leader fill may need per subscription: a flip is a close and an open.
pub const ORDERS_PER_DECISION_MAX: usize = 2;

/// The orders the core stage tracks, found from their id alone: an order id holds
/// its subscription index (`ids::decision_id`), and each subscription owns `places`
/// places, handed out round-robin among those not live. A lookup reads one cache
/// line of ids and then the slot; a fan-out writes the places in subscription
/// order. A finished order stays until its place is needed again, so a late fill
/// (after a cancel) still finds it; older ones are forgotten and such a fill is
/// counted as unknown, never applied twice.
///
/// Subscriptions belong to groups (their leader), and the table counts, per group,
/// the subscriptions with fewer than `ORDERS_PER_DECISION_MAX` free places, so
/// `has_room` answers "can every subscription of this leader take a decision's
/// orders?" in O(1): the core takes a leader fill only when it can (backpressure),
/// never skipping an order for want of a place.
///
/// (A hash table holding every order was the fan-out's main cost: an insert and an
/// eviction per order at random places of a many-megabyte table.)
pub struct OrderTable {
    /// `ids[(sub << shift) + j]`: the order in place `j` of `sub`, 0 if never used.
    /// A subscription's places start at a power-of-two stride (`1 << shift` ≥
    /// `places`), so finding a place's subscription is a shift, not a division,
    /// and the default 8 places are searched with one fixed-size compare.
    ids: Box<[u64]>,
    slots: Box<[OrderSlot]>,
    /// Per place: the trade ids of its order's first fills (the first
    /// `OrderSlot::fills` of them, up to `TRADES_INLINE`; older ones are stale),
    /// so a duplicate fill is caught without the global trade-id set. Not reset
    /// by an insert: a fan-out writes only the slot's line.
    trades: Box<[[u64; OrderSlot::TRADES_INLINE]]>,
    /// Per subscription: bit `j` set when place `j` holds a live order.
    live_mask: Box<[u64]>,
    /// Per subscription: the place to try first.
    next: Box<[u8]>,
    /// Per subscription: its group.
    group: Box<[u32]>,
    /// Per group: subscriptions with fewer than `ORDERS_PER_DECISION_MAX` free places.
    crowded: Box<[u32]>,
    places: usize,
    /// Subscriptions and groups in use: the tables are sized for more (`with_room`),
    /// so that a reload adding subscriptions grows into them (`grow_to`).
    subs: usize,
    groups: usize,
    /// log2 of the stride between subscriptions' places.
    shift: u32,
    /// All places of a subscription, as a mask.
    full: u64,
    live: usize,
    live_max: usize,
    tracked: usize,
}

impl OrderTable {
    /// A table for one subscription per entry of `groups` (its group: the
    /// subscription's leader), `places` places each (2 ..= 64), and at most
    /// `live_max` live orders in all.
    pub fn new(groups: &[u32], places: usize, live_max: usize) -> OrderTable {
        OrderTable::with_room(groups, places, live_max, (0, 0))
    }

    /// `new`, with room for `room.0` more subscriptions and `room.1` more groups,
    /// empty until `grow_to` takes them.
    pub fn with_room(
        groups: &[u32],
        places: usize,
        live_max: usize,
        room: (usize, usize),
    ) -> OrderTable {
        assert!(live_max > 0, "OrderTable capacity must be positive");
        assert!(
            (ORDERS_PER_DECISION_MAX..=ORDERS_PER_SUBSCRIPTION_MAX).contains(&places),
            "places per subscription must be in 2..=64, got {places}"
        );
        let n_groups = groups.iter().map(|g| *g as usize + 1).max().unwrap_or(1);
        let cap = groups.len().max(1) + room.0;
        let mut group = groups.to_vec();
        group.resize(cap, 0);
        let shift = places.next_power_of_two().trailing_zeros();
        OrderTable {
            ids: vec![0; cap << shift].into_boxed_slice(),
            slots: vec![OrderSlot::default(); cap << shift].into_boxed_slice(),
            trades: vec![[0; OrderSlot::TRADES_INLINE]; cap << shift].into_boxed_slice(),
            live_mask: vec![0; cap].into_boxed_slice(),
            next: vec![0; cap].into_boxed_slice(),
            group: group.into_boxed_slice(),
            crowded: vec![0; n_groups + room.1].into_boxed_slice(),
            places,
            subs: groups.len(),
            groups: n_groups,
            shift,
            full: if places == 64 {
                u64::MAX
            } else {
                (1u64 << places) - 1
            },
            live: 0,
            live_max,
            tracked: 0,
        }
    }

    /// Whether this table can take `next`'s subscriptions and groups in its
    /// room (`grow_to`): `next` is the table of a grown shape, these its first.
    pub fn can_grow_to(&self, next: &OrderTable) -> bool {
        self.places == next.places
            && self.live_max == next.live_max
            && self.subs <= next.subs
            && next.subs <= self.live_mask.len()
            && next.groups <= self.crowded.len()
    }

    /// Takes `next`'s new subscriptions (and groups) into this table's room: no
    /// allocation, and what it costs is what was added. Their places are empty
    /// (never used), as `next`'s are.
    pub fn grow_to(&mut self, next: &OrderTable) {
        debug_assert!(self.can_grow_to(next));
        debug_assert_eq!(self.group[..self.subs], next.group[..self.subs]);
        self.group[self.subs..next.subs].copy_from_slice(&next.group[self.subs..next.subs]);
        self.subs = next.subs;
        self.groups = next.groups;
    }

    /// Takes `old`'s orders into this table, made for the same places per
    /// subscription and the same subscriptions (groups) first, more after:
    /// swapped whole when the sizes are the same, copied otherwise (`self` must
    /// be new: only the places that held an order are copied). Allocates
    /// nothing.
    pub fn carry_from(&mut self, old: &mut OrderTable) {
        assert_eq!(
            self.places, old.places,
            "a table of other places per subscription"
        );
        if self.ids.len() == old.ids.len() && self.group == old.group {
            std::mem::swap(self, old);
            return;
        }
        // Only the places that ever held an order: `self` is new (every place
        // empty), and most places of a large table are, so reading the ids
        // costs a fraction of copying every slot.
        debug_assert!(
            self.tracked == 0 && self.live == 0,
            "carry into a new table"
        );
        let n = old.ids.len().min(self.ids.len());
        for (i, &id) in old.ids[..n].iter().enumerate() {
            if id != 0 {
                self.ids[i] = id;
                self.slots[i] = old.slots[i];
                self.trades[i] = old.trades[i];
            }
        }
        let m = old.live_mask.len().min(self.live_mask.len());
        self.live_mask[..m].copy_from_slice(&old.live_mask[..m]);
        self.next[..m].copy_from_slice(&old.next[..m]);
        let g = old.crowded.len().min(self.crowded.len());
        self.crowded[..g].copy_from_slice(&old.crowded[..g]);
        self.live = old.live;
        self.tracked = old.tracked;
    }

    /// Places per subscription.
    pub fn places(&self) -> usize {
        self.places
    }

    /// Whether every subscription of `group` has room for a decision's orders and
    /// the table has room for `orders` more in all. An empty table always has room
    /// (a leader with more subscriptions than `live_max` still makes progress; the
    /// orders that find no place wait for a resync).
    #[inline]
    pub fn has_room(&self, group: u32, orders: usize) -> bool {
        self.crowded.get(group as usize).is_none_or(|c| *c == 0)
            && (self.live == 0 || self.live + orders <= self.live_max)
    }

    /// Whether a subscription with live places `mask` has fewer than
    /// `ORDERS_PER_DECISION_MAX` (2) free: at most one bit of its free mask is set.
    /// (No `count_ones`: without `popcnt` in the target it is some 15 instructions,
    /// and an insert and a finish each ask twice.)
    #[inline(always)]
    fn is_crowded(&self, mask: u64) -> bool {
        const _: () = assert!(ORDERS_PER_DECISION_MAX == 2);
        let free = !mask & self.full;
        free & free.wrapping_sub(1) == 0
    }

    /// The place holding `id`, if tracked.
    #[inline(always)]
    fn find(&self, id: u64) -> Option<usize> {
        let sub = order_sub(id);
        if id == 0 || sub >= self.subs {
            return None;
        }
        let base = sub << self.shift;
        // Places past `places` within the stride are never used (id 0), and id
        // is not 0, so searching the whole stride is exact. The default stride
        // gets a fixed-size search the compiler unrolls.
        let j = if self.shift == 3 {
            position::<8>(&self.ids, base, id)
        } else {
            self.ids[base..base + (1 << self.shift)]
                .iter()
                .position(|x| *x == id)
        };
        j.map(|j| base + j)
    }

    /// Tracks a new order. Returns false when its subscription already has all its
    /// places live, when `live_max` orders are live in all (the caller defers the
    /// order to a resync), or when the id is already tracked or names no
    /// subscription of this table.
    #[inline]
    pub fn insert(&mut self, slot: OrderSlot) -> bool {
        let sub = order_sub(slot.id);
        if self.live == self.live_max
            || slot.id == 0
            || sub >= self.subs
            || self.live_mask[sub] == self.full
            || self.find(slot.id).is_some()
        {
            return false;
        }
        // The first place at or after `next` (cyclically) that is not live.
        let mask = self.live_mask[sub];
        let start = self.next[sub] as usize;
        let free = !mask & self.full;
        let above = free & (u64::MAX << start);
        let j = if above != 0 {
            above.trailing_zeros()
        } else {
            free.trailing_zeros()
        } as usize;
        debug_assert!(j < self.places && mask & (1 << j) == 0);
        let at = (sub << self.shift) + j;
        self.tracked += (self.ids[at] == 0) as usize;
        self.ids[at] = slot.id;
        self.slots[at] = slot;
        let after = mask | 1 << j;
        if !self.is_crowded(mask) && self.is_crowded(after) {
            self.crowded[self.group[sub] as usize] += 1;
        }
        self.live_mask[sub] = after;
        self.next[sub] = if j + 1 == self.places { 0 } else { j as u8 + 1 };
        self.live += 1;
        true
    }

    /// Starts loading what an insert for subscription `sub` will touch: its ids
    /// and the place it will most likely take. The fan-out calls it a few
    /// subscriptions ahead, so that between leader fills (caches cold) the loads
    /// overlap instead of stalling one by one.
    #[inline(always)]
    pub fn prefetch_for(&self, sub: usize) {
        if let Some(next) = self.next.get(sub) {
            let base = sub << self.shift;
            prefetch(&self.ids[base]);
            // One line: a slot is 64 bytes, 64-byte aligned.
            prefetch(&self.slots[base + *next as usize]);
        }
    }

    #[inline]
    pub fn get(&self, id: u64) -> Option<&OrderSlot> {
        self.find(id).map(|at| &self.slots[at])
    }

    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut OrderSlot> {
        self.find(id).map(|at| &mut self.slots[at])
    }

    /// Call once when order `id` becomes terminal.
    pub fn mark_done(&mut self, id: u64) {
        if let Some(at) = self.find(id) {
            self.mark_done_at(at);
        }
    }

    /// Where order `id` is: for a caller that reads, updates and finishes one
    /// order with a single lookup. A place stays the order's while it is live;
    /// once finished, the next insert for its subscription may take it.
    #[inline]
    pub fn place_of(&self, id: u64) -> Option<usize> {
        self.find(id)
    }

    /// The order at `place` (from `place_of`).
    #[inline]
    pub fn at(&self, place: usize) -> &OrderSlot {
        &self.slots[place]
    }

    #[inline]
    pub fn at_mut(&mut self, place: usize) -> &mut OrderSlot {
        &mut self.slots[place]
    }

    /// The trade ids of the first fills of the order at `place` that it kept:
    /// `min(fills, TRADES_INLINE)` of them.
    #[inline]
    pub fn trades_at(&self, place: usize) -> &[u64] {
        let n = (self.slots[place].fills as usize).min(OrderSlot::TRADES_INLINE);
        &self.trades[place][..n]
    }

    /// Counts a fill of the order at `place`, keeping its trade id while there
    /// is room.
    #[inline]
    pub fn add_fill_at(&mut self, place: usize, trade_id: u64) {
        let fills = self.slots[place].fills;
        if (fills as usize) < OrderSlot::TRADES_INLINE {
            self.trades[place][fills as usize] = trade_id;
        }
        self.slots[place].fills = fills.saturating_add(1);
    }

    /// `mark_done` for the live order at `place`.
    pub fn mark_done_at(&mut self, place: usize) {
        let sub = place >> self.shift;
        let bit = 1u64 << (place & ((1 << self.shift) - 1));
        let mask = self.live_mask[sub];
        debug_assert!(mask & bit != 0, "order at {place} finished twice");
        if mask & bit != 0 {
            let after = mask & !bit;
            if self.is_crowded(mask) && !self.is_crowded(after) {
                self.crowded[self.group[sub] as usize] -= 1;
            }
            self.live_mask[sub] = after;
            self.live -= 1;
        }
    }

    /// Whether `orders` more orders of subscription `sub` would find places now.
    #[inline]
    pub fn can_insert(&self, sub: usize, orders: usize) -> bool {
        self.live + orders <= self.live_max
            && self
                .live_mask
                .get(sub)
                .is_some_and(|m| self.places - m.count_ones() as usize >= orders)
    }

    /// Live orders of subscription `sub`.
    pub fn live_of(&self, sub: usize) -> usize {
        self.live_mask
            .get(sub)
            .map_or(0, |m| m.count_ones() as usize)
    }

    /// Orders not yet in a terminal state.
    pub fn live(&self) -> usize {
        self.live
    }

    /// Orders tracked, live or finished.
    pub fn len(&self) -> usize {
        self.tracked
    }

    pub fn is_empty(&self) -> bool {
        self.tracked == 0
    }

    /// Tracked orders, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &OrderSlot> {
        self.ids
            .iter()
            .zip(self.slots.iter())
            .filter(|(id, _)| **id != 0)
            .map(|(_, s)| s)
    }

    /// `iter`, each order with the trade ids it kept (`trades_at`).
    pub fn iter_with_trades(&self) -> impl Iterator<Item = (&OrderSlot, &[u64])> {
        (0..self.ids.len())
            .filter(|&i| self.ids[i] != 0)
            .map(|i| (&self.slots[i], self.trades_at(i)))
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

    fn order(sub: u32, n: u64) -> OrderSlot {
        OrderSlot {
            id: crate::ids::decision_id(n, sub, 7, 0),
            sub: SubIdx(sub),
            ..Default::default()
        }
    }

    #[test]
    fn order_table_bounds_live_orders_and_forgets_finished_ones() {
        let mut t = OrderTable::new(&[0; 4], ORDERS_PER_SUBSCRIPTION, 100);
        assert!(t.insert(order(1, 1)));
        assert!(!t.insert(order(1, 1)), "same id twice");
        for n in 2..=ORDERS_PER_SUBSCRIPTION as u64 {
            assert!(t.insert(order(1, n)));
        }
        assert!(
            !t.insert(order(1, 100)),
            "a subscription has {ORDERS_PER_SUBSCRIPTION} live orders at most"
        );
        assert!(t.insert(order(2, 100)), "… which does not limit the others");
        let first = order(1, 1).id;
        t.get_mut(first).unwrap().state = S::Filled;
        t.mark_done(first);
        assert!(
            t.insert(order(1, 100)),
            "a finished order's place is reused"
        );
        assert!(
            t.get(first).is_none(),
            "the finished order was the only free place"
        );
        assert_eq!(t.live(), ORDERS_PER_SUBSCRIPTION + 1);

        // Finished orders stay until their place comes round again.
        let mut t = OrderTable::new(&[0; 2], ORDERS_PER_SUBSCRIPTION, 100);
        for n in 0..3 {
            assert!(t.insert(order(0, n)));
            t.mark_done(order(0, n).id);
        }
        assert!(t.get(order(0, 0).id).is_some(), "remembered for late fills");
        for n in 3..3 + ORDERS_PER_SUBSCRIPTION as u64 {
            assert!(t.insert(order(0, n)));
            t.mark_done(order(0, n).id);
        }
        assert!(t.get(order(0, 0).id).is_none(), "… but not forever");
        assert_eq!(t.len(), ORDERS_PER_SUBSCRIPTION);
        assert_eq!(t.iter().count(), t.len());
        assert_eq!(t.live(), 0);
    }

    #[test]
    fn prefetch_is_only_a_hint_even_on_bad_pointers() {
        let t = OrderTable::new(&[0; 3], ORDERS_PER_SUBSCRIPTION, 10);
        for sub in [0, 2, 3, usize::MAX] {
            t.prefetch_for(sub); // past the end: ignored
        }
        prefetch(std::ptr::null::<u64>());
        prefetch(std::ptr::NonNull::<OrderSlot>::dangling().as_ptr());
        prefetch((usize::MAX & !63) as *const u8);
        let x = 7u64;
        prefetch(&x);
        assert_eq!(x, 7);
    }

    #[test]
    fn order_table_caps_live_orders_in_all_and_refuses_foreign_ids() {
        let mut t = OrderTable::new(&[0; 3], ORDERS_PER_SUBSCRIPTION, 2);
        assert!(t.insert(order(0, 1)));
        assert!(t.insert(order(1, 1)));
        assert!(!t.insert(order(2, 1)), "two live orders in all");
        t.mark_done(order(0, 1).id);
        assert!(t.insert(order(2, 1)));
        assert!(
            !t.insert(order(3, 1)),
            "subscription 3 is not in a table of 3"
        );
        assert!(t.get(order(3, 1).id).is_none());
        assert!(t.get(0).is_none() && t.get(u64::MAX).is_none());
        t.mark_done(u64::MAX); // unknown ids are ignored
        assert_eq!(t.live(), 2);
    }

    #[test]
    fn order_table_never_evicts_a_live_order() {
        let mut t = OrderTable::new(&[0; 1], ORDERS_PER_SUBSCRIPTION, 1000);
        assert!(t.insert(order(0, 0))); // stays live all along
        for n in 1..1000 {
            assert!(t.insert(order(0, n)));
            t.mark_done(order(0, n).id);
        }
        assert!(t.get(order(0, 0).id).is_some());
        assert_eq!(t.live(), 1);
    }

    #[test]
    fn order_table_has_room_counts_crowded_subscriptions_per_group() {
        // Subscriptions 0 and 1 follow leader 0, subscription 2 leader 1; 4 places each.
        let mut t = OrderTable::new(&[0, 0, 1], 4, 100);
        assert!(t.has_room(0, 2) && t.has_room(1, 2));
        assert!(t.insert(order(0, 1)));
        assert!(t.insert(order(0, 2)));
        assert!(t.has_room(0, 2), "two places left: a flip still fits");
        assert!(t.insert(order(0, 3)));
        assert!(!t.has_room(0, 2), "one place left: a flip would not fit");
        assert!(
            t.has_room(1, 2),
            "another leader's subscriptions are not crowded"
        );
        assert!(t.insert(order(0, 4)));
        assert!(!t.insert(order(0, 5)), "all four places are live");
        t.mark_done(order(0, 4).id);
        assert!(!t.has_room(0, 2));
        t.mark_done(order(0, 3).id);
        assert!(t.has_room(0, 2), "room again once two places are free");
        assert_eq!(t.live_of(0), 2);
        assert!(t.can_insert(0, 2) && !t.can_insert(0, 3) && t.can_insert(2, 4));
        assert!(!t.can_insert(9, 1), "no such subscription");
        // In all: room for `orders` more unless the table is empty.
        let mut t = OrderTable::new(&[0, 0, 0], 8, 3);
        assert!(t.has_room(0, 6), "an empty table always has room");
        assert!(t.insert(order(0, 1)));
        assert!(t.has_room(0, 2) && !t.has_room(0, 3));
        assert!(
            !t.has_room(7, 3),
            "an unknown group asks only about the total"
        );
    }

    #[test]
    fn order_table_takes_up_to_64_places_per_subscription() {
        for places in [2, 3, 8, 63, 64] {
            let mut t = OrderTable::new(&[0], places, 1000);
            for n in 0..places as u64 {
                assert!(t.insert(order(0, n)), "{places}: place {n}");
            }
            assert!(!t.insert(order(0, 999)), "{places}: all live");
            assert_eq!(t.live_of(0), places);
            t.mark_done(order(0, 0).id);
            assert!(t.insert(order(0, 999)), "{places}: the freed place");
            assert!(t.get(order(0, 1).id).is_some());
        }
    }

    proptest::proptest! {
        /// The table against a model: live counts per subscription, the crowded
        /// count per group, and every live order found.
        #[test]
        fn order_table_agrees_with_a_model(ops in proptest::collection::vec((0u32..6, 0u64..30, proptest::bool::ANY), 1..300), places in 2usize..10) {
            let groups = [0u32, 0, 1, 1, 1, 2];
            let mut t = OrderTable::new(&groups, places, 20);
            let mut live: Vec<Vec<u64>> = vec![Vec::new(); groups.len()];
            for (step, (sub, pick, finish)) in ops.into_iter().enumerate() {
                let l = &mut live[sub as usize];
                if finish {
                    if !l.is_empty() {
                        let id = l.remove(pick as usize % l.len());
                        t.mark_done(id);
                    }
                } else {
                    // A fresh id each time (finished ids stay tracked for late fills).
                    let total: usize = live.iter().map(|v| v.len()).sum();
                    let l = &mut live[sub as usize];
                    let fits = l.len() < places && total < 20;
                    let o = order(sub, 1000 + step as u64);
                    proptest::prop_assert_eq!(t.insert(o), fits);
                    if fits {
                        l.push(o.id);
                    }
                }
                let total: usize = live.iter().map(|v| v.len()).sum();
                proptest::prop_assert_eq!(t.live(), total);
                for g in 0..3u32 {
                    let crowded = (0..groups.len()).filter(|s| groups[*s] == g && places - live[*s].len() < 2).count();
                    let want = crowded == 0 && (total == 0 || total + 2 <= 20);
                    proptest::prop_assert_eq!(t.has_room(g, 2), want);
                }
                for (s, l) in live.iter().enumerate() {
                    proptest::prop_assert_eq!(t.live_of(s), l.len());
                    for id in l {
                        proptest::prop_assert!(t.get(*id).is_some());
                    }
                }
            }
        }

        /// The index against std's HashMap, on a table small enough that probe runs
        /// wrap around and deletions shift entries across the end.
        #[test]
        fn id_index_agrees_with_a_hash_map(ops in proptest::collection::vec((0u8..3, 0u64..40, 0u32..9), 1..400)) {
            let mut idx: IdIndex<u32> = IdIndex::with_capacity(24);
            let mut model = std::collections::HashMap::new();
            for (op, id, v) in ops {
                match op {
                    0 if model.len() < 24 => {
                        let r = idx.insert(id, v);
                        match model.get(&id) {
                            Some(first) => proptest::prop_assert!(matches!(r, Probe::Present(x) if x == *first)),
                            None => {
                                proptest::prop_assert!(matches!(r, Probe::Inserted));
                                model.insert(id, v);
                            }
                        }
                    }
                    1 => proptest::prop_assert_eq!(idx.remove(id), model.remove(&id)),
                    _ => proptest::prop_assert_eq!(idx.get(id), model.get(&id).copied()),
                }
                proptest::prop_assert_eq!(idx.len(), model.len());
                for (k, v) in &model {
                    proptest::prop_assert_eq!(idx.get(*k), Some(*v));
                }
            }
        }

        /// The bounded map forgets exactly the oldest ids, like a queue.
        #[test]
        fn bounded_map_forgets_the_oldest_first(ids in proptest::collection::vec(0u64..50, 1..300), cap in 1usize..20) {
            let mut m: BoundedMap<u64> = BoundedMap::new(cap);
            let mut queue: std::collections::VecDeque<(u64, u64)> = Default::default();
            for (i, id) in ids.into_iter().enumerate() {
                let want = queue.iter().find(|(k, _)| *k == id).map(|(_, v)| *v);
                proptest::prop_assert_eq!(m.insert(id, i as u64), want);
                if want.is_none() {
                    if queue.len() == cap {
                        queue.pop_front();
                    }
                    queue.push_back((id, i as u64));
                }
                proptest::prop_assert_eq!(m.len(), queue.len());
                for (k, _) in &queue {
                    proptest::prop_assert!(m.contains(*k));
                }
            }
        }
    }
}
