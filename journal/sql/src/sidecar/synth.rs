//! A synthetic journal written by the real engine core, for the sidecar's tests and
//! the bench: seeded leader fills (with duplicates and flips), marks, funding,
//! equity updates and commands go through `Core`, and a scripted venue answers every order
//! with the sequences real venues send (acks, partial fills, a fill before its ack,
//! a repeated fill, transient and margin rejects, IOC cancels). Each input and the
//! core's outputs are journaled in the order the core took them, as the engine does.

use fillcast_engine::config::{load_str, ArrangeError, Config, ConfigErrors, ModelTomlError};
use fillcast_engine::core::Core;
use fillcast_engine::event::{
    Command, ExecKind, ExecReport, FeedEvent, FillKind, FollowerOrder, LeaderFill, RejectReason,
    NO_SENDER,
};
use fillcast_engine::ids::{leader_event_key, mix64};
use fillcast_engine::model::{LeaderIdx, ModelError, Side, SubIdx, SymbolIdx, Universe, VenueIdx};
use fillcast_engine::outputs::{Decision, Notice, Outputs};
use fillcast_engine::port::{JournalEntry, JournalSink, SinkError};
use fillcast_engine::units::{FundingRate, Lots, Money, Nanos, Ticks};
use fillcast_journal::error::JournalError;
use fillcast_journal::stage::{JournalStage, StageError};
use fillcast_journal::writer::{JournalOptions, JournalWriter};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynthSpec {
    pub followers: usize,
    /// Percentage of followers paused (their decisions are skips, with no orders),
    /// chosen by a hash of the follower's number.
    pub paused_pct: u64,
    pub seed: u64,
}

impl Default for SynthSpec {
    fn default() -> Self {
        SynthSpec {
            followers: 12,
            paused_pct: 0,
            seed: 7,
        }
    }
}

/// The config the synthetic engine runs: two symbols, two leaders, `followers`
/// followers each copying one leader, the four modes in turn.
pub fn config_toml(spec: &SynthSpec) -> String {
    let mut t = String::from(
        "[engine]\nmax_working_orders = 65536\ndedup_window = 64\n\n\
         [[venues]]\nname = \"sim\"\nkind = \"sim\"\n\n\
         [[symbols]]\nname = \"BTCUSDT\"\nlot_size = \"0.001\"\ntick_size = \"0.1\"\nmin_notional = \"5\"\nvenue = \"sim\"\n\n\
         [[symbols]]\nname = \"ETHUSDT\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n\n\
         [[leaders]]\nid = \"L1\"\nequity = \"1000000\"\n\n\
         [[leaders]]\nid = \"L2\"\nequity = \"250000\"\n\n",
    );
    for i in 0..spec.followers {
        let paused = mix64(i as u64 ^ 0x9a05ed) % 100 < spec.paused_pct;
        t.push_str(&format!(
            "[[followers]]\nid = \"F{i}\"\nequity = \"{}\"\nstatus = \"{}\"\n\n",
            20_000 + 1_000 * (i % 7),
            if paused { "paused" } else { "active" }
        ));
    }
    for i in 0..spec.followers {
        let leader = if i % 2 == 0 { "L1" } else { "L2" };
        let mode = match i % 4 {
            0 => "mode = \"proportional\"\nmultiplier = \"2\"",
            1 => "mode = \"fixed_ratio\"\nratio = \"0.05\"",
            2 => "mode = \"fixed_amount\"\namount = \"1500\"",
            _ => "mode = \"fixed_leverage\"\nleverage = \"2\"",
        };
        t.push_str(&format!(
            "[[subscriptions]]\nid = \"S{i}\"\nfollower = \"F{i}\"\nleader = \"{leader}\"\nallocation = \"10000\"\n{mode}\n\n"
        ));
    }
    t
}

/// How many records of each kind the synthetic engine journaled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthCounts {
    pub leader_fills: u64,
    pub decisions: u64,
    pub orders: u64,
    pub execs: u64,
    /// Fill reports, repeats of a trade id not counted.
    pub distinct_fills: u64,
    /// Fill reports that repeat a trade id already reported.
    pub repeated_fills: u64,
    pub notices: u64,
    pub marks: u64,
    /// Funding inputs (`FeedEvent::Funding`).
    pub fundings: u64,
    pub equity: u64,
    pub commands: u64,
    /// Resync ticks (`FeedEvent::Tick`).
    pub ticks: u64,
}

#[derive(Default)]
struct Collect {
    entries: Vec<JournalEntry>,
    orders: Vec<FollowerOrder>,
}

impl Outputs for Collect {
    fn order(&mut self, o: &FollowerOrder) {
        self.entries.push(JournalEntry::Order(*o));
        self.orders.push(*o);
    }
    fn decision(&mut self, d: &Decision) {
        self.entries.push(JournalEntry::Decision(*d));
    }
    fn notice(&mut self, n: &Notice) {
        self.entries.push(JournalEntry::Notice(*n));
    }
}

/// Orders (retries included) the scripted venue answers for one input.
const ANSWERS_MAX: usize = 1 << 20;

/// Ticks after one input at most: each answers the resync's orders, which may be
/// refused again, but attempts are bounded (`engine.max_retries`).
const TICKS_PER_INPUT_MAX: usize = 64;

pub struct Synth {
    core: Core,
    stage: JournalStage,
    universe: Arc<Universe>,
    rng: u64,
    fills_done: u64,
    trade: u64,
    ts: u64,
    leader_pos: [[i64; 2]; 2],
    last_event: Option<(u32, u64)>,
    counts: SynthCounts,
    /// The model the journal holds last (`append_config` lays the next after it).
    config: Config,
    /// Leave new orders unanswered (`leave_orders_working`), here until answered.
    leave_working: bool,
    held: Vec<FollowerOrder>,
}

/// Why a synthetic journal could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Arrange(#[from] ArrangeError),
    /// The config's decision model would not serialize (`Config::model_toml`).
    #[error(transparent)]
    ModelToml(#[from] ModelTomlError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("more than {ANSWERS_MAX} orders from one input")]
    TooManyOrders,
}

impl Synth {
    /// A new journal in `dir` (which must not hold one), starting with its config.
    pub fn create(dir: &Path, spec: &SynthSpec) -> Result<Synth, SynthError> {
        let toml = config_toml(spec);
        let cfg = load_str(&toml, Path::new("synth.toml"))?;
        let universe = Arc::new(Universe::from_config(&cfg)?);
        let (writer, _) = JournalWriter::open(
            dir,
            JournalOptions {
                segment_bytes: 4 << 20,
                ..JournalOptions::default()
            },
        )?;
        let mut stage = JournalStage::new(writer);
        let ts = 1_732_060_800_000_000_000;
        stage.write_config(universe.revision, &cfg.model_toml()?, ts)?;
        Ok(Synth {
            core: Core::new(Arc::clone(&universe), &cfg.engine),
            stage,
            universe,
            rng: mix64(spec.seed ^ 0x5eed),
            fills_done: 0,
            trade: 0,
            ts,
            leader_pos: [[0; 2]; 2],
            last_event: None,
            counts: SynthCounts::default(),
            config: cfg,
            leave_working: false,
            held: Vec::new(),
        })
    }

    /// From now on (while `yes`), the venue leaves the orders of new fills
    /// unanswered: they stay working, as at a reload or a cut mid-flight.
    pub fn leave_orders_working(&mut self, yes: bool) {
        self.leave_working = yes;
    }

    /// Answers the orders left working, as the venue answers any.
    pub fn answer_working(&mut self) -> Result<(), SynthError> {
        let held = std::mem::take(&mut self.held);
        let leave = std::mem::replace(&mut self.leave_working, false);
        let done = self.answer(held);
        self.leave_working = leave;
        done
    }

    pub fn counts(&self) -> &SynthCounts {
        &self.counts
    }

    pub fn core(&self) -> &Core {
        &self.core
    }

    pub fn universe(&self) -> &Arc<Universe> {
        &self.universe
    }

    /// Records in the journal, the config record included.
    pub fn records(&mut self) -> u64 {
        self.stage.writer().next_seq() - 1
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng = mix64(self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15));
        self.rng % n.max(1)
    }

    fn now(&mut self) -> Nanos {
        self.ts += 1_000_000;
        Nanos(self.ts)
    }

    fn journal(&mut self, input: JournalEntry, out: &Collect) -> Result<(), SynthError> {
        self.stage.append(&[input])?;
        self.stage.append(&out.entries)?;
        for e in &out.entries {
            match e {
                JournalEntry::Decision(_) => self.counts.decisions += 1,
                JournalEntry::Order(_) => self.counts.orders += 1,
                JournalEntry::Notice(_) => self.counts.notices += 1,
                _ => {}
            }
        }
        Ok(())
    }

    fn feed(&mut self, ev: FeedEvent) -> Result<Vec<FollowerOrder>, SynthError> {
        let mut out = Collect::default();
        self.core.on_feed(&ev, &mut out);
        self.journal(JournalEntry::Feed(ev), &out)?;
        Ok(out.orders)
    }

    fn exec(&mut self, r: ExecReport, queue: &mut Vec<FollowerOrder>) -> Result<(), SynthError> {
        let mut out = Collect::default();
        self.core.on_exec(&r, &mut out);
        self.journal(JournalEntry::Exec(r), &out)?;
        self.counts.execs += 1;
        queue.extend(out.orders);
        Ok(())
    }

    fn report(&mut self, o: &FollowerOrder, kind: ExecKind, qty: i64, trade: u64) -> ExecReport {
        let now = self.now();
        ExecReport {
            order_id: o.id,
            kind,
            qty: Lots(qty),
            price: if kind == ExecKind::Fill {
                o.limit
            } else {
                Ticks(0)
            },
            trade_id: trade,
            fee: Money(if kind == ExecKind::Fill { qty * 3 } else { 0 }),
            reject: RejectReason::None,
            venue_ts: now,
            recv_ts: now,
        }
    }

    /// The scripted venue: answers every order, and the retries they cause.
    fn answer(&mut self, orders: Vec<FollowerOrder>) -> Result<(), SynthError> {
        if self.leave_working {
            self.held.extend(orders);
            return Ok(());
        }
        let mut queue = orders;
        let mut answered = 0usize;
        while let Some(o) = queue.pop() {
            answered += 1;
            if answered > ANSWERS_MAX {
                return Err(SynthError::TooManyOrders);
            }
            let pick = self.rand(100);
            let q = o.qty.0;
            self.trade += 1;
            let t = self.trade;
            match pick {
                0..=64 => {
                    let r = self.report(&o, ExecKind::Ack, 0, 0);
                    self.exec(r, &mut queue)?;
                    let r = self.report(&o, ExecKind::Fill, q, t);
                    self.exec(r, &mut queue)?;
                    self.counts.distinct_fills += 1;
                }
                65..=76 if q > 1 => {
                    // A partial fill of an IOC order, and the cancel of the rest.
                    let r = self.report(&o, ExecKind::Ack, 0, 0);
                    self.exec(r, &mut queue)?;
                    let r = self.report(&o, ExecKind::Fill, q / 2, t);
                    self.exec(r, &mut queue)?;
                    self.counts.distinct_fills += 1;
                    let r = self.report(&o, ExecKind::Canceled, 0, 0);
                    self.exec(r, &mut queue)?;
                }
                77..=82 => {
                    let r = self.report(&o, ExecKind::Fill, q, t);
                    self.exec(r, &mut queue)?;
                    self.counts.distinct_fills += 1;
                    let r = self.report(&o, ExecKind::Ack, 0, 0);
                    self.exec(r, &mut queue)?;
                }
                83..=88 => {
                    let r = self.report(&o, ExecKind::Ack, 0, 0);
                    self.exec(r, &mut queue)?;
                    let r = self.report(&o, ExecKind::Fill, q, t);
                    self.exec(r, &mut queue)?;
                    self.exec(r, &mut queue)?;
                    self.counts.distinct_fills += 1;
                    self.counts.repeated_fills += 1;
                }
                89..=94 => {
                    let mut r = self.report(&o, ExecKind::Rejected, 0, 0);
                    r.reject = RejectReason::Transient;
                    self.exec(r, &mut queue)?;
                }
                95..=97 => {
                    let mut r = self.report(&o, ExecKind::Rejected, 0, 0);
                    r.reject = RejectReason::InsufficientMargin;
                    self.exec(r, &mut queue)?;
                }
                _ => {
                    let mut r = self.report(&o, ExecKind::Rejected, 0, 0);
                    r.reject = RejectReason::Other;
                    self.exec(r, &mut queue)?;
                }
            }
        }
        Ok(())
    }

    /// Ticks while the core has resync work due (the catch-ups of rejects and
    /// remainders), each answered like any order.
    fn ticks(&mut self) -> Result<(), SynthError> {
        for _ in 0..TICKS_PER_INPUT_MAX {
            let Some(due) = self.core.wake_at() else {
                return Ok(());
            };
            self.ts = self.ts.max(due.0);
            let now = self.now();
            let orders = self.feed(FeedEvent::Tick { ts: now })?;
            self.counts.ticks += 1;
            self.answer(orders)?;
        }
        Ok(())
    }

    /// `n` more leader fills, each answered in full, with a mark price, a
    /// funding, an equity update or a command between some of them.
    pub fn leader_fills(&mut self, n: usize) -> Result<(), SynthError> {
        for _ in 0..n {
            self.fills_done += 1;
            let i = self.fills_done;
            let leader = self.rand(2) as usize;
            let symbol = self.rand(2) as usize;
            let p = self.leader_pos[leader][symbol];
            // A random walk that comes back to flat and flips now and then.
            let lots = if symbol == 0 { 100 } else { 50 } * (1 + self.rand(8) as i64);
            let signed = if p != 0 && self.rand(4) == 0 {
                -p
            } else if p.abs() > 2_000 || (p != 0 && self.rand(3) == 0) {
                -p.signum() * lots
            } else {
                lots * if self.rand(2) == 0 { 1 } else { -1 }
            };
            let repeat = self.rand(40) == 0;
            let (event_key, duplicate) = match self.last_event {
                Some((l, k)) if l == leader as u32 && repeat => (k, true),
                _ => (
                    leader_event_key(&self.universe.leaders[leader].id, &format!("e{i}")),
                    false,
                ),
            };
            if !duplicate {
                self.leader_pos[leader][symbol] += signed;
            }
            self.last_event = Some((leader as u32, event_key));
            let price = if symbol == 0 { 650_000 } else { 340_000 } + self.rand(2_000) as i64;
            let now = self.now();
            let fill = LeaderFill {
                leader: LeaderIdx(leader as u32),
                symbol: SymbolIdx(symbol as u16),
                side: Side::from_sign(signed),
                qty: Lots(signed.abs()),
                price: Ticks(price),
                event_key,
                order_key: if i.is_multiple_of(3) { 0 } else { mix64(i) },
                order_qty: Lots(if i.is_multiple_of(3) {
                    0
                } else {
                    signed.abs() * 2
                }),
                venue_ts: Nanos(now.0 - 500),
                recv_ts: now,
                // Now and then the venue's own close, or a fill whose kind its
                // source could not tell: journaled as records of their own.
                kind: match i % 16 {
                    5 => FillKind::Liquidation,
                    10 => FillKind::Adl,
                    13 => FillKind::Settlement,
                    15 => FillKind::Unknown,
                    _ => FillKind::Trade,
                },
            };
            let orders = self.feed(FeedEvent::LeaderFill(fill))?;
            self.counts.leader_fills += 1;
            self.answer(orders)?;
            self.ticks()?;
            // Now and then the venue goes away for a few fills: decisions are
            // deferred, and the resync catches up once it is back.
            if i % 50 == 20 || i % 50 == 24 {
                let now = self.now();
                let orders = self.feed(FeedEvent::Venue {
                    venue: VenueIdx(0),
                    up: i % 50 == 24,
                    ts: now,
                })?;
                self.answer(orders)?;
                self.ticks()?;
            }
            match i % 10 {
                3 => {
                    let now = self.now();
                    let orders = self.feed(FeedEvent::MarkPrice {
                        symbol: SymbolIdx(symbol as u16),
                        price: Ticks(price + 7),
                        ts: now,
                    })?;
                    self.counts.marks += 1;
                    self.answer(orders)?;
                }
                7 => {
                    // A rate within ±0.01% of either sign, from the fill's
                    // number: `rand`'s draws stay those of journals before
                    // funding.
                    let now = self.now();
                    let orders = self.feed(FeedEvent::Funding {
                        symbol: SymbolIdx(symbol as u16),
                        rate: FundingRate((i as i64 * 37) % 20_001 - 10_000),
                        price: Ticks(price + 3),
                        ts: now,
                    })?;
                    self.counts.fundings += 1;
                    self.answer(orders)?;
                }
                6 => {
                    let now = self.now();
                    let equity = Money(100_000_000 * (900_000 + self.rand(200_000) as i64));
                    let orders = self.feed(FeedEvent::LeaderEquity {
                        leader: LeaderIdx(leader as u32),
                        equity,
                        ts: now,
                    })?;
                    self.counts.equity += 1;
                    self.answer(orders)?;
                }
                9 if !self.universe.subs.is_empty() => {
                    let sub = SubIdx(self.rand(self.universe.subs.len() as u64) as u32);
                    let cmd = if i % 20 == 9 {
                        Command::PauseSubscription(sub)
                    } else {
                        Command::ResumeSubscription(sub)
                    };
                    let now = self.now();
                    let orders = self.feed(FeedEvent::Command {
                        cmd,
                        ts: now,
                        by: NO_SENDER,
                    })?;
                    self.counts.commands += 1;
                    self.answer(orders)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Appends a config record for `toml` laid out after the model before it, as
    /// the engine journals a reload (removed items stay as tombstones), as the
    /// sidecar sees it; the synthetic core keeps running under its first config.
    /// Returns the new revision.
    pub fn append_config(&mut self, toml: &str) -> Result<u64, SynthError> {
        let cfg = load_str(toml, Path::new("synth-reload.toml"))?.arranged_after(&self.config)?;
        let u = Universe::from_config(&cfg)?;
        let ts = self.now().0;
        self.stage
            .write_config(u.revision, &cfg.model_toml()?, ts)?;
        self.config = cfg;
        Ok(u.revision)
    }

    /// Appends a raw record (for tests of damaged or hostile journals).
    pub fn append_raw(
        &mut self,
        kind: u16,
        schema: u16,
        payload: &[u8],
    ) -> Result<u64, SynthError> {
        let ts = self.now().0;
        Ok(self.stage.writer().append(kind, schema, ts, payload)?)
    }

    /// Everything written so far visible to readers in other processes.
    pub fn flush(&mut self) -> Result<(), SynthError> {
        Ok(self.stage.writer().flush()?)
    }
}
