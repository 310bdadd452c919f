//! Reload: how long the core thread stops taking events while it applies a new
//! revision of the decision model (every subscription's `max_order_notional`
//! changed, so every subscription is touched) with N subscriptions.
//!
//! - fillcast: `Core::take_revision` on the core's thread, after a fan-out warmed
//!   it: the stall a live `fillcast ctl reload` puts between two events. Loading
//!   and checking the files, building the new `Universe` and working out what
//!   changed (`RevisionPatch::prepare`) happen before, on the control thread, and
//!   freeing what was replaced after, on the I/O thread; none of it is timed.
//! - baseline: what a reload that rebuilds the core would stall for, `Core::new`
//!   on the new model (its state would still have to be carried over on top).

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world::{self, ChunkSink};
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_engine::units::{Money, Nanos};
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    pub subscriptions: Vec<usize>,
    pub samples: usize,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let cases = opts
        .subscriptions
        .iter()
        .map(|&n| case(n, opts.samples, progress))
        .collect();
    Scenario {
        name: "reload",
        title: "a live reload's stall of the core thread, N subscriptions".into(),
        fillcast: "Core::take_revision: every subscription's limit changed, applied in place between two events"
            .into(),
        baseline: "rebuilding the core for the new model (Core::new), before any state is carried over".into(),
        threads: vec![
            ThreadRole::unpinned("fillcast", "main", "Core::take_revision"),
            ThreadRole::unpinned("baseline", "main", "Core::new"),
        ],
        target: Some("a reload of 100,000 subscriptions does not stall the fan-out (issue 12)".into()),
        cases,
        skipped: Vec::new(),
        notes: vec![
            "the config is loaded, checked and resolved on the control thread before the core sees the reload; not timed here".into(),
        ],
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// The model `u` with every subscription's `max_order_notional` changed by
/// `step` and a new revision number.
fn changed(u: &Universe, step: i64) -> Arc<Universe> {
    let mut n = u.clone();
    for s in &mut n.subs {
        s.max_order_notional = Money(s.max_order_notional.0.saturating_sub(step).max(1));
    }
    n.revision = u.revision.wrapping_add(step as u64);
    Arc::new(n)
}

fn case(subs: usize, samples: usize, progress: &Progress) -> Case {
    progress.phase(format!("{subs} subscriptions"), (samples * 2) as u64);
    let u = world::universe(1, subs, "");
    let cfg = EngineConfig {
        max_working_orders: subs * 4,
        dedup_window: 64,
        ..EngineConfig::default()
    };
    let mut core = Core::new(Arc::clone(&u), &cfg);
    let mut sink = ChunkSink::new(subs);
    core.on_feed(
        &FeedEvent::LeaderFill(world::leader_fill(0, 0, 1, Nanos(1))),
        &mut sink,
    );
    let mut apply = histogram();
    let mut current = u;
    for i in 0..samples {
        let next = changed(&current, 1 + i as i64 % 2);
        // Prepared off the core thread in the engine (the control thread).
        let mut patch =
            RevisionPatch::prepare(&current, Arc::clone(&next), &cfg, &cfg).expect("same shape");
        let t = Instant::now();
        core.take_revision(&mut patch)
            .expect("from the revision in force");
        let _ = apply.record((t.elapsed().as_nanos() as u64).max(1));
        // Freed off the core thread in the engine (the I/O thread).
        drop(patch);
        current = next;
        progress.inc(1);
    }
    let mut rebuild = histogram();
    for _ in 0..samples {
        let next = changed(&current, 1);
        let t = Instant::now();
        let fresh = Core::new(Arc::clone(&next), &cfg);
        let _ = rebuild.record((t.elapsed().as_nanos() as u64).max(1));
        std::hint::black_box(&fresh);
        drop(fresh);
        progress.inc(1);
    }
    let basis = "per reload: the core thread's stall";
    let per_sec = |h: &hdrhistogram::Histogram<u64>| subs as f64 * 1e9 / h.mean().max(1.0);
    Case::new(format!("{subs} subscriptions"), RatioBasis::P99Latency)
        .param("subscriptions", subs)
        .param("samples", samples)
        .variant(
            Variant::new("fillcast", Role::Fillcast, "Core::take_revision in place")
                .latency(basis, &apply)
                .throughput(per_sec(&apply), "subscriptions/s (at the mean)"),
        )
        .variant(
            Variant::new("baseline", Role::Baseline, "Core::new for the new model")
                .latency(basis, &rebuild)
                .throughput(per_sec(&rebuild), "subscriptions/s (at the mean)"),
        )
        .finish()
}
