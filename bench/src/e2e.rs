//! End to end through the simulated venue over a real TCP socket (loopback):
//! leader fill received → the last follower order of that fill handed to the
//! gateway's socket.
//!
//! fillcast: the real pipeline (`pipeline::start`: core thread, I/O thread)
//! trading with a `fillcast sim-venue` server
//! (in-process thread, mio) through `SimClient`. The gateway is wrapped so that
//! `clock::now()` is read after each `submit` returns (the chunk's bytes are in
//! the socket, or in the client's buffer when the socket is full), and orders
//! map back to their leader fill by `leader_event_key`. Run twice: without a
//! journal (the headline: the baseline keeps none either), and with the journal
//! stage at durability `never`, where no order leaves before its record.
//!
//! Baseline, the textbook design over the same wire to the same kind of venue: a
//! source thread → channel → a core thread sizing with `rust_decimal` → one channel
//! message per order → a gateway thread that submits each order alone (one frame,
//! one write) through its own `SimClient`.
//!
//! Both sources are paced and stamp each fill with its scheduled arrival, so a late
//! poll counts as latency (coordinated-omission correction). The venue fills every
//! order in full after 20 µs, so the engine's order table stays small.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world;
use crossbeam::channel;
use fillcast_engine::clock;
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::Core;
use fillcast_engine::event::{ExecReport, FeedEvent, FollowerOrder, OrderType};
use fillcast_engine::model::{FollowerIdx, Side, SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::pipeline;
use fillcast_engine::port::{
    AskedOrder, Gateway, JournalSink, Source, SourcePoll, VenueBooks, VenueError,
};
use fillcast_engine::units::{Lots, Nanos, Ticks};
use fillcast_gateways::sim::SimVenue;
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::simserver::serve;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{Durability, JournalOptions, JournalWriter};
use hdrhistogram::Histogram;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The venue's fill model: every order filled in full after this long.
const VENUE_LATENCY: &str = "[venues.sim]\nlatency_us = 20\npartial_fill_ppm = 0\nreject_ppm = 0\ntransient_failure_ppm = 0\n";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long past its schedule a run may take to drain before it is cut.
const DRAIN_MAX: Duration = Duration::from_secs(30);

pub struct Options {
    pub leaders: usize,
    pub followers: usize,
    pub fills_per_sec: u64,
    pub duration: Duration,
}

impl Options {
    fn fills(&self) -> u64 {
        ((self.fills_per_sec as f64 * self.duration.as_secs_f64()) as u64).max(10)
    }
    /// Unrecorded fills first: every leader opens and closes once.
    fn warmup(&self) -> u64 {
        2 * self.leaders as u64
    }
}

struct Measured {
    hist: Histogram<u64>,
    orders: u64,
    elapsed: Duration,
    /// Fills with no order seen at the gateway (after the warm-up).
    unmatched: u64,
    extra: Vec<(&'static str, f64)>,
    notes: Vec<String>,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let u = world::universe(opts.leaders, opts.followers, VENUE_LATENCY);
    let per_fill = opts.followers.div_ceil(opts.leaders);
    progress.phase("fillcast pipeline → sim venue over TCP", opts.fills());
    let fc = fillcast(&u, opts, false, progress);
    progress.phase(
        "fillcast pipeline + journal → sim venue over TCP",
        opts.fills(),
    );
    let fc_journal = fillcast(&u, opts, true, progress);
    progress.phase("baseline → sim venue over TCP", opts.fills());
    let base = baseline(&u, opts, progress);

    let basis =
        "per leader fill: scheduled arrival → last order's submit returned (bytes in the socket)";
    let variant = |m: &Measured, role: Role, name: &str, what: &str| {
        let mut v = Variant::new(name, role, what)
            .latency(basis, &m.hist)
            .throughput(
                m.orders as f64 / m.elapsed.as_secs_f64().max(1e-9),
                "follower orders/s",
            )
            .extra("unmatched_fills", m.unmatched as f64);
        for (k, x) in &m.extra {
            v = v.extra(k, *x);
        }
        v
    };
    const FC: &str = "pipeline::start (core + I/O threads, no journal), SimClient over TCP";
    const FC_JOURNAL: &str = "as fillcast, with the journal stage (durability `never`): no order leaves before its record";
    const BASE: &str = "source → channel → rust_decimal core → a message per order → gateway thread, one submit (frame, write) per order, SimClient over TCP";
    let case = Case::new(
        format!(
            "{} leader fills/s, {per_fill} orders each",
            opts.fills_per_sec
        ),
        RatioBasis::P99Latency,
    )
    .param("leaders", opts.leaders)
    .param("followers", opts.followers)
    .param("orders_per_fill", per_fill)
    .param("leader_fills_per_sec", opts.fills_per_sec)
    .param("leader_fills", opts.fills())
    .param("seconds", opts.duration.as_secs_f64())
    .param(
        "venue",
        "sim venue server in-process, loopback TCP, fills in full after 20 µs",
    )
    .variant(variant(&fc, Role::Fillcast, "fillcast", FC))
    .variant(variant(
        &fc_journal,
        Role::Fillcast,
        "fillcast + journal",
        FC_JOURNAL,
    ))
    .variant(variant(&base, Role::Baseline, "baseline", BASE))
    .finish();
    let mut notes = vec![
        "the sources stamp each fill with its scheduled arrival: coordinated-omission corrected".into(),
        "a submit that finds the socket full leaves the rest in the client's buffer; the stamp is taken when submit returns".into(),
    ];
    notes.extend(fc.notes);
    notes.extend(fc_journal.notes);
    notes.extend(base.notes);
    Scenario {
        name: "e2e",
        title:
            "end to end: leader fill received → last follower order handed to the venue's socket"
                .into(),
        fillcast: FC.into(),
        baseline: BASE.into(),
        threads: vec![
            ThreadRole::unpinned("fillcast", "fillcast-core", "Core (wait: backoff)"),
            ThreadRole::unpinned(
                "fillcast",
                "fillcast-io",
                "source, SimClient, the journal stage when on (wait: backoff)",
            ),
            ThreadRole::unpinned(
                "both",
                "sim server",
                "sim venue server (mio; sleeps in epoll)",
            ),
            ThreadRole::unpinned("fillcast", "main", "sleeps; progress"),
            ThreadRole::unpinned("baseline", "main", "source: paces (sleeps, then yields)"),
            ThreadRole::unpinned(
                "baseline",
                "core",
                "rust_decimal sizing, one message per order",
            ),
            ThreadRole::unpinned(
                "baseline",
                "gateway",
                "SimClient: one submit per order, polls reports",
            ),
        ],
        target: None,
        cases: vec![case],
        skipped: Vec::new(),
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// A sim venue server on 127.0.0.1 in a thread.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<fillcast_gateways::simserver::ServeStats>>,
}

impl Server {
    fn start(u: &Universe) -> Server {
        let venue = SimVenue::for_venue(u, VenueIdx(0))
            .expect("the bench world has one venue")
            .fill_all();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("sim-server".into())
            .spawn(move || serve(listener, venue, flag))
            .expect("spawn sim server");
        Server { addr, stop, thread }
    }

    /// Orders the venue received.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        match self.thread.join() {
            Ok(Ok(s)) => s.venue.orders_received,
            _ => 0,
        }
    }
}

/// Leader fills at a fixed rate, each stamped with its scheduled arrival.
struct PacedFills {
    leaders: u64,
    per_sec: u64,
    total: u64,
    emitted: u64,
    t0: Option<u64>,
    /// (event key, scheduled arrival ns), preallocated for every fill.
    log: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Source for PacedFills {
    fn name(&self) -> &str {
        "bench-paced-fills"
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        if self.emitted == self.total {
            return SourcePoll::Finished;
        }
        let t0 = *self.t0.get_or_insert(now.0);
        let due = t0 + (u128::from(self.emitted) * 1_000_000_000 / u128::from(self.per_sec)) as u64;
        if now.0 < due {
            return SourcePoll::Idle;
        }
        let n = self.emitted;
        self.emitted += 1;
        let key = n + 1;
        if let Ok(mut log) = self.log.lock() {
            log.push((key, due));
        }
        SourcePoll::Event(FeedEvent::LeaderFill(world::leader_fill(
            (n % self.leaders) as usize,
            n / self.leaders,
            key,
            Nanos(due),
        )))
    }
}

/// A gateway that notes, per leader event, when the last submit carrying one of
/// its orders returned (the chunk's bytes are written, or buffered when the
/// socket is full), and counts the submits; everything else is the inner
/// gateway's (`fixe2e` wraps its FIX gateway in it too).
pub(crate) struct Stamped<G> {
    pub(crate) inner: G,
    pub(crate) last_ns: Arc<Mutex<HashMap<u64, u64>>>,
    pub(crate) submits: Arc<AtomicU64>,
}

impl<G: Gateway> Gateway for Stamped<G> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn can_accept(&self, orders: usize) -> bool {
        self.inner.can_accept(orders)
    }

    fn submit(&mut self, orders: &[FollowerOrder], now: Nanos, out: &mut dyn FnMut(ExecReport)) {
        self.inner.submit(orders, now, out);
        let t = clock::now().0;
        self.submits.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = self.last_ns.lock() {
            for o in orders {
                m.insert(o.leader_event_key, t);
            }
        }
    }

    fn poll(&mut self, now: Nanos, out: &mut dyn FnMut(ExecReport)) -> usize {
        self.inner.poll(now, out)
    }

    fn in_flight(&self) -> usize {
        self.inner.in_flight()
    }

    fn is_up(&self) -> bool {
        self.inner.is_up()
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.inner.universe_changed(universe);
    }

    fn down_reason(&self) -> Option<String> {
        self.inner.down_reason()
    }

    fn recover(
        &mut self,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        self.inner.recover(orders, out)
    }

    fn books(&mut self) -> Option<Result<VenueBooks, VenueError>> {
        self.inner.books()
    }
}

fn fillcast(u: &Arc<Universe>, opts: &Options, journaled: bool, progress: &Progress) -> Measured {
    let server = Server::start(u);
    let client =
        SimClient::connect("sim", server.addr, CONNECT_TIMEOUT).expect("connect to the sim venue");
    let fills = opts.fills();
    let log = Arc::new(Mutex::new(Vec::with_capacity(fills as usize)));
    let last_ns = Arc::new(Mutex::new(HashMap::with_capacity(fills as usize)));
    let source = PacedFills {
        leaders: opts.leaders as u64,
        per_sec: opts.fills_per_sec,
        total: fills,
        emitted: 0,
        t0: None,
        log: Arc::clone(&log),
    };
    let gateway = Stamped {
        inner: client,
        last_ns: Arc::clone(&last_ns),
        submits: Arc::default(),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let journal: Option<Box<dyn JournalSink>> = journaled.then(|| {
        let (writer, _) = JournalWriter::open(
            dir.path(),
            JournalOptions {
                segment_bytes: 64 << 20,
                durability: Durability::Never,
            },
        )
        .expect("open journal");
        Box::new(JournalStage::new(writer)) as Box<dyn JournalSink>
    });
    let cfg = EngineConfig {
        max_working_orders: 1 << 16,
        ..EngineConfig::default()
    };
    let core = Core::new(Arc::clone(u), &cfg);
    let t0 = Instant::now();
    let running = pipeline::start(
        core,
        vec![Box::new(gateway)],
        vec![Box::new(source)],
        journal,
        pipeline::Restart::default(),
        &cfg,
    );
    let deadline = opts.duration + DRAIN_MAX;
    let mut idle_seen = 0;
    // As `run_to_completion`, with a deadline, so a stuck run ends with a note.
    while t0.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let p = &running.progress;
        progress.set(p.leader_fills.load(Ordering::Relaxed));
        if p.idle() {
            idle_seen += 1;
            if idle_seen >= 2 {
                break;
            }
        } else {
            idle_seen = 0;
        }
    }
    let timed_out = idle_seen < 2;
    let (core_out, io_out) = running.stop();
    let elapsed = t0.elapsed();
    let venue_orders = server.stop();
    let mut notes = Vec::new();
    if timed_out {
        notes.push(format!(
            "fillcast: not idle {} s after the last fill was due; cut",
            DRAIN_MAX.as_secs()
        ));
    }
    if let Some(e) = io_out.journal_error {
        notes.push(format!("fillcast: journal error: {e}"));
    }
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let last = last_ns.lock().map(|m| m.clone()).unwrap_or_default();
    let (hist, unmatched) = match_fills(&log, &last, opts.warmup());
    let orders = core_out.core.stats().orders_sent;
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64;
    Measured {
        hist,
        orders,
        elapsed,
        unmatched,
        extra: vec![
            ("venue_orders_received", venue_orders as f64),
            ("pipeline_fanout_p99_ns", p99(&core_out.fanout_ns)),
            (
                "pipeline_receive_to_egress_ring_p99_ns",
                p99(&core_out.receive_to_egress_ns),
            ),
        ],
        notes,
    }
}

/// Latency per fill after the warm-up: its last order's stamp − its scheduled arrival.
fn match_fills(log: &[(u64, u64)], last: &HashMap<u64, u64>, warmup: u64) -> (Histogram<u64>, u64) {
    let mut hist = histogram();
    let mut unmatched = 0;
    for (key, due) in log.iter().skip(warmup as usize) {
        match last.get(key) {
            Some(t) => {
                let _ = hist.record(t.saturating_sub(*due).max(1));
            }
            None => unmatched += 1,
        }
    }
    (hist, unmatched)
}

enum OrderMsg {
    Order(FollowerOrder),
    End { key: u64, due: u64 },
}

fn baseline(u: &Arc<Universe>, opts: &Options, progress: &Progress) -> Measured {
    let server = Server::start(u);
    let mut client =
        SimClient::connect("sim", server.addr, CONNECT_TIMEOUT).expect("connect to the sim venue");
    let leaders = opts.leaders;
    let fills = opts.fills();
    let mut books = world::decimal_books(leaders, opts.followers);
    let (fill_tx, fill_rx) = channel::bounded::<(usize, u64, u64)>(1024);
    let (order_tx, order_rx) = channel::unbounded::<OrderMsg>();
    let core = std::thread::Builder::new()
        .name("baseline-core".into())
        .spawn(move || {
            let lots_per_unit = Decimal::from(1000);
            let ticks_per_unit = Decimal::from(10);
            let mut id = 0u64;
            for (leader, key, due) in fill_rx.iter() {
                books[leader].on_fill(|follower, qty, price| {
                    id += 1;
                    // Decimal to the wire's integers at the gateway edge, per order.
                    let order = FollowerOrder {
                        id,
                        sub: SubIdx(follower as u32),
                        follower: FollowerIdx(follower as u32),
                        symbol: SymbolIdx(0),
                        side: if qty.is_sign_negative() {
                            Side::Sell
                        } else {
                            Side::Buy
                        },
                        qty: Lots((qty.abs() * lots_per_unit).trunc().to_i64().unwrap_or(0)),
                        order_type: OrderType::LimitIoc,
                        limit: Ticks((price * ticks_per_unit).trunc().to_i64().unwrap_or(0)),
                        reduce_only: false,
                        leader_event_key: key,
                        ts: clock::now(),
                        ..FollowerOrder::default()
                    };
                    let _ = order_tx.send(OrderMsg::Order(order));
                });
                let _ = order_tx.send(OrderMsg::End { key, due });
            }
        })
        .expect("spawn baseline core");
    let warmup = opts.warmup();
    let gateway = std::thread::Builder::new()
        .name("baseline-gateway".into())
        .spawn(move || {
            let mut hist = histogram();
            let mut orders = 0u64;
            let mut fills_done = 0u64;
            // The venue's reports only free the client's in-flight entries here.
            let mut count = |_: ExecReport| {};
            loop {
                match order_rx.recv_timeout(Duration::from_micros(100)) {
                    Ok(OrderMsg::Order(o)) => {
                        client.submit(std::slice::from_ref(&o), clock::now(), &mut count);
                        orders += 1;
                        if orders.is_multiple_of(64) {
                            client.poll(clock::now(), &mut count);
                        }
                    }
                    Ok(OrderMsg::End { key, due }) => {
                        let t = clock::now().0;
                        fills_done += 1;
                        if key > warmup {
                            let _ = hist.record(t.saturating_sub(due).max(1));
                        }
                    }
                    Err(channel::RecvTimeoutError::Timeout) => {
                        client.poll(clock::now(), &mut count);
                    }
                    Err(channel::RecvTimeoutError::Disconnected) => break,
                }
            }
            let drain_until = Instant::now() + DRAIN_MAX;
            while client.in_flight() > 0 && Instant::now() < drain_until {
                if client.poll(clock::now(), &mut count) == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            (hist, orders, fills_done, client.in_flight())
        })
        .expect("spawn baseline gateway");

    let t0 = Instant::now();
    let start_ns = clock::now().0;
    for i in 0..fills {
        let due =
            start_ns + (u128::from(i) * 1_000_000_000 / u128::from(opts.fills_per_sec)) as u64;
        // Sleep while far from due, then yield: a spinning source would take a core.
        loop {
            let now = clock::now().0;
            if now >= due {
                break;
            }
            let left = due - now;
            if left > 300_000 {
                std::thread::sleep(Duration::from_nanos(left - 200_000));
            } else {
                std::thread::yield_now();
            }
        }
        let _ = fill_tx.send(((i % leaders as u64) as usize, i + 1, due));
        if i.is_multiple_of(8) {
            progress.set(i);
        }
    }
    drop(fill_tx);
    core.join().expect("baseline core thread");
    let (hist, orders, fills_done, in_flight) = gateway.join().expect("baseline gateway thread");
    let elapsed = t0.elapsed();
    let venue_orders = server.stop();
    let mut notes = Vec::new();
    if in_flight > 0 {
        notes.push(format!(
            "baseline: {in_flight} orders unanswered when the run was cut"
        ));
    }
    Measured {
        unmatched: fills - fills_done,
        hist,
        orders,
        elapsed,
        extra: vec![("venue_orders_received", venue_orders as f64)],
        notes,
    }
}
