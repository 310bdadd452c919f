//! Fan-out: one leader fill sized, risk-checked and turned into orders for N
//! followers, timed from the start of handling to the last order handed on.
//!
//! - fillcast: `Core::on_feed` writing orders into 32-order chunks (as the egress
//!   ring slots are), with the decisions handed to the journal-entry sink.
//! - baseline, the textbook design, in the same run: per follower, `rust_decimal`
//!   arithmetic (ratio × leader position, rounded to the lot, minus the position),
//!   a notional check, and one message per order on a crossbeam channel to a
//!   consumer thread; timed until the consumer has received the last order.
//!
//! Orders are answered (filled) between samples, outside the timed region.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world::{self, ChunkSink};
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::Core;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::units::Nanos;
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use std::time::Instant;

/// Unrecorded samples first: caches, branch predictors, the order table's first growth.
const WARMUP: usize = 20;
/// DESIGN.md: one leader fill to 10,000 followers, p99 ≤ 50 µs.
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
        fillcast: "Core::on_feed, orders into 32-order chunks as in the egress ring; \
                   orders filled between samples, outside the timed region"
            .into(),
        baseline: "textbook: rust_decimal sizing per follower, one crossbeam channel \
                   message per order to a consumer thread, timed until it has the last"
            .into(),
        threads: vec![
            ThreadRole::unpinned("fillcast", "main", "Core::on_feed and on_exec"),
            ThreadRole::unpinned("baseline", "main", "decimal sizing, one send per order"),
            ThreadRole::unpinned("baseline", "consumer", "receives every order"),
        ],
        target: Some("10,000 followers: p99 ≤ 50 µs (DESIGN.md)".into()),
        cases,
        skipped: Vec::new(),
        notes: vec![
            "every fill moves every follower (the leader alternates opening and closing): a worst case".into(),
            "the fillcast side ends at the chunk sink; the baseline's end includes its channel hop, which is its design".into(),
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
        .variant(
            Variant::new(
                "fillcast",
                Role::Fillcast,
                "Core::on_feed into 32-order chunks",
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
        let p99 = fillcast_ns.value_at_quantile(0.99);
        case.target_result = Some(format!(
            "p99 {} against ≤ 50 µs: {}",
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

/// Per-fill latencies, and orders per fill.
fn fillcast(followers: usize, samples: usize, progress: &Progress) -> (Histogram<u64>, u64) {
    let u = world::universe(1, followers, "");
    let cfg = EngineConfig {
        max_working_orders: followers * 4,
        dedup_window: samples * 2 + 16,
        ..EngineConfig::default()
    };
    let mut core = Core::new(u, &cfg);
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
