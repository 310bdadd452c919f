//! A seeded whole-system simulator (issue 9), in the spirit of TigerBeetle's VOPR
//! and FoundationDB's simulation testing.
//!
//! One seed (`u64`) decides everything, and the same seed gives the same run bit
//! for bit: a virtual clock in ns, one ChaCha8 stream, ordered collections only, no
//! thread timing. A run drives the *real* `Core`, a *real* journal in a temporary
//! directory written through the real `JournalStage`, and the product's simulated
//! venue (`SimVenue`: books, per-order history, answers), with a seeded fault layer
//! between the core and the venue:
//!
//! - the world: a small config built in code (`world`): leaders, followers and
//!   subscriptions in all four modes with risk limits, one or two symbols and venues,
//!   few order places, retries and resync backoff;
//! - the leaders' activity: bursts of partial fills, adds, partial closes, flips,
//!   closes to flat, with duplicated and reordered deliveries; every leader ends flat;
//! - a person's live reload (in some seeds): edited limits, allocations and
//!   statuses, a subscription removed and a follower added, a symbol the leaders
//!   trade removed (its positions closed or kept under `engine.on_remove`) and one
//!   added that they trade once the reload has arrived; the source resolves
//!   symbols by name against the model in force, as a `file` source does;
//! - the venue's behaviour: latency, partial fills, rejects of every kind (and
//!   refusals of reduce-only closes that would not reduce its books), IOC
//!   remainders that expire, duplicated and reordered reports, outages (the link
//!   breaks, orders handed over meanwhile are rejected `VenueDown`, reports in flight
//!   are lost or held, and the gateway settles its orders in flight from the venue's
//!   history on reconnect before it says the link is up);
//! - the interleaving of feed and exec events under `Core::ready_for`
//!   (backpressure), with a journaled `FeedEvent::Tick` whenever `Core::wake_at` is
//!   due, as `engine::pipeline` does;
//! - crashes at journal appends (sometimes leaving a torn record or a stale spare
//!   segment; sometimes a power loss, which keeps only what `durability = "sync"`
//!   flushed before orders last left), after which everything but the journal
//!   directory and the venue is dropped and the engine restarts through
//!   `fillcast_journal::restart::open`, the path `fillcast run` takes; the source
//!   re-delivers what the journal does not hold.
//!
//! The journal writer itself runs with `durability = "never"` (no msync: the run
//! stays fast and off the disk's clock); a power loss is modelled from the `sync`
//! promise, not from the writer's flush calls.
//!
//! Checked at every step and at quiescence (`Check`): no client order id reaches the
//! venue twice; no fill is counted twice (the engine's position per pair equals the
//! distinct venue trades it was given); the engine's positions equal the venue's
//! books; every replay reproduces every journaled decision; once the leaders are
//! flat and the venue is quiet and reachable, every follower is flat unless a
//! recorded reason says why not.

mod check;
pub mod cli;
mod rng;
mod run;
mod trace;
mod venue;
mod world;

use std::fmt;

/// What a run may be told to get wrong on purpose, to prove that each check can
/// fail (`tests/simulate.rs`). `None` for every real run.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Breakage {
    #[default]
    None,
    /// The gateway hands some orders to the venue twice (check 1).
    SendTwice,
    /// The journal runs with `durability = "never"` and the machine loses power:
    /// every crash loses what the engine journaled since it started (check 1: it
    /// sends the orders it re-derives again, under the same ids).
    PowerLossWithoutSync,
    /// The venue reports some fills a second time under another trade id (check 2).
    FillTwice,
    /// The venue books partial fills it never reports (check 3).
    FillNotReported,
    /// A forged decision is appended to the journal before the first restart (check 4).
    TamperJournal,
    /// The venue never answers one close, not even when asked (check 5).
    SilentVenue,
}

/// The engine's promises the simulator checks, numbered as in issue 9.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// 1. No client order id reaches the venue twice.
    NoDuplicateOrder,
    /// 2. No fill is counted twice (nor lost): the engine's position per
    ///    (subscription, symbol) is the sum of the distinct venue trades it was given.
    FillsCountedOnce,
    /// 3. The engine's positions equal the venue's books at quiescence.
    PositionsMatchVenue,
    /// 4. Every replay reproduces every journaled output, and the final replay the
    ///    live core's state.
    ReplayReproduces,
    /// 5. Once the leaders are flat and the venue is quiet and reachable, every
    ///    follower is flat unless a recorded reason says why not (and the engine gets
    ///    there: it takes every leader fill and becomes quiet).
    FlatWithLeader,
    /// The engine or the simulator panicked.
    Panic,
    /// The simulator itself could not go on (a bug in the harness).
    Harness,
}

impl Check {
    pub fn number(self) -> Option<u8> {
        match self {
            Check::NoDuplicateOrder => Some(1),
            Check::FillsCountedOnce => Some(2),
            Check::PositionsMatchVenue => Some(3),
            Check::ReplayReproduces => Some(4),
            Check::FlatWithLeader => Some(5),
            Check::Panic | Check::Harness => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Check::NoDuplicateOrder => "no client order id reaches the venue twice",
            Check::FillsCountedOnce => "no fill is counted twice",
            Check::PositionsMatchVenue => "engine positions equal the venue's books",
            Check::ReplayReproduces => "every replay reproduces the journal",
            Check::FlatWithLeader => "followers are flat with their leaders, or say why",
            Check::Panic => "no panic",
            Check::Harness => "the simulator runs",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number() {
            Some(n) => write!(f, "invariant {n} ({})", self.as_str()),
            None => write!(f, "{}", self.as_str()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Print every trace line as it happens (stderr).
    pub verbose: bool,
    /// Trace lines a failure report keeps (the last ones).
    pub trace_lines: usize,
    pub breakage: Breakage,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            verbose: false,
            trace_lines: 60,
            breakage: Breakage::None,
        }
    }
}

/// What a run that held every check did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub seed: u64,
    /// Inputs the core took, over all its lives.
    pub steps: u64,
    /// Virtual time the run took, ms.
    pub virtual_ms: u64,
    pub leader_fills: u64,
    pub orders_at_venue: u64,
    pub venue_fills: u64,
    pub rejects: u64,
    pub outages: u64,
    pub crashes: u64,
    /// Crashes that were power losses.
    pub power_losses: u64,
    pub torn_tails: u64,
    pub halts: u64,
    pub restarts: u64,
    pub resyncs: u64,
    pub gave_up: u64,
    /// (subscription, symbol) pairs open where the leader is flat once the engine is
    /// quiet (each with a recorded reason, or the run fails).
    pub open_at_end: u64,
    /// The same after a person's `Command::Resync` of each such subscription.
    pub open_after_resync: u64,
    /// Of those, how many belong to a follower that holds another subscription's
    /// position in the same symbol (the venue nets them: see the report).
    pub open_netted: u64,
    /// Of those, how many by recorded reason.
    pub open_why: std::collections::BTreeMap<&'static str, u64>,
    /// The reload (taken) removed a symbol the leaders trade, under
    /// `engine.on_remove` `"close"` or `"keep"`.
    pub symbol_removed: Option<&'static str>,
    /// Subscriptions that held a position or working orders in it when the
    /// reload was taken live (a reload a restart applies is not counted).
    pub held_in_removed: u64,
    /// Decisions not to copy a leader fill in it (`symbol_removed`).
    pub skipped_symbol_removed: u64,
    /// The reload (taken) added a symbol, which leaders trade after it.
    pub symbol_added: bool,
    /// Orders in the added symbol that reached the venue.
    pub orders_in_added: u64,
    /// Source events the source refused: their symbol is not in the model in
    /// force (a restart on a new journal took the edited file, without it).
    pub refused_by_source: u64,
    /// A hash of the whole trace: equal for two runs of one seed.
    pub digest: u64,
}

/// A check that failed: the seed, the step, what differed, and the last events.
#[derive(Clone, Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub check: Check,
    pub what: String,
    /// The last trace lines, oldest first.
    pub trace: Vec<String>,
}

/// The one command that replays a seed.
pub fn replay_command(seed: u64) -> String {
    format!("cargo run --release -- simulate --seed {seed} --verbose")
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} FAILED at step {}: {}",
            self.seed, self.step, self.check
        )?;
        for line in self.what.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "  replay: {}", replay_command(self.seed))?;
        writeln!(f, "  last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

/// Run one seed. A panic inside the engine or the simulator is a failure too.
pub fn run_seed(seed: u64, opts: &Options) -> Result<Outcome, Failure> {
    run::run(seed, opts)
}
