//! Sustained load: many leaders, each follower copying one of them, leader fills
//! arriving one after another through the core stage, every order answered by a
//! fill report before the next leader fill (so the order table stays small, as a
//! venue's IOC answers keep it).
//!
//! Two runs per variant, in the same invocation:
//! - unpaced, for a fixed time: the maximum sustainable rate, in follower orders
//!   per second (leader fill handling and fill reports both counted);
//! - paced at a fixed rate of leader fills, with coordinated-omission correction:
//!   fill i is due at t0 + i × interval, and its latency is measured from that
//!   intended start, so a stall delays every fill queued behind it and is counted.
//!   The rate defaults to half the slower variant's maximum, so both can keep up
//!   and the same offered load is compared.
//!
//! fillcast: one thread paces (spinning until the due time), calls `Core::on_feed`
//! into a chunking sink, then `Core::on_exec` for each order's fill.
//! Baseline, the textbook design: a source thread → crossbeam channel → a core
//! thread sizing with `rust_decimal` → one channel message per order → a gateway
//! thread, which answers each order with a fill message back to the core thread.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world::{self, ChunkSink, DecimalBook};
use crossbeam::channel::{self, select};
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::Core;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_engine::units::Nanos;
use hdrhistogram::Histogram;
use rust_decimal::Decimal;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// DESIGN.md: ≥ 50 million follower orders per second through the core stage.
const TARGET_ORDERS_PER_SEC: f64 = 50e6;
/// Progress steps per run.
const STEPS: u64 = 100;

pub struct Options {
    pub leaders: usize,
    pub followers: usize,
    pub unpaced: Duration,
    pub paced: Duration,
    /// Leader fills per second for the paced run; None: half the slower maximum.
    pub rate: Option<u64>,
}

#[derive(Copy, Clone)]
enum Pace {
    /// As fast as it goes, for this long.
    Unpaced(Duration),
    /// `fills` leader fills at `per_sec`.
    Paced { per_sec: u64, fills: u64 },
}

impl Pace {
    /// When fill `i` is due, after `t0`.
    fn due(&self, t0: Instant, i: u64) -> Option<Instant> {
        match *self {
            Pace::Unpaced(_) => None,
            Pace::Paced { per_sec, .. } => Some(
                t0 + Duration::from_nanos(
                    (u128::from(i) * 1_000_000_000 / u128::from(per_sec)) as u64,
                ),
            ),
        }
    }

    /// Whether fill `i` is past the end of the run.
    fn over(&self, t0: Instant, i: u64) -> bool {
        match *self {
            Pace::Unpaced(d) => t0.elapsed() >= d,
            Pace::Paced { fills, .. } => i >= fills,
        }
    }

    fn step(&self, t0: Instant, i: u64) -> u64 {
        match *self {
            Pace::Unpaced(d) => {
                (t0.elapsed().as_secs_f64() / d.as_secs_f64() * STEPS as f64) as u64
            }
            Pace::Paced { fills, .. } => i * STEPS / fills.max(1),
        }
    }
}

/// What one run of one variant measured, after its warm-up.
struct Measured {
    hist: Histogram<u64>,
    fills: u64,
    orders: u64,
    elapsed: Duration,
    /// fillcast: time inside `on_feed` alone.
    feed_busy: Option<Duration>,
}

impl Measured {
    fn orders_per_sec(&self) -> f64 {
        self.orders as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn fills_per_sec(&self) -> f64 {
        self.fills as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let u = world::universe(opts.leaders, opts.followers, "");
    let per_fill = opts.followers.div_ceil(opts.leaders);

    let unpaced = Pace::Unpaced(opts.unpaced);
    progress.phase("unpaced: fillcast", STEPS);
    let fc_max = fillcast(&u, opts, unpaced, progress);
    progress.phase("unpaced: baseline", STEPS);
    let base_max = baseline(opts, unpaced, progress);

    let rate = opts.rate.unwrap_or_else(|| {
        let slower = fc_max.fills_per_sec().min(base_max.fills_per_sec());
        ((slower / 2.0) as u64).max(1)
    });
    let paced = Pace::Paced {
        per_sec: rate,
        fills: ((rate as f64 * opts.paced.as_secs_f64()) as u64).max(10),
    };
    progress.phase(format!("{rate} fills/s: fillcast"), STEPS);
    let fc_paced = fillcast(&u, opts, paced, progress);
    progress.phase(format!("{rate} fills/s: baseline"), STEPS);
    let base_paced = baseline(opts, paced, progress);

    let service =
        "per leader fill: start of its handling → last order handed on (unpaced: no wait before the start)";
    let variant = |m: &Measured, role: Role, name: &str, what: &str, basis: &str| {
        let mut v = Variant::new(name, role, what)
            .latency(basis, &m.hist)
            .throughput(m.orders_per_sec(), "follower orders/s")
            .extra("leader_fills_per_sec", m.fills_per_sec())
            .extra("leader_fills", m.fills as f64)
            .extra("elapsed_s", m.elapsed.as_secs_f64());
        if let Some(busy) = m.feed_busy {
            v = v.extra(
                "orders_per_sec_on_feed_only",
                m.orders as f64 / busy.as_secs_f64().max(1e-9),
            );
        }
        v
    };
    const FC: &str = "Core::on_feed into 32-order chunks, on_exec per order's fill, one thread";
    const BASE: &str = "source → channel → rust_decimal core thread → a message per order → gateway thread (fills back by channel)";
    let mut max_case = Case::new("maximum sustainable (unpaced)", RatioBasis::Throughput)
        .param("leaders", opts.leaders)
        .param("followers", opts.followers)
        .param("orders_per_fill", per_fill)
        .param("seconds", opts.unpaced.as_secs_f64())
        .variant(variant(&fc_max, Role::Fillcast, "fillcast", FC, service))
        .variant(variant(
            &base_max,
            Role::Baseline,
            "baseline",
            BASE,
            service,
        ))
        .finish();
    let rate_fc = fc_max.orders_per_sec();
    max_case.target_result = Some(format!(
        "{:.1} M follower orders/s against ≥ 50 M: {}",
        rate_fc / 1e6,
        if rate_fc >= TARGET_ORDERS_PER_SEC {
            "met".to_string()
        } else {
            format!("{:.1}× short", TARGET_ORDERS_PER_SEC / rate_fc.max(1.0))
        }
    ));
    let corrected = "per leader fill: intended start (t0 + i × interval) → last order handed on";
    let paced_case = Case::new(
        format!("paced at {rate} leader fills/s"),
        RatioBasis::P99Latency,
    )
    .param("leaders", opts.leaders)
    .param("followers", opts.followers)
    .param("orders_per_fill", per_fill)
    .param("leader_fills_per_sec", rate)
    .param("offered_orders_per_sec", rate * per_fill as u64)
    .param("seconds", opts.paced.as_secs_f64())
    .param(
        "rate_chosen",
        if opts.rate.is_some() {
            "given"
        } else {
            "half the slower variant's maximum"
        },
    )
    .variant(variant(
        &fc_paced,
        Role::Fillcast,
        "fillcast",
        FC,
        corrected,
    ))
    .variant(variant(
        &base_paced,
        Role::Baseline,
        "baseline",
        BASE,
        corrected,
    ))
    .finish();

    Scenario {
        name: "sustained",
        title: format!(
            "sustained load: {} leaders, {} followers ({} per leader fill)",
            opts.leaders, opts.followers, per_fill
        ),
        fillcast: FC.into(),
        baseline: BASE.into(),
        threads: vec![
            ThreadRole::unpinned("fillcast", "main", "paces (spins to the due time), Core::on_feed, Core::on_exec"),
            ThreadRole::unpinned("baseline", "main", "source: paces (sleeps, then yields), one message per leader fill"),
            ThreadRole::unpinned("baseline", "core", "rust_decimal sizing, one message per order; applies fills"),
            ThreadRole::unpinned("baseline", "gateway", "takes orders, answers each with a fill message"),
        ],
        target: Some("≥ 50 million follower orders/s through the core stage (DESIGN.md)".into()),
        cases: vec![max_case, paced_case],
        skipped: Vec::new(),
        notes: vec![
            "latency is coordinated-omission corrected in the paced run: measured from each fill's intended start".into(),
            "throughput counts the fill reports' handling too: the core stage does both".into(),
            "the baseline spreads over three threads (two cores); fillcast uses one".into(),
        ],
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

fn fillcast(u: &Arc<Universe>, opts: &Options, pace: Pace, progress: &Progress) -> Measured {
    let per_fill = opts.followers.div_ceil(opts.leaders);
    let cfg = EngineConfig {
        max_working_orders: per_fill * 4 + 64,
        dedup_window: 1 << 16,
        ..EngineConfig::default()
    };
    let mut core = Core::new(Arc::clone(u), &cfg);
    let mut sink = ChunkSink::new(per_fill);
    let mut answers = ChunkSink::new(64);
    let mut trade = 0u64;
    let mut key = 0u64;
    let leaders = opts.leaders as u64;
    let mut fill = |core: &mut Core, sink: &mut ChunkSink| {
        key += 1;
        let n = key - 1;
        let ev = FeedEvent::LeaderFill(world::leader_fill(
            (n % leaders) as usize,
            n / leaders,
            key,
            Nanos(1),
        ));
        sink.clear();
        core.on_feed(&ev, sink);
    };
    let mut answer = |core: &mut Core, sink: &ChunkSink| {
        for o in sink.orders() {
            trade += 1;
            answers.clear();
            core.on_exec(&world::fill_of(o, trade), &mut answers);
        }
    };
    // Warm-up: every leader opens and closes once.
    for _ in 0..2 * leaders {
        fill(&mut core, &mut sink);
        answer(&mut core, &sink);
    }
    let mut hist = histogram();
    let (mut fills, mut orders) = (0u64, 0u64);
    let mut busy = Duration::ZERO;
    let t0 = Instant::now();
    while !pace.over(t0, fills) {
        let due = pace.due(t0, fills);
        if let Some(due) = due {
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        let begin = Instant::now();
        fill(&mut core, &mut sink);
        let end = Instant::now();
        busy += end - begin;
        let _ = hist.record(((end - due.unwrap_or(begin)).as_nanos() as u64).max(1));
        orders += sink.len() as u64;
        answer(&mut core, &sink);
        fills += 1;
        if fills.is_multiple_of(64) {
            progress.set(pace.step(t0, fills));
        }
    }
    let elapsed = t0.elapsed();
    assert_eq!(sink.overflow, 0, "chunk sink sized for one fan-out");
    Measured {
        hist,
        fills,
        orders,
        elapsed,
        feed_busy: Some(busy),
    }
}

/// A leader fill for the baseline's core thread; `due` None: stamp it on pickup.
struct FillMsg {
    leader: usize,
    due: Option<Instant>,
}

enum OrderMsg {
    Order {
        follower: usize,
        qty: Decimal,
        price: Decimal,
    },
    /// After the last order of a leader fill.
    End { due: Instant },
}

struct ExecMsg {
    follower: usize,
    qty: Decimal,
}

fn baseline(opts: &Options, pace: Pace, progress: &Progress) -> Measured {
    let leaders = opts.leaders;
    let warmup = 2 * leaders as u64;
    let mut books = world::decimal_books(leaders, opts.followers);
    // Bounded where the source would otherwise run ahead; unbounded between core
    // and gateway, which send to each other (bounded both ways could deadlock).
    let (fill_tx, fill_rx) = channel::bounded::<FillMsg>(1024);
    let (order_tx, order_rx) = channel::unbounded::<OrderMsg>();
    let (exec_tx, exec_rx) = channel::unbounded::<ExecMsg>();
    let core = std::thread::Builder::new()
        .name("baseline-core".into())
        .spawn(move || {
            let apply = |books: &mut Vec<DecimalBook>, e: ExecMsg| {
                books[e.follower % leaders].on_exec(e.follower / leaders, e.qty);
            };
            loop {
                select! {
                    recv(fill_rx) -> m => match m {
                        Ok(f) => {
                            let due = f.due.unwrap_or_else(Instant::now);
                            books[f.leader].on_fill(|follower, qty, price| {
                                let _ = order_tx.send(OrderMsg::Order { follower, qty, price });
                            });
                            let _ = order_tx.send(OrderMsg::End { due });
                        }
                        Err(_) => break,
                    },
                    recv(exec_rx) -> e => {
                        if let Ok(e) = e {
                            apply(&mut books, e);
                        }
                    }
                }
            }
            drop(order_tx);
            for e in exec_rx.iter() {
                apply(&mut books, e);
            }
        })
        .expect("spawn baseline core");
    let gateway = std::thread::Builder::new()
        .name("baseline-gateway".into())
        .spawn(move || {
            let mut hist = histogram();
            let (mut fills, mut orders, mut window_orders) = (0u64, 0u64, 0u64);
            let mut window_start = None;
            let mut last_end = Instant::now();
            for m in order_rx.iter() {
                match m {
                    OrderMsg::Order {
                        follower,
                        qty,
                        price,
                    } => {
                        std::hint::black_box(price);
                        let _ = exec_tx.send(ExecMsg { follower, qty });
                        orders += 1;
                    }
                    OrderMsg::End { due } => {
                        last_end = Instant::now();
                        fills += 1;
                        if fills == warmup {
                            window_start = Some(last_end);
                            window_orders = orders;
                        } else if fills > warmup {
                            let _ = hist.record(((last_end - due).as_nanos() as u64).max(1));
                        }
                    }
                }
            }
            let start = window_start.unwrap_or(last_end);
            (
                hist,
                fills.saturating_sub(warmup),
                orders - window_orders,
                last_end - start,
            )
        })
        .expect("spawn baseline gateway");

    for i in 0..warmup {
        let _ = fill_tx.send(FillMsg {
            leader: (i % leaders as u64) as usize,
            due: None,
        });
    }
    let t0 = Instant::now();
    let mut i = 0u64;
    while !pace.over(t0, i) {
        let due = pace.due(t0, i);
        if let Some(due) = due {
            // Sleep while far from due, then yield: a spinning source would take
            // one of the two cores from the stages it feeds.
            loop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                if due - now > Duration::from_micros(300) {
                    std::thread::sleep(due - now - Duration::from_micros(200));
                } else {
                    std::thread::yield_now();
                }
            }
        }
        let _ = fill_tx.send(FillMsg {
            leader: ((warmup + i) % leaders as u64) as usize,
            due,
        });
        i += 1;
        if i.is_multiple_of(16) {
            progress.set(pace.step(t0, i));
        }
    }
    drop(fill_tx);
    core.join().expect("baseline core thread");
    let (hist, fills, orders, elapsed) = gateway.join().expect("baseline gateway thread");
    Measured {
        hist,
        fills,
        orders,
        elapsed,
        feed_busy: None,
    }
}
