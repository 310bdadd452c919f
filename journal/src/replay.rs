//! Rebuilding the engine from its journal: the core is deterministic, so feeding
//! it the journaled inputs in their journaled order, under the journaled config,
//! rebuilds positions, working orders, processed leader events, episode ratios and
//! subscription status exactly. The journaled outputs are checked against what the
//! replay produces, which proves (or disproves) that determinism on every restart.

use crate::error::JournalError;
use crate::reader::JournalReader;
use crate::record::{decode, ConfigParts, Entry, RecordError};
use crate::segment::RecordRef;
use fillcast_engine::config::{self, Config};
use fillcast_engine::core::Core;
use fillcast_engine::event::FeedEvent;
use fillcast_engine::event::FollowerOrder;
use fillcast_engine::model::Universe;
use fillcast_engine::order::IdHash;
use fillcast_engine::outputs::{Decision, Notice, Outputs};
use fillcast_engine::port::JournalEntry;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReplayError {
    /// Boxed: a journal error names its file and offset, and would make every
    /// replay result as large.
    #[error(transparent)]
    Journal(Box<JournalError>),
    #[error("journal record {seq}: {source}")]
    Record { seq: u64, source: RecordError },
    #[error(
        "journal does not start with a config record (first record is seq {seq}, kind {kind})"
    )]
    NoConfig { seq: u64, kind: u16 },
    #[error("journaled config (revision {revision:016x}) does not load: {message}")]
    BadConfig { revision: u64, message: String },
    #[error("journal record {seq} changes the config revision ({from:016x} → {to:016x}) in a way this build cannot apply: {why}")]
    ConfigChanged {
        seq: u64,
        from: u64,
        to: u64,
        why: String,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub records: u64,
    pub inputs: u64,
    /// Journaled outputs compared with the replay's outputs.
    pub outputs_checked: u64,
    /// Journaled outputs that differ from the replay's (should be 0).
    pub mismatches: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

pub struct Replayed {
    pub config: Config,
    pub revision: u64,
    pub core: Core,
    pub stats: ReplayStats,
    /// Outputs of the last input that the journal does not hold: the engine died
    /// while writing them. They are part of the state the replay rebuilt, so they
    /// must be appended before the engine goes on; their orders never left (no
    /// order leaves before its record), which asking the venue will confirm.
    pub unjournaled: Vec<JournalEntry>,
    /// Each source's last journaled position (`FeedEvent::SourceCursor`), by its
    /// place in `[[sources]]`: where a restart resumes it.
    pub cursors: BTreeMap<u16, u64>,
    /// The key of every leader fill in the journal: what no source may give again.
    pub taken_events: HashSet<u64, IdHash>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    Order(FollowerOrder),
    Decision(Decision),
    Notice(Notice),
}

/// The replay's outputs, waiting to be compared with the journaled ones.
#[derive(Default)]
struct Expect {
    queue: VecDeque<Out>,
}

impl Outputs for Expect {
    fn order(&mut self, o: &FollowerOrder) {
        self.queue.push_back(Out::Order(*o));
    }
    fn decision(&mut self, d: &Decision) {
        self.queue.push_back(Out::Decision(*d));
    }
    fn notice(&mut self, n: &Notice) {
        self.queue.push_back(Out::Notice(*n));
    }
}

/// Replay the journal in `dir`. `None` when it holds no record yet.
/// One record the reader gave, decoded; either failure names the record.
fn read(rec: Result<RecordRef<'_>, JournalError>) -> Result<(RecordRef<'_>, Entry), ReplayError> {
    let rec = rec.map_err(|e| ReplayError::Journal(Box::new(e)))?;
    let entry =
        decode(rec.kind, rec.schema, rec.payload).map_err(|source| ReplayError::Record {
            seq: rec.seq,
            source,
        })?;
    Ok((rec, entry))
}

pub fn replay(dir: &Path) -> Result<Option<Replayed>, ReplayError> {
    let reader = JournalReader::open(dir).map_err(|e| ReplayError::Journal(Box::new(e)))?;
    let mut it = reader.iter_from(1);
    let mut parts = ConfigParts::default();
    let mut stats = ReplayStats::default();
    // The journal opens with its config, in as many records as the model takes.
    let (revision, text) = loop {
        let Some(rec) = it.next() else {
            // Nothing, or a config whose writer died before its last part: a new
            // journal, whose config the restart writes again from part 0.
            return Ok(None);
        };
        let (rec, entry) = read(rec)?;
        if stats.records == 0 {
            stats.first_seq = rec.seq;
        }
        stats.records += 1;
        stats.last_seq = rec.seq;
        let Entry::Config(c) = entry else {
            return Err(ReplayError::NoConfig {
                seq: rec.seq,
                kind: rec.kind,
            });
        };
        let done = parts.add(c).map_err(|source| ReplayError::Record {
            seq: rec.seq,
            source,
        })?;
        if let Some(done) = done {
            break done;
        }
    };
    let bad = |message: String| ReplayError::BadConfig { revision, message };
    let config = config::load_model(&text).map_err(|e| bad(e.to_string()))?;
    let universe = Arc::new(Universe::from_config(&config).map_err(|e| bad(e.to_string()))?);
    if universe.revision != revision {
        return Err(bad(format!(
            "its content hashes to revision {:016x}, not the {revision:016x} it was journaled with",
            universe.revision
        )));
    }
    let mut config = config;
    let mut revision = revision;
    let mut core = Core::new(universe, &config.engine);
    // A later revision's records, put back together (`Core::apply_revision`).
    let mut later = ConfigParts::default();
    let mut expect = Expect::default();
    let mut cursors = BTreeMap::new();
    let mut taken_events = HashSet::with_hasher(IdHash);
    for rec in it {
        let (rec, entry) = read(rec)?;
        stats.records += 1;
        stats.last_seq = rec.seq;
        let journaled = match entry {
            Entry::Config(c) if c.revision == revision => continue,
            Entry::Config(c) => {
                let to = c.revision;
                let changed = |why: String| ReplayError::ConfigChanged {
                    seq: rec.seq,
                    from: revision,
                    to,
                    why,
                };
                let Some((to, text)) = later.add(c).map_err(|e| changed(e.to_string()))? else {
                    continue;
                };
                let next = config::load_model(&text).map_err(|e| changed(e.to_string()))?;
                let u = Universe::from_config(&next).map_err(|e| changed(e.to_string()))?;
                if u.revision != to {
                    return Err(changed(format!(
                        "its content hashes to revision {:016x}",
                        u.revision
                    )));
                }
                core.apply_revision(Arc::new(u), &config.engine, &next.engine)
                    .map_err(|shape| changed(shape.to_string()))?;
                (config, revision) = (next, to);
                continue;
            }
            Entry::Feed(ev) => {
                match ev {
                    FeedEvent::LeaderFill(f) => {
                        taken_events.insert(f.event_key);
                    }
                    FeedEvent::SourceCursor { source, pos } => {
                        cursors.insert(source, pos);
                    }
                    _ => {}
                }
                stats.inputs += 1;
                expect.queue.clear();
                core.on_feed(&ev, &mut expect);
                continue;
            }
            Entry::Exec(r) => {
                stats.inputs += 1;
                expect.queue.clear();
                core.on_exec(&r, &mut expect);
                continue;
            }
            Entry::Order(o) => [Some(Out::Order(o)), None],
            Entry::Decision(d) => [Some(Out::Decision(d)), None],
            Entry::Notice(n) => [Some(Out::Notice(n)), None],
            Entry::OrderDecision(o, d) => [Some(Out::Order(o)), Some(Out::Decision(d))],
        };
        for out in journaled.into_iter().flatten() {
            stats.outputs_checked += 1;
            // The journal holds no market hints: compare without them.
            let decided = expect.queue.pop_front().map(|o| match o {
                Out::Order(o) => Out::Order(o.journaled()),
                other => other,
            });
            if decided != Some(out) {
                stats.mismatches += 1;
            }
        }
    }
    let unjournaled = expect
        .queue
        .into_iter()
        .map(|o| match o {
            Out::Order(o) => JournalEntry::Order(o),
            Out::Decision(d) => JournalEntry::Decision(d),
            Out::Notice(n) => JournalEntry::Notice(n),
        })
        .collect();
    Ok(Some(Replayed {
        config,
        revision,
        core,
        stats,
        unjournaled,
        cursors,
        taken_events,
    }))
}
