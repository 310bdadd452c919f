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
//!
//! A second case per size changes the model's shape: the revision drops 1% of
//! the followers (each has one subscription, which becomes a tombstone) and adds
//! as many new followers subscribing to the leader (`Config::arranged_after`).
//! `RevisionPatch::prepare` then builds a core of the new shape off the core
//! thread, and `take_revision` grows the running core's tables in their room
//! with the new entries (`Core::grow_in_place`) and stops the removed
//! subscriptions. A reference variant takes the same revision by moving the
//! running state into the grown core (`RevisionPatch::moving`: what a growth
//! beyond the room does). Each sample starts from the N-subscription world
//! warmed by a fan-out; only `take_revision` is timed.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world::{self, ChunkSink};
use fillcast_engine::config::{Config, EngineConfig, FollowerConfig, SubscriptionConfig};
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_engine::units::{Money, Nanos};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

pub struct Options {
    pub subscriptions: Vec<usize>,
    pub samples: usize,
    /// Samples of the shape-changing reload (each builds its configs and cores).
    pub grown_samples: usize,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let mut cases: Vec<Case> = opts
        .subscriptions
        .iter()
        .map(|&n| case(n, opts.samples, progress))
        .collect();
    cases.extend(
        opts.subscriptions
            .iter()
            .map(|&n| grown_case(n, opts.grown_samples, progress)),
    );
    Scenario {
        name: "reload",
        title: "a live reload's stall of the core thread, N subscriptions".into(),
        fillcast: "Core::take_revision: every subscription's limit changed, applied in place between two events; \
                   and a revision that adds 1% and removes 1% of the subscriptions, the running state moved into a grown core"
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
            "+1% −1%: the grown core is built by RevisionPatch::prepare off the core thread (its new entries are appended to the running tables, which keep room for an eighth more) and freed with the patch on the I/O thread; neither is timed. The new subscriptions do not copy open positions; the removed ones close (engine.on_remove = close: their positions queued for the resync)".into(),
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
    let case = Case::new(format!("{subs} subscriptions"), RatioBasis::P99Latency)
        .param("subscriptions", subs)
        .param("samples", samples);
    stalls(case, subs, "Core::take_revision in place", &apply, &rebuild)
}

/// `case` with its two variants: the core thread's stall per reload (`apply`),
/// against rebuilding the core (`rebuild`).
fn stalls(
    case: Case,
    subs: usize,
    fillcast: &str,
    apply: &hdrhistogram::Histogram<u64>,
    rebuild: &hdrhistogram::Histogram<u64>,
) -> Case {
    let basis = "per reload: the core thread's stall";
    let per_sec = |h: &hdrhistogram::Histogram<u64>| subs as f64 * 1e9 / h.mean().max(1.0);
    case.variant(
        Variant::new("fillcast", Role::Fillcast, fillcast)
            .latency(basis, apply)
            .throughput(per_sec(apply), "subscriptions/s (at the mean)"),
    )
    .variant(
        Variant::new("baseline", Role::Baseline, "Core::new for the new model")
            .latency(basis, rebuild)
            .throughput(per_sec(rebuild), "subscriptions/s (at the mean)"),
    )
    .finish()
}

/// The next revision of the world `base` (as a user's file would say it, laid
/// out after `base` by `Config::arranged_after`): 1% of the followers dropped,
/// with their subscriptions, every `n / k`-th from `offset`, and as many new
/// followers `N{tag}.{j}` subscribing to leader `L0`. Returns it and the count.
fn reshaped(base: &Config, offset: usize, tag: usize) -> (Config, usize) {
    let n = base.subscriptions.len();
    let k = (n / 100).max(1);
    let stride = n / k;
    let dropped: HashSet<&str> = (0..k)
        .map(|j| {
            base.subscriptions[j * stride + offset % stride]
                .follower
                .as_str()
        })
        .collect();
    let mut next = base.clone();
    next.followers.retain(|f| !dropped.contains(f.id.as_str()));
    next.subscriptions
        .retain(|s| !dropped.contains(s.follower.as_str()));
    let (f0, s0) = (&base.followers[0], &base.subscriptions[0]);
    for j in 0..k {
        let id = format!("N{tag}.{j}");
        next.followers.push(FollowerConfig {
            id: id.clone(),
            ..f0.clone()
        });
        next.subscriptions.push(SubscriptionConfig {
            id: None,
            follower: id,
            leader: "L0".into(),
            ..s0.clone()
        });
    }
    let arranged = next
        .arranged_after(base)
        .expect("a reshaped world arranges after its base");
    (arranged, k)
}

fn grown_case(subs: usize, samples: usize, progress: &Progress) -> Case {
    let name = format!("{subs} subscriptions, +1% −1%");
    progress.phase(name.clone(), samples as u64);
    let base_cfg = world::config(1, subs, "");
    let base = Arc::new(Universe::from_config(&base_cfg).expect("bench model"));
    let cfg = EngineConfig {
        max_working_orders: subs * 4,
        dedup_window: 64,
        ..EngineConfig::default()
    };
    let mut sink = ChunkSink::new(subs * 2);
    let (mut apply, mut moving, mut rebuild) = (histogram(), histogram(), histogram());
    let mut changed = 0;
    for i in 0..samples {
        // A live engine loads, arranges and resolves this on the control thread.
        let (next_cfg, k) = reshaped(&base_cfg, i, i);
        changed = k;
        let next = Arc::new(Universe::from_config(&next_cfg).expect("the arranged model resolves"));
        assert_eq!(next.subs.len(), subs + k);
        // The running core: positions and working orders after a fan-out.
        let mut core = Core::new(Arc::clone(&base), &cfg);
        sink.clear();
        core.on_feed(
            &FeedEvent::LeaderFill(world::leader_fill(0, 0, 1, Nanos(1))),
            &mut sink,
        );
        // The same core, twice over: once grown in its tables' room (what the
        // engine does), once by moving its state into the grown core (what a
        // growth beyond the room does, and what every growth did before).
        let mut twin = Core::new(Arc::clone(&base), &cfg);
        let mut twin_sink = ChunkSink::new(subs * 2);
        twin.on_feed(
            &FeedEvent::LeaderFill(world::leader_fill(0, 0, 1, Nanos(1))),
            &mut twin_sink,
        );
        let prepare = || {
            RevisionPatch::prepare(&base, Arc::clone(&next), &cfg, &cfg)
                .expect("a grown model of the same symbols and tables")
        };
        let (mut patch, mut moved) = (prepare(), prepare().moving());
        assert!(patch.grows(), "the revision adds subscriptions");
        let t = Instant::now();
        core.take_revision(&mut patch)
            .expect("from the revision in force");
        let _ = apply.record((t.elapsed().as_nanos() as u64).max(1));
        assert!(patch.grew_in_place(), "an added 1% fits the tables' room");
        let t = Instant::now();
        twin.take_revision(&mut moved)
            .expect("from the revision in force");
        let _ = moving.record((t.elapsed().as_nanos() as u64).max(1));
        assert!(!moved.grew_in_place());
        // Freed off the core thread in the engine (the I/O thread).
        drop((patch, moved, twin, twin_sink));
        assert_eq!(core.universe().revision, next.revision);
        // The grown core trades on: the leader closes and its followers follow.
        sink.clear();
        let before = sink.decisions;
        core.on_feed(
            &FeedEvent::LeaderFill(world::leader_fill(0, 1, 2, Nanos(2))),
            &mut sink,
        );
        assert!(sink.decisions > before, "the grown core decides");
        drop(core);
        let t = Instant::now();
        let fresh = Core::new(next, &cfg);
        let _ = rebuild.record((t.elapsed().as_nanos() as u64).max(1));
        std::hint::black_box(&fresh);
        drop(fresh);
        progress.inc(1);
    }
    let case = Case::new(name, RatioBasis::P99Latency)
        .param("subscriptions", subs)
        .param("added", changed)
        .param("removed", changed)
        .param("samples", samples);
    let per_sec = subs as f64 * 1e9 / moving.mean().max(1.0);
    stalls(
        case.variant(
            Variant::new(
                "moving",
                Role::Reference,
                "Core::take_revision moving the state into the grown core (RevisionPatch::moving: a growth beyond the tables' room)",
            )
            .latency("per reload: the core thread's stall", &moving)
            .throughput(per_sec, "subscriptions/s (at the mean)"),
        ),
        subs,
        "Core::take_revision growing the tables in their room (Core::grow_in_place)",
        &apply,
        &rebuild,
    )
}
