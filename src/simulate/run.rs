//! The simulation loop: a virtual clock, the world's events (links, the network,
//! the venue), and the core thread's choices among a waiting venue report, a due
//! tick and a waiting feed event, with every input and output journaled before any
//! order is handed to a gateway, as `engine::pipeline` does.

use super::check::{self, Collect};
use super::rng::Rng;
use super::trace::{self, Trace};
use super::venue::{GatewaySide, InFlight, Phase, VenueSide};
use super::world::{self, Planned, World, T0};
use super::{Breakage, Check, Failure, Options, Outcome};
use fillcast_engine::core::{Core, RevisionPatch};
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FollowerOrder, RejectReason, NO_SENDER,
};
use fillcast_engine::model::{SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::outputs::{Decision, Reason};
use fillcast_engine::pipeline::{self, JOURNAL_CHUNK};
use fillcast_engine::port::{AskedOrder, JournalEntry, JournalSink, SinkError, VenueError};
use fillcast_engine::units::Nanos;
use fillcast_gateways::sim::{SimVenue, SymbolTerms};
use fillcast_journal::restart::{self, RestartError, Venues};
use fillcast_journal::stage::JournalStage;
use fillcast_journal::writer::{Durability, JournalOptions, JournalWriter};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Inputs a run may give the core, over all its lives: far above any world's
/// needs, so only a livelock (a tick storm, reports bouncing forever) reaches it.
const STEPS_MAX: u64 = 3_000_000;
/// Virtual time a quiet venue gets to let the engine settle, ns.
const SETTLE_NS_MAX: u64 = 3_600 * 1_000_000_000;
/// Ticks in a row that change nothing while the core keeps asking for the next.
const IDLE_TICKS_MAX: u32 = 1_000;
/// Restarts in one run: crashes are few, so more means the engine keeps stopping.
const RESTARTS_MAX: u64 = 64;
/// Leader fills the source remembers for an at-least-once resume.
const RESUME_MAX: usize = 4;

pub fn run(seed: u64, opts: &Options) -> Result<Outcome, Failure> {
    let message = |panic: Box<dyn std::any::Any + Send>| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    };
    let mut sim = match catch_unwind(|| Sim::new(seed, opts)) {
        Ok(sim) => sim,
        Err(panic) => {
            return Err(Failure {
                seed,
                step: 0,
                check: Check::Harness,
                what: format!("making the world panicked: {}", message(panic)),
                trace: Vec::new(),
            })
        }
    };
    match catch_unwind(AssertUnwindSafe(|| sim.run())) {
        Ok(r) => r,
        Err(panic) => Err(sim.failure(Check::Panic, format!("panicked: {}", message(panic)))),
    }
}

/// What the exec ring carries.
#[derive(Copy, Clone, Debug)]
enum ExecItem {
    Report(ExecReport),
    Venue(usize, bool),
}

/// The engine process: everything a crash takes away.
struct Engine {
    core: Core,
    stage: JournalStage,
    ring: VecDeque<ExecItem>,
    gateways: Vec<GatewaySide>,
    busy_until: u64,
    last_tick: u64,
}

/// How an append went.
enum Appended {
    All,
    /// The engine died before the rest.
    Crashed,
}

/// `restart::Venues` over the venues that outlived the engine. A restart happens
/// only while every link works, as `fillcast run` connects its gateways first.
struct Asking<'a> {
    venues: &'a [VenueSide],
    silent: Option<u64>,
}

impl Venues for Asking<'_> {
    fn name(&self, venue: usize) -> Option<String> {
        (venue < self.venues.len()).then(|| format!("v{venue}"))
    }

    fn recover(
        &mut self,
        venue: usize,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        let failed = |cause: &str| VenueError::Failed {
            venue: format!("v{venue}"),
            what: format!("asking about {} orders", orders.len()),
            cause: cause.into(),
        };
        let v = self
            .venues
            .get(venue)
            .ok_or_else(|| failed("no such venue"))?;
        if !v.link_works() {
            return Err(failed("link down"));
        }
        for o in orders {
            if Some(o.id) == self.silent {
                continue;
            }
            for r in v.answer(o.id).1 {
                out(r);
            }
        }
        Ok(())
    }

    /// The simulator models `durability = "sync"`, where no order leaves before its
    /// record is durable: a restart never has orders to take over.
    fn orders_since(
        &mut self,
        venue: usize,
        _since: Nanos,
        _out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        Err(VenueError::Unsupported {
            venue: format!("v{venue}"),
            what: "list its orders (the simulator models durability = \"sync\")",
        })
    }
}

pub(super) struct Sim<'o> {
    seed: u64,
    opts: &'o Options,
    rng: Rng,
    world: World,
    journal_opts: JournalOptions,
    now: u64,
    step: u64,
    trace: Trace,
    engine: Option<Engine>,
    /// Feed events the source has not handed over for good (the journal does not
    /// hold them), in arrival order.
    feed: VecDeque<Planned>,
    /// The last leader fills the journal holds, for an at-least-once resume.
    journaled_fills: VecDeque<Planned>,
    /// The last journal sequence `durability = "sync"` has flushed: the last one
    /// appended before orders were last handed to a gateway.
    durable_seq: u64,
    /// Source events whose records are not durable yet, by their sequence: a power
    /// loss gives them back to the source.
    undurable_feed: VecDeque<(u64, Planned)>,
    /// Trades counted from inputs that are not durable yet: (sequence, order,
    /// trade, pair, signed lots), uncounted by a power loss.
    undurable_trades: Vec<(u64, u64, u64, usize, i64)>,
    venues: Vec<VenueSide>,
    session: u64,
    restart_at: Option<u64>,
    faults_on: bool,
    faults_off_at: u64,
    /// (order, trade) pairs given to the core whose inputs the journal holds.
    counted: BTreeSet<(u64, u64)>,
    /// Per (subscription, symbol): the signed sum of those trades.
    expected: Vec<i64>,
    /// The planned reload was taken: the edited file is the config from now on.
    reload_taken: bool,
    /// The model whose indices the source's planned events carry (the reload's,
    /// which lays out every symbol of the world's after the world's own): the
    /// source resolves their names against the model in force, as a `file`
    /// source does.
    plan: Arc<Universe>,
    n_sym: usize,
    idle_ticks: u32,
    /// `Breakage::SilentVenue`: the order the venue never answers.
    silent: Option<u64>,
    handed: u64,
    /// The engine is taking its first inputs after a (re)start.
    starting: bool,
    out: Outcome,
    /// Last, so it is removed after the engine (and its journal writer, whose
    /// helper thread may still be making the next segment in it) is dropped.
    dir: tempfile::TempDir,
}

impl<'o> Sim<'o> {
    fn new(seed: u64, opts: &'o Options) -> Sim<'o> {
        let mut rng = Rng::new(seed);
        let world = World::generate(&mut rng);
        let u = &world.universe;
        let venues = (0..u.venues.len())
            .map(|v| {
                let sim = SimVenue::for_venue(u, VenueIdx(v as u16))
                    .unwrap_or_else(|e| panic!("venue {v} of the world: {e}"));
                VenueSide::new(sim, world.venues[v].clone())
            })
            .collect();
        // A reload may add subscriptions and symbols after the rest: room for
        // its model too. The source's events name symbols by their place in it.
        let plan = world
            .reload
            .as_ref()
            .map_or(Arc::clone(u), |(_, u2)| Arc::clone(u2));
        let n_sym = plan.symbols.len().max(u.symbols.len());
        let n_subs = plan.subs.len().max(u.subs.len());
        let n_pairs = n_subs * n_sym;
        let journal_opts = JournalOptions {
            segment_bytes: world.engine.segment_bytes,
            durability: Durability::Never,
        };
        let dir = tempfile::Builder::new()
            .prefix("fillcast-sim-")
            .tempdir()
            .unwrap_or_else(|e| panic!("a temporary directory for the journal: {e}"));
        Sim {
            seed,
            opts,
            rng,
            feed: world.feed.iter().copied().collect(),
            world,
            dir,
            journal_opts,
            now: T0,
            step: 0,
            trace: Trace::new(opts.trace_lines, opts.verbose),
            engine: None,
            journaled_fills: VecDeque::new(),
            durable_seq: 0,
            undurable_feed: VecDeque::new(),
            undurable_trades: Vec::new(),
            venues,
            session: 0,
            restart_at: Some(T0),
            faults_on: true,
            faults_off_at: 0,
            counted: BTreeSet::new(),
            expected: vec![0; n_pairs],
            reload_taken: false,
            plan,
            n_sym,
            idle_ticks: 0,
            silent: None,
            handed: 0,
            starting: false,
            out: Outcome {
                seed,
                ..Outcome::default()
            },
        }
    }

    pub(super) fn failure(&self, check: Check, what: String) -> Failure {
        Failure {
            seed: self.seed,
            step: self.step,
            check,
            what,
            trace: self.trace.last(),
        }
    }

    fn note(&mut self, what: &str) {
        self.trace.push(self.step, self.now, what);
    }

    fn run(&mut self) -> Result<Outcome, Failure> {
        let summary = self.world.summary.clone();
        self.note(&summary);
        if self.opts.verbose {
            for line in self.world.toml.lines() {
                eprintln!("    {line}");
            }
        }
        self.drive()?;
        let open = self.check_quiet()?;
        self.out.open_at_end = open.len() as u64;
        // A person asks every subscription left open to catch up.
        let subs: BTreeSet<u32> = open.iter().map(|(s, _)| s.0).collect();
        for s in subs {
            let ev = FeedEvent::Command {
                cmd: Command::Resync(SubIdx(s)),
                ts: Nanos(self.now),
                by: NO_SENDER,
            };
            self.input(JournalEntry::Feed(ev), None)?;
        }
        self.drive()?;
        let open = self.check_quiet()?;
        self.out.open_after_resync = open.len() as u64;
        if let Some(e) = &self.engine {
            let u = &self.world.universe;
            for &(sub, sym) in &open {
                *self
                    .out
                    .open_why
                    .entry(e.core.sync_reason(sub, sym).as_str())
                    .or_default() += 1;
                let f = u.subs[sub.0 as usize].follower;
                let netted = (0..u.subs.len()).any(|o| {
                    o != sub.0 as usize
                        && u.subs[o].follower == f
                        && e.core.position(SubIdx(o as u32), sym).0 != 0
                });
                self.out.open_netted += netted as u64;
            }
        }
        let engine = self
            .engine
            .as_ref()
            .ok_or_else(|| self.failure(Check::Harness, "no engine at the end".into()))?;
        check::final_replay(self.dir.path(), &self.world, &engine.core)
            .map_err(|what| self.failure(Check::ReplayReproduces, what))?;
        let s = engine.core.stats();
        self.out.steps = self.step;
        self.out.virtual_ms = (self.now - T0) / 1_000_000;
        self.out.leader_fills = s.leader_fills;
        self.out.rejects = s.rejects;
        self.out.resyncs = s.resyncs;
        self.out.gave_up = s.gave_up;
        self.out.orders_at_venue = self.venues.iter().map(|v| v.orders.len() as u64).sum();
        self.out.venue_fills = self.venues.iter().map(|v| v.sim.stats().fills).sum();
        self.out.outages = self
            .venues
            .iter()
            .map(|v| v.faults.outages.len() as u64)
            .sum();
        let edit = &self.world.reload_symbols;
        if self.reload_taken {
            self.out.symbol_removed = edit
                .removed
                .map(|_| if edit.keep { "keep" } else { "close" });
            self.out.symbol_added = edit.added.is_some();
        }
        if let Some(added) = edit.added.and_then(|name| self.world.universe.symbol(name)) {
            self.out.orders_in_added = (self.venues.iter())
                .flat_map(|v| v.orders.values())
                .filter(|o| o.symbol == added)
                .count() as u64;
        }
        self.out.digest = self.trace.digest();
        self.note(&format!(
            "done: {} open at the end, {} after a resync command",
            self.out.open_at_end, self.out.open_after_resync
        ));
        Ok(self.out.clone())
    }

    /// Run the world until nothing is left to happen; once the source has handed
    /// over everything, turn the faults off first.
    fn drive(&mut self) -> Result<(), Failure> {
        loop {
            self.world_due()?;
            if self.restart_at.is_some_and(|t| t <= self.now) {
                self.start()?;
                continue;
            }
            if self.core_action()? {
                continue;
            }
            if self.faults_on
                && self.feed.is_empty()
                && self.engine.is_some()
                && self.restart_at.is_none()
            {
                self.faults_off();
                continue;
            }
            match self.next_time() {
                Some(t) => {
                    debug_assert!(t > self.now, "time moves on ({t} after {})", self.now);
                    self.now = t.max(self.now + 1);
                    if !self.faults_on && self.now - self.faults_off_at > SETTLE_NS_MAX {
                        return Err(self.failure(
                            Check::FlatWithLeader,
                            format!(
                                "the engine is not quiet an hour after the venue became quiet and reachable: {}",
                                self.pending()
                            ),
                        ));
                    }
                }
                None => break,
            }
        }
        if !self.feed.is_empty() || self.faults_on {
            let e = self.engine.as_ref();
            return Err(self.failure(
                Check::FlatWithLeader,
                format!(
                    "{} feed events were never taken (engine {}; halted {}; ready for the next {})",
                    self.feed.len(),
                    if e.is_some() { "running" } else { "dead" },
                    e.is_some_and(|e| e.core.halted()),
                    match (e, self.feed.front()) {
                        (Some(e), Some(p)) => e.core.ready_for(&p.ev).to_string(),
                        _ => "-".into(),
                    }
                ),
            ));
        }
        Ok(())
    }

    fn pending(&self) -> String {
        match &self.engine {
            Some(e) => format!(
                "{} live orders, {:?} pairs pending in the resync, wake at {:?}, {} reports in the ring",
                e.core.live_orders(),
                e.core.resync_pending(),
                e.core.wake_at().map(|w| w.0.saturating_sub(T0)),
                e.ring.len()
            ),
            None => "the engine is dead".into(),
        }
    }

    /// The earliest time anything is due.
    fn next_time(&self) -> Option<u64> {
        let mut t: Option<u64> = None;
        let mut at = |x: u64| t = Some(t.map_or(x, |t: u64| t.min(x)));
        if let Some(r) = self.restart_at {
            at(r);
        }
        for v in &self.venues {
            if let Some(x) = v.next_transition() {
                at(x);
            }
            if let Some((x, _)) = v.transit.front() {
                at(*x);
            }
            if let Some(((x, _), _)) = v.net.first_key_value() {
                at(*x);
            }
            if let Some(x) = v.sim.next_due() {
                at(x.0);
            }
        }
        if let Some(e) = &self.engine {
            for g in &e.gateways {
                if let Some((x, _)) = g.egress.front() {
                    at(*x);
                }
            }
            let tick = e.core.wake_at().map(|w| w.0);
            let feed = self.feed.front().map(|p| p.arrival);
            let work_now = !e.ring.is_empty()
                || tick.is_some_and(|w| w <= self.now)
                || self
                    .feed
                    .front()
                    .is_some_and(|p| p.arrival <= self.now && e.core.ready_for(&p.ev));
            if work_now {
                at(e.busy_until);
            }
            if let Some(w) = tick.filter(|w| *w > self.now) {
                at(w.max(e.busy_until));
            }
            if let Some(a) = feed.filter(|a| *a > self.now) {
                at(a.max(e.busy_until));
            }
        }
        t.map(|t| t.max(self.now + 1))
    }

    // ---------------------------------------------------------------- world

    fn world_due(&mut self) -> Result<(), Failure> {
        loop {
            let mut did = false;
            for v in 0..self.venues.len() {
                did |= self.link_due(v);
                did |= self.transit_due(v);
                did |= self.venue_due(v);
                did |= self.net_due(v);
            }
            did |= self.egress_due();
            if !did {
                return Ok(());
            }
        }
    }

    fn connected(&self, v: usize) -> bool {
        self.venues[v].link_works() && self.engine.as_ref().is_some_and(|e| e.gateways[v].up)
    }

    fn link_due(&mut self, v: usize) -> bool {
        let Some(t) = self.venues[v].next_transition() else {
            return false;
        };
        if t > self.now {
            return false;
        }
        let venue = &mut self.venues[v];
        match venue.phase {
            Phase::Working => {
                venue.phase = Phase::Broken;
                let hold = venue.current_outage().is_some_and(|o| o.hold);
                let on_wire: Vec<FollowerOrder> = venue.transit.drain(..).map(|(_, o)| o).collect();
                let lost_orders = on_wire.len();
                for o in on_wire {
                    if self.rng.chance(300_000) {
                        self.venues[v].stalled.push(o);
                    }
                }
                let venue = &mut self.venues[v];
                let in_flight: Vec<ExecReport> =
                    std::mem::take(&mut venue.net).into_values().collect();
                let n = in_flight.len();
                if hold {
                    venue.held.extend(in_flight);
                }
                self.note(&format!(
                    "link v{v} breaks: {lost_orders} orders on the wire ({} get through later), {n} reports {}",
                    self.venues[v].stalled.len(),
                    if hold { "held" } else { "lost" }
                ));
            }
            Phase::Broken => {
                venue.phase = Phase::Noticed;
                if let Some(e) = &mut self.engine {
                    e.gateways[v].up = false;
                    e.ring.push_back(ExecItem::Venue(v, false));
                }
                self.note(&format!("gateway v{v} notices the link is down"));
            }
            Phase::Noticed => {
                venue.phase = Phase::Repaired;
                self.note(&format!("link v{v} works again"));
                for o in std::mem::take(&mut self.venues[v].stalled) {
                    self.arrive(v, o);
                }
            }
            Phase::Repaired => {
                venue.phase = Phase::Working;
                venue.outage += 1;
                if self.engine.as_ref().is_some_and(|e| !e.gateways[v].up) {
                    self.reconnect(v);
                } else {
                    self.venues[v].held.clear();
                }
            }
        }
        true
    }

    /// The gateway is connected again: the venue sends what it held for the
    /// session, the gateway asks about every order still in flight and delivers the
    /// answers (leaving out fills it saw), and only then is the link up.
    fn reconnect(&mut self, v: usize) {
        let held = std::mem::take(&mut self.venues[v].held);
        let n_held = held.len();
        for r in held {
            self.gateway_receives(v, r);
        }
        let Some(e) = &self.engine else {
            return;
        };
        let ids: Vec<(u64, InFlight)> = e.gateways[v]
            .in_flight
            .iter()
            .map(|(id, w)| (*id, *w))
            .collect();
        let n_settled = ids.len();
        for (id, w) in ids {
            if Some(id) == self.silent {
                continue;
            }
            let (known, reports) = self.venues[v].answer(id);
            let seen = reports
                .iter()
                .position(|r| {
                    r.kind == ExecKind::Fill && r.trade_id != 0 && r.trade_id == w.last_trade
                })
                .map_or(0, |at| at + 1);
            for r in reports.into_iter().skip(seen) {
                let r = ExecReport {
                    recv_ts: Nanos(self.now),
                    ..r
                };
                self.gateway_receives(v, r);
            }
            if let Some(e) = &mut self.engine {
                let g = &mut e.gateways[v];
                if known && !g.in_flight.contains_key(&id) {
                    g.answered.insert(id);
                }
            }
        }
        if let Some(e) = &mut self.engine {
            e.gateways[v].up = true;
            e.ring.push_back(ExecItem::Venue(v, true));
        }
        self.note(&format!(
            "gateway v{v} reconnects: {n_held} held reports, {n_settled} orders settled; up"
        ));
    }

    fn transit_due(&mut self, v: usize) -> bool {
        let mut did = false;
        while let Some(&(at, order)) = self.venues[v].transit.front() {
            if at > self.now {
                break;
            }
            self.venues[v].transit.pop_front();
            self.arrive(v, order);
            did = true;
        }
        did
    }

    /// An order reaches the venue: its front end may refuse it; the matching
    /// engine executes the rest.
    fn arrive(&mut self, v: usize, order: FollowerOrder) {
        if !self.venues[v].link_works() {
            self.note(&format!(
                "{} lost: link v{v} broken",
                trace::order_name(&self.world.universe, order.id)
            ));
            return;
        }
        let venue = &mut self.venues[v];
        if venue.orders.insert(order.id, order).is_some() {
            venue.duplicates += 1;
        }
        let refuse =
            if order.reduce_only && venue.faults.reduce_only_strict && !venue.reduces(&order) {
                Some(RejectReason::ReduceOnly)
            } else if self.faults_on && self.rng.chance(self.venues[v].faults.refuse_ppm) {
                let kinds = [
                    RejectReason::Other,
                    RejectReason::PositionLimit,
                    RejectReason::InsufficientMargin,
                    RejectReason::ReduceOnly,
                ];
                let n = if order.reduce_only { 4 } else { 3 };
                Some(kinds[self.rng.below(n) as usize])
            } else {
                None
            };
        let mut out = Vec::new();
        match refuse {
            Some(reason) => {
                let r = ExecReport {
                    order_id: order.id,
                    kind: ExecKind::Rejected,
                    reject: reason,
                    venue_ts: Nanos(self.now),
                    ..ExecReport::default()
                };
                self.venues[v].refused.entry(order.id).or_insert(r);
                out.push((self.session, r));
            }
            None => {
                self.venues[v].sim.submit_tagged(
                    &[order],
                    Nanos(self.now),
                    self.session,
                    |tag, r| out.push((tag, r)),
                );
            }
        }
        for (tag, r) in out {
            self.venue_sends(v, tag, r);
        }
    }

    fn venue_due(&mut self, v: usize) -> bool {
        if self.venues[v].sim.next_due().is_none_or(|d| d.0 > self.now) {
            return false;
        }
        let mut out = Vec::new();
        self.venues[v]
            .sim
            .poll_tagged(Nanos(self.now), |tag, r| out.push((tag, r)));
        for (tag, r) in out {
            self.venue_sends(v, tag, r);
        }
        true
    }

    /// The venue sends a report to the session `tag`.
    fn venue_sends(&mut self, v: usize, tag: u64, mut r: ExecReport) {
        if tag != self.session || self.engine.is_none() {
            return;
        }
        if self.faults_on
            && r.kind == ExecKind::Canceled
            && self.rng.chance(self.venues[v].faults.expire_ppm)
        {
            r.kind = ExecKind::Expired;
        }
        let mut reports = vec![r];
        match self.opts.breakage {
            Breakage::FillTwice if r.kind == ExecKind::Fill => {
                reports.push(ExecReport {
                    trade_id: r.trade_id ^ 0x5eed_0000_0000_0001,
                    ..r
                });
            }
            Breakage::FillNotReported
                if r.kind == ExecKind::Fill
                    && self.venues[v]
                        .orders
                        .get(&r.order_id)
                        .is_some_and(|o| r.qty < o.qty) =>
            {
                reports.clear();
            }
            _ => {}
        }
        for r in reports {
            if !self.connected(v) {
                let venue = &mut self.venues[v];
                if venue.current_outage().is_some_and(|o| o.hold) {
                    venue.held.push(r);
                }
                continue;
            }
            let f = &self.venues[v].faults;
            let (net, jitter, dup) = (f.net_ns, f.jitter_ns, f.dup_ppm);
            let jitter = if self.faults_on {
                self.rng.range(0, jitter)
            } else {
                0
            };
            let mut at = self.now + net + jitter;
            let venue = &mut self.venues[v];
            if r.kind != ExecKind::Ack {
                let last = venue.net_last.entry(r.order_id).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            venue.net_seq += 1;
            venue.net.insert((at, venue.net_seq), r);
            if self.faults_on && self.rng.chance(dup) {
                let later = at + self.rng.range(0, 5_000_000);
                let venue = &mut self.venues[v];
                venue.net_seq += 1;
                venue.net.insert((later, venue.net_seq), r);
            }
        }
    }

    fn net_due(&mut self, v: usize) -> bool {
        let mut did = false;
        while let Some((&(at, seq), &r)) = self.venues[v].net.first_key_value() {
            if at > self.now {
                break;
            }
            self.venues[v].net.remove(&(at, seq));
            did = true;
            if !self.connected(v) {
                let venue = &mut self.venues[v];
                if venue.current_outage().is_some_and(|o| o.hold) {
                    venue.held.push(r);
                }
                continue;
            }
            self.gateway_receives(
                v,
                ExecReport {
                    recv_ts: Nanos(self.now),
                    ..r
                },
            );
        }
        did
    }

    /// The gateway passes a report on to the exec ring (dropping repeats of orders
    /// a settle answered, as `SimClient` does).
    fn gateway_receives(&mut self, v: usize, r: ExecReport) {
        if Some(r.order_id) == self.silent {
            return;
        }
        let leak = self.faults_on && self.rng.chance(self.venues[v].faults.leak_ppm);
        let Some(e) = &mut self.engine else {
            return;
        };
        let g = &mut e.gateways[v];
        if g.answered.contains(&r.order_id) && !leak {
            return;
        }
        g.track(&r);
        e.ring.push_back(ExecItem::Report(r));
    }

    fn egress_due(&mut self) -> bool {
        let mut did = false;
        for v in 0..self.venues.len() {
            loop {
                let Some(e) = &mut self.engine else {
                    return did;
                };
                let g = &mut e.gateways[v];
                let Some(&(due, order)) = g.egress.front() else {
                    break;
                };
                if due > self.now {
                    break;
                }
                g.egress.pop_front();
                did = true;
                if g.up && self.opts.breakage != Breakage::PowerLossWithoutSync {
                    // What `durability = "sync"` flushes before orders leave.
                    let written = e.stage.writer().written_seq();
                    if written > self.durable_seq {
                        self.durable_seq = written;
                        self.undurable_feed.retain(|(s, _)| *s > written);
                        self.undurable_trades.retain(|t| t.0 > written);
                    }
                }
                let Some(e) = &mut self.engine else {
                    return did;
                };
                let g = &mut e.gateways[v];
                if !g.up {
                    // Never sent: the gateway has no session.
                    e.ring.push_back(ExecItem::Report(ExecReport {
                        order_id: order.id,
                        kind: ExecKind::Rejected,
                        reject: RejectReason::VenueDown,
                        venue_ts: Nanos(self.now),
                        recv_ts: Nanos(self.now),
                        ..ExecReport::default()
                    }));
                    continue;
                }
                g.in_flight.insert(
                    order.id,
                    InFlight {
                        qty: order.qty.0,
                        filled: 0,
                        last_trade: 0,
                    },
                );
                self.handed += 1;
                if self.opts.breakage == Breakage::SilentVenue
                    && self.silent.is_none()
                    && order.reduce_only
                {
                    self.silent = Some(order.id);
                }
                let twice =
                    self.opts.breakage == Breakage::SendTwice && self.handed.is_multiple_of(7);
                let venue = &mut self.venues[v];
                venue.transit_last = venue.transit_last.max(self.now + venue.faults.transit_ns);
                for _ in 0..1 + twice as usize {
                    venue.transit.push_back((venue.transit_last, order));
                }
            }
        }
        did
    }

    // ---------------------------------------------------------------- engine

    /// The core thread takes one input, if it has one and is not busy.
    fn core_action(&mut self) -> Result<bool, Failure> {
        let now = self.now;
        let Some(e) = &self.engine else {
            return Ok(false);
        };
        if e.busy_until > now {
            return Ok(false);
        }
        let exec = !e.ring.is_empty();
        let tick = e.core.wake_at().is_some_and(|w| w.0 <= now);
        let feed = self
            .feed
            .front()
            .is_some_and(|p| p.arrival <= now && e.core.ready_for(&p.ev));
        if !(exec || tick || feed) {
            return Ok(false);
        }
        let exec_first = self.world.engine.exec_first_pct as u64;
        let choice = if exec && (!feed || self.rng.below(100) < exec_first) {
            if tick && self.rng.chance(300_000) {
                1
            } else {
                0
            }
        } else if tick && (!feed || self.rng.chance(500_000)) {
            1
        } else if feed {
            2
        } else {
            0
        };
        let service = self.rng.range(0, self.world.engine.service_ns_max);
        let Some(e) = &mut self.engine else {
            return Ok(false);
        };
        e.busy_until = now + service;
        match choice {
            0 => {
                let item = e.ring.pop_front().unwrap_or(ExecItem::Venue(0, true));
                let entry = match item {
                    ExecItem::Report(r) => JournalEntry::Exec(r),
                    ExecItem::Venue(v, up) => JournalEntry::Feed(FeedEvent::Venue {
                        venue: VenueIdx(v as u16),
                        up,
                        ts: Nanos(now),
                    }),
                };
                self.input(entry, None)?;
            }
            1 => {
                e.last_tick = now.max(e.last_tick + 1);
                let ev = FeedEvent::Tick {
                    ts: Nanos(e.last_tick),
                };
                self.input(JournalEntry::Feed(ev), None)?;
            }
            _ => {
                let Some(p) = self.feed.pop_front() else {
                    return Ok(false);
                };
                let Some(mut ev) = self.resolved(p.ev)? else {
                    return Ok(true);
                };
                match &mut ev {
                    FeedEvent::LeaderFill(f) => f.recv_ts = Nanos(now),
                    FeedEvent::MarkPrice { ts, .. }
                    | FeedEvent::Command { ts, .. }
                    | FeedEvent::Revision { ts, .. } => *ts = Nanos(now),
                    _ => {}
                }
                self.input(JournalEntry::Feed(ev), Some(p))?;
            }
        }
        Ok(true)
    }

    /// The source's event with its symbol resolved by name against the model in
    /// force (a `file` source's way): the planned events name symbols by their
    /// place in `plan`, and a restart on a new journal takes the edited file as
    /// it is, whose places differ when the reload removed a symbol. A symbol the
    /// model holds removed still resolves (a fill the source took before the
    /// revision: the core skips it, `symbol_removed`); one it lacks is refused,
    /// and nothing reaches the core. `None` then.
    fn resolved(&mut self, mut ev: FeedEvent) -> Result<Option<FeedEvent>, Failure> {
        let Some(planned) = world::symbol_of(&ev) else {
            return Ok(Some(ev));
        };
        let name = &self.plan.symbols[planned.0 as usize].name;
        let Some(symbol) = self.world.universe.symbol(name) else {
            if !self.reload_taken {
                // The world plans a symbol's events only after the reload
                // that adds it: a harness bug.
                let what =
                    format!("the source has an event in {name} before the reload that adds it");
                return Err(self.failure(Check::Harness, what));
            }
            let line = format!("the source refuses an event in {name}: not in the model in force");
            self.note(&line);
            self.out.refused_by_source += 1;
            return Ok(None);
        };
        match &mut ev {
            FeedEvent::LeaderFill(f) => f.symbol = symbol,
            FeedEvent::MarkPrice { symbol: s, .. } | FeedEvent::Funding { symbol: s, .. } => {
                *s = symbol
            }
            _ => {}
        }
        Ok(Some(ev))
    }

    /// Every venue learns the engine's symbols in force, by the indices its
    /// orders carry, before any order made under them (`Gateway::universe_changed`:
    /// a symbol a reload adds is traded from its first order on; a removed one
    /// keeps its place for the closes).
    fn tell_venues(&mut self) {
        let terms: Vec<SymbolTerms> = (self.world.universe.symbols.iter())
            .map(SymbolTerms::of)
            .collect();
        for v in &mut self.venues {
            v.sim
                .set_symbols(0, &terms)
                .expect("symbols from index 0 leave no gap");
        }
    }

    /// The core takes `entry`; the input and then its outputs are journaled, the
    /// orders handed to their gateways only once their records are; then the
    /// per-step checks. `src`: the source's event, given back to the source if the
    /// engine dies before the journal holds it.
    fn input(&mut self, entry: JournalEntry, src: Option<Planned>) -> Result<(), Failure> {
        self.step += 1;
        if self.step > STEPS_MAX {
            return Err(self.failure(
                Check::FlatWithLeader,
                format!(
                    "{STEPS_MAX} inputs and still going: a livelock? {}",
                    self.pending()
                ),
            ));
        }
        let Some(e) = &mut self.engine else {
            return Ok(());
        };
        let mut out = Collect::default();
        let mut reloaded = false;
        match &entry {
            JournalEntry::Feed(FeedEvent::Revision { .. }) if self.reload_taken => {
                // The source gave the reload again after a crash, and the edited
                // file is in force already (taken, or loaded by the restart): as
                // `ctl reload` of an unchanged file, nothing is sent or journaled.
                self.note("reload: the edited file is in force already; nothing to apply");
                return Ok(());
            }
            JournalEntry::Feed(FeedEvent::Revision { revision, .. }) => {
                // As the control thread and the core thread do it: prepared from
                // the model in force, taken between two inputs.
                let (edited, u2) = self.world.reload.as_ref().expect("a planned reload");
                let held = held_in_removed(&e.core, u2);
                let taken = RevisionPatch::prepare(
                    e.core.universe(),
                    Arc::clone(u2),
                    &self.world.config.engine,
                    &edited.engine,
                )
                .and_then(|mut p| e.core.take_revision(&mut p));
                if let Err(why) = taken {
                    let why = format!("reload to {revision:016x}: {why}");
                    return Err(self.failure(Check::Harness, why));
                }
                reloaded = true;
                for (name, pairs) in held {
                    self.out.held_in_removed += pairs;
                    self.note(&format!(
                        "reload removes {name}: {pairs} subscriptions hold a position or orders in it"
                    ));
                }
            }
            JournalEntry::Feed(ev) => e.core.on_feed(ev, &mut out),
            JournalEntry::Exec(r) => e.core.on_exec(r, &mut out),
            other => unreachable!("not an input: {other:?}"),
        }
        if reloaded {
            self.reload_taken = true;
            // The person's edit is the config file now: a restart loads it.
            if let Some((edited, u2)) = &self.world.reload {
                self.world.config = self.world.reload_file.clone().unwrap_or(edited.clone());
                self.world.universe = Arc::clone(u2);
            }
            self.tell_venues();
        }
        self.out.skipped_symbol_removed += (out.entries.iter())
            .filter(|o| matches!(o, JournalEntry::Decision(d) if d.reason == Reason::SymbolRemoved))
            .count() as u64;
        let u = std::sync::Arc::clone(&self.world.universe);
        self.note(&trace::input(&u, &entry));
        for o in &out.entries {
            let line = match o {
                JournalEntry::Order(o) => Some(trace::order(&u, o)),
                JournalEntry::Decision(d) => trace::decision(&u, d),
                JournalEntry::Notice(n) => Some(trace::notice(&u, n)),
                _ => None,
            };
            if let Some(line) = line {
                self.note(&format!("  → {line}"));
            }
        }
        if let Appended::Crashed = self.append(std::slice::from_ref(&entry))? {
            if let Some(p) = src {
                self.feed.push_front(Planned {
                    arrival: self.now,
                    ..p
                });
            }
            return Ok(());
        }
        let seq = self
            .engine
            .as_mut()
            .map_or(0, |e| e.stage.writer().written_seq());
        if let Some(p) = src {
            self.undurable_feed.push_back((seq, p));
        }
        if let Some(p) = src.filter(|p| matches!(p.ev, FeedEvent::LeaderFill(_))) {
            if self.journaled_fills.len() == RESUME_MAX {
                self.journaled_fills.pop_front();
            }
            self.journaled_fills.push_back(p);
        }
        self.count_trade(&entry, seq);
        for chunk in out.entries.chunks(JOURNAL_CHUNK) {
            if let Appended::Crashed = self.append(chunk)? {
                return Ok(());
            }
            for o in chunk {
                if let JournalEntry::Order(o) = o {
                    let v = u.sym(o.symbol).venue.0 as usize;
                    let due = self.now + self.rng.range(0, self.world.engine.egress_ns_max);
                    if let Some(e) = &mut self.engine {
                        e.gateways[v].egress.push_back((due, *o));
                    }
                }
            }
            // The I/O thread may hand these over while the core still fans out (the
            // pipeline's egress chunks need only their own journal chunks).
            self.egress_due();
        }
        self.check_step()?;
        let Some(e) = &self.engine else {
            return Ok(());
        };
        if let JournalEntry::Feed(FeedEvent::Tick { ts }) = entry {
            let again = e.core.wake_at().is_some_and(|w| w.0 <= ts.0);
            self.idle_ticks = if out.entries.is_empty() && again {
                self.idle_ticks + 1
            } else {
                0
            };
            if self.idle_ticks > IDLE_TICKS_MAX {
                return Err(self.failure(
                    Check::FlatWithLeader,
                    format!(
                        "tick storm: {IDLE_TICKS_MAX} ticks in a row changed nothing and the core wants another at once ({})",
                        self.pending()
                    ),
                ));
            }
        }
        // A start's first inputs tell the core every link: judged after all of them.
        if e.core.halted() && !self.starting {
            self.out.halts += 1;
            self.note("the engine stops: a venue alarm with on_venue_down = \"stop\"");
            self.engine_dies();
        }
        Ok(())
    }

    /// Append entries to the journal; the engine may die before any of them.
    fn append(&mut self, entries: &[JournalEntry]) -> Result<Appended, Failure> {
        let mut cut = None;
        let (mut ppm, mut crashes_max) = (
            self.world.engine.crash_ppm,
            self.world.engine.crashes_max as u64,
        );
        if matches!(
            self.opts.breakage,
            Breakage::TamperJournal | Breakage::PowerLossWithoutSync
        ) {
            (ppm, crashes_max) = (ppm.max(5_000), crashes_max.max(1));
        }
        if self.faults_on && self.out.crashes < crashes_max {
            cut = (0..entries.len()).find(|_| self.rng.chance(ppm));
        }
        let Some(e) = &mut self.engine else {
            return Ok(Appended::Crashed);
        };
        let upto = cut.unwrap_or(entries.len());
        // A reload is journaled as its revision's config records, in its place.
        let reload = &self.world.reload;
        let written = pipeline::append_with_revisions(
            &mut e.stage,
            &entries[..upto],
            |stage, revision, ts| {
                let toml = reload.as_ref().and_then(|(c, _)| c.model_toml().ok());
                let toml = toml.ok_or_else(|| {
                    SinkError(format!("revision {revision:016x} without its model").into())
                })?;
                stage.revision(revision, &toml, ts)
            },
        );
        if let Err(why) = written {
            return Err(self.failure(Check::Harness, format!("journal append: {why}")));
        }
        if cut.is_some() {
            self.out.crashes += 1;
            let torn = self.rng.chance(self.world.engine.torn_ppm);
            let power = self.opts.breakage == Breakage::PowerLossWithoutSync
                || self.rng.chance(self.world.engine.power_loss_ppm);
            self.note(&format!(
                "{} before journal entry {} of {}{}",
                if power { "POWER LOSS" } else { "CRASH" },
                upto + 1,
                entries.len(),
                if torn { ", leaving a torn record" } else { "" }
            ));
            self.engine_dies();
            if power {
                self.lose_power();
            }
            if torn {
                self.out.torn_tails += 1;
                check::tear_tail(self.dir.path(), &mut self.rng);
            }
            if self.opts.breakage == Breakage::TamperJournal && self.out.crashes == 1 {
                self.tamper();
            }
            return Ok(Appended::Crashed);
        }
        Ok(Appended::All)
    }

    /// The engine process ends: everything but the journal directory and the venues
    /// is gone. Orders on the wire reach the venue or not; reports to the dead
    /// session are lost.
    fn engine_dies(&mut self) {
        self.engine = None;
        if self.rng.chance(500_000) {
            // A killed writer leaves its half-made next segment behind.
            let junk = vec![0xa5u8; self.rng.range(1, 4_096) as usize];
            let _ = std::fs::write(self.dir.path().join("next-segment.tmp"), junk);
        }
        for v in 0..self.venues.len() {
            let transit: Vec<FollowerOrder> =
                self.venues[v].transit.drain(..).map(|(_, o)| o).collect();
            for o in transit {
                if self.rng.chance(500_000) {
                    self.arrive(v, o);
                }
            }
            self.venues[v].net.clear();
            self.venues[v].held.clear();
        }
        let delay = self.rng.range(1, self.world.engine.restart_ns_max);
        self.restart_at = Some(self.now + delay);
    }

    /// The machine lost power: the journal keeps what was flushed; the source
    /// gives back the events it lost, and the trades they brought are uncounted.
    fn lose_power(&mut self) {
        self.out.power_losses += 1;
        check::lose_after(self.dir.path(), self.durable_seq);
        let lost_feed = self.undurable_feed.len();
        for (_, p) in self.undurable_feed.drain(..).rev() {
            self.feed.push_front(Planned {
                arrival: self.now,
                ..p
            });
        }
        let lost_trades = self.undurable_trades.len();
        for (_, order, trade, pair, lots) in self.undurable_trades.drain(..) {
            self.counted.remove(&(order, trade));
            self.expected[pair] -= lots;
        }
        self.note(&format!(
            "the journal keeps records up to {}: {lost_feed} source events and {lost_trades} trades go back",
            self.durable_seq
        ));
    }

    /// `Breakage::TamperJournal`: a forged decision at the journal's end.
    fn tamper(&mut self) {
        let forged = JournalEntry::Decision(Decision {
            event_key: 0x7a3e_7a3e,
            ..Decision::default()
        });
        if let Ok((writer, _)) = JournalWriter::open(self.dir.path(), self.journal_opts) {
            let mut stage = JournalStage::new(writer);
            let _ = stage.append(&[forged]);
        }
        self.note("the journal is tampered with: a forged decision appended");
    }

    /// Start the engine on its journal (the first start too), through the same
    /// restart path as `fillcast run`; then its first inputs: the venues' answers
    /// about unanswered orders, and every gateway's link.
    fn start(&mut self) -> Result<(), Failure> {
        if let Some(v) = self.venues.iter().position(|v| !v.link_works()) {
            // The gateways cannot connect: try again once the link works.
            let at = self.venues[v].next_transition().unwrap_or(self.now + 1);
            self.restart_at = Some(at.max(self.now + 1));
            self.note(&format!("restart waits for link v{v}"));
            return Ok(());
        }
        self.restart_at = None;
        self.session += 1;
        let mut log = Vec::new();
        // The config file as `fillcast run` resolves it (after a reload that
        // changed the shape, the model in force is that file laid out after the
        // journal's, which `restart::open` does; a new journal takes the file).
        let file_model = match Universe::from_config(&self.world.config) {
            Ok(u) => Arc::new(u),
            Err(e) => return Err(self.failure(Check::Harness, format!("the config: {e}"))),
        };
        let opened = {
            let mut asking = Asking {
                venues: &self.venues,
                silent: self.silent,
            };
            restart::open(
                self.dir.path(),
                self.journal_opts,
                &self.world.config,
                &file_model,
                &mut asking,
                Nanos(self.now),
                &mut |line| log.push(line),
            )
        };
        for line in &log {
            self.note(line);
        }
        let opened = match opened {
            Ok(o) => o,
            Err(RestartError::Mismatch { stats, .. }) => {
                return Err(self.failure(
                    Check::ReplayReproduces,
                    format!(
                        "the restart's replay differs from the journal: {} of {} outputs (records {}..{})",
                        stats.mismatches, stats.outputs_checked, stats.first_seq, stats.last_seq
                    ),
                ));
            }
            Err(e) => return Err(self.failure(Check::Harness, format!("restart: {e}"))),
        };
        // What the dead engine journaled after its last flush is still only in
        // the page cache: the next flush before orders leave covers it.
        self.durable_seq = self.durable_seq.min(opened.recovery.last_seq);
        let first = opened.replay.is_none();
        if !first {
            self.out.restarts += 1;
        }
        if self.out.restarts > RESTARTS_MAX {
            return Err(self.failure(
                Check::FlatWithLeader,
                format!("{RESTARTS_MAX} restarts and the engine keeps stopping"),
            ));
        }
        self.note(&format!(
            "engine {} (session {}): {} reports recovered, {} unjournaled outputs appended",
            if first { "starts" } else { "restarts" },
            self.session,
            opened.recovered.len(),
            opened.unjournaled
        ));
        // The model in force: the file laid out after the journal's.
        self.world.universe = Arc::clone(&opened.universe);
        self.tell_venues();
        let n_venues = self.venues.len();
        self.engine = Some(Engine {
            core: opened.core,
            stage: opened.stage,
            ring: VecDeque::new(),
            gateways: (0..n_venues).map(|_| GatewaySide::new(true)).collect(),
            busy_until: self.now,
            last_tick: 0,
        });
        // The source resumes after what the journal holds, and may repeat a little.
        let overlap = self.rng.below(self.world.engine.resume_overlap as u64 + 1) as usize;
        let skip = self.journaled_fills.len().saturating_sub(overlap);
        for p in self.journaled_fills.iter().skip(skip).rev() {
            self.feed.push_front(Planned {
                arrival: self.now,
                ..*p
            });
        }
        self.starting = true;
        let first_inputs = self.first_inputs(opened.recovered);
        self.starting = false;
        first_inputs?;
        if self.engine.as_ref().is_some_and(|e| e.core.halted()) {
            return Err(self.failure(
                Check::FlatWithLeader,
                "the engine was restarted with every venue up and stays halted: \
                 it will never take a leader fill again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A started engine's first inputs: the venues' answers, then every link.
    fn first_inputs(&mut self, recovered: Vec<ExecReport>) -> Result<(), Failure> {
        for r in recovered {
            self.input(JournalEntry::Exec(r), None)?;
            if self.engine.is_none() {
                return Ok(());
            }
        }
        for v in 0..self.venues.len() {
            let ev = FeedEvent::Venue {
                venue: VenueIdx(v as u16),
                up: true,
                ts: Nanos(self.now),
            };
            self.input(JournalEntry::Feed(ev), None)?;
            if self.engine.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The source has handed everything over: the venue becomes quiet and
    /// reachable (no more refusals, repeats, reordering, expiries, outages or
    /// crashes; the matching engine fills every order in full).
    fn faults_off(&mut self) {
        self.faults_on = false;
        self.faults_off_at = self.now;
        let now = self.now;
        for v in &mut self.venues {
            let keep = match v.phase {
                Phase::Working => v.outage,
                _ => v.outage + 1,
            };
            v.faults.outages.truncate(keep);
            if let Some(o) = v.faults.outages.get_mut(v.outage) {
                if v.phase != Phase::Working {
                    o.noticed_at = o.noticed_at.min(now);
                    o.up_at = o.up_at.min(now);
                    o.reconnect_at = o.reconnect_at.min(now);
                }
            }
            let placeholder = SimVenue::new("", &Default::default(), Vec::new());
            let sim = std::mem::replace(&mut v.sim, placeholder);
            v.sim = sim.fill_all();
        }
        self.note("faults off: the leaders are done; the venue is quiet and reachable from now on");
    }

    // ---------------------------------------------------------------- checks

    /// A fill the core took (and the journal holds) counts once per venue trade.
    fn count_trade(&mut self, entry: &JournalEntry, seq: u64) {
        let JournalEntry::Exec(r) = entry else {
            return;
        };
        if r.kind != ExecKind::Fill {
            return;
        }
        for venue in &self.venues {
            let Some(o) = venue.orders.get(&r.order_id) else {
                continue;
            };
            if venue.is_trade(r.order_id, r.trade_id, r.qty.0)
                && self.counted.insert((r.order_id, r.trade_id))
            {
                let pair = o.sub.0 as usize * self.n_sym + o.symbol.0 as usize;
                let lots = o.side.sign() * r.qty.0;
                self.expected[pair] += lots;
                self.undurable_trades
                    .push((seq, r.order_id, r.trade_id, pair, lots));
            }
            return;
        }
    }

    fn check_step(&self) -> Result<(), Failure> {
        for (v, venue) in self.venues.iter().enumerate() {
            let dups = venue.sim.duplicate_client_ids() + venue.duplicates;
            if dups > 0 {
                return Err(self.failure(
                    Check::NoDuplicateOrder,
                    format!("venue v{v} received {dups} orders whose client order id it had seen"),
                ));
            }
        }
        let Some(e) = &self.engine else {
            return Ok(());
        };
        let u = &self.world.universe;
        for s in 0..u.subs.len() {
            for si in 0..u.symbols.len() {
                let (sub, sym) = (SubIdx(s as u32), SymbolIdx(si as u16));
                let got = e.core.position(sub, sym).0;
                let want = self.expected[s * self.n_sym + si];
                if got != want {
                    let st = e.core.stats();
                    return Err(self.failure(
                        Check::FillsCountedOnce,
                        format!(
                            "{} {}: the engine holds {got} lots, the distinct venue trades it was given sum to {want} \
                             (engine: {} fills, {} duplicate fills, {} unknown reports, {} overfills)",
                            u.subs[s].id, u.symbols[si].name, st.fills, st.duplicate_fills,
                            st.unknown_reports, st.overfills
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// At rest: the engine is quiet, knows every leader flat, holds what the
    /// venue's books hold, and every follower position open where its leader is
    /// flat has a recorded reason. Returns those positions.
    fn check_quiet(&mut self) -> Result<Vec<(SubIdx, SymbolIdx)>, Failure> {
        let e = self
            .engine
            .as_ref()
            .ok_or_else(|| self.failure(Check::Harness, "no engine at rest".into()))?;
        let core = &e.core;
        let u = &self.world.universe;
        if core.live_orders() > 0 || core.resync_pending().0 > 0 {
            return Err(self.failure(
                Check::FlatWithLeader,
                format!(
                    "the venue is quiet and reachable but the engine is not: {}",
                    self.pending()
                ),
            ));
        }
        for l in 0..u.leaders.len() {
            for s in 0..u.symbols.len() {
                let p = core.leader_position(
                    fillcast_engine::model::LeaderIdx(l as u32),
                    SymbolIdx(s as u16),
                );
                if p.0 != 0 {
                    return Err(self.failure(
                        Check::FlatWithLeader,
                        format!(
                            "leader {} ends flat in {} but the engine believes {} lots (a leader fill lost or taken twice)",
                            u.leaders[l].id, u.symbols[s].name, p.0
                        ),
                    ));
                }
            }
        }
        let mut books: BTreeMap<(u32, u16), i64> = BTreeMap::new();
        for (s, spec) in u.subs.iter().enumerate() {
            for si in 0..u.symbols.len() {
                let p = core.position(SubIdx(s as u32), SymbolIdx(si as u16)).0;
                *books.entry((spec.follower.0, si as u16)).or_default() += p;
            }
        }
        for ((f, si), engine_pos) in &books {
            let v = u.symbols[*si as usize].venue.0 as usize;
            let venue_pos = self.venues[v]
                .sim
                .position(fillcast_engine::model::FollowerIdx(*f), SymbolIdx(*si))
                .0;
            if venue_pos != *engine_pos {
                // The venue's trades for this follower the engine never took.
                let mut missing = Vec::new();
                for (id, o) in &self.venues[v].orders {
                    if o.follower.0 != *f || o.symbol.0 != *si {
                        continue;
                    }
                    for r in self.venues[v].answer(*id).1 {
                        if r.kind == ExecKind::Fill && !self.counted.contains(&(*id, r.trade_id)) {
                            missing.push(format!(
                                "{} {} {} trade#{:04x}",
                                trace::order_name(u, *id),
                                o.side.as_str(),
                                r.qty.0,
                                r.trade_id & 0xffff
                            ));
                        }
                    }
                }
                return Err(self.failure(
                    Check::PositionsMatchVenue,
                    format!(
                        "{} {}: the engine holds {engine_pos} lots, the venue's books {venue_pos}; \
                         venue trades the engine never took: {}",
                        u.followers[*f as usize].id,
                        u.symbols[*si as usize].name,
                        missing.join(", ")
                    ),
                ));
            }
        }
        let mut open = Vec::new();
        let mut lines = Vec::new();
        for (sub, sym, lots, why) in core.open_where_leader_flat() {
            let line = format!(
                "{} {} holds {} lots, leader flat: {}",
                u.subs[sub.0 as usize].id,
                u.symbols[sym.0 as usize].name,
                lots.0,
                if why.as_str().is_empty() {
                    "NO REASON"
                } else {
                    why.as_str()
                }
            );
            if why == fillcast_engine::outputs::SyncReason::None {
                return Err(self.failure(Check::FlatWithLeader, line));
            }
            lines.push(line);
            open.push((sub, sym));
        }
        for line in lines {
            self.note(&format!("open: {line}"));
        }
        Ok(open)
    }
}

/// Per symbol `next` removes that `core`'s model has in force: its name, and how
/// many subscriptions hold a position or working orders in it.
fn held_in_removed(core: &Core, next: &Universe) -> Vec<(String, u64)> {
    let now = core.universe();
    (0..now.symbols.len())
        .filter(|&si| !now.symbols[si].removed && next.symbols.get(si).is_some_and(|s| s.removed))
        .map(|si| {
            let sym = SymbolIdx(si as u16);
            let held = (0..now.subs.len())
                .map(|s| SubIdx(s as u32))
                .filter(|&sub| core.position(sub, sym).0 != 0 || core.working(sub, sym).0 != 0)
                .count();
            (now.symbols[si].name.clone(), held as u64)
        })
        .collect()
}
