//! The running engine: rings, the core thread and the I/O thread.
//!
//! ```text
//!  sources ──► feed ring ──┐                     ┌─► egress ring (venue A) ─► gateway A
//!                          ├─► core thread ──────┤
//!  gateways ─► exec ring ──┘   (Core)            └─► egress ring (venue B) ─► gateway B
//! ```
//!
//! Two threads, so a 2-core machine works well: the core thread (optionally pinned)
//! and one I/O thread that polls every source and every gateway's egress ring with
//! `EventPoller`s instead of giving each stage its own spinning thread.
//!
//! Backpressure, never loss, and no deadlock: the core thread never blocks on a full
//! egress ring (orders spill into a preallocated outbox, bounded by the order table,
//! and no new feed events are taken until it drains), and it always drains the exec
//! ring; the I/O thread never blocks on the feed ring (it holds one pending event
//! per source) and blocks on the exec ring only for as long as the core takes to
//! drain it.
//!
//! The core takes a feed event only when it has order places for it
//! (`Core::ready_for`); until then the event waits in the core thread and the feed
//! ring fills, which slows the sources: a full order table is backpressure, never a
//! skipped order. A gateway's link going down or up travels on the exec ring
//! (`ExecEvent::Venue`), which the core always drains, and the core thread makes a
//! `FeedEvent::Tick` whenever the core asks for one (`Core::wake_at`), so the
//! resync runs on journaled time.
//!
//! The journal stage runs beside the core stage, not in front of it: the core puts
//! every input it takes and every output into a journal ring (chunks of entries),
//! which the I/O thread appends to the `JournalSink`. An egress chunk carries the
//! number of journal chunks published before it, and the I/O thread hands no order
//! to a gateway before those are appended (and flushed, if durability says so): an
//! order never leaves before its journal record. The I/O thread never blocks on
//! anything, so the core may wait for room in the journal ring.

use crate::clock;
use crate::config::{EngineConfig, WaitConfig};
use crate::core::Core;
use crate::event::{
    ExecEvent, ExecKind, ExecReport, FeedEvent, FollowerOrder, OrderChunk, RejectReason,
    ORDER_CHUNK,
};
use crate::model::{Universe, VenueIdx};
use crate::order::IdHash;
use crate::outputs::Outputs;
use crate::outputs::{Decision, Notice};
use crate::port::{
    AskedOrder, Gateway, JournalEntry, JournalSink, SinkError, Source, SourceError, SourcePoll,
    VenueError,
};
use crate::units::Nanos;
use crossbeam::utils::CachePadded;
use disruptor::{build_multi_producer, build_single_producer, BusySpin, Producer};
use hdrhistogram::Histogram;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Feed events the core takes per poll; their orders are all published before the next poll.
const FEED_BATCH: u64 = 16;
/// Exec reports the core takes per poll.
const EXEC_BATCH: u64 = 1024;
/// Egress slots the I/O thread takes per gateway per turn.
const EGRESS_BATCH: u64 = 8;
/// Source events the I/O thread moves per source per turn.
const SOURCE_BATCH: usize = 256;
/// Source errors kept verbatim (the rest are only counted).
const SOURCE_ERRORS_KEPT: usize = 1000;
/// Journal entries per journal ring slot.
pub const JOURNAL_CHUNK: usize = 32;
/// Busy turns of the core thread between copies of its counters to
/// `Progress::stats` while it stays busy (it also copies them when it goes idle).
const STATS_EVERY: u32 = 256;
/// Journal ring slots the I/O thread takes per poll.
const JOURNAL_BATCH: u64 = 64;

/// One journal ring slot.
#[derive(Copy, Clone, Debug)]
pub struct JournalChunk {
    pub len: u32,
    pub entries: [JournalEntry; JOURNAL_CHUNK],
}

impl Default for JournalChunk {
    fn default() -> Self {
        JournalChunk {
            len: 0,
            entries: [JournalEntry::Empty; JOURNAL_CHUNK],
        }
    }
}

/// Counters shared between threads (relaxed atomics: each has one writer).
///
/// Those written on every event or batch sit each on its own cache line pair
/// (`CachePadded`, 128 bytes on x86-64 for the adjacent-line prefetcher): the
/// I/O thread's `feed_published` beside the core thread's `feed_done` made every
/// event move the line between the two cores (false sharing). The rest change
/// on rare events only.
#[derive(Default)]
pub struct Progress {
    pub feed_published: CachePadded<AtomicU64>,
    pub feed_done: CachePadded<AtomicU64>,
    pub exec_published: CachePadded<AtomicU64>,
    pub exec_done: CachePadded<AtomicU64>,
    pub chunks_published: CachePadded<AtomicU64>,
    pub chunks_taken: CachePadded<AtomicU64>,
    pub orders_out: CachePadded<AtomicU64>,
    pub live_orders: AtomicU64,
    pub outbox_orders: CachePadded<AtomicU64>,
    pub in_flight: CachePadded<AtomicU64>,
    pub sources_finished: AtomicBool,
    pub source_rejected: AtomicU64,
    /// Leader events a source gave again that the journal already holds, dropped.
    pub source_duplicates: AtomicU64,
    /// Orders derived again after a journal cut that the venue already held, so
    /// were not sent again (`Restart::ask_first`).
    pub orders_known_at_venue: AtomicU64,
    pub leader_fills: CachePadded<AtomicU64>,
    pub journal_published: AtomicU64,
    pub journal_appended: CachePadded<AtomicU64>,
    /// Exec reports the I/O thread holds because the exec ring was full.
    pub exec_pending: AtomicU64,
    pub journal_failed: AtomicBool,
    /// Pairs waiting for the resync, and those of them stuck behind a venue that
    /// is down past its alarm.
    pub resync_pending: AtomicU64,
    pub resync_stuck: AtomicU64,
    /// Feed events the core holds back for want of order places (backpressure).
    pub feed_held: CachePadded<AtomicU64>,
    /// Times a feed event waited for order places (once per wait).
    pub backpressure_waits: AtomicU64,
    /// Venues whose gateway is down now.
    pub venues_down: AtomicU64,
    /// A venue alarm stopped the engine (`engine.on_venue_down = "stop"`).
    pub halted: AtomicBool,
    /// Venues down past `engine.venue_down_alarm_ms` now (`Core::alarmed_venues`).
    pub venues_alarmed: AtomicU64,
    /// Lines for the operator, made as things happen (a venue lost or back); the
    /// command line prints and empties it. Written only on such events.
    pub events: Mutex<Vec<String>>,
    /// The journal's last sequence number and the bytes this run appended.
    pub journal_seq: CachePadded<AtomicU64>,
    pub journal_bytes: CachePadded<AtomicU64>,
    /// Bit `v` set while venue `v` (of the first 64) is down.
    pub venues_down_mask: AtomicU64,
    /// The revision of the decision model the core decides under now.
    pub revision: AtomicU64,
    /// Reloads the core applied, and those it could not (`Core::apply_revision`).
    pub reloads_applied: AtomicU64,
    pub reloads_refused: AtomicU64,
    /// Receive time minus venue time of the last leader fill taken, ns (0 when the
    /// venue time is later than the receive time).
    pub ingest_lag_ns: CachePadded<AtomicU64>,
    /// Set by `Running::drain`: the I/O thread takes nothing more from the
    /// sources (what it holds still goes in), so the run ends once what is in
    /// flight is answered.
    pub draining: AtomicBool,
    /// New revisions on their way to the core thread and then to the journal.
    pub reloads: Reloads,
    /// The core's counters, copied out by the core thread when it goes idle and
    /// every `STATS_EVERY` busy turns.
    pub stats: SharedStats,
    /// Fan-out latency per leader fill (as `CoreOutcome::fanout_ns`), in buckets
    /// readable while the engine runs.
    pub fanout: LatencyBuckets,
}

/// Upper bounds of `LatencyBuckets`, ns (the last bucket is everything above).
pub const LATENCY_BOUNDS_NS: [u64; 19] = [
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
];

/// A latency histogram of fixed buckets, written by one thread with relaxed
/// atomics (three per value) and read by any.
#[derive(Default)]
pub struct LatencyBuckets {
    /// Per bucket (not cumulative); `[LATENCY_BOUNDS_NS.len()]` is above the last bound.
    counts: [AtomicU64; LATENCY_BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl LatencyBuckets {
    fn record(&self, ns: u64) {
        let i = LATENCY_BOUNDS_NS.partition_point(|&b| b < ns);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    /// (cumulative count at or below each bound, count of all, sum in ns).
    pub fn read(&self) -> ([u64; LATENCY_BOUNDS_NS.len()], u64, u64) {
        let mut cum = [0u64; LATENCY_BOUNDS_NS.len()];
        let mut run = 0;
        for (i, c) in cum.iter_mut().enumerate() {
            run += self.counts[i].load(Relaxed);
            *c = run;
        }
        let all = run + self.counts[LATENCY_BOUNDS_NS.len()].load(Relaxed);
        (cum, all, self.sum_ns.load(Relaxed))
    }
}

/// A validated new revision of the decision model (`FeedEvent::Revision`): what
/// it changes, worked out off the core thread, and its TOML.
pub struct NewRevision {
    pub patch: crate::core::RevisionPatch,
    /// The model's TOML (`Config::model_toml`), journaled as config records.
    pub model_toml: String,
    /// The model it brings: once journaled, the I/O thread's sources resolve
    /// names against it (`Source::universe_changed`), so a leader the revision
    /// adds is taken from then on.
    pub universe: Arc<Universe>,
    /// Each symbol's gateway under the new model, for the core thread's egress
    /// (a symbol the revision adds routes its orders from then on); swapped in
    /// there, so the core thread allocates nothing.
    venue_of_symbol: Vec<usize>,
}

impl NewRevision {
    pub fn new(
        patch: crate::core::RevisionPatch,
        model_toml: String,
        universe: Arc<Universe>,
    ) -> NewRevision {
        NewRevision {
            patch,
            model_toml,
            venue_of_symbol: venue_of_symbol(&universe),
            universe,
        }
    }
}

/// `v[s]`: the venue (and so the gateway and egress ring) of symbol `s`.
fn venue_of_symbol(universe: &Universe) -> Vec<usize> {
    universe
        .symbols
        .iter()
        .map(|s| s.venue.0 as usize)
        .collect()
}

/// How a reload crosses the threads without a lock: whoever validated a revision
/// pushes it to `to_core` and then puts its `FeedEvent::Revision` into a source;
/// the core thread takes it when it takes that event and, once applied, passes
/// it on to the I/O thread, which journals its config records in the event's place.
pub struct Reloads {
    to_core: crossbeam::queue::ArrayQueue<Box<NewRevision>>,
    to_journal: crossbeam::queue::ArrayQueue<Box<NewRevision>>,
}

/// Reloads that may be on their way at once.
const RELOADS_IN_FLIGHT: usize = 16;

impl Default for Reloads {
    fn default() -> Self {
        Reloads {
            to_core: crossbeam::queue::ArrayQueue::new(RELOADS_IN_FLIGHT),
            to_journal: crossbeam::queue::ArrayQueue::new(RELOADS_IN_FLIGHT),
        }
    }
}

impl Reloads {
    /// Hand `r` to the core thread; then send its `FeedEvent::Revision`. `Err`
    /// gives it back when too many reloads are on their way already.
    pub fn hand_over(&self, r: Box<NewRevision>) -> Result<(), Box<NewRevision>> {
        self.to_core.push(r)
    }

    /// The revision `revision`, skipping any handed over before it and never
    /// announced (their sender gave up).
    fn take(
        q: &crossbeam::queue::ArrayQueue<Box<NewRevision>>,
        revision: u64,
    ) -> Option<Box<NewRevision>> {
        while let Some(r) = q.pop() {
            if r.patch.revision() == revision {
                return Some(r);
            }
        }
        None
    }
}

macro_rules! shared_stats {
    ($($field:ident),* $(,)?) => {
        /// `CoreStats`, readable from any thread (relaxed atomics; the core thread
        /// is their only writer). A snapshot may mix two turns' counts.
        #[derive(Default)]
        pub struct SharedStats {
            $($field: AtomicU64,)*
            by_status: [AtomicU64; <crate::outputs::DecisionStatus as crate::codes::Coded>::ALL.len()],
            by_reason: [AtomicU64; <crate::outputs::Reason as crate::codes::Coded>::ALL.len()],
            by_reject: [AtomicU64; <RejectReason as crate::codes::Coded>::ALL.len()],
        }

        impl SharedStats {
            fn publish(&self, s: &crate::core::CoreStats) {
                $(self.$field.store(s.$field, Relaxed);)*
                for (a, v) in self.by_status.iter().zip(s.by_status) {
                    a.store(v, Relaxed);
                }
                for (a, v) in self.by_reason.iter().zip(s.by_reason) {
                    a.store(v, Relaxed);
                }
                for (a, v) in self.by_reject.iter().zip(s.by_reject) {
                    a.store(v, Relaxed);
                }
            }

            /// What the core had counted at its last busy turn.
            pub fn snapshot(&self) -> crate::core::CoreStats {
                let mut s = crate::core::CoreStats::default();
                $(s.$field = self.$field.load(Relaxed);)*
                for (v, a) in s.by_status.iter_mut().zip(&self.by_status) {
                    *v = a.load(Relaxed);
                }
                for (v, a) in s.by_reason.iter_mut().zip(&self.by_reason) {
                    *v = a.load(Relaxed);
                }
                for (v, a) in s.by_reject.iter_mut().zip(&self.by_reject) {
                    *v = a.load(Relaxed);
                }
                s
            }
        }
    };
}

shared_stats!(
    leader_fills,
    duplicate_events,
    invalid_events,
    mark_prices,
    fundings,
    follower_equities,
    commands,
    decisions,
    orders_sent,
    reduce_only_orders,
    exec_reports,
    fills,
    duplicate_fills,
    unknown_reports,
    overfills,
    restated,
    adopted,
    unadopted,
    rejects,
    retries,
    resyncs,
    gave_up,
    ticks,
    venue_downs,
    venue_alarms,
    oddities,
    stops,
);

impl Progress {
    /// Every input has been handled and every order answered.
    pub fn idle(&self) -> bool {
        self.sources_finished.load(Relaxed)
            && self.feed_published.load(Relaxed) == self.feed_done.load(Relaxed)
            && self.exec_published.load(Relaxed) == self.exec_done.load(Relaxed)
            && self.chunks_published.load(Relaxed) == self.chunks_taken.load(Relaxed)
            && self.live_orders.load(Relaxed) == 0
            && self.outbox_orders.load(Relaxed) == 0
            && self.in_flight.load(Relaxed) == 0
            && self.exec_pending.load(Relaxed) == 0
            && self.feed_held.load(Relaxed) == 0
            && self.resync_pending.load(Relaxed) == self.resync_stuck.load(Relaxed)
            && self.journal_published.load(Relaxed) == self.journal_appended.load(Relaxed)
    }

    /// Everything that can still move has: what is left (orders in flight, pairs
    /// waiting) waits for a venue that is down past its alarm.
    pub fn stuck_on_venue(&self) -> bool {
        self.sources_finished.load(Relaxed)
            && self.venues_down.load(Relaxed) > 0
            && self.feed_published.load(Relaxed) == self.feed_done.load(Relaxed)
            && self.exec_published.load(Relaxed) == self.exec_done.load(Relaxed)
            && self.resync_pending.load(Relaxed) == self.resync_stuck.load(Relaxed)
            && self.resync_stuck.load(Relaxed) > 0
    }

    /// Whether venue `v`'s gateway has its session now (venues past the 64th are
    /// not tracked, and read as up).
    pub fn venue_up(&self, v: usize) -> bool {
        v >= 64 || self.venues_down_mask.load(Relaxed) & (1 << v) == 0
    }

    /// Take the operator lines made since the last call.
    pub fn take_events(&self) -> Vec<String> {
        match self.events.lock() {
            Ok(mut e) => std::mem::take(&mut *e),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }

    fn event(&self, line: String) {
        match self.events.lock() {
            Ok(mut e) => e.push(line),
            Err(poisoned) => poisoned.into_inner().push(line),
        }
    }
}

/// The operator's line for a notice that needs a person: a subscription stopped,
/// or a pair the resync gave up on.
fn notice_line(u: &Universe, e: &JournalEntry) -> Option<String> {
    let sub_id = |s: crate::model::SubIdx| u.subs.get(s.0 as usize).map_or("?", |x| x.id.as_str());
    match e {
        JournalEntry::Notice(Notice::Stopped { sub, reason }) => Some(format!(
            "subscription {} STOPPED ({}): its copied positions are being closed",
            sub_id(*sub),
            reason.as_str()
        )),
        JournalEntry::Notice(Notice::OutOfSync { sub, symbol, why }) => Some(format!(
            "subscription {} OUT OF SYNC in {} ({}): it stays off its target until `fillcast ctl resync subscription {}` or the leader's next fill there",
            sub_id(*sub),
            u.symbols.get(symbol.0 as usize).map_or("?", |x| x.name.as_str()),
            why.as_str(),
            sub_id(*sub)
        )),
        _ => None,
    }
}

/// Appends `entries` in order; a `FeedEvent::Revision` among them goes in as that
/// revision's config records, in its place, written by `revision` (which knows
/// where the revision's model is). The pipeline's I/O thread and the simulator
/// journal reloads through this.
pub fn append_with_revisions<S: JournalSink + ?Sized>(
    sink: &mut S,
    mut entries: &[JournalEntry],
    mut revision: impl FnMut(&mut S, u64, Nanos) -> Result<(), SinkError>,
) -> Result<(), SinkError> {
    while let Some(i) = entries
        .iter()
        .position(|e| matches!(e, JournalEntry::Feed(FeedEvent::Revision { .. })))
    {
        let JournalEntry::Feed(FeedEvent::Revision { revision: r, ts }) = entries[i] else {
            unreachable!("found above");
        };
        if i > 0 {
            sink.append(&entries[..i])?;
        }
        revision(sink, r, ts)?;
        entries = &entries[i + 1..];
    }
    if entries.is_empty() {
        return Ok(());
    }
    sink.append(entries)
}

/// One journal chunk from the core: a new revision it took is journaled from the
/// model handed over with it (`Reloads`).
fn append_chunk(
    sink: &mut dyn JournalSink,
    entries: &[JournalEntry],
    reloads: &Reloads,
    universe: &mut Arc<Universe>,
) -> Result<(), SinkError> {
    append_with_revisions(sink, entries, |sink, revision, ts| {
        let r = Reloads::take(&reloads.to_journal, revision).ok_or_else(|| {
            SinkError(
                format!("revision {revision:016x} was applied but not handed to the journal")
                    .into(),
            )
        })?;
        sink.revision(revision, &r.model_toml, ts)?;
        *universe = Arc::clone(&r.universe);
        Ok(())
    })
}

/// What the core thread hands back when it stops.
pub struct CoreOutcome {
    pub core: Core,
    /// Per leader fill: from the start of its handling to its last order in the egress ring, ns.
    pub fanout_ns: Histogram<u64>,
    /// Per leader fill: from its receipt by the source to its last order in the egress ring, ns.
    pub receive_to_egress_ns: Histogram<u64>,
    /// Times a leader fill waited for order places (backpressure).
    pub backpressure_waits: u64,
}

pub struct IoOutcome {
    pub gateways: Vec<Box<dyn Gateway>>,
    pub sources: Vec<Box<dyn Source>>,
    /// The first `SOURCE_ERRORS_KEPT` rejected inputs (each was also printed as
    /// it happened, through `Progress::take_events`).
    pub source_errors: Vec<SourceError>,
    /// Every rejected input, counted.
    pub source_rejected: u64,
    /// Leader events given again that the journal already held, dropped.
    pub source_duplicates: u64,
    pub journal: Option<Box<dyn JournalSink>>,
    /// Why the I/O thread stopped handing orders to venues, if it did.
    pub journal_error: Option<Stopped>,
}

/// Why the I/O thread stopped handing orders to venues (it fails closed: an
/// order it cannot journal, or cannot tell apart from one sent before, stays).
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    /// The journal could not take or keep entries.
    #[error(transparent)]
    Journal(#[from] SinkError),
    /// After a journal cut, a venue could not say which orders it holds.
    #[error(
        "{0} (orders derived again after a journal cut); no more orders were sent: run again to ask again"
    )]
    AskFirst(VenueError),
}

pub struct Running {
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    core: JoinHandle<CoreOutcome>,
    io: JoinHandle<IoOutcome>,
}

impl Running {
    /// Wait until every source has finished and everything it caused is answered
    /// (or waits for a venue down past its alarm: `Progress::stuck_on_venue`), or a
    /// venue alarm stopped the core, calling `tick` about every `every` (for
    /// progress output). Then stop.
    pub fn run_to_completion(
        self,
        every: Duration,
        mut tick: impl FnMut(&Progress),
    ) -> (CoreOutcome, IoOutcome) {
        let mut idle_seen = 0;
        loop {
            std::thread::sleep(every.min(Duration::from_millis(20)));
            tick(&self.progress);
            // Idle twice in a row: nothing was in flight between the two looks. Or
            // all that is left waits for a venue that is down past its alarm.
            if self.progress.idle() || self.progress.stuck_on_venue() {
                idle_seen += 1;
                if idle_seen >= 2 {
                    break;
                }
            } else {
                idle_seen = 0;
            }
            if self.core.is_finished()
                || self.io.is_finished()
                || self.progress.journal_failed.load(Relaxed)
                || self.progress.halted.load(Relaxed)
            {
                break;
            }
        }
        // Once more after the threads stop: what they reported last is printed too.
        let progress = Arc::clone(&self.progress);
        let out = self.stop();
        tick(&progress);
        out
    }

    /// For a live engine: wait, calling `tick` about every `every`, until
    /// `shutdown` is set or the engine cannot go on (a thread ended, the journal
    /// failed, a venue alarm stopped it). Then the caller drains it
    /// (`Progress::draining`) and runs it to completion.
    pub fn wait_for(
        &self,
        every: Duration,
        shutdown: &AtomicBool,
        mut tick: impl FnMut(&Progress),
    ) {
        while !shutdown.load(Relaxed)
            && !self.core.is_finished()
            && !self.io.is_finished()
            && !self.progress.journal_failed.load(Relaxed)
            && !self.progress.halted.load(Relaxed)
        {
            std::thread::sleep(every);
            tick(&self.progress);
        }
    }

    pub fn stop(self) -> (CoreOutcome, IoOutcome) {
        self.stop.store(true, Relaxed);
        let core = self
            .core
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        let io = self
            .io
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        (core, io)
    }
}

/// Idle waiting between polls, per `engine.wait`.
#[derive(Copy, Clone)]
struct Backoff {
    mode: WaitConfig,
    idle: u32,
}

impl Backoff {
    fn new(mode: WaitConfig) -> Backoff {
        Backoff { mode, idle: 0 }
    }
    fn reset(&mut self) {
        self.idle = 0;
    }
    fn wait(&mut self) {
        self.idle = self.idle.saturating_add(1);
        match self.mode {
            WaitConfig::Spin => {}
            WaitConfig::SpinHint => std::hint::spin_loop(),
            WaitConfig::Sleep => std::thread::sleep(Duration::from_micros(50)),
            WaitConfig::Backoff => {
                if self.idle < 200 {
                    std::hint::spin_loop();
                } else if self.idle < 400 {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(Duration::from_micros(50));
                }
            }
        }
    }
}

/// The core thread's `Outputs`: orders go in chunks to the right venue's egress
/// ring; inputs, decisions, orders and notices go in chunks to the journal ring.
struct EgressSink<P, J> {
    producers: Vec<P>,
    chunks: Vec<OrderChunk>,
    outbox: Vec<VecDeque<FollowerOrder>>,
    venue_of_symbol: Vec<usize>,
    journal: Option<J>,
    jchunk: JournalChunk,
    journal_published: u64,
    /// A venue's chunk that an order filled, handed on after that order's
    /// decision is journaled (`Outputs::decision`): handed on at once, the
    /// journal chunk published before it would end between the order and its
    /// decision, which then cannot share a row (a record each, one order in 32).
    full: Option<usize>,
    progress: Arc<Progress>,
}

impl<P: Producer<OrderChunk>, J: Producer<JournalChunk>> EgressSink<P, J> {
    fn new(
        producers: Vec<P>,
        journal: Option<J>,
        universe: &Universe,
        cfg: &EngineConfig,
        progress: &Arc<Progress>,
    ) -> EgressSink<P, J> {
        let n_gw = producers.len();
        EgressSink {
            producers,
            chunks: vec![OrderChunk::default(); n_gw],
            // Bounded by the order table: the core never has more orders than that.
            outbox: (0..n_gw)
                .map(|_| VecDeque::with_capacity(cfg.max_working_orders))
                .collect(),
            venue_of_symbol: venue_of_symbol(universe),
            journal,
            jchunk: JournalChunk::default(),
            journal_published: 0,
            full: None,
            progress: Arc::clone(progress),
        }
    }

    #[inline(always)]
    fn journal(&mut self, e: JournalEntry) {
        if self.journal.is_none() {
            return;
        }
        // An order does not end a chunk: the decision that follows it goes in
        // the same chunk, so the two share a row (`JournalStage`), not a record
        // each. The chunk goes one entry short.
        if self.jchunk.len as usize == JOURNAL_CHUNK - 1 && matches!(e, JournalEntry::Order(_)) {
            self.publish_journal();
        }
        let c = &mut self.jchunk;
        c.entries[c.len as usize] = e;
        c.len += 1;
        if c.len as usize == JOURNAL_CHUNK {
            self.publish_journal();
        }
    }

    /// Publish the partial journal chunk. Waits for room: the I/O thread never
    /// blocks, so room always comes.
    fn publish_journal(&mut self) {
        if self.jchunk.len == 0 {
            return;
        }
        if let Some(j) = self.journal.as_mut() {
            let chunk = self.jchunk;
            j.publish(|slot| *slot = chunk);
            self.journal_published += 1;
            self.progress
                .journal_published
                .store(self.journal_published, Relaxed);
        }
        self.jchunk.len = 0;
    }

    fn push_chunk(&mut self, g: usize) {
        // The journal records of these orders go first (see the module docs).
        self.publish_journal();
        let mut chunk = self.chunks[g];
        chunk.journal_upto = self.journal_published;
        self.chunks[g].len = 0;
        if self.outbox[g].is_empty() && self.producers[g].try_publish(|slot| *slot = chunk).is_ok()
        {
            self.progress.chunks_published.fetch_add(1, Relaxed);
            return;
        }
        self.outbox[g].extend(chunk.as_slice().iter().copied());
    }

    /// Publish what is waiting; true when nothing is left behind.
    fn flush(&mut self) -> bool {
        // A full chunk is pushed below with the partial ones.
        self.full = None;
        let mut empty = true;
        for g in 0..self.producers.len() {
            while !self.outbox[g].is_empty() {
                let n = self.outbox[g].len().min(ORDER_CHUNK);
                let mut chunk = OrderChunk {
                    journal_upto: self.journal_published,
                    ..OrderChunk::default()
                };
                for (dst, src) in chunk.orders.iter_mut().zip(self.outbox[g].iter()) {
                    *dst = *src;
                }
                chunk.len = n as u32;
                if self.producers[g].try_publish(|slot| *slot = chunk).is_err() {
                    break;
                }
                self.progress.chunks_published.fetch_add(1, Relaxed);
                self.outbox[g].drain(..n);
            }
            if self.chunks[g].len > 0 {
                self.push_chunk(g);
            }
            empty &= self.outbox[g].is_empty();
        }
        self.publish_journal();
        let waiting: usize = self.outbox.iter().map(|o| o.len()).sum();
        self.progress.outbox_orders.store(waiting as u64, Relaxed);
        empty
    }
}

impl<P: Producer<OrderChunk>, J: Producer<JournalChunk>> Outputs for EgressSink<P, J> {
    #[inline(always)]
    fn order(&mut self, order: &FollowerOrder) {
        // Another order before a decision (a flip's two legs): the full chunk
        // goes now, as it must before this order could land in it.
        if let Some(g) = self.full.take() {
            self.push_chunk(g);
        }
        self.journal(JournalEntry::Order(*order));
        let g = self.venue_of_symbol[order.symbol.0 as usize];
        let c = &mut self.chunks[g];
        c.orders[c.len as usize] = *order;
        c.len += 1;
        if c.len as usize == ORDER_CHUNK {
            self.full = Some(g);
        }
    }

    #[inline(always)]
    fn decision(&mut self, d: &Decision) {
        self.journal(JournalEntry::Decision(*d));
        if let Some(g) = self.full.take() {
            self.push_chunk(g);
        }
    }

    fn notice(&mut self, n: &Notice) {
        self.journal(JournalEntry::Notice(*n));
    }
}

/// The I/O thread's side of the journal stage.
struct Journaling<R> {
    rx: Option<R>,
    /// The model of the latest revision journaled, for the names in the
    /// operator's lines about notices (a revision keeps every index's name).
    universe: Arc<Universe>,
    /// A revision journaled since the sources were last told (`Source::universe_changed`).
    new_universe: Option<Arc<Universe>>,
    sink: Option<Box<dyn JournalSink>>,
    /// Journal chunks appended so far.
    appended: u64,
    /// Appended since the last `before_send`.
    unflushed: bool,
    error: Option<Stopped>,
}

impl<R: JournalPoller> Journaling<R> {
    fn new(
        rx: Option<R>,
        sink: Option<Box<dyn JournalSink>>,
        universe: Arc<Universe>,
    ) -> Journaling<R> {
        Journaling {
            rx,
            sink,
            universe,
            new_universe: None,
            appended: 0,
            unflushed: false,
            error: None,
        }
    }

    /// Append what the core has published. Returns the chunks appended.
    fn drain(&mut self, progress: &Progress) -> u64 {
        let (Some(rx), Some(sink)) = (self.rx.as_mut(), self.sink.as_mut()) else {
            // Without a journal, reloads the core took are only freed here.
            while let Some(r) = progress.reloads.to_journal.pop() {
                self.universe = Arc::clone(&r.universe);
                self.new_universe = Some(r.universe);
            }
            return 0;
        };
        if self.error.is_some() {
            return 0;
        }
        let mut n = 0;
        let error = &mut self.error;
        let u = &mut self.universe;
        let before = u.revision;
        rx.take_chunks(JOURNAL_BATCH, &mut |chunk: &JournalChunk| {
            if error.is_none() {
                let entries = &chunk.entries[..chunk.len as usize];
                match append_chunk(sink.as_mut(), entries, &progress.reloads, u) {
                    Ok(()) => n += 1,
                    Err(e) => *error = Some(Stopped::Journal(e)),
                }
                // What an operator must see at once, with the subscription's id
                // (a later revision names every index an earlier one did).
                for e in entries {
                    if let Some(line) = notice_line(u, e) {
                        progress.event(line);
                    }
                }
            }
        });
        if self.universe.revision != before {
            self.new_universe = Some(Arc::clone(&self.universe));
        }
        if self.error.is_some() {
            progress.journal_failed.store(true, Relaxed);
        }
        self.appended += n;
        self.unflushed |= n > 0;
        progress.journal_appended.store(self.appended, Relaxed);
        if n > 0 {
            let (seq, bytes) = sink.position();
            progress.journal_seq.store(seq, Relaxed);
            progress.journal_bytes.store(bytes, Relaxed);
        }
        n
    }

    /// Whether orders that need `upto` journal chunks may leave now: appends what is
    /// missing (the core published it before the orders) and flushes as configured.
    fn ready_for(&mut self, upto: u64, progress: &Progress) -> bool {
        if self.sink.is_none() {
            // Reloads the core took before these orders were made (it hands
            // each over before it publishes anything after it).
            self.drain(progress);
            return true;
        }
        while self.appended < upto && self.error.is_none() {
            if self.drain(progress) == 0 {
                std::hint::spin_loop();
            }
        }
        if self.unflushed && self.error.is_none() {
            if let Some(sink) = self.sink.as_mut() {
                if let Err(e) = sink.before_send() {
                    self.error = Some(Stopped::Journal(e));
                    progress.journal_failed.store(true, Relaxed);
                }
            }
            self.unflushed = false;
        }
        self.error.is_none()
    }

    /// The sink's idle-time duty (`JournalSink::tick`: a timed flush of a quiet tail).
    fn tick(&mut self, progress: &Progress) {
        if let (Some(sink), None) = (self.sink.as_mut(), self.error.as_ref()) {
            if let Err(e) = sink.tick() {
                self.error = Some(Stopped::Journal(e));
                progress.journal_failed.store(true, Relaxed);
            }
        }
    }
}

/// The journal ring's poller, named so `Journaling` need not spell its type.
trait JournalPoller {
    fn take_chunks(&mut self, limit: u64, f: &mut dyn FnMut(&JournalChunk));
}

impl JournalPoller for disruptor::EventPoller<JournalChunk, disruptor::SingleProducerBarrier> {
    fn take_chunks(&mut self, limit: u64, f: &mut dyn FnMut(&JournalChunk)) {
        if let Ok(mut batch) = self.take(limit) {
            for chunk in &mut batch {
                f(chunk);
            }
        }
    }
}

/// After a journal cut, the venue may already hold orders the engine has just
/// derived again (same ids: decisions are a pure function of their inputs): asks
/// about each first, hands the venue's answers about those it holds to the core like
/// any report, and sends only those it says it never received. An order it gives no
/// answer about counts as held: never sent blind. How many were held.
fn submit_asking_first(
    gw: &mut dyn Gateway,
    orders: &[FollowerOrder],
    now: Nanos,
    push: &mut dyn FnMut(ExecReport),
) -> Result<u64, Stopped> {
    let asked: Vec<AskedOrder> = orders.iter().map(AskedOrder::from).collect();
    let mut answers: Vec<ExecReport> = Vec::new();
    gw.recover(&asked, &mut |r| answers.push(r))
        .map_err(Stopped::AskFirst)?;
    // Unknown to the venue, and no fill of it came back with the answers (a
    // venue that says both holds it: never sent blind).
    let never_received = |id: u64| {
        let unknown =
            |r: &ExecReport| r.kind == ExecKind::Rejected && r.reject == RejectReason::UnknownOrder;
        let mine = || answers.iter().filter(|r| r.order_id == id);
        mine().any(unknown) && !mine().any(|r| r.kind == ExecKind::Fill)
    };
    let fresh: Vec<FollowerOrder> = orders
        .iter()
        .filter(|o| never_received(o.id))
        .copied()
        .collect();
    for r in answers.iter().filter(|r| !never_received(r.order_id)) {
        push(*r);
    }
    if !fresh.is_empty() {
        gw.submit(&fresh, now, push);
    }
    Ok((orders.len() - fresh.len()) as u64)
}

/// After a journal cut, a gateway stops asking before it sends once this many
/// chunks of leader-fill orders in a row were all new to its venue.
pub const ASK_FIRST_UNTIL_UNKNOWN: u32 = 64;

fn venue_event(g: usize, up: bool, ts: Nanos) -> ExecEvent {
    ExecEvent::Venue(FeedEvent::Venue {
        venue: VenueIdx(g as u16),
        up,
        ts,
    })
}

/// Tell the operator at once, and count the venues down.
fn link_changed(progress: &Progress, g: usize, gw: &dyn Gateway, up: bool) {
    if g < 64 {
        if up {
            progress.venues_down_mask.fetch_and(!(1 << g), Relaxed);
        } else {
            progress.venues_down_mask.fetch_or(1 << g, Relaxed);
        }
    }
    if up {
        progress.venues_down.fetch_sub(1, Relaxed);
        progress.event(format!(
            "venue `{}` is back: in-flight orders settled; the resync brings followers to their targets, closes first",
            gw.name()
        ));
    } else {
        progress.venues_down.fetch_add(1, Relaxed);
        progress.event(format!(
            "VENUE DOWN: `{}`: {}; orders for it wait (leader fills are still taken and journaled), reconnecting",
            gw.name(),
            gw.down_reason().unwrap_or_else(|| "no reason given".into())
        ));
    }
}

fn pin(cpu: Option<usize>) {
    if let Some(id) = cpu {
        // The pinning library panics on an id past the kernel's CPU set, so only
        // ids it lists are tried (`check-config` refuses the others).
        let known = core_affinity::get_core_ids().is_some_and(|ids| ids.iter().any(|c| c.id == id));
        if !known || !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            eprintln!("fillcast: could not pin thread to cpu {id}; running unpinned");
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits; fixed size, so recording never allocates.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// What a restart on its journal hands the engine besides the core.
#[derive(Default)]
pub struct Restart {
    /// The venues' answers about orders left unanswered by the previous run (see
    /// `Gateway::recover`): the core handles them before any new event.
    pub recovered: Vec<ExecReport>,
    /// The key of every leader fill the journal holds. The I/O thread drops a source
    /// event whose key is here (and adds each one it passes on), so no restart decides
    /// a fill twice however far back a source reads again; the core's own window
    /// (`engine.dedup_window`) still guards within a run. Bounded by the journal.
    pub taken_events: HashSet<u64, IdHash>,
    /// The journal may lack records of orders that reached a venue (the last run
    /// died, records were cut): ask each venue about every order before sending it,
    /// send only those it never received (`submit_asking_first`), until a whole
    /// chunk of them is new to it.
    pub ask_first: bool,
}

/// Start the engine. `gateways[i]` serves `universe.venues[i]`. With a `journal`,
/// every input and decision is journaled and no order leaves before its record.
/// `restart` is what a restart on a journal learnt (empty for a new engine).
pub fn start(
    core: Core,
    gateways: Vec<Box<dyn Gateway>>,
    sources: Vec<Box<dyn Source>>,
    journal: Option<Box<dyn JournalSink>>,
    mut restart: Restart,
    cfg: &EngineConfig,
) -> Running {
    let universe = Arc::clone(core.universe());
    assert_eq!(
        gateways.len(),
        universe.venues.len(),
        "one gateway per configured venue"
    );
    let progress = Arc::new(Progress::default());
    progress.revision.store(universe.revision, Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let n_gw = gateways.len();

    let (feed_rx, feed_b) =
        build_multi_producer(cfg.feed_ring_slots, FeedEvent::default, BusySpin).new_event_poller();
    let (exec_rx, exec_b) =
        build_multi_producer(cfg.exec_ring_slots, ExecEvent::default, BusySpin).new_event_poller();
    let (mut egress_tx, mut egress_rx) = (Vec::new(), Vec::new());
    for _ in 0..n_gw {
        let (poller, b) =
            build_single_producer(cfg.egress_ring_slots, OrderChunk::default, BusySpin)
                .new_event_poller();
        egress_rx.push(poller);
        egress_tx.push(b.build());
    }
    let (journal_rx, journal_tx) = match journal {
        Some(_) => {
            let (poller, b) =
                build_single_producer(cfg.journal_ring_slots, JournalChunk::default, BusySpin)
                    .new_event_poller();
            (Some(poller), Some(b.build()))
        }
        None => (None, None),
    };

    let shared = Shared {
        progress: Arc::clone(&progress),
        stop: Arc::clone(&stop),
    };
    let sink = EgressSink::new(egress_tx, journal_tx, &universe, cfg, &progress);
    let core_stage = CoreStage::new(core, sink, feed_rx, exec_rx, shared.clone());
    let (recovered, core_cpu, wait) = (
        std::mem::take(&mut restart.recovered),
        cfg.core_cpu,
        cfg.wait,
    );
    let core_thread = std::thread::Builder::new()
        .name("fillcast-core".into())
        .spawn(move || {
            pin(core_cpu);
            core_stage.run(&recovered, wait)
        })
        .expect("spawn core thread");

    let rings = (feed_b.build(), exec_b.build(), egress_rx);
    let journal = Journaling::new(journal_rx, journal, Arc::clone(&universe));
    let io_stage = IoStage::new(gateways, sources, journal, rings, restart, cfg, shared);
    let io_cpu = cfg.io_cpu;
    let io_thread = std::thread::Builder::new()
        .name("fillcast-io".into())
        .spawn(move || {
            pin(io_cpu);
            io_stage.run(wait)
        })
        .expect("spawn io thread");

    Running {
        progress,
        stop,
        core: core_thread,
        io: io_thread,
    }
}

type FeedPoller = disruptor::EventPoller<FeedEvent, disruptor::MultiProducerBarrier>;
type ExecPoller = disruptor::EventPoller<ExecEvent, disruptor::MultiProducerBarrier>;
type EgressPoller = disruptor::EventPoller<OrderChunk, disruptor::SingleProducerBarrier>;

/// The core thread: venue reports first and always (they free order places),
/// then, once every order made so far is in an egress ring, a due tick and the
/// feed events the core has order places for.
struct CoreStage<P, J> {
    core: Core,
    sink: EgressSink<P, J>,
    feed_rx: FeedPoller,
    exec_rx: ExecPoller,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    fanout_ns: Histogram<u64>,
    receive_to_egress_ns: Histogram<u64>,
    /// Fills whose orders are still in the outbox: (start, received).
    pending: VecDeque<(u64, u64)>,
    /// Feed events taken from the ring but not yet handled: the core had no
    /// order places for the first of them (`Core::ready_for`).
    held: VecDeque<FeedEvent>,
    last_tick: u64,
    waiting: bool,
    backpressure_waits: u64,
}

/// What both threads share with the `Running` handle.
#[derive(Clone)]
struct Shared {
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
}

impl<P: Producer<OrderChunk>, J: Producer<JournalChunk>> CoreStage<P, J> {
    fn new(
        core: Core,
        sink: EgressSink<P, J>,
        feed_rx: FeedPoller,
        exec_rx: ExecPoller,
        shared: Shared,
    ) -> CoreStage<P, J> {
        CoreStage {
            core,
            sink,
            feed_rx,
            exec_rx,
            progress: shared.progress,
            stop: shared.stop,
            fanout_ns: histogram(),
            receive_to_egress_ns: histogram(),
            pending: VecDeque::with_capacity(FEED_BATCH as usize * 4),
            held: VecDeque::with_capacity(FEED_BATCH as usize),
            last_tick: 0,
            waiting: false,
            backpressure_waits: 0,
        }
    }

    fn run(mut self, recovered: &[ExecReport], wait: WaitConfig) -> CoreOutcome {
        for r in recovered {
            self.sink.journal(JournalEntry::Exec(*r));
            self.core.on_exec(r, &mut self.sink);
        }
        self.sink.flush();
        let mut backoff = Backoff::new(wait);
        let mut unpublished = 0u32;
        loop {
            let mut did = self.take_exec();
            let mut drained = self.sink.flush();
            if drained {
                self.record_drained();
                // Time for the resync or a venue alarm: a journaled tick.
                if let Some(flushed) = self.tick_if_due() {
                    drained = flushed;
                    did += 1;
                }
            }
            if drained {
                did += self.take_feed();
            }
            self.publish_progress();
            if did > 0 {
                // Copied out when the core goes idle, and every
                // STATS_EVERY busy turns under load: not on every turn.
                unpublished += 1;
                if unpublished >= STATS_EVERY {
                    self.progress.stats.publish(self.core.stats());
                    unpublished = 0;
                }
                backoff.reset();
            } else {
                if unpublished > 0 {
                    self.progress.stats.publish(self.core.stats());
                    unpublished = 0;
                }
                if self.stop.load(Relaxed) {
                    break;
                }
                backoff.wait();
            }
        }
        CoreOutcome {
            core: self.core,
            fanout_ns: self.fanout_ns,
            receive_to_egress_ns: self.receive_to_egress_ns,
            backpressure_waits: self.backpressure_waits,
        }
    }

    /// Journals and handles every venue report and link change waiting.
    fn take_exec(&mut self) -> u64 {
        let mut did = 0u64;
        if let Ok(mut batch) = self.exec_rx.take(EXEC_BATCH) {
            for ev in &mut batch {
                match *ev {
                    ExecEvent::Report(r) => {
                        self.sink.journal(JournalEntry::Exec(r));
                        self.core.on_exec(&r, &mut self.sink);
                    }
                    ExecEvent::Venue(fe) => {
                        self.sink.journal(JournalEntry::Feed(fe));
                        self.core.on_feed(&fe, &mut self.sink);
                    }
                    ExecEvent::Empty => {}
                }
                did += 1;
            }
        }
        if did > 0 {
            self.progress.exec_done.fetch_add(did, Relaxed);
        }
        did
    }

    /// The outbox drained: the fills whose orders waited in it are timed now.
    fn record_drained(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let end = clock::now().0;
        for (start, recv) in self.pending.drain(..) {
            let _ = self.fanout_ns.record(end.saturating_sub(start).max(1));
            self.progress
                .fanout
                .record(end.saturating_sub(start).max(1));
            let _ = self
                .receive_to_egress_ns
                .record(end.saturating_sub(recv).max(1));
        }
    }

    /// Gives the core the tick it asked for (`Core::wake_at`), if it is due;
    /// `Some(whether its orders all left)` when it did.
    fn tick_if_due(&mut self) -> Option<bool> {
        let due = self.core.wake_at()?;
        let now = clock::now().0;
        if now < due.0 {
            return None;
        }
        // Strictly increasing, so every tick is a distinct input.
        self.last_tick = now.max(self.last_tick + 1);
        let tick = FeedEvent::Tick {
            ts: Nanos(self.last_tick),
        };
        self.sink.journal(JournalEntry::Feed(tick));
        self.core.on_feed(&tick, &mut self.sink);
        Some(self.sink.flush())
    }

    /// Handles feed events while the core has order places for them and their
    /// orders leave at once. Returns the events handled.
    fn take_feed(&mut self) -> u64 {
        if self.held.is_empty() {
            if let Ok(mut batch) = self.feed_rx.take(FEED_BATCH) {
                self.held.extend(&mut batch);
            }
        }
        let mut fed = 0u64;
        while let Some(ev) = self.held.front().copied() {
            if !self.core.ready_for(&ev) {
                if !self.waiting {
                    // Counted once per wait, not once per look.
                    self.waiting = true;
                    self.backpressure_waits += 1;
                    self.progress
                        .backpressure_waits
                        .store(self.backpressure_waits, Relaxed);
                }
                break;
            }
            self.waiting = false;
            self.held.pop_front();
            // Only a leader fill's fan-out is timed: marks, equities and
            // commands in a batch read no clock.
            let start = match ev {
                FeedEvent::LeaderFill(_) => clock::now().0,
                _ => 0,
            };
            if let FeedEvent::Revision { revision, .. } = ev {
                self.take_revision(revision, ev);
                fed += 1;
                continue;
            }
            self.sink.journal(JournalEntry::Feed(ev));
            self.core.on_feed(&ev, &mut self.sink);
            let drained = self.sink.flush();
            if let FeedEvent::LeaderFill(f) = ev {
                self.progress
                    .ingest_lag_ns
                    .store(f.recv_ts.0.saturating_sub(f.venue_ts.0), Relaxed);
                if drained && self.pending.is_empty() {
                    let end = clock::now().0;
                    let _ = self.fanout_ns.record(end.saturating_sub(start).max(1));
                    self.progress
                        .fanout
                        .record(end.saturating_sub(start).max(1));
                    let _ = self
                        .receive_to_egress_ns
                        .record(end.saturating_sub(f.recv_ts.0).max(1));
                } else if self.pending.len() < self.pending.capacity() {
                    self.pending.push_back((start, f.recv_ts.0));
                }
            }
            fed += 1;
            if !drained {
                break;
            }
        }
        self.progress
            .feed_held
            .store(self.held.len() as u64, Relaxed);
        if fed > 0 {
            self.progress.feed_done.fetch_add(fed, Relaxed);
            self.progress
                .leader_fills
                .store(self.core.stats().leader_fills, Relaxed);
        }
        fed
    }

    /// Applies the revision a reload handed over (`Reloads`), between two events.
    /// Journaled only when applied: the I/O thread writes its config records in
    /// the event's place, and a replay applies them there.
    fn take_revision(&mut self, revision: u64, ev: FeedEvent) {
        let Some(mut r) = Reloads::take(&self.progress.reloads.to_core, revision) else {
            self.progress.reloads_refused.fetch_add(1, Relaxed);
            return;
        };
        let taken = self.core.take_revision(&mut r.patch).is_ok();
        if taken {
            // Orders in a symbol the revision added have a ring from now on.
            std::mem::swap(&mut self.sink.venue_of_symbol, &mut r.venue_of_symbol);
        }
        // To the I/O thread, which journals it (when applied, with a journal) and
        // frees it and what it replaced: no free on this thread. Handed over
        // before its event is published, so the I/O thread finds it there. Room
        // is certain: at most RELOADS_IN_FLIGHT were handed over.
        let _ = self.progress.reloads.to_journal.push(r);
        if taken {
            if self.sink.journal.is_some() {
                self.sink.journal(JournalEntry::Feed(ev));
                self.sink.publish_journal();
            }
            self.progress.revision.store(revision, Relaxed);
            self.progress.reloads_applied.fetch_add(1, Relaxed);
        } else {
            self.progress.reloads_refused.fetch_add(1, Relaxed);
        }
    }

    fn publish_progress(&self) {
        let (progress, core) = (&self.progress, &self.core);
        progress
            .live_orders
            .store(core.live_orders() as u64, Relaxed);
        progress.orders_out.store(core.stats().orders_sent, Relaxed);
        let (waiting, stuck) = core.resync_pending();
        progress.resync_pending.store(waiting as u64, Relaxed);
        progress.resync_stuck.store(stuck as u64, Relaxed);
        if core.halted() {
            progress.halted.store(true, Relaxed);
        }
        progress
            .venues_alarmed
            .store(core.alarmed_venues(), Relaxed);
    }
}

/// The I/O thread: sources into the feed ring (each event once, however often a
/// source gives it), the journal ring into the journal, egress rings into the
/// gateways (never an order before its journal record), gateways' reports and
/// link changes into the exec ring. Never blocks.
struct IoStage<F, X, R> {
    gateways: Vec<Box<dyn Gateway>>,
    sources: Vec<Box<dyn Source>>,
    journal: Journaling<R>,
    feed_tx: F,
    exec_tx: X,
    egress_rx: Vec<EgressPoller>,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    /// Per source: the event the feed ring had no room for, and the source's
    /// position after it; the position of the last event published, and the
    /// last one journaled behind its events.
    pending: Vec<Option<FeedEvent>>,
    pending_pos: Vec<Option<u64>>,
    covered: Vec<Option<u64>>,
    cursor_sent: Vec<Option<u64>>,
    /// Every leader event the journal holds or this run took.
    taken_events: HashSet<u64, IdHash>,
    finished: Vec<bool>,
    source_errors: Vec<SourceError>,
    /// Reports the exec ring had no room for. Gateways are only driven while it
    /// is empty, so it holds at most what one submit or poll produced.
    exec_pending: VecDeque<ExecEvent>,
    /// What the core was last told of each gateway's link.
    up: Vec<bool>,
    /// Per gateway: ask before sending (`Restart::ask_first`), and how many chunks
    /// in a row were all new to the venue.
    ask_first: Vec<bool>,
    unknown_in_a_row: Vec<u32>,
    /// Per gateway: the revision of the model it was last told
    /// (`Gateway::universe_changed`); `None` before its first order.
    told: Vec<Option<u64>>,
}

impl<F: Producer<FeedEvent>, X: Producer<ExecEvent>, R: JournalPoller> IoStage<F, X, R> {
    fn new(
        gateways: Vec<Box<dyn Gateway>>,
        sources: Vec<Box<dyn Source>>,
        journal: Journaling<R>,
        (feed_tx, exec_tx, egress_rx): (F, X, Vec<EgressPoller>),
        restart: Restart,
        cfg: &EngineConfig,
        shared: Shared,
    ) -> IoStage<F, X, R> {
        let n_src = sources.len();
        let covered: Vec<Option<u64>> = sources.iter().map(|s| s.position()).collect();
        IoStage {
            journal,
            feed_tx,
            exec_tx,
            egress_rx,
            progress: shared.progress,
            stop: shared.stop,
            pending: vec![None; n_src],
            pending_pos: vec![None; n_src],
            cursor_sent: covered.clone(),
            covered,
            taken_events: restart.taken_events,
            finished: vec![false; n_src],
            source_errors: Vec::new(),
            exec_pending: VecDeque::with_capacity(cfg.exec_ring_slots),
            up: gateways.iter().map(|g| g.is_up()).collect(),
            ask_first: vec![restart.ask_first; gateways.len()],
            unknown_in_a_row: vec![0; gateways.len()],
            told: vec![None; gateways.len()],
            gateways,
            sources,
        }
    }

    fn run(mut self, wait: WaitConfig) -> IoOutcome {
        // The core is told every link at start: a core rebuilt from a journal may
        // believe a venue down that is up now.
        for (g, gw) in self.gateways.iter().enumerate() {
            self.exec_pending
                .push_back(venue_event(g, self.up[g], clock::now()));
            if !self.up[g] {
                link_changed(&self.progress, g, gw.as_ref(), false);
            }
        }
        let mut backoff = Backoff::new(wait);
        loop {
            let now = clock::now();
            let mut did = 0u64;
            let draining = self.progress.draining.load(Relaxed);
            for i in 0..self.sources.len() {
                did += self.poll_source(i, now, draining);
                did += self.send_cursor(i);
            }
            let all_finished = (0..self.sources.len())
                .all(|i| draining || self.finished[i] || !self.sources[i].holds_run_open())
                && self.pending.iter().all(|p| p.is_none())
                && self.covered == self.cursor_sent;
            self.progress.sources_finished.store(all_finished, Relaxed);
            // The journal first: everything the core published so far.
            did += self.journal.drain(&self.progress);
            if let Some(u) = self.journal.new_universe.take() {
                // The core took the revision before the journal had it: what the
                // sources publish from now on lies behind it in the feed ring.
                for s in &mut self.sources {
                    s.universe_changed(&u);
                }
            }
            did += self.publish_exec();
            if self.exec_pending.is_empty() && self.journal.error.is_none() {
                did += self.drive_gateways(now);
                did += self.notice_links(now);
            }
            let in_flight = self.gateways.iter().map(|g| g.in_flight() as u64).sum();
            self.progress.in_flight.store(in_flight, Relaxed);
            self.progress
                .exec_pending
                .store(self.exec_pending.len() as u64, Relaxed);
            if did > 0 {
                backoff.reset();
            } else {
                if self.stop.load(Relaxed) {
                    break;
                }
                self.journal.tick(&self.progress);
                backoff.wait();
            }
        }
        IoOutcome {
            gateways: self.gateways,
            sources: self.sources,
            source_errors: self.source_errors,
            source_rejected: self.progress.source_rejected.load(Relaxed),
            source_duplicates: self.progress.source_duplicates.load(Relaxed),
            journal: self.journal.sink,
            journal_error: self.journal.error,
        }
    }

    /// Moves up to `SOURCE_BATCH` of source `i`'s events into the feed ring,
    /// dropping leader events the journal already holds. Returns the work done.
    fn poll_source(&mut self, i: usize, now: Nanos, draining: bool) -> u64 {
        let mut did = 0u64;
        for _ in 0..SOURCE_BATCH {
            if let Some(ev) = self.pending[i] {
                if self.feed_tx.try_publish(|slot| *slot = ev).is_err() {
                    break;
                }
                self.pending[i] = None;
                self.covered[i] = self.pending_pos[i];
                self.progress.feed_published.fetch_add(1, Relaxed);
                did += 1;
            }
            if self.finished[i] || draining {
                break;
            }
            let src = &mut self.sources[i];
            let step = src.next(now);
            if let SourcePoll::Event(FeedEvent::LeaderFill(f)) = step {
                // Exactly once across restarts: the journal's whole history of
                // leader events, not a window of it.
                if !self.taken_events.insert(f.event_key) {
                    self.progress.source_duplicates.fetch_add(1, Relaxed);
                    self.covered[i] = src.position();
                    did += 1;
                    continue;
                }
            }
            match step {
                SourcePoll::Event(ev) => {
                    self.pending[i] = Some(ev);
                    self.pending_pos[i] = src.position();
                }
                SourcePoll::Rejected(e) => {
                    self.covered[i] = src.position();
                    self.progress.source_rejected.fetch_add(1, Relaxed);
                    // Every one is reported, none capped away.
                    self.progress.event(format!("rejected: {e}"));
                    if self.source_errors.len() < SOURCE_ERRORS_KEPT {
                        self.source_errors.push(e);
                    }
                    did += 1;
                }
                SourcePoll::Idle => break,
                SourcePoll::Finished => {
                    self.finished[i] = true;
                    self.covered[i] = src.position();
                }
            }
        }
        did
    }

    /// Source `i`'s position, behind the events it covers and in the same ring,
    /// so the core journals it after them.
    fn send_cursor(&mut self, i: usize) -> u64 {
        if self.pending[i].is_some() || self.covered[i] == self.cursor_sent[i] {
            return 0;
        }
        let Some(pos) = self.covered[i] else {
            return 0;
        };
        let ev = FeedEvent::SourceCursor {
            source: i as u16,
            pos,
        };
        if self.feed_tx.try_publish(|slot| *slot = ev).is_err() {
            return 0;
        }
        self.cursor_sent[i] = self.covered[i];
        self.progress.feed_published.fetch_add(1, Relaxed);
        1
    }

    fn publish_exec(&mut self) -> u64 {
        let mut did = 0;
        while let Some(r) = self.exec_pending.front().copied() {
            if self.exec_tx.try_publish(|slot| *slot = r).is_err() {
                break;
            }
            self.exec_pending.pop_front();
            self.progress.exec_published.fetch_add(1, Relaxed);
            did += 1;
        }
        did
    }

    /// Hands each gateway the orders whose journal records are appended (asking
    /// the venue first after a journal cut), then polls it for reports.
    fn drive_gateways(&mut self, now: Nanos) -> u64 {
        let mut did = 0u64;
        let exec_pending = &mut self.exec_pending;
        let mut push = |r: ExecReport| {
            exec_pending.push_back(ExecEvent::Report(ExecReport { recv_ts: now, ..r }))
        };
        for (g, gw) in self.gateways.iter_mut().enumerate() {
            if gw.can_accept(EGRESS_BATCH as usize * ORDER_CHUNK) {
                if let Ok(mut batch) = self.egress_rx[g].take(EGRESS_BATCH) {
                    let mut taken = 0;
                    for chunk in &mut batch {
                        // Never hand an order to a venue before its journal record.
                        if !self.journal.ready_for(chunk.journal_upto, &self.progress) {
                            break;
                        }
                        // Nor before the venue knows the model it was made under
                        // (a symbol the revision added): the revision's records
                        // come before the order's, so `ready_for` has taken it.
                        let u = &self.journal.universe;
                        if self.told[g] != Some(u.revision) {
                            gw.universe_changed(u);
                            self.told[g] = Some(u.revision);
                        }
                        if !self.ask_first[g] {
                            gw.submit(chunk.as_slice(), now, &mut push);
                        } else {
                            let asked =
                                submit_asking_first(gw.as_mut(), chunk.as_slice(), now, &mut push);
                            let derived_again = chunk
                                .as_slice()
                                .iter()
                                .all(|o| self.taken_events.contains(&o.leader_event_key));
                            let decided = after_asking(
                                &mut self.ask_first[g],
                                &mut self.unknown_in_a_row[g],
                                &self.progress,
                                gw.name(),
                                asked,
                                derived_again,
                            );
                            if let Err(e) = decided {
                                // Fail closed: sending blind could send an order twice.
                                self.progress.event(format!("STOPPED: {e}"));
                                self.journal.error = Some(e);
                                self.progress.journal_failed.store(true, Relaxed);
                                break;
                            }
                        }
                        taken += 1;
                    }
                    self.progress.chunks_taken.fetch_add(taken, Relaxed);
                    did += taken;
                }
            }
            did += gw.poll(now, &mut push) as u64;
        }
        did
    }

    /// Tells the core of every link that went down or up, after the reports the
    /// gateway gave on the way (a reconnect settles in-flight orders before it is up).
    fn notice_links(&mut self, now: Nanos) -> u64 {
        let mut did = 0;
        for (g, gw) in self.gateways.iter().enumerate() {
            let is_up = gw.is_up();
            if is_up != self.up[g] {
                self.up[g] = is_up;
                self.exec_pending.push_back(venue_event(g, is_up, now));
                link_changed(&self.progress, g, gw.as_ref(), is_up);
                did += 1;
            }
        }
        did
    }
}

/// What asking a venue first (`submit_asking_first`) tells: once enough chunks
/// in a row of orders copying leader fills were all new to it, the intake is past
/// what the lost records held (one alone proves little: a decision made again as
/// other legs has new ids; the resync's orders do not count, their ids come from
/// this run's ticks), and its gateway sends without asking.
fn after_asking(
    ask_first: &mut bool,
    unknown_in_a_row: &mut u32,
    progress: &Progress,
    venue: &str,
    asked: Result<u64, Stopped>,
    derived_again: bool,
) -> Result<(), Stopped> {
    match asked? {
        0 if derived_again => {
            *unknown_in_a_row += 1;
            if *unknown_in_a_row >= ASK_FIRST_UNTIL_UNKNOWN {
                *ask_first = false;
                progress.event(format!(
                    "journal: venue `{venue}` had none of the last {ASK_FIRST_UNTIL_UNKNOWN} batches of orders derived again: sending without asking first"
                ));
            }
        }
        0 => {}
        known => {
            *unknown_in_a_row = 0;
            progress.orders_known_at_venue.fetch_add(known, Relaxed);
        }
    }
    Ok(())
}
