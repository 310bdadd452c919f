//! fillcast venues and leader-fill sources, behind the engine's `port` traits.
//!
//! - [`sim::SimVenue`]: the simulated venue (latency, partial fills, rejects, venue-side
//!   books), the embedded default for the demo, the tests and the bench.
//! - [`file::FileSource`]: replays leader fills from a JSON-lines file.
//! - [`synthetic::SyntheticLeaders`]: the demo's deterministic leader-trading generator.
//!
//! **Architecture Invariant:** nothing here runs on the core stage; gateways and sources
//! are driven by the I/O thread, and venue rules (lot, tick, minimums) are checked here,
//! never in the engine.
//!
//! **Architecture Invariant:** no `f64` decides a quantity, a price or money; time comes
//! from the `now` argument, never from the wall clock, so every component is
//! reproducible from its inputs and seed.

pub mod file;
pub mod sim;
pub mod synthetic;

pub use file::{FileSource, FileSourceStats, OpenError};
pub use sim::{SimStats, SimVenue};
pub use synthetic::SyntheticLeaders;

/// A fast hasher for keys that are `u64` ids (order ids, event keys): one splitmix
/// finaliser, which spreads sequential ids as well as hashed ones.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        fillcast_engine::ids::mix64(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = self.0.rotate_left(29) ^ v;
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }

    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64);
    }
}

pub(crate) type IdBuildHasher = std::hash::BuildHasherDefault<IdHasher>;

/// A set of recently seen `u64` ids with a fixed maximum: the oldest id is forgotten
/// when it is full. Used for duplicate detection where remembering everything forever
/// would grow without bound.
pub(crate) struct RecentIds {
    seen: std::collections::HashMap<u64, u64, IdBuildHasher>,
    order: std::collections::VecDeque<u64>,
    ids_max: usize,
}

impl RecentIds {
    pub(crate) fn new(ids_max: usize) -> RecentIds {
        let ids_max = ids_max.max(1);
        RecentIds {
            seen: std::collections::HashMap::with_hasher(IdBuildHasher::default()),
            order: std::collections::VecDeque::new(),
            ids_max,
        }
    }

    /// Remembers `id` with `tag` and returns `None`, or returns the tag it was first
    /// seen with (and leaves the first tag in place).
    pub(crate) fn insert(&mut self, id: u64, tag: u64) -> Option<u64> {
        if let Some(&first) = self.seen.get(&id) {
            return Some(first);
        }
        if self.order.len() == self.ids_max {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        self.seen.insert(id, tag);
        self.order.push_back(id);
        debug_assert!(self.order.len() <= self.ids_max);
        debug_assert_eq!(self.order.len(), self.seen.len());
        None
    }
}
