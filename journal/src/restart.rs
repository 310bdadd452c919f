//! Restarting the engine on its journal: the one path that `fillcast run` and the
//! simulator (`fillcast simulate`) share.
//!
//! `open` recovers the journal (cuts a torn tail), replays it under the journaled
//! config with every journaled output checked, appends the outputs of the last input
//! that the dead run did not journal (their orders never left: no order leaves before
//! its record), and asks the venues about every order that was sent and never
//! answered. Only then may the engine take new events; the answers (`recovered`) are
//! its first inputs.
//!
//! Never prints: what it does goes to the `log` it is given.

use crate::reader::JournalReader;
use crate::record::{decode, Entry};
use crate::replay::{replay, ReplayError, ReplayStats};
use crate::stage::JournalStage;
use crate::writer::{Durability, JournalOptions, JournalWriter, Recovery};
use crate::JournalError;
use fillcast_engine::config::{model_diff, Config, DurabilityConfig, JournalConfig};
use fillcast_engine::core::{Core, ShapeChanged};
use fillcast_engine::event::ExecReport;
use fillcast_engine::model::Universe;
use fillcast_engine::order::IdHash;
use fillcast_engine::port::{AskedOrder, Gateway, JournalSink, VenueError};
use fillcast_engine::units::Nanos;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

/// Everything the engine needs to start on a journal.
pub struct Opened {
    pub core: Core,
    /// The decision model in force: the config laid out after the journal's
    /// model (`Config::arranged_after`), so every journaled index names what it
    /// named; the config as given for a new journal. Sources, the control socket
    /// and the summary resolve names against it.
    pub config: Config,
    pub universe: Arc<Universe>,
    pub stage: JournalStage,
    /// The venues' answers about unanswered orders: the engine's first inputs, to be
    /// journaled and handed to the core before anything else.
    pub recovered: Vec<ExecReport>,
    /// What opening the journal found and cut.
    pub recovery: Recovery,
    /// The replay's figures; `None` for a new journal.
    pub replay: Option<ReplayStats>,
    /// Outputs of the dead run's last input that it had not journaled, now appended.
    pub unjournaled: usize,
    /// Orders asked about, per venue index.
    pub asked: BTreeMap<usize, usize>,
    /// Where each source stood (`Replayed::cursors`): resume them there.
    pub cursors: BTreeMap<u16, u64>,
    /// Every leader fill the journal holds (`Replayed::taken_events`).
    pub taken_events: HashSet<u64, IdHash>,
    /// The last run did not end cleanly, or records were cut (now, or by a repair):
    /// the journal may lack records of orders that reached a venue, so ask the venues
    /// before sending (`pipeline::Restart::ask_first`).
    pub ask_first: bool,
}

/// The file in a journal directory that says a run is using it, or that records were
/// cut. Made when a run opens the journal and by `fillcast journal repair`; removed by
/// `finished` when a run ends cleanly. Found at open, it means the last run died
/// (after a power loss the page cache may have lost records whose orders left) or
/// records were cut: the orders the engine derives again may already be at a venue.
pub const ASK_FIRST_MARKER: &str = "unclean";

/// Leaves `ASK_FIRST_MARKER` in `dir`, saying why, durably.
pub fn mark_unclean(dir: &Path, why: &str) -> std::io::Result<()> {
    let path = dir.join(ASK_FIRST_MARKER);
    let f = std::fs::File::create(&path)?;
    std::io::Write::write_all(&mut &f, format!("{why}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// A run on the journal in `dir` ended cleanly: everything it sent is journaled.
pub fn finished(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(ASK_FIRST_MARKER)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[derive(Debug, Error)]
pub enum RestartError {
    // The causes are in the messages, not `source` fields: `{e:#}` at the command
    // line would print them twice.
    #[error("journal {}: {error}", dir.display())]
    Open { dir: PathBuf, error: JournalError },
    #[error("replaying journal {}: {error}", dir.display())]
    Replay { dir: PathBuf, error: ReplayError },
    #[error(
        "the decision model changed since journal {} was written (revision {journaled:016x} there, {now:016x} now) in a way a restart cannot apply: {shape}:\n{}\n\
         A restart applies changed values and added or removed symbols, leaders, followers and subscriptions as a new revision; \
         a change to the venues, to a symbol's lot size, tick size or venue, or to the engine's table sizes (dedup_window, orders_per_subscription, max_working_orders), \
         is not built yet: restore those settings, or start a new journal directory",
        dir.display(),
        diff_lines(diff)
    )]
    ConfigChanged {
        dir: PathBuf,
        journaled: u64,
        now: u64,
        /// Why it cannot be applied (`Core::apply_revision`).
        shape: ShapeChanged,
        /// What differs, one line each (`config::model_diff`).
        diff: Vec<String>,
    },
    #[error("journal {}: the config cannot follow the journal's decision model: {error}", dir.display())]
    Arrange {
        dir: PathBuf,
        error: Box<fillcast_engine::config::ArrangeError>,
    },
    #[error("replay of journal {} does not reproduce {} of its decisions: refusing to continue", dir.display(), stats.mismatches)]
    Mismatch { dir: PathBuf, stats: ReplayStats },
    #[error("journal {}: {source}", dir.display())]
    Write {
        dir: PathBuf,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("venue {venue}: {message}")]
    Venue { venue: String, message: String },
}

/// The first lines of a model diff, indented, for a message.
fn diff_lines(diff: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut s: Vec<String> = diff.iter().take(SHOWN).map(|d| format!("  {d}")).collect();
    if diff.len() > SHOWN {
        s.push(format!("  … and {} more", diff.len() - SHOWN));
    }
    s.join("\n")
}

/// The venues a restart asks about unanswered orders (`Gateway::recover`), by venue
/// index.
pub trait Venues {
    fn name(&self, venue: usize) -> Option<String>;
    /// The model the orders asked about are named in (the journal's, arranged
    /// with the file's): before any question (`Gateway::universe_changed`).
    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        let _ = universe;
    }
    /// `Gateway::recover` of venue `venue`.
    fn recover(
        &mut self,
        venue: usize,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError>;
    /// `Gateway::orders_since` of venue `venue`.
    fn orders_since(
        &mut self,
        venue: usize,
        since: Nanos,
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError>;
}

impl Venues for [Box<dyn Gateway>] {
    fn name(&self, venue: usize) -> Option<String> {
        self.get(venue).map(|g| g.name().to_string())
    }

    fn universe_changed(&mut self, universe: &Arc<Universe>) {
        for g in self.iter_mut() {
            g.universe_changed(universe);
        }
    }

    fn recover(
        &mut self,
        venue: usize,
        orders: &[AskedOrder],
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        match self.get_mut(venue) {
            Some(g) => g.recover(orders, out),
            None => Err(no_gateway(venue)),
        }
    }

    fn orders_since(
        &mut self,
        venue: usize,
        since: Nanos,
        out: &mut dyn FnMut(ExecReport),
    ) -> Result<(), VenueError> {
        match self.get_mut(venue) {
            Some(g) => g.orders_since(since, out),
            None => Err(no_gateway(venue)),
        }
    }
}

fn no_gateway(venue: usize) -> VenueError {
    VenueError::Unsupported {
        venue: format!("#{venue}"),
        what: "be asked: no gateway serves it in this run",
    }
}

/// After an unclean stop, the journal may have lost records of orders that reached
/// a venue, and the run may not decide them again (a flip made as one leg, a resync
/// at another moment): ids it cannot name. Lists the orders each venue holds from
/// the journal's tail on (`Gateway::orders_since`) and adds the answers about those
/// the journal and the core do not know to `recovered`: the core takes them over
/// (`Core::adopt`). A venue that cannot list its orders is logged, not fatal: those
/// orders stay unknown and the run's end compares positions with the venue.
fn take_over_unknown_orders<V: Venues + ?Sized>(
    dir: &Path,
    core: &Core,
    universe: &Universe,
    venues: &mut V,
    recovered: &mut Vec<ExecReport>,
    log: &mut dyn FnMut(String),
) -> Result<(), RestartError> {
    let (since, mut known) = journal_tail_orders(dir).map_err(|error| RestartError::Open {
        dir: dir.into(),
        error,
    })?;
    known.extend(core.orders().map(|o| o.id));
    for venue in 0..universe.venues.len() {
        let name = venues.name(venue).unwrap_or_else(|| format!("#{venue}"));
        let mut got = Vec::new();
        match venues.orders_since(venue, since, &mut |r| got.push(r)) {
            Ok(()) => {}
            Err(e @ VenueError::Unsupported { .. }) => {
                log(format!(
                    "journal: {e}: orders of lost records that this run does not decide again stay unknown to the engine"
                ));
                continue;
            }
            // It can list them but did not: starting without them could leave
            // fills unseen. Fail closed; the next start asks again.
            Err(e) => {
                return Err(RestartError::Venue {
                    venue: name,
                    message: e.to_string(),
                })
            }
        }
        let before = recovered.len();
        recovered.extend(got.into_iter().filter(|r| !known.contains(&r.order_id)));
        let unknown: HashSet<u64, IdHash> =
            recovered[before..].iter().map(|r| r.order_id).collect();
        log(format!(
            "journal: venue `{name}` holds {} orders the journal lost: taken over",
            unknown.len()
        ));
    }
    Ok(())
}

/// The time from which orders may be missing from the journal, and the ids of the
/// orders it holds from a little before then: the order records of its last two
/// segments (all of it if they hold none). Lost records come after the last one
/// kept, and order times never go back, so an order of the venue's at or after the
/// returned time is in the set or was lost.
fn journal_tail_orders(dir: &Path) -> Result<(Nanos, HashSet<u64, IdHash>), JournalError> {
    let segments = crate::writer::list_segments(dir)?;
    let last_first = segments.last().map_or(1, |s| s.0);
    let reader = JournalReader::open(dir)?;
    let mut from = segments.len().checked_sub(2).map_or(1, |i| segments[i].0);
    loop {
        let mut known = HashSet::with_hasher(IdHash);
        // The journal's first record is stamped when it was made: no order from
        // before it can be this journal's.
        let mut floor = 0;
        let mut first_in_last: Option<u64> = None;
        let mut last_ts = 0;
        for rec in reader.iter_from(from) {
            let Ok(rec) = rec else { break };
            if rec.seq == 1 {
                floor = rec.ts;
            }
            let order = match decode(rec.kind, rec.schema, rec.payload) {
                Ok(Entry::Order(o) | Entry::OrderDecision(o, _)) => o,
                _ => continue,
            };
            known.insert(order.id);
            last_ts = order.ts.0;
            if rec.seq >= last_first && first_in_last.is_none() {
                first_in_last = Some(order.ts.0);
            }
        }
        if known.is_empty() && from > 1 {
            from = 1;
            continue;
        }
        let since = first_in_last.unwrap_or(last_ts).max(floor);
        return Ok((Nanos(since), known));
    }
}

/// The writer's options for a `[journal]` config section.
pub fn options(j: &JournalConfig) -> JournalOptions {
    JournalOptions {
        segment_bytes: u64::from(j.segment_mib.max(1)) << 20,
        durability: match j.durability {
            DurabilityConfig::Never => Durability::Never,
            DurabilityConfig::EveryMs => Durability::EveryMs(j.flush_every_ms.max(1)),
            DurabilityConfig::Sync => Durability::Sync,
        },
    }
}

/// Open (and recover) the journal in `dir`, rebuild the core from it, and ask the
/// venues about orders that were sent and never answered. A new journal gets `cfg`
/// as its first record, stamped `now`.
pub fn open<V: Venues + ?Sized>(
    dir: &Path,
    opts: JournalOptions,
    cfg: &Config,
    universe: &Arc<Universe>,
    venues: &mut V,
    now: Nanos,
    log: &mut dyn FnMut(String),
) -> Result<Opened, RestartError> {
    let write_err = |source: Box<dyn std::error::Error + Send + Sync>| RestartError::Write {
        dir: dir.into(),
        source,
    };
    let (writer, recovery) =
        JournalWriter::open(dir, opts).map_err(|error| RestartError::Open {
            dir: dir.into(),
            error,
        })?;
    if let Some(reason) = &recovery.cut_reason {
        log(format!(
            "journal: cut {} bytes of torn tail after sequence {} ({reason})",
            recovery.cut_bytes, recovery.last_seq
        ));
    }
    let ask_first = recovery.cut_reason.is_some() || dir.join(ASK_FIRST_MARKER).exists();
    if ask_first {
        log("journal: the last run did not end cleanly or records were cut: each order is asked about at its venue before it is sent, until a venue has none of a batch".into());
    }
    mark_unclean(dir, "a run has this journal open (or died with it open)")
        .map_err(|e| write_err(format!("writing {ASK_FIRST_MARKER}: {e}").into()))?;
    let mut stage = JournalStage::new(writer);
    // The decision model in force, journaled: at the start of a new journal, or
    // as the revision a restart applies.
    let write_model = |stage: &mut JournalStage,
                       cfg: &Config,
                       universe: &Universe|
     -> Result<u64, RestartError> {
        let model = cfg.model_toml().map_err(|e| write_err(e.into()))?;
        stage
            .write_config(universe.revision, &model, now.0)
            .map_err(|e| write_err(e.into()))
    };
    let replayed = replay(dir).map_err(|error| RestartError::Replay {
        dir: dir.into(),
        error,
    })?;
    let Some(r) = replayed else {
        write_model(&mut stage, cfg, universe)?;
        return Ok(Opened {
            core: Core::new(Arc::clone(universe), &cfg.engine),
            config: cfg.clone(),
            universe: Arc::clone(universe),
            stage,
            recovered: Vec::new(),
            recovery,
            replay: None,
            unjournaled: 0,
            asked: BTreeMap::new(),
            cursors: BTreeMap::new(),
            taken_events: HashSet::with_hasher(IdHash),
            ask_first,
        });
    };
    let s = &r.stats;
    log(format!(
        "journal: replayed {} records (seq {}..{}), {} inputs; {} outputs re-derived, {} differ",
        s.records, s.first_seq, s.last_seq, s.inputs, s.outputs_checked, s.mismatches
    ));
    if s.mismatches > 0 {
        return Err(RestartError::Mismatch {
            dir: dir.into(),
            stats: r.stats,
        });
    }
    if !r.unjournaled.is_empty() {
        log(format!(
            "journal: appending {} decisions and orders the last run made but did not journal",
            r.unjournaled.len()
        ));
        stage
            .append(&r.unjournaled)
            .map_err(|e| write_err(e.into()))?;
    }
    let mut core = r.core;
    // The file laid out after the journal's model: the journal's indices keep
    // their items, and a file unchanged since the last reload is that revision.
    let refused = |shape: ShapeChanged, now: u64, diff: Vec<String>| RestartError::ConfigChanged {
        dir: dir.into(),
        journaled: r.revision,
        now,
        shape,
        diff,
    };
    let arranged = cfg
        .arranged_after(&r.config)
        .map_err(|e| RestartError::Arrange {
            dir: dir.into(),
            error: Box::new(e),
        })?;
    let universe =
        Arc::new(
            Universe::from_config(&arranged).map_err(|e| RestartError::Arrange {
                dir: dir.into(),
                error: Box::new(fillcast_engine::config::ArrangeError::Model(e.to_string())),
            })?,
        );
    if r.revision != universe.revision {
        // Replayed under the journaled revision; the new one applies before any
        // new event, journaled (and so in the sidecar's audit_log) with its diff.
        let diff = model_diff(&r.config, &arranged);
        core.apply_revision(Arc::clone(&universe), &r.config.engine, &arranged.engine)
            .map_err(|shape| refused(shape, universe.revision, diff.clone()))?;
        write_model(&mut stage, &arranged, &universe)?;
        log(format!(
            "journal: the decision model changed: revision {:016x} → {:016x} applied before any new event:\n{}",
            r.revision,
            universe.revision,
            diff_lines(&diff)
        ));
    }
    let universe = &universe;
    let (cursors, taken_events) = (r.cursors, r.taken_events);
    // Orders sent and never answered: ask their venues.
    let mut by_venue: BTreeMap<usize, Vec<AskedOrder>> = BTreeMap::new();
    for o in core.orders().filter(|o| !o.state.is_terminal()) {
        by_venue
            .entry(universe.sym(o.symbol).venue.0 as usize)
            .or_default()
            .push(AskedOrder {
                id: o.id,
                follower: universe.subs[o.sub.0 as usize].follower,
                symbol: o.symbol,
                side: o.side,
                filled: o.filled,
            });
    }
    let mut recovered = Vec::new();
    let mut asked = BTreeMap::new();
    // Found by the red team: a gateway built with the file's model named an
    // order of the journal's by the file's indices (a panic when a follower
    // had left the file).
    venues.universe_changed(universe);
    for (venue, ids) in by_venue {
        let name = venues.name(venue).unwrap_or_else(|| format!("#{venue}"));
        venues
            .recover(venue, &ids, &mut |r| recovered.push(r))
            .map_err(|e| RestartError::Venue {
                venue: name.clone(),
                message: e.to_string(),
            })?;
        log(format!(
            "journal: asked venue `{name}` about {} unanswered orders",
            ids.len()
        ));
        asked.insert(venue, ids.len());
    }
    if ask_first {
        take_over_unknown_orders(dir, &core, universe, venues, &mut recovered, log)?;
    }
    Ok(Opened {
        core,
        config: arranged,
        universe: Arc::clone(universe),
        stage,
        recovered,
        recovery,
        replay: Some(r.stats),
        unjournaled: r.unjournaled.len(),
        asked,
        cursors,
        taken_events,
        ask_first,
    })
}
