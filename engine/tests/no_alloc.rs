//! The core stage does not allocate per event: a counting global allocator watches
//! thousands of leader fills fanned out to 3,000 subscriptions, their venue reports
//! (rejects of several kinds, partial fills), mark prices, commands, resync ticks,
//! deferrals for want of order places, and venue outages with their alarm, after
//! one warm-up pass.

use fillcast_engine::codes::Coded;
use fillcast_engine::config::{load_str, EngineConfig};
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FillKind, FollowerOrder, LeaderFill, RejectReason,
    NO_SENDER,
};
use fillcast_engine::ids::mix64;
use fillcast_engine::model::{Side, SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::outputs::{DecisionStatus, Outputs, Reason};
use fillcast_engine::units::{FundingRate, Lots, Nanos, Ticks};
use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Keeps the last orders in a preallocated buffer, never growing it.
struct Ring {
    orders: Vec<FollowerOrder>,
    decisions: u64,
}

impl Outputs for Ring {
    fn order(&mut self, o: &FollowerOrder) {
        if self.orders.len() < self.orders.capacity() {
            self.orders.push(*o);
        }
    }
    fn decision(&mut self, _d: &fillcast_engine::outputs::Decision) {
        self.decisions += 1;
    }
}

#[test]
fn core_stage_does_not_allocate_per_event() {
    let mut text = String::from(
        "[[venues]]\nname = \"sim\"\nkind = \"sim\"\n[[symbols]]\nname = \"S\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nvenue = \"sim\"\n\
         [[symbols]]\nname = \"T\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n",
    );
    for l in 0..3 {
        let _ = writeln!(text, "[[leaders]]\nid = \"L{l}\"\nequity = \"1000000\"");
    }
    let modes = [
        "mode = \"proportional\"",
        "mode = \"fixed_ratio\"\nratio = \"0.3\"",
        "mode = \"fixed_amount\"\namount = \"500\"",
        "mode = \"fixed_leverage\"\nleverage = \"2\"",
    ];
    for f in 0..3000 {
        let _ = writeln!(text, "[[followers]]\nid = \"F{f}\"\nequity = \"10000\"\nmax_leverage = \"5\"\ndaily_loss_limit = \"300\"");
        let _ = writeln!(
            text,
            "[[subscriptions]]\nfollower = \"F{f}\"\nleader = \"L{}\"\nallocation = \"1000\"\nmax_order_notional = \"4000\"\ntotal_stop_loss_pct = \"50\"\n{}",
            f % 3,
            modes[f % 4]
        );
    }
    let cfg = load_str(&text, Path::new("alloc.toml")).expect("config");
    let u = Arc::new(Universe::from_config(&cfg).expect("model"));
    let engine = EngineConfig {
        max_working_orders: 1 << 16,
        dedup_window: 1 << 16,
        // Two places: a flip fills them, so some orders wait for the resync.
        orders_per_subscription: 2,
        ..EngineConfig::default()
    };
    let mut core = Core::new(Arc::clone(&u), &engine);
    let mut sink = Ring {
        orders: Vec::with_capacity(1 << 16),
        decisions: 0,
    };
    let mut trade = 0u64;
    // The engine's time: a second per step, so every backoff is due at the next tick.
    let mut clock = 1_700_000_000_000_000_000u64;
    let leaders = [
        u.leader("L0").unwrap(),
        u.leader("L1").unwrap(),
        u.leader("L2").unwrap(),
    ];

    let mut round = |core: &mut Core, sink: &mut Ring, base: usize| {
        for i in 0..200usize {
            let n = base + i;
            let q = [5i64, 3, -4, -6, 2, -3, 9, -6][n % 8];
            let f = LeaderFill {
                leader: leaders[n % 3],
                symbol: SymbolIdx((n % 2) as u16),
                side: Side::from_sign(q),
                qty: Lots(q.abs() * 100),
                price: Ticks(600_000 + (n as i64 % 50) * 100),
                event_key: mix64(n as u64 + 1),
                order_key: n as u64,
                order_qty: Lots(q.abs() * 200),
                venue_ts: Nanos(1_700_000_000_000_000_000 + n as u64 * 1_000_000_000),
                recv_ts: Nanos(clock),
                kind: FillKind::ALL[n % FillKind::ALL.len()],
            };
            clock += 1_000_000_000;
            // Now and then the venue goes away for a few fills, long enough for its alarm.
            if n % 40 == 10 || n % 40 == 14 {
                core.on_feed(
                    &FeedEvent::Venue {
                        venue: VenueIdx(0),
                        up: n % 40 == 14,
                        ts: Nanos(clock),
                    },
                    sink,
                );
            }
            sink.orders.clear();
            core.on_feed(&FeedEvent::LeaderFill(f), sink);
            // The resync's orders come back in `sink` too: answer them with the rest.
            let mut answered = 0;
            for _ in 0..4 {
                clock += 1_000_000_000;
                core.on_feed(&FeedEvent::Tick { ts: Nanos(clock) }, sink);
            }
            while answered < sink.orders.len() {
                let o = sink.orders[answered];
                let j = answered;
                answered += 1;
                trade += 1;
                let (kind, reject) = match j % 7 {
                    0 => (ExecKind::Rejected, RejectReason::InsufficientMargin),
                    3 => (ExecKind::Rejected, RejectReason::Transient),
                    5 if j % 2 == 0 => (ExecKind::Rejected, RejectReason::Other),
                    _ => (ExecKind::Fill, RejectReason::None),
                };
                let half = Lots((o.qty.0 / 2).max(1));
                let r = ExecReport {
                    order_id: o.id,
                    kind,
                    qty: half,
                    price: o.limit,
                    trade_id: trade,
                    reject,
                    recv_ts: Nanos(clock),
                    ..ExecReport::default()
                };
                let mut other = Ring {
                    orders: Vec::new(),
                    decisions: 0,
                };
                core.on_exec(&r, &mut other);
                core.on_exec(
                    &ExecReport {
                        kind: ExecKind::Canceled,
                        ..r
                    },
                    &mut other,
                );
                if answered == sink.orders.len() && answered < sink.orders.capacity() / 2 {
                    clock += 1_000_000_000;
                    core.on_feed(&FeedEvent::Tick { ts: Nanos(clock) }, sink);
                }
            }
            core.on_feed(
                &FeedEvent::MarkPrice {
                    symbol: SymbolIdx(0),
                    price: Ticks(590_000),
                    ts: Nanos(2),
                },
                sink,
            );
            core.on_feed(
                &FeedEvent::Funding {
                    symbol: SymbolIdx(0),
                    rate: FundingRate(10_000),
                    price: Ticks(590_000),
                    ts: Nanos(2),
                },
                sink,
            );
            core.on_feed(
                &FeedEvent::Command {
                    cmd: Command::PauseSubscription(SubIdx((n % 3000) as u32)),
                    ts: Nanos(3),
                    by: NO_SENDER,
                },
                sink,
            );
            core.on_feed(
                &FeedEvent::Command {
                    cmd: Command::ResumeSubscription(SubIdx((n % 3000) as u32)),
                    ts: Nanos(3),
                    by: NO_SENDER,
                },
                sink,
            );
            core.on_feed(
                &FeedEvent::Command {
                    cmd: Command::Resync(SubIdx((n * 7 % 3000) as u32)),
                    ts: Nanos(clock),
                    by: NO_SENDER,
                },
                sink,
            );
        }
    };
    round(&mut core, &mut sink, 0);
    let before = ALLOCS.load(Ordering::Relaxed);
    round(&mut core, &mut sink, 1_000);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(
        core.stats().orders_sent > 10_000,
        "the run must do real work: {:?}",
        core.stats()
    );
    assert!(sink.decisions > 100_000);
    let s = core.stats();
    assert!(
        s.resyncs > 1_000
            && s.status_count(DecisionStatus::Deferred) > 100
            && s.gave_up > 0
            && s.venue_downs > 0
            && s.ticks > 1_000,
        "the new paths must run: {s:?}"
    );
    assert_eq!(
        allocs, 0,
        "core stage allocated {allocs} times in 200 fills"
    );

    // A reload that removes T and adds U (issue 12), prepared as a live engine
    // does, off the core thread: taking it moves the running state into the
    // grown core, and the fills after it (half of them in the removed T, their
    // decisions `symbol_removed`) allocate nothing either.
    let t =
        "[[symbols]]\nname = \"T\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n";
    let reloaded = format!(
        "{}\n[[symbols]]\nname = \"U\"\nlot_size = \"1\"\ntick_size = \"1\"\nvenue = \"sim\"\n",
        text.replacen(t, "", 1)
    );
    let next = load_str(&reloaded, Path::new("alloc.toml"))
        .expect("config")
        .arranged_after(&cfg)
        .expect("arranged");
    let u2 = Arc::new(Universe::from_config(&next).expect("model"));
    assert!(u2.symbols[1].removed && u2.symbols.len() == 3);
    let mut patch = RevisionPatch::prepare(&u, u2, &engine, &engine).expect("a patch");
    assert!(patch.grows());
    let before = ALLOCS.load(Ordering::Relaxed);
    core.take_revision(&mut patch).expect("taken");
    round(&mut core, &mut sink, 2_000);
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert!(
        core.stats().reason_count(Reason::SymbolRemoved) > 1_000,
        "fills in the removed symbol must come: {:?}",
        core.stats()
    );
    assert_eq!(
        allocs, 0,
        "taking a revision that adds and removes a symbol, and 200 fills after it, allocated {allocs} times"
    );

    // Reloads that add followers with a subscription each (issue 12): 100 to each
    // leader fit the tables' room and are taken in place; 600 more to L0 do not,
    // and the state moves into the grown core. Neither allocates, nor the fills
    // after them.
    let mut in_force = next;
    let mut model = reloaded;
    for (added, to, in_place) in [(300usize, None, true), (600, Some(0), false)] {
        let first = in_force.followers.len();
        for f in first..first + added {
            let _ = writeln!(model, "[[followers]]\nid = \"F{f}\"\nequity = \"10000\"");
            let _ = writeln!(
                model,
                "[[subscriptions]]\nfollower = \"F{f}\"\nleader = \"L{}\"\nallocation = \"1000\"\n{}",
                to.unwrap_or(f % 3),
                modes[f % 4]
            );
        }
        let grown = load_str(&model, Path::new("alloc.toml"))
            .expect("config")
            .arranged_after(&in_force)
            .expect("arranged");
        let u3 = Arc::new(Universe::from_config(&grown).expect("model"));
        let mut patch =
            RevisionPatch::prepare(core.universe(), u3, &engine, &engine).expect("a patch");
        assert!(patch.grows());
        let before = ALLOCS.load(Ordering::Relaxed);
        core.take_revision(&mut patch).expect("taken");
        round(&mut core, &mut sink, 4_000 + first);
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        assert_eq!(patch.grew_in_place(), in_place, "+{added}");
        assert_eq!(
            allocs, 0,
            "taking a revision adding {added} subscriptions (in place: {in_place}), and 200 fills after it, allocated {allocs} times"
        );
        assert_eq!(core.check_books(), Ok(()));
        in_force = grown;
    }
}
