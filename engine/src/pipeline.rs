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

use crate::clock;
use crate::config::{EngineConfig, WaitConfig};
use crate::core::{Core, Outputs};
use crate::event::{ExecReport, FeedEvent, FollowerOrder, OrderChunk, ORDER_CHUNK};
use crate::port::{Gateway, Source, SourceError, SourcePoll};
use disruptor::{build_multi_producer, build_single_producer, BusySpin, Polling, Producer};
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
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

/// Counters shared between threads (relaxed atomics: each has one writer).
#[derive(Default)]
pub struct Progress {
    pub feed_published: AtomicU64,
    pub feed_done: AtomicU64,
    pub exec_published: AtomicU64,
    pub exec_done: AtomicU64,
    pub chunks_published: AtomicU64,
    pub chunks_taken: AtomicU64,
    pub orders_out: AtomicU64,
    pub live_orders: AtomicU64,
    pub outbox_orders: AtomicU64,
    pub in_flight: AtomicU64,
    pub sources_finished: AtomicBool,
    pub source_rejected: AtomicU64,
    pub leader_fills: AtomicU64,
}

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
    }
}

/// What the core thread hands back when it stops.
pub struct CoreOutcome {
    pub core: Core,
    /// Per leader fill: from the start of its handling to its last order in the egress ring, ns.
    pub fanout_ns: Histogram<u64>,
    /// Per leader fill: from its receipt by the source to its last order in the egress ring, ns.
    pub receive_to_egress_ns: Histogram<u64>,
}

pub struct IoOutcome {
    pub gateways: Vec<Box<dyn Gateway>>,
    pub sources: Vec<Box<dyn Source>>,
    pub source_errors: Vec<SourceError>,
}

pub struct Running {
    pub progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
    core: JoinHandle<CoreOutcome>,
    io: JoinHandle<IoOutcome>,
}

impl Running {
    /// Wait until every source has finished and everything it caused is answered,
    /// calling `tick` about every `every` (for progress output). Then stop.
    pub fn run_to_completion(
        self,
        every: Duration,
        mut tick: impl FnMut(&Progress),
    ) -> (CoreOutcome, IoOutcome) {
        let mut idle_seen = 0;
        loop {
            std::thread::sleep(every.min(Duration::from_millis(20)));
            tick(&self.progress);
            // Idle twice in a row: nothing was in flight between the two looks.
            if self.progress.idle() {
                idle_seen += 1;
                if idle_seen >= 2 {
                    break;
                }
            } else {
                idle_seen = 0;
            }
            if self.core.is_finished() || self.io.is_finished() {
                break;
            }
        }
        self.stop()
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

/// The core thread's `Outputs`: orders go in chunks to the right venue's egress ring.
struct EgressSink<P> {
    producers: Vec<P>,
    chunks: Vec<OrderChunk>,
    outbox: Vec<VecDeque<FollowerOrder>>,
    venue_of_symbol: Vec<usize>,
    progress: Arc<Progress>,
}

impl<P: Producer<OrderChunk>> EgressSink<P> {
    fn push_chunk(&mut self, g: usize) {
        let chunk = self.chunks[g];
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
        let mut empty = true;
        for g in 0..self.producers.len() {
            while !self.outbox[g].is_empty() {
                let n = self.outbox[g].len().min(ORDER_CHUNK);
                let mut chunk = OrderChunk::default();
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
        let waiting: usize = self.outbox.iter().map(|o| o.len()).sum();
        self.progress.outbox_orders.store(waiting as u64, Relaxed);
        empty
    }
}

impl<P: Producer<OrderChunk>> Outputs for EgressSink<P> {
    #[inline(always)]
    fn order(&mut self, order: &FollowerOrder) {
        let g = self.venue_of_symbol[order.symbol.0 as usize];
        let c = &mut self.chunks[g];
        c.orders[c.len as usize] = *order;
        c.len += 1;
        if c.len as usize == ORDER_CHUNK {
            self.push_chunk(g);
        }
    }
}

fn pin(cpu: Option<usize>) {
    if let Some(id) = cpu {
        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
            eprintln!("fillcast: could not pin thread to cpu {id}; running unpinned");
        }
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits; fixed size, so recording never allocates.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Start the engine. `gateways[i]` serves `universe.venues[i]`.
pub fn start(
    core: Core,
    gateways: Vec<Box<dyn Gateway>>,
    sources: Vec<Box<dyn Source>>,
    cfg: &EngineConfig,
) -> Running {
    let universe = Arc::clone(core.universe());
    assert_eq!(
        gateways.len(),
        universe.venues.len(),
        "one gateway per configured venue"
    );
    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));

    let (mut feed_poller, feed_b) =
        build_multi_producer(cfg.feed_ring_slots, FeedEvent::default, BusySpin).new_event_poller();
    let mut feed_tx = feed_b.build();
    let (mut exec_poller, exec_b) =
        build_multi_producer(cfg.exec_ring_slots, ExecReport::default, BusySpin).new_event_poller();
    let mut exec_tx = exec_b.build();
    let mut egress_tx = Vec::new();
    let mut egress_rx = Vec::new();
    for _ in 0..gateways.len() {
        let (poller, b) =
            build_single_producer(cfg.egress_ring_slots, OrderChunk::default, BusySpin)
                .new_event_poller();
        egress_rx.push(poller);
        egress_tx.push(b.build());
    }

    let venue_of_symbol: Vec<usize> = universe
        .symbols
        .iter()
        .map(|s| s.venue.0 as usize)
        .collect();
    let n_gw = gateways.len();
    let outbox_cap = cfg.max_working_orders;
    let core_cpu = cfg.core_cpu;
    let io_cpu = cfg.io_cpu;
    let wait = cfg.wait;

    let core_progress = Arc::clone(&progress);
    let core_stop = Arc::clone(&stop);
    let core_thread = std::thread::Builder::new()
        .name("fillcast-core".into())
        .spawn(move || {
            pin(core_cpu);
            let mut core = core;
            let progress = core_progress;
            let mut sink = EgressSink {
                producers: egress_tx,
                chunks: vec![OrderChunk::default(); n_gw],
                outbox: (0..n_gw)
                    .map(|_| VecDeque::with_capacity(outbox_cap))
                    .collect(),
                venue_of_symbol,
                progress: Arc::clone(&progress),
            };
            let mut fanout_ns = histogram();
            let mut receive_to_egress_ns = histogram();
            // Fills whose orders are still in the outbox: (start, received).
            let mut pending: VecDeque<(u64, u64)> =
                VecDeque::with_capacity(FEED_BATCH as usize * 4);
            let mut backoff = Backoff::new(wait);
            loop {
                let mut did = 0u64;
                if let Ok(mut batch) = exec_poller.take(EXEC_BATCH) {
                    for r in &mut batch {
                        core.on_exec(r, &mut sink);
                        did += 1;
                    }
                }
                if did > 0 {
                    progress.exec_done.fetch_add(did, Relaxed);
                }
                let mut drained = sink.flush();
                if drained && !pending.is_empty() {
                    let end = clock::now().0;
                    for (start, recv) in pending.drain(..) {
                        let _ = fanout_ns.record(end.saturating_sub(start).max(1));
                        let _ = receive_to_egress_ns.record(end.saturating_sub(recv).max(1));
                    }
                }
                if drained {
                    let mut fed = 0u64;
                    if let Ok(mut batch) = feed_poller.take(FEED_BATCH) {
                        for ev in &mut batch {
                            let start = clock::now().0;
                            core.on_feed(ev, &mut sink);
                            drained = sink.flush();
                            if let FeedEvent::LeaderFill(f) = ev {
                                if drained && pending.is_empty() {
                                    let end = clock::now().0;
                                    let _ = fanout_ns.record(end.saturating_sub(start).max(1));
                                    let _ = receive_to_egress_ns
                                        .record(end.saturating_sub(f.recv_ts.0).max(1));
                                } else if pending.len() < pending.capacity() {
                                    pending.push_back((start, f.recv_ts.0));
                                }
                            }
                            fed += 1;
                        }
                    }
                    if fed > 0 {
                        progress.feed_done.fetch_add(fed, Relaxed);
                        progress
                            .leader_fills
                            .store(core.stats().leader_fills, Relaxed);
                    }
                    did += fed;
                }
                progress
                    .live_orders
                    .store(core.live_orders() as u64, Relaxed);
                progress.orders_out.store(core.stats().orders_sent, Relaxed);
                if did > 0 {
                    backoff.reset();
                } else {
                    if core_stop.load(Relaxed) {
                        break;
                    }
                    backoff.wait();
                }
            }
            CoreOutcome {
                core,
                fanout_ns,
                receive_to_egress_ns,
            }
        })
        .expect("spawn core thread");

    let io_progress = Arc::clone(&progress);
    let io_stop = Arc::clone(&stop);
    let io_thread = std::thread::Builder::new()
        .name("fillcast-io".into())
        .spawn(move || {
            pin(io_cpu);
            let progress = io_progress;
            let mut gateways = gateways;
            let mut sources = sources;
            let mut pending: Vec<Option<FeedEvent>> = vec![None; sources.len()];
            let mut finished: Vec<bool> = vec![false; sources.len()];
            let mut source_errors = Vec::new();
            let mut backoff = Backoff::new(wait);
            loop {
                let now = clock::now();
                let mut did = 0u64;
                for (i, src) in sources.iter_mut().enumerate() {
                    for _ in 0..SOURCE_BATCH {
                        if let Some(ev) = pending[i] {
                            if feed_tx.try_publish(|slot| *slot = ev).is_err() {
                                break;
                            }
                            pending[i] = None;
                            progress.feed_published.fetch_add(1, Relaxed);
                            did += 1;
                        }
                        if finished[i] {
                            break;
                        }
                        match src.next(now) {
                            SourcePoll::Event(ev) => pending[i] = Some(ev),
                            SourcePoll::Rejected(e) => {
                                progress.source_rejected.fetch_add(1, Relaxed);
                                if source_errors.len() < SOURCE_ERRORS_KEPT {
                                    source_errors.push(e);
                                }
                                did += 1;
                            }
                            SourcePoll::Idle => break,
                            SourcePoll::Finished => finished[i] = true,
                        }
                    }
                }
                let all_finished =
                    finished.iter().all(|f| *f) && pending.iter().all(|p| p.is_none());
                progress.sources_finished.store(all_finished, Relaxed);

                let mut in_flight = 0u64;
                let mut publish = |r: ExecReport| {
                    let r = ExecReport { recv_ts: now, ..r };
                    exec_tx.publish(|slot| *slot = r);
                    progress.exec_published.fetch_add(1, Relaxed);
                };
                for (g, gw) in gateways.iter_mut().enumerate() {
                    if gw.can_accept(EGRESS_BATCH as usize * ORDER_CHUNK) {
                        if let Ok(mut batch) = egress_rx[g].take(EGRESS_BATCH) {
                            let mut taken = 0;
                            for chunk in &mut batch {
                                gw.submit(chunk.as_slice(), now, &mut publish);
                                taken += 1;
                            }
                            progress.chunks_taken.fetch_add(taken, Relaxed);
                            did += taken;
                        }
                    }
                    did += gw.poll(now, &mut publish) as u64;
                    in_flight += gw.in_flight() as u64;
                }
                progress.in_flight.store(in_flight, Relaxed);
                if did > 0 {
                    backoff.reset();
                } else {
                    if io_stop.load(Relaxed) {
                        break;
                    }
                    backoff.wait();
                }
            }
            let _ = Polling::NoEvents;
            IoOutcome {
                gateways,
                sources,
                source_errors,
            }
        })
        .expect("spawn io thread");

    Running {
        progress,
        stop,
        core: core_thread,
        io: io_thread,
    }
}
