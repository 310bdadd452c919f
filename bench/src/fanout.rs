//! Fan-out: one leader fill sized, risk-checked and turned into orders for N
//! followers, timed from the start of handling to the last order handed on.
//!
//! - fillcast, journaled (the headline: issue 14 asks for the fan-out journaled):
//!   the engine's journaled path of one fill, run in turn on the calling thread as
//!   `pipeline`'s core thread and I/O thread do it between them. The input goes
//!   into a journal chunk as `JournalEntry::Feed`, `Core::on_feed` emits its
//!   orders and decisions as `JournalEntry::Order`/`Decision` (notices as
//!   `Notice`) into the same chunk and its orders into 32-order egress chunks;
//!   a journal chunk is appended to a real journal (`JournalStage` on
//!   `JournalWriter`, durability `never`) when it holds `JOURNAL_CHUNK` entries
//!   and, as `EgressSink::push_chunk` does, before an egress chunk that fills
//!   is handed on; after the core, the partial journal chunk and `before_send`
//!   once. Timed from before the feed entry to after `before_send`: every order
//!   is then in its egress chunk with its journal record appended before it.
//!   The ring hops between the threads are not in it (`e2e` has them).
//! - fillcast: `Core::on_feed` alone, writing orders into 32-order chunks (as the
//!   egress ring slots are) and counting the decisions: no journal.
//! - baseline, the textbook design, in the same run: per follower, `rust_decimal`
//!   arithmetic (ratio × leader position, rounded to the lot, minus the position),
//!   a notional check, and one message per order on a crossbeam channel to a
//!   consumer thread; timed until the consumer has received the last order.
//!
//! Orders are answered (filled) between samples, outside the timed region (the
//! journaled variant journals the reports and what they cause, as the engine does).

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world::{self, ChunkSink};
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::Core;
use fillcast_engine::event::{FeedEvent, FollowerOrder, ORDER_CHUNK};
use fillcast_engine::outputs::{Decision, Notice, Outputs};
use fillcast_engine::pipeline::{JournalChunk, JOURNAL_CHUNK};
use fillcast_engine::port::{JournalEntry, JournalSink};
use fillcast_engine::units::Nanos;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{Durability, JournalOptions, JournalWriter};
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use std::time::Instant;

/// Segment size of the journaled variant's journal (as the `journal` scenario);
/// it rolls to a new segment (prepared beside it) as each fills.
const SEGMENT_BYTES: u64 = 256 << 20;
/// Unrecorded samples first: caches, branch predictors, the order table's first growth.
const WARMUP: usize = 20;
/// DESIGN.md and issue 14: one leader fill to 10,000 followers, journaled, p99 ≤ 50 µs.
const TARGET_FOLLOWERS: usize = 10_000;
const TARGET_P99_NS: u64 = 50_000;

pub struct Options {
    pub followers: Vec<usize>,
    pub samples: usize,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let mut cases = Vec::new();
    for &n in &opts.followers {
        cases.push(case(n, opts.samples, progress));
    }
    Scenario {
        name: "fanout",
        title: "one leader fill fanned out to N followers".into(),
        fillcast: "journaled (headline): the input and the core's orders and decisions as \
                   journal entries, appended through JournalStage (durability never) in chunks \
                   of up to 32 as the pipeline cuts them, before_send once, orders into 32-order chunks as in the egress ring, \
                   all on one thread; core only: Core::on_feed into the 32-order chunks; \
                   orders filled between samples, outside the timed region"
            .into(),
        baseline: "textbook: rust_decimal sizing per follower, one crossbeam channel \
                   message per order to a consumer thread, timed until it has the last"
            .into(),
        threads: vec![
            ThreadRole::unpinned(
                "fillcast, journaled",
                "main",
                "Core::on_feed, journal appends, before_send, egress chunks; on_exec",
            ),
            ThreadRole::unpinned(
                "fillcast, journaled",
                "fillcast-journal-spare",
                "JournalWriter's helper: makes and prefaults the next segment",
            ),
            ThreadRole::unpinned("fillcast", "main", "Core::on_feed and on_exec"),
            ThreadRole::unpinned("baseline", "main", "decimal sizing, one send per order"),
            ThreadRole::unpinned("baseline", "consumer", "receives every order"),
        ],
        target: Some("10,000 followers, journaled: p99 ≤ 50 µs (DESIGN.md, issue 14)".into()),
        cases,
        skipped: Vec::new(),
        notes: vec![
            "every fill moves every follower (the leader alternates opening and closing): a worst case".into(),
            "the fillcast side ends at the chunk sink; the baseline's end includes its channel hop, which is its design".into(),
            "journaled: the core thread's and the I/O thread's work in turn on one thread, without the journal and egress ring hops between them (e2e measures those)".into(),
            format!(
                "journaled: a fresh journal per case in a temp dir (removed after), {} MiB segments rolled as they fill; durability never, so before_send flushes nothing",
                SEGMENT_BYTES >> 20
            ),
            "journaled: the fill reports between samples are journaled too (untimed), as the engine journals them".into(),
            "journaled: the samples start once the segment made beside the first at open is ready; later segment rolls, and the helper thread making the next segment meanwhile (2 cores: it competes with the sampling thread), fall in the samples as they come".into(),
        ],
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

fn case(followers: usize, samples: usize, progress: &Progress) -> Case {
    progress.phase(
        format!("{followers} followers: fillcast"),
        (samples + WARMUP) as u64,
    );
    let (fillcast_ns, orders_per_fill) = fillcast(followers, samples, progress);
    progress.phase(
        format!("{followers} followers: fillcast, journaled"),
        (samples + WARMUP) as u64,
    );
    let journaled = fillcast_journaled(followers, samples, progress);
    assert_eq!(
        journaled.orders_per_fill, orders_per_fill,
        "both fillcast variants make the same orders"
    );
    progress.phase(
        format!("{followers} followers: baseline"),
        (samples + WARMUP) as u64,
    );
    let baseline_ns = baseline(followers, samples, progress);
    let per_sec = |h: &Histogram<u64>| orders_per_fill as f64 * 1e9 / h.mean().max(1.0);
    let basis = "per leader fill: start of handling → last order handed on";
    let mut case = Case::new(format!("{followers} followers"), RatioBasis::P99Latency)
        .param("followers", followers)
        .param("samples", samples)
        .param("orders_per_fill", orders_per_fill)
        .param("journal_chunk_entries", JOURNAL_CHUNK)
        .param("journal_segment_bytes", SEGMENT_BYTES)
        // The first fillcast variant is the headline (`Case::ratio`, `target_result`).
        .variant(
            Variant::new(
                "fillcast, journaled",
                Role::Fillcast,
                "input, orders and decisions journaled (JournalStage, never) in chunks of \
                 up to 32, before_send, orders into 32-order chunks",
            )
            .latency(basis, &journaled.ns)
            .throughput(per_sec(&journaled.ns), "orders/s (at the mean)")
            .extra("journal_records_per_fill", journaled.records_per_fill)
            .extra("journal_bytes_per_fill", journaled.bytes_per_fill)
            .extra("journal_appends_per_fill", journaled.appends_per_fill),
        )
        .variant(
            Variant::new(
                "fillcast",
                Role::Fillcast,
                "core only: Core::on_feed into 32-order chunks, no journal",
            )
            .latency(basis, &fillcast_ns)
            .throughput(per_sec(&fillcast_ns), "orders/s (at the mean)"),
        )
        .variant(
            Variant::new(
                "baseline",
                Role::Baseline,
                "rust_decimal per follower, a channel message per order",
            )
            .latency(basis, &baseline_ns)
            .throughput(per_sec(&baseline_ns), "orders/s (at the mean)"),
        )
        .finish();
    if followers == TARGET_FOLLOWERS {
        let p99 = journaled.ns.value_at_quantile(0.99);
        case.target_result = Some(format!(
            "journaled p99 {} against ≤ 50 µs: {}",
            crate::chart::duration(p99 as f64),
            if p99 <= TARGET_P99_NS {
                "met".to_string()
            } else {
                format!("{:.1}× over", p99 as f64 / TARGET_P99_NS as f64)
            }
        ));
    }
    case
}

/// A core with one leader and `followers` subscriptions, its tables sized for
/// `samples` fills and their warm-up.
fn fanout_core(followers: usize, samples: usize) -> Core {
    let u = world::universe(1, followers, "");
    let cfg = EngineConfig {
        max_working_orders: followers * 4,
        dedup_window: samples * 2 + 16,
        ..EngineConfig::default()
    };
    Core::new(u, &cfg)
}

/// Per-fill latencies, and orders per fill.
fn fillcast(followers: usize, samples: usize, progress: &Progress) -> (Histogram<u64>, u64) {
    let mut core = fanout_core(followers, samples);
    let mut sink = ChunkSink::new(followers);
    let mut answers = ChunkSink::new(ORDER_CHUNK_SLACK);
    let mut hist = histogram();
    let mut trade = 0u64;
    let mut orders_total = 0u64;
    for i in 0..samples + WARMUP {
        sink.clear();
        let ev = FeedEvent::LeaderFill(world::leader_fill(0, i as u64, i as u64 + 1, Nanos(1)));
        let t = Instant::now();
        core.on_feed(&ev, &mut sink);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= WARMUP {
            let _ = hist.record(ns.max(1));
        }
        orders_total += sink.len() as u64;
        for o in sink.orders() {
            trade += 1;
            answers.clear();
            core.on_exec(&world::fill_of(o, trade), &mut answers);
        }
        progress.inc(1);
    }
    assert_eq!(sink.overflow, 0, "chunk sink sized for one fan-out");
    (hist, orders_total / (samples + WARMUP) as u64)
}

/// What the journaled variant measured.
struct Journaled {
    ns: Histogram<u64>,
    orders_per_fill: u64,
    /// Over the timed region only (not the fill reports journaled between samples).
    records_per_fill: f64,
    bytes_per_fill: f64,
    appends_per_fill: f64,
}

/// The journal stage and the journal chunk being filled: a journal ring slot,
/// appended where the pipeline's core thread would publish it (the I/O thread
/// appends each slot as it is, one `append` call per chunk).
struct Journal {
    stage: JournalStage,
    chunk: JournalChunk,
    appends: u64,
}

impl Journal {
    #[inline(always)]
    fn push(&mut self, e: JournalEntry) {
        // As `EgressSink::journal`: an order does not end a chunk.
        if self.chunk.len as usize == JOURNAL_CHUNK - 1 && matches!(e, JournalEntry::Order(_)) {
            self.append();
        }
        let c = &mut self.chunk;
        c.entries[c.len as usize] = e;
        c.len += 1;
        if c.len as usize == JOURNAL_CHUNK {
            self.append();
        }
    }

    /// The partial chunk, as `EgressSink::publish_journal` publishes it.
    fn append(&mut self) {
        let n = self.chunk.len as usize;
        if n == 0 {
            return;
        }
        self.stage
            .append(&self.chunk.entries[..n])
            .expect("journal append");
        self.chunk.len = 0;
        self.appends += 1;
    }

    fn before_send(&mut self) {
        self.stage.before_send().expect("journal before_send");
    }
}

/// The core's `Outputs` in the journaled variant, as `pipeline::EgressSink` with one
/// gateway: every output is journaled; orders go into 32-order egress chunks, and
/// the journal chunk is appended before an egress chunk that fills is handed on.
struct JournaledOutputs<'a> {
    journal: &'a mut Journal,
    egress: &'a mut ChunkSink,
    /// An order filled the egress chunk: as the pipeline's `EgressSink`, the
    /// journal goes out after that order's decision, before the chunk would.
    full: bool,
}

impl Outputs for JournaledOutputs<'_> {
    #[inline(always)]
    fn order(&mut self, o: &FollowerOrder) {
        if std::mem::take(&mut self.full) {
            self.journal.append();
        }
        self.journal.push(JournalEntry::Order(*o));
        self.egress.order(o);
        self.full = self.egress.len().is_multiple_of(ORDER_CHUNK);
    }

    #[inline(always)]
    fn decision(&mut self, d: &Decision) {
        self.journal.push(JournalEntry::Decision(*d));
        self.egress.decision(d);
        if std::mem::take(&mut self.full) {
            self.journal.append();
        }
    }

    fn notice(&mut self, n: &Notice) {
        self.journal.push(JournalEntry::Notice(*n));
    }
}

/// One leader fill through the journaled path, as the pipeline takes it: the
/// input journaled, the core's outputs journaled and into the egress chunks,
/// then (as `EgressSink::flush`) the journal's partial chunk before the egress
/// chunk's, and the I/O thread's `before_send` before any order leaves.
#[inline(always)]
fn journaled_fill(core: &mut Core, journal: &mut Journal, egress: &mut ChunkSink, ev: &FeedEvent) {
    journal.push(JournalEntry::Feed(*ev));
    core.on_feed(
        ev,
        &mut JournaledOutputs {
            journal,
            egress,
            full: false,
        },
    );
    journal.append();
    journal.before_send();
}

/// The journaled path of each fill: per-fill latencies and what was journaled.
fn fillcast_journaled(followers: usize, samples: usize, progress: &Progress) -> Journaled {
    let mut core = fanout_core(followers, samples);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (mut w, _) = JournalWriter::open(
        &tmp.path().join("journal"),
        JournalOptions {
            segment_bytes: SEGMENT_BYTES,
            durability: Durability::Never,
        },
    )
    .expect("open journal");
    // Opening made the first segment and started making the next one; the
    // samples start once that is done, as in a running engine (later rolls, and
    // the next segments made beside them, fall in the samples as they come).
    w.wait_for_spare().expect("the next journal segment");
    let mut journal = Journal {
        stage: JournalStage::new(w),
        chunk: JournalChunk::default(),
        appends: 0,
    };
    let mut sink = ChunkSink::new(followers);
    let mut answers = ChunkSink::new(ORDER_CHUNK_SLACK);
    let mut hist = histogram();
    let mut trade = 0u64;
    let mut orders_total = 0u64;
    let (mut records, mut bytes, mut appends) = (0u64, 0u64, 0u64);
    for i in 0..samples + WARMUP {
        sink.clear();
        let ev = FeedEvent::LeaderFill(world::leader_fill(0, i as u64, i as u64 + 1, Nanos(1)));
        let (records0, bytes0, appends0) = (
            journal.stage.records(),
            journal.stage.position().1,
            journal.appends,
        );
        let t = Instant::now();
        journaled_fill(&mut core, &mut journal, &mut sink, &ev);
        let ns = t.elapsed().as_nanos() as u64;
        if i >= WARMUP {
            let _ = hist.record(ns.max(1));
            records += journal.stage.records() - records0;
            bytes += journal.stage.position().1 - bytes0;
            appends += journal.appends - appends0;
        }
        orders_total += sink.len() as u64;
        for o in sink.orders() {
            trade += 1;
            answers.clear();
            let r = world::fill_of(o, trade);
            journal.push(JournalEntry::Exec(r));
            core.on_exec(
                &r,
                &mut JournaledOutputs {
                    journal: &mut journal,
                    egress: &mut answers,
                    full: false,
                },
            );
        }
        journal.append();
        progress.inc(1);
    }
    assert_eq!(sink.overflow, 0, "chunk sink sized for one fan-out");
    drop(journal);
    drop(tmp);
    let per = samples.max(1) as f64;
    Journaled {
        ns: hist,
        orders_per_fill: orders_total / (samples + WARMUP) as u64,
        records_per_fill: records as f64 / per,
        bytes_per_fill: bytes as f64 / per,
        appends_per_fill: appends as f64 / per,
    }
}

/// Room for what a fill report may cause (nothing, in these scenarios).
const ORDER_CHUNK_SLACK: usize = 64;

fn baseline(followers: usize, samples: usize, progress: &Progress) -> Histogram<u64> {
    let mut book = world::decimal_books(1, followers)
        .pop()
        .expect("one leader's book");
    let (tx, rx) = crossbeam::channel::unbounded::<(usize, Decimal, Decimal)>();
    let (done_tx, done_rx) = crossbeam::channel::bounded::<()>(1);
    let consumer = std::thread::spawn(move || {
        let mut want = 0usize;
        let mut got = 0usize;
        while let Ok((f, qty, px)) = rx.recv() {
            if f == usize::MAX {
                want = qty.try_into().unwrap_or(0);
                if got >= want {
                    let _ = done_tx.send(());
                    got = 0;
                    want = 0;
                }
                continue;
            }
            std::hint::black_box((f, qty, px));
            got += 1;
            if want > 0 && got >= want {
                let _ = done_tx.send(());
                got = 0;
                want = 0;
            }
        }
    });
    let mut hist = histogram();
    for i in 0..samples + WARMUP {
        let t = Instant::now();
        let mut sent = 0usize;
        book.on_fill(|f, qty, price| {
            let _ = tx.send((f, qty, price));
            sent += 1;
        });
        let _ = tx.send((usize::MAX, Decimal::from(sent as u64), Decimal::ZERO));
        let _ = done_rx.recv();
        let ns = t.elapsed().as_nanos() as u64;
        if i >= WARMUP {
            let _ = hist.record(ns.max(1));
        }
        progress.inc(1);
    }
    drop(tx);
    let _ = consumer.join();
    hist
}

#[cfg(test)]
mod tests {
    use super::*;
    use fillcast_journal::record::Kind;
    use fillcast_journal::JournalReader;

    /// The journal holds what the pipeline would write for one fill: the input
    /// first, then every order with its decision as a row of a row record (no
    /// chunk ends between them), and every order is in an egress chunk.
    #[test]
    fn journaled_path_journals_the_input_then_each_order_and_decision() {
        let followers = 100;
        let mut core = Core::new(
            world::universe(1, followers, ""),
            &EngineConfig {
                max_working_orders: followers * 4,
                ..EngineConfig::default()
            },
        );
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("journal");
        let (w, _) = JournalWriter::open(
            &dir,
            JournalOptions {
                segment_bytes: 1 << 20,
                durability: Durability::Never,
            },
        )
        .expect("open journal");
        let mut journal = Journal {
            stage: JournalStage::new(w),
            chunk: JournalChunk::default(),
            appends: 0,
        };
        let mut sink = ChunkSink::new(followers);
        let ev = FeedEvent::LeaderFill(world::leader_fill(0, 0, 1, Nanos(1)));
        journaled_fill(&mut core, &mut journal, &mut sink, &ev);
        assert_eq!(sink.len(), followers);
        assert_eq!(sink.decisions, followers as u64);
        assert_eq!(journal.chunk.len, 0);

        let reader = JournalReader::open(&dir).expect("read journal");
        let kinds: Vec<u16> = reader
            .iter_from(1)
            .map(|r| r.expect("record").kind)
            .collect();
        assert_eq!(kinds.len() as u64, journal.stage.records());
        assert_eq!(kinds[0], Kind::LeaderFill as u16);
        let count = |k: Kind| kinds.iter().filter(|&&x| x == k as u16).count();
        let (pairs, orders, decisions) = (
            count(Kind::OrderDecision) + count(Kind::PairRows),
            count(Kind::Order),
            count(Kind::Decision),
        );
        assert_eq!(pairs + orders, followers);
        assert_eq!(orders, decisions);
        // No order is parted from its decision: not by a full journal chunk,
        // nor by the journal going out before a full egress chunk.
        assert_eq!((orders, pairs), (0, followers), "split pairs");
        assert_eq!(1 + pairs + orders + decisions, kinds.len());
    }
}
