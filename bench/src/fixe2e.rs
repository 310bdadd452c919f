//! FIX end to end (issue 13): a leader execution that the QuickFIX test venue
//! (`gateways/fixvenue`) publishes on its drop-copy session → the last follower
//! NewOrderSingle of that fill written to its order-entry session, over loopback.
//!
//! fillcast: the real pipeline (`pipeline::start`: core and I/O threads) with the
//! FIX drop-copy source (`fix::dropcopy::DropCopySource`) and the FIX order-entry
//! gateway (`fix::orderentry::OrderEntryGateway`), both talking to a `fixvenue`
//! process this scenario starts, with the tests' settings (which send with `SocketNodelay=Y`)
//! (`VENUE_CFG_NODELAY`). Baseline in the same run: the same pipeline,
//! universe and leader fills (the same event keys, so the same orders), with an
//! in-process source and the simulated venue's wire (`simserver` + `SimClient`).
//!
//! Both are measured at the same two points: from the fill's `recv_ts` (the I/O
//! thread's clock when the source handed it over: for FIX, the poll that read
//! and decoded the ExecutionReport) to `clock::now()` after the gateway's
//! `submit` returned for the chunk holding the fill's last order (each `submit`
//! writes its chunk in one socket write). Fills go one at a time: the next is
//! released at most `1 / interval` after the last, and only once everything the
//! last caused is answered, so this is latency, not queueing. What happens
//! before the source's poll (QuickFIX publishing, the I/O thread waking from its
//! idle wait) is outside both; for FIX the bench's `fill` command → last
//! NewOrderSingle is kept as an extra figure.
//!
//! Not part of the default run: it needs the venue binary, built by
//! `scripts/install-quickfix.sh`; without it the scenario says so and the
//! harness exits non-zero.

use crate::e2e::Stamped;
use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use crate::world;
use anyhow::{bail, ensure, Context, Result};
use fillcast_engine::clock;
use fillcast_engine::config::EngineConfig;
use fillcast_engine::core::Core;
use fillcast_engine::event::{FeedEvent, ORDER_CHUNK};
use fillcast_engine::ids::leader_event_key;
use fillcast_engine::model::{Universe, VenueIdx};
use fillcast_engine::pipeline::{self, Progress as PipelineProgress, Running};
use fillcast_engine::port::{Gateway, ResumeError, Source, SourcePoll};
use fillcast_engine::units::Nanos;
use fillcast_gateways::fix::app::ReduceOnly;
use fillcast_gateways::fix::conn::Peer;
use fillcast_gateways::fix::dropcopy::{DropCopyConfig, DropCopySource};
use fillcast_gateways::fix::orderentry::{OrderEntryConfig, OrderEntryGateway};
use fillcast_gateways::fix::session::SessionConfig;
use fillcast_gateways::sim::SimVenue;
use fillcast_gateways::simclient::SimClient;
use fillcast_gateways::simserver::serve;
use hdrhistogram::Histogram;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The venue's QuickFIX settings, written beside its state so the bench runs
/// from any directory.
const VENUE_CFG: &str = include_str!("../../gateways/fixvenue/fixvenue.cfg");
/// Added to the settings' `[DEFAULT]`: QuickFIX leaves Nagle's algorithm on
/// unless told, and its 200 ExecutionReports a fill then took ~45 ms instead of
/// ~12 ms to reach us (measured here, 2026-12-07). A venue one measures latency
/// against sends at once, as fillcast's sockets do.
const VENUE_CFG_NODELAY: &str = "SocketNodelay=Y\n";
/// The sim venue's fill model (as `e2e`): every order filled in full after 20 µs.
const SIM_VENUE: &str = "[venues.sim]\nlatency_us = 20\npartial_fill_ppm = 0\nreject_ppm = 0\ntransient_failure_ppm = 0\n";
/// The one leader every subscription follows; its account on the drop copy.
const LEADER: &str = "L0";
/// How long the venue may take to start, and the sessions to log on.
const START_MAX: Duration = Duration::from_secs(15);
/// How long one leader fill may take until everything it caused is answered.
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// tmpfs, for the reference run's session stores.
const SHM: &str = "/dev/shm";
/// A control answer longer than this is a broken venue.
const CONTROL_LINE_BYTES_MAX: usize = 64 * 1024;

pub struct Options {
    pub venue: PathBuf,
    pub followers: usize,
    pub fills: u64,
    /// Fills run first and not recorded (both sessions warm, the tables touched).
    pub warmup: u64,
    /// The least time between two fills' releases.
    pub interval: Duration,
}

/// The venue's binary: `given` (`--fixvenue`), else `$FILLCAST_FIXVENUE`, else
/// `target/fixvenue/fixvenue` of this checkout; an error that says how to build
/// it when there is no such file.
pub fn venue_binary(given: Option<&Path>) -> Result<PathBuf> {
    let bin = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FILLCAST_FIXVENUE").map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixvenue/fixvenue")
        });
    ensure!(
        bin.is_file(),
        "fixe2e: the QuickFIX test venue {} is missing. Build it with `bash scripts/install-quickfix.sh` \
         (installs QuickFIX with apt and builds target/fixvenue/fixvenue at the repository's root), \
         or name one with --fixvenue PATH or FILLCAST_FIXVENUE",
        bin.display()
    );
    Ok(bin)
}

pub fn run(opts: &Options, progress: &Progress) -> Result<Scenario> {
    assert!(opts.fills > opts.warmup, "fills must outnumber the warm-up");
    let started = Instant::now();
    let u = world::universe(1, opts.followers, SIM_VENUE);
    progress.phase(
        "fillcast pipeline: QuickFIX drop copy → FIX order entry",
        opts.fills,
    );
    // In the temp dir's file system: on disk, usually, as `fillcast run` keeps
    // them beside its config.
    let on_disk = tempfile::tempdir().context("temp dir")?;
    let fix = fix_run(&u, opts, on_disk.path(), progress)?;
    let shm = Path::new(SHM);
    let fix_shm = if shm.is_dir() {
        progress.phase(
            "fillcast pipeline over FIX, session stores on tmpfs",
            opts.fills,
        );
        let in_memory = tempfile::tempdir_in(shm).context("temp dir in /dev/shm")?;
        Some(fix_run(&u, opts, in_memory.path(), progress)?)
    } else {
        None
    };
    progress.phase(
        "fillcast pipeline: in-process source → sim venue wire",
        opts.fills,
    );
    let sim = sim_run(&u, opts, progress)?;

    let basis = "per leader fill: the source handed it over (recv_ts) → submit returned for the chunk with its last order";
    let variant = |m: &Measured, role: Role, name: &str, what: &str| {
        let mut v = Variant::new(name, role, what)
            .latency(basis, &m.hist)
            .throughput(
                m.orders as f64 / m.elapsed.as_secs_f64().max(1e-9),
                "follower orders/s (paced: not a maximum)",
            )
            .extra("unmatched_fills", m.unmatched as f64)
            .extra("orders_per_fill", m.orders as f64 / opts.fills as f64)
            .extra("submits_per_fill", m.submits as f64 / opts.fills as f64)
            .extra("releases_late", m.late as f64)
            .extra("settle_p50_ns", m.settle.value_at_quantile(0.5) as f64)
            .extra("settle_p99_ns", m.settle.value_at_quantile(0.99) as f64)
            .extra("source_rejected", m.source_rejected as f64)
            .extra(
                "pipeline_receive_to_egress_ring_p50_ns",
                m.receive_to_egress_ns.value_at_quantile(0.5) as f64,
            )
            .extra(
                "pipeline_receive_to_egress_ring_p99_ns",
                m.receive_to_egress_ns.value_at_quantile(0.99) as f64,
            );
        for (k, x) in &m.extra {
            v = v.extra(k, *x);
        }
        v
    };
    const FIX: &str = "pipeline::start (core + I/O threads, no journal); fix::dropcopy::DropCopySource and fix::orderentry::OrderEntryGateway against the QuickFIX venue (fixvenue) over loopback";
    const FIX_SHM: &str = "as FIX, with the two sessions' sequence-number stores on tmpfs (/dev/shm): each store replaces its file (create, write, rename) at every poll that moved a sequence number, on the I/O thread";
    const SIM: &str = "the same pipeline, universe and leader fills: an in-process source, SimClient to an in-process sim venue server over loopback";
    let per_fill = opts.followers.div_ceil(ORDER_CHUNK);
    let case = Case::new(
        format!(
            "1 leader, {} followers: {} orders in {per_fill} chunks per fill, one fill at a time",
            opts.followers, opts.followers
        ),
        RatioBasis::P99Latency,
    )
    .param("leaders", 1)
    .param("followers", opts.followers)
    .param("orders_per_chunk", ORDER_CHUNK)
    .param("leader_fills", opts.fills)
    .param("leader_fills_recorded", opts.fills - opts.warmup)
    .param(
        "leader_fills_per_sec_max",
        1.0 / opts.interval.as_secs_f64(),
    )
    .param(
        "venues",
        "QuickFIX 1.15 fixvenue (gateways/fixvenue/fixvenue.cfg + SocketNodelay=Y; FileStore, FileLog) as a child process; sim venue server in-process, fills in full after 20 µs",
    )
    .variant(variant(&fix, Role::Fillcast, "FIX (QuickFIX venue)", FIX));
    let case = match &fix_shm {
        Some(m) => case.variant(variant(
            m,
            Role::Reference,
            "FIX, session stores on tmpfs",
            FIX_SHM,
        )),
        None => case,
    };
    let case = case
        .variant(variant(&sim, Role::Baseline, "sim venue wire", SIM))
        .finish();
    let mut notes = vec![
        "fills are released one at a time, never before everything the previous one caused is answered: latency, not queueing".into(),
        "the ratio is sim ÷ FIX at p99: below 1 means the FIX path takes longer".into(),
        "QuickFIX publishing the execution and the I/O thread waking (spin, yield, then 50 µs sleeps) come before recv_ts and are outside both figures; the FIX variant's extra venue_command_to_last_order_* includes them".into(),
    ];
    if fix_shm.is_none() {
        notes.push(format!(
            "no {SHM}: the reference with the session stores on tmpfs did not run"
        ));
    }
    notes.extend(fix.notes);
    notes.extend(fix_shm.into_iter().flat_map(|m| m.notes));
    notes.extend(sim.notes);
    Ok(Scenario {
        name: "fixe2e",
        title: "FIX end to end: leader execution read from the drop copy → last follower NewOrderSingle written".into(),
        fillcast: FIX.into(),
        baseline: SIM.into(),
        threads: vec![
            ThreadRole::unpinned("both", "fillcast-core", "Core (wait: backoff)"),
            ThreadRole::unpinned(
                "both",
                "fillcast-io",
                "the source, the gateway: FIX codec and sessions, or SimClient (wait: backoff)",
            ),
            ThreadRole::unpinned(
                "fillcast",
                "fixvenue",
                "QuickFIX acceptor: a thread per session, the control port (another process)",
            ),
            ThreadRole::unpinned("baseline", "sim server", "sim venue server (mio; sleeps in epoll)"),
            ThreadRole::unpinned(
                "both",
                "main",
                "releases fills (the venue's `fill` command, or the in-process source's gate), waits for each to settle",
            ),
        ],
        target: None,
        cases: vec![case],
        skipped: Vec::new(),
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The venue's settings with `VENUE_CFG_NODELAY` in `[DEFAULT]` (the tests'
/// settings have it now; a copy without it gets it).
fn venue_settings() -> String {
    if VENUE_CFG.contains(VENUE_CFG_NODELAY) {
        return VENUE_CFG.to_string();
    }
    let with = format!("[DEFAULT]\n{VENUE_CFG_NODELAY}");
    VENUE_CFG.replacen("[DEFAULT]\n", &with, 1)
}

/// The `n`th leader execution's id on the drop copy; its event key follows.
fn exec_id(n: u64) -> String {
    format!("e{n}")
}

/// The leader opens on even fills and closes on odd ones (`world::leader_fill`).
fn side(n: u64) -> &'static str {
    if n.is_multiple_of(2) {
        "buy"
    } else {
        "sell"
    }
}

/// The venue's control command publishing the `n`th fill: `world::leader_fill`'s
/// quantity and price, its own order.
fn fill_command(u: &Universe, n: u64) -> String {
    let spec = &u.symbols[0];
    let qty = fillcast_engine::units::Lots(world::LEADER_QTY_LOTS).to_decimal(spec.lot_size);
    let px = fillcast_engine::units::Ticks(world::PRICE_TICKS).to_decimal(spec.tick_size);
    let id = exec_id(n);
    format!(
        "fill {LEADER} {} {} {qty} {px} {id} o{n} {qty}",
        spec.name,
        side(n)
    )
}

struct Measured {
    hist: Histogram<u64>,
    orders: u64,
    submits: u64,
    elapsed: Duration,
    unmatched: u64,
    late: u64,
    /// Per fill: released → everything it caused answered (the pace one at a time allows).
    settle: Histogram<u64>,
    source_rejected: u64,
    /// The core's own figure: recv_ts → the fill's last order in the egress ring.
    receive_to_egress_ns: Histogram<u64>,
    extra: Vec<(&'static str, f64)>,
    notes: Vec<String>,
}

impl Measured {
    /// A run's figures: its latencies (`hist` and `unmatched`, from `Stamps::latencies`)
    /// and what the stopped pipeline and the driver counted.
    #[allow(clippy::too_many_arguments)]
    fn of(
        (hist, unmatched): (Histogram<u64>, u64),
        stamps: &Stamps,
        core_out: fillcast_engine::pipeline::CoreOutcome,
        driven: Driven,
        elapsed: Duration,
        source_rejected: u64,
        extra: Vec<(&'static str, f64)>,
        notes: Vec<String>,
    ) -> Measured {
        Measured {
            hist,
            orders: core_out.core.stats().orders_sent,
            submits: stamps.submits.load(Ordering::Relaxed),
            elapsed,
            unmatched,
            late: driven.late,
            settle: driven.settle,
            source_rejected,
            receive_to_egress_ns: core_out.receive_to_egress_ns,
            extra,
            notes,
        }
    }
}

/// What the wrappers saw: per fill (in order) its key and `recv_ts`; per key,
/// when the last submit carrying one of its orders returned.
#[derive(Clone, Default)]
struct Stamps {
    received: Arc<Mutex<Vec<(u64, u64)>>>,
    last_submit_ns: Arc<Mutex<HashMap<u64, u64>>>,
    submits: Arc<AtomicU64>,
}

impl Stamps {
    fn new(fills: u64) -> Stamps {
        Stamps {
            received: Arc::new(Mutex::new(Vec::with_capacity(fills as usize))),
            last_submit_ns: Arc::new(Mutex::new(HashMap::with_capacity(fills as usize))),
            submits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Latency per fill after the warm-up; fills with no order seen.
    fn latencies(&self, warmup: u64) -> (Histogram<u64>, u64, Vec<(u64, u64)>) {
        let received = self.received.lock().map(|r| r.clone()).unwrap_or_default();
        let last = self
            .last_submit_ns
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        let mut hist = histogram();
        let mut unmatched = 0;
        let mut ends = Vec::with_capacity(received.len());
        for (key, recv_ns) in received.iter().skip(warmup as usize) {
            match last.get(key) {
                Some(t) => {
                    let _ = hist.record(t.saturating_sub(*recv_ns).max(1));
                    ends.push((*key, *t));
                }
                None => unmatched += 1,
            }
        }
        (hist, unmatched, ends)
    }
}

/// A source that notes each leader fill's key and `recv_ts` as it hands it over.
struct StampedSource<S> {
    inner: S,
    stamps: Stamps,
}

impl<S: Source> Source for StampedSource<S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        let p = self.inner.next(now);
        if let SourcePoll::Event(FeedEvent::LeaderFill(f)) = &p {
            if let Ok(mut r) = self.stamps.received.lock() {
                r.push((f.event_key, f.recv_ts.0));
            }
        }
        p
    }

    fn position(&self) -> Option<u64> {
        self.inner.position()
    }

    fn holds_run_open(&self) -> bool {
        self.inner.holds_run_open()
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        self.inner.universe_changed(universe);
    }

    fn resume(&mut self, pos: u64) -> Result<(), ResumeError> {
        self.inner.resume(pos)
    }
}

/// The baseline's leader fills: the `n`th once the bench has released `n + 1`,
/// with the drop copy's event key for the same execution.
struct GatedFills {
    released: Arc<AtomicU64>,
    emitted: u64,
    total: u64,
}

impl Source for GatedFills {
    fn name(&self) -> &str {
        "bench-gated-fills"
    }

    fn next(&mut self, now: Nanos) -> SourcePoll {
        if self.emitted == self.total {
            return SourcePoll::Finished;
        }
        if self.emitted >= self.released.load(Ordering::Acquire) {
            return SourcePoll::Idle;
        }
        let n = self.emitted;
        self.emitted += 1;
        let key = leader_event_key(LEADER, &exec_id(n));
        SourcePoll::Event(FeedEvent::LeaderFill(world::leader_fill(0, n, key, now)))
    }
}

/// The pipeline (no journal) with `gateway` and `source`, each stamping into
/// `stamps`.
fn start_stamped(
    u: &Arc<Universe>,
    gateway: impl Gateway + 'static,
    source: impl Source + 'static,
    stamps: &Stamps,
) -> pipeline::Running {
    let cfg = engine_config();
    pipeline::start(
        Core::new(Arc::clone(u), &cfg),
        vec![Box::new(Stamped {
            inner: gateway,
            last_ns: Arc::clone(&stamps.last_submit_ns),
            submits: Arc::clone(&stamps.submits),
        })],
        vec![Box::new(StampedSource {
            inner: source,
            stamps: stamps.clone(),
        })],
        None,
        pipeline::Restart::default(),
        &cfg,
    )
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        max_working_orders: 1 << 16,
        ..EngineConfig::default()
    }
}

/// `stores`: where the two sessions' sequence-number files go.
fn fix_run(
    u: &Arc<Universe>,
    opts: &Options,
    stores: &Path,
    progress: &Progress,
) -> Result<Measured> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let cfg_path = dir.path().join("fixvenue.cfg");
    std::fs::write(&cfg_path, venue_settings())
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let (oe_port, dc_port, control_port) = (free_port()?, free_port()?, free_port()?);
    let mut venue = VenueProcess::start(
        &opts.venue,
        &cfg_path,
        dir.path(),
        [oe_port, dc_port, control_port],
    )?;
    let mut control = Control::connect(control_port, &mut venue)?;

    let stamps = Stamps::new(opts.fills);
    let source = DropCopySource::open(
        DropCopyConfig {
            name: "fix drop copy".into(),
            peer: Peer {
                address: format!("127.0.0.1:{dc_port}"),
                sender_comp_id: "FILLCAST_DC".into(),
                target_comp_id: "VENUE_DC".into(),
                session: SessionConfig::default(),
            },
            accounts: HashMap::new(),
            store: stores.join("dc.seqs"),
            unclean: false,
        },
        Arc::clone(u),
    )
    .context("the drop-copy source's store")?;
    let gateway = OrderEntryGateway::open(
        OrderEntryConfig {
            name: "fix order entry".into(),
            peer: Peer {
                address: format!("127.0.0.1:{oe_port}"),
                sender_comp_id: "FILLCAST".into(),
                target_comp_id: "VENUE".into(),
                session: SessionConfig::default(),
            },
            accounts: HashMap::new(),
            reduce_only: ReduceOnly::ExecInstDoNotIncrease,
            store: stores.join("oe.seqs"),
            unclean: false,
            rate_per_sec: None,
            reject_codes: HashMap::new(),
            recover_timeout: Duration::from_secs(10),
        },
        Arc::clone(u),
    )
    .context("the order-entry gateway's store")?;
    let running = start_stamped(u, gateway, source, &stamps);

    // Both sessions logged on, as the venue and the core see them.
    let until = Instant::now() + START_MAX;
    loop {
        let status = control.command("status")?;
        let up = |s: &str| status.split(' ').any(|w| w == s);
        if up("oe=up") && up("dc=up") && running.progress.venue_up(0) {
            break;
        }
        if Instant::now() > until {
            let _ = running.stop();
            bail!(
                "fixe2e: the FIX sessions did not log on within {} s (venue: {status}):\n{}",
                START_MAX.as_secs(),
                venue.output()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    let mut commands_ns = Vec::with_capacity(opts.fills as usize);
    let t0 = Instant::now();
    let driven = drive(&running, opts, progress, &mut |n| {
        let line = fill_command(u, n);
        let t = clock::now().0;
        let answer = control.command(&line)?;
        ensure!(
            answer.starts_with("ok"),
            "fixe2e: the venue refused `{line}`: {answer}"
        );
        commands_ns.push((leader_event_key(LEADER, &exec_id(n)), t));
        Ok(())
    });
    let elapsed = t0.elapsed();
    let (core_out, io_out) = running.stop();
    let source_rejected = io_out.source_rejected;
    let source_errors: Vec<String> = io_out.source_errors.iter().map(|e| e.to_string()).collect();
    // The sessions close with the gateway and the source: the venue's `quit`
    // then has no logout to wait for.
    drop(io_out);
    let books = control.command("books").unwrap_or_default();
    venue.quit(&mut control);
    let driven = match driven {
        Ok(d) => d,
        Err(e) => bail!("{e:#}\n{}", venue.output()),
    };

    let (hist, unmatched, ends) = stamps.latencies(opts.warmup);
    let commands: HashMap<u64, u64> = commands_ns.into_iter().collect();
    let mut venue_hist = histogram();
    for (key, end) in &ends {
        if let Some(t) = commands.get(key) {
            let _ = venue_hist.record(end.saturating_sub(*t).max(1));
        }
    }
    let mut notes = Vec::new();
    let foreign = stamps
        .received
        .lock()
        .map(|r| {
            (0u64..)
                .zip(r.iter())
                .filter(|(n, (key, _))| *key != leader_event_key(LEADER, &exec_id(*n)))
                .count()
        })
        .unwrap_or(0);
    if foreign > 0 {
        notes.push(format!(
            "FIX: {foreign} fills came with another event key than the in-process source's for the same execution"
        ));
    }
    if source_rejected > 0 {
        notes.push(format!(
            "FIX: the drop copy refused {source_rejected} inputs: {source_errors:?}"
        ));
    }
    let orders_at_venue = books
        .split("\"orders\":")
        .nth(1)
        .and_then(|r| r.split([',', '}']).next())
        .and_then(|n| n.trim().parse::<u64>().ok());
    let extra = vec![
        (
            "venue_orders_received",
            orders_at_venue.map_or(-1.0, |n| n as f64),
        ),
        (
            "venue_command_to_last_order_p50_ns",
            venue_hist.value_at_quantile(0.5) as f64,
        ),
        (
            "venue_command_to_last_order_p99_ns",
            venue_hist.value_at_quantile(0.99) as f64,
        ),
    ];
    Ok(Measured::of(
        (hist, unmatched),
        &stamps,
        core_out,
        driven,
        elapsed,
        source_rejected,
        extra,
        notes,
    ))
}

fn sim_run(u: &Arc<Universe>, opts: &Options, progress: &Progress) -> Result<Measured> {
    let venue = SimVenue::for_venue(u, VenueIdx(0))
        .context("the bench world's sim venue")?
        .fill_all();
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    let addr = listener.local_addr().context("local addr")?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let server = std::thread::Builder::new()
        .name("sim-server".into())
        .spawn(move || serve(listener, venue, flag))
        .context("spawn the sim server")?;
    let client = SimClient::connect("sim", addr, START_MAX).context("connect to the sim venue")?;

    let stamps = Stamps::new(opts.fills);
    let released = Arc::new(AtomicU64::new(0));
    let source = GatedFills {
        released: Arc::clone(&released),
        emitted: 0,
        total: opts.fills,
    };
    let running = start_stamped(u, client, source, &stamps);
    let t0 = Instant::now();
    let driven = drive(&running, opts, progress, &mut |n| {
        released.store(n + 1, Ordering::Release);
        Ok(())
    });
    let elapsed = t0.elapsed();
    let (core_out, io_out) = running.stop();
    let source_rejected = io_out.source_rejected;
    drop(io_out);
    stop.store(true, Ordering::Release);
    let venue_orders = match server.join() {
        Ok(Ok(s)) => s.venue.orders_received as f64,
        _ => -1.0,
    };
    let driven = driven?;
    let (hist, unmatched, _) = stamps.latencies(opts.warmup);
    Ok(Measured::of(
        (hist, unmatched),
        &stamps,
        core_out,
        driven,
        elapsed,
        source_rejected,
        vec![("venue_orders_received", venue_orders)],
        Vec::new(),
    ))
}

struct Driven {
    /// Fills released later than their slot (the one before took longer).
    late: u64,
    settle: Histogram<u64>,
}

/// Releases the fills one at a time: fill `n` at the earliest `n × interval`
/// after the first, and only once fill `n − 1` has settled.
fn drive(
    running: &Running,
    opts: &Options,
    progress: &Progress,
    release: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Driven> {
    let p = &running.progress;
    let base = p.leader_fills.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut late = 0;
    let mut settle = histogram();
    for n in 0..opts.fills {
        let due = t0 + opts.interval * n as u32;
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        } else if n > 0 && now > due + opts.interval {
            late += 1;
        }
        let released = Instant::now();
        release(n)?;
        let until = released + SETTLE_MAX;
        let mut quiet_seen = 0;
        while quiet_seen < 2 {
            if p.leader_fills.load(Ordering::Relaxed) > base + n && quiet(p) {
                quiet_seen += 1;
            } else {
                quiet_seen = 0;
            }
            if Instant::now() > until {
                bail!(
                    "fixe2e: leader fill {n} did not settle within {} s (leader fills {}, live orders {}, in flight {})",
                    SETTLE_MAX.as_secs(),
                    p.leader_fills.load(Ordering::Relaxed) - base,
                    p.live_orders.load(Ordering::Relaxed),
                    p.in_flight.load(Ordering::Relaxed),
                );
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        if n >= opts.warmup {
            let _ = settle.record((released.elapsed().as_nanos() as u64).max(1));
        }
        if n.is_multiple_of(8) {
            progress.set(n + 1);
        }
    }
    Ok(Driven { late, settle })
}

/// Nothing in the pipeline moves: every event taken, every order answered.
fn quiet(p: &PipelineProgress) -> bool {
    let eq = |a: &AtomicU64, b: &AtomicU64| a.load(Ordering::Relaxed) == b.load(Ordering::Relaxed);
    eq(&p.feed_published, &p.feed_done)
        && eq(&p.exec_published, &p.exec_done)
        && eq(&p.chunks_published, &p.chunks_taken)
        && p.live_orders.load(Ordering::Relaxed) == 0
        && p.outbox_orders.load(Ordering::Relaxed) == 0
        && p.in_flight.load(Ordering::Relaxed) == 0
        && p.exec_pending.load(Ordering::Relaxed) == 0
        && p.feed_held.load(Ordering::Relaxed) == 0
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(l.local_addr().context("local addr")?.port())
}

/// The venue's process; killed (by its handle) if it does not stop on `quit`.
struct VenueProcess {
    child: Child,
    out: PathBuf,
}

impl VenueProcess {
    /// `ports`: order entry, drop copy, control.
    fn start(bin: &Path, cfg: &Path, dir: &Path, ports: [u16; 3]) -> Result<VenueProcess> {
        let out = dir.join("venue.out");
        let log =
            std::fs::File::create(&out).with_context(|| format!("creating {}", out.display()))?;
        let [oe, dc, control] = ports;
        let child = Command::new(bin)
            .arg("--config")
            .arg(cfg)
            .arg("--dir")
            .arg(dir.join("venue"))
            .args(["--port", &oe.to_string(), "--dc-port", &dc.to_string()])
            .args(["--control", &control.to_string()])
            .stdout(Stdio::from(log.try_clone().context("venue.out")?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(VenueProcess { child, out })
    }

    /// What the venue printed, for an error message.
    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn quit(&mut self, control: &mut Control) {
        let _ = control.command("quit");
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for VenueProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The venue's control port: a command a line, an answer a line.
struct Control {
    stream: TcpStream,
}

impl Control {
    /// Connects, retrying while the venue starts.
    fn connect(port: u16, venue: &mut VenueProcess) -> Result<Control> {
        let until = Instant::now() + START_MAX;
        loop {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
                stream
                    .set_read_timeout(Some(SETTLE_MAX))
                    .context("control read timeout")?;
                stream.set_nodelay(true).context("control nodelay")?;
                return Ok(Control { stream });
            }
            if let Ok(Some(status)) = venue.child.try_wait() {
                bail!("fixe2e: the venue exited ({status}):\n{}", venue.output());
            }
            if Instant::now() > until {
                bail!(
                    "fixe2e: no venue control port on 127.0.0.1:{port} after {} s:\n{}",
                    START_MAX.as_secs(),
                    venue.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn command(&mut self, line: &str) -> Result<String> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .with_context(|| format!("fixe2e: writing `{line}` to the venue's control port"))?;
        let mut answer = Vec::with_capacity(64);
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            ensure!(
                answer.len() < CONTROL_LINE_BYTES_MAX,
                "fixe2e: the venue's answer to `{line}` has no end"
            );
            let n = self
                .stream
                .read(&mut byte)
                .with_context(|| format!("fixe2e: reading the venue's answer to `{line}`"))?;
            ensure!(
                n == 1,
                "fixe2e: the venue's control port closed after `{line}`"
            );
            answer.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&answer).trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venue_publishes_the_fill_the_in_process_source_gives() {
        let u = world::universe(1, 4, "");
        assert_eq!(fill_command(&u, 0), "fill L0 BTCUSDT buy 2 65000 e0 o0 2");
        assert_eq!(fill_command(&u, 7), "fill L0 BTCUSDT sell 2 65000 e7 o7 2");
        let f = world::leader_fill(0, 7, 1, Nanos(1));
        assert_eq!(f.side, fillcast_engine::model::Side::Sell);
    }

    #[test]
    fn the_venue_sends_without_nagle() {
        let s = venue_settings();
        assert!(s.contains("\nSocketNodelay=Y\n"), "{s}");
        assert_eq!(s.matches("SocketNodelay").count(), 1, "{s}");
        assert!(
            s.contains("TargetCompID=FILLCAST_DC"),
            "the settings themselves"
        );
    }
}
