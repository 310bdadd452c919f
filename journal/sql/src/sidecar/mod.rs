//! The SQL sidecar: replays a journal into SQL (SQLite or PostgreSQL), where
//! reconciliation, reports and audits read it.
//!
//! It owns the SQL schema (`schema`, a public interface) and the translation of
//! records into rows (`build`). It reads the journal from the sequence after the
//! one the database holds (`sidecar_state.next_seq`), writes rows in batches, and
//! commits the read position in the same transaction as the rows: a crash at any
//! instant neither loses nor duplicates a row, and it can be stopped and restarted
//! at will. With `follow` it keeps tailing a journal that is being written.
//! On resume it checks that the journal still holds the history it applied
//! (`continuity`), and refuses, naming the record, one that changed under it.
//!
//! It never writes to the journal and never talks to the engine: the journal is the
//! only truth, and everything here can be rebuilt from it into a fresh database.
//!
//! ```no_run
//! use fillcast_sql::sidecar::{run, SidecarOptions};
//! let stats = run(
//!     std::path::Path::new("journal"),
//!     "sqlite:fillcast.db",
//!     SidecarOptions::default(),
//! )?;
//! println!("{} records, {} rows", stats.records, stats.rows);
//! # Ok::<(), fillcast_sql::sidecar::SidecarError>(())
//! ```

mod build;
mod continuity;
mod pgconn;
mod postgres;
mod rows;
/// The tables, their columns and migrations (crate `fillcast-schema`, shared with
/// the reports).
pub use fillcast_schema as schema;
mod sqlite;
mod store;
pub mod synth;

/// The database drivers the sidecar uses, for callers that read what it wrote
/// (reports, the bench's baseline) with the same versions.
pub use ::postgres as pg;
pub use ::rusqlite;
pub use continuity::Continuity;
pub use pgconn::{is_postgres, mask_db, PgTarget};

use build::{Batch, Builder};
use fillcast_journal::error::JournalError;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::segment::RecordRef;
use fillcast_journal::tail::Tailer;
use rows::Id;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{Commit, Store};
use thiserror::Error;

/// Called after each committed batch.
pub type Progress = Box<dyn FnMut(&SidecarStats) + Send>;

pub struct SidecarOptions {
    /// Keep tailing the journal after its end, until `stop` is set.
    pub follow: bool,
    /// Rows per transaction (at least 1). A batch ends at the first record
    /// boundary past it, at the end of the journal, and before a config change.
    /// Each commit rewrites the pages of the random-key indexes (client order
    /// ids) that its rows touch, most of them, so larger batches write less: the
    /// default holds some 20 MB of rows in memory.
    pub batch_rows: usize,
    /// In follow mode, the longest a record waits in memory before it is
    /// committed while records keep coming (an idle journal commits at once).
    pub flush_every: Duration,
    pub progress: Option<Progress>,
    /// Set it to stop after the batch being built (which is committed).
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        SidecarOptions {
            follow: false,
            batch_rows: 200_000,
            flush_every: Duration::from_millis(100),
            progress: None,
            stop: None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidecarStats {
    /// Where this run started reading.
    pub start_seq: u64,
    /// The first record not written yet: what `sidecar_state.next_seq` holds.
    pub next_seq: u64,
    /// Records this run read and committed.
    pub records: u64,
    /// Rows this run wrote (inserted or updated), in every table.
    pub rows: u64,
    pub batches: u64,
    pub elapsed: Duration,
    /// What was checked of the history a resumed database was built from.
    pub continuity: Continuity,
}

impl SidecarStats {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, Error)]
pub enum SidecarError {
    #[error("`{0}` is not a database address: use sqlite:PATH, postgres://USER@HOST[:PORT]/DB or libpq key=value pairs")]
    Address(String),
    #[error("{db} is not a PostgreSQL connection string this build can use: {why}")]
    ConnectionString { db: String, why: String },
    #[error("database {db}: {message}")]
    Db { db: String, message: String },
    #[error("database {db} has schema version {found}, newer than this build knows ({known}): use a newer fillcast")]
    NewerSchema { db: String, found: i64, known: i64 },
    #[error(
        "database {db} holds journal {stored}, not {given}: use that journal, or a fresh database"
    )]
    OtherJournal {
        db: String,
        stored: String,
        given: String,
    },
    #[error(
        "database {db}: its read position is no longer {expected}: is another sidecar writing it?"
    )]
    Concurrent { db: String, expected: i64 },
    #[error("database {db} holds a row this build cannot read back: {message}")]
    State { db: String, message: String },
    #[error("no journal at {0}")]
    NoJournal(PathBuf),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    #[error("journal, reading record {seq}: {source}")]
    JournalAt { seq: u64, source: JournalError },
    #[error("journal {dir}: record {found} where {expected} was expected (the database is ahead of the journal, or records are missing)")]
    Gap {
        dir: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("journal record {seq}: {message}")]
    Record { seq: u64, message: String },
    #[error("database {db} has read record {seq} of journal {dir}, which the journal does not hold: a different or truncated journal? Use a fresh database")]
    JournalBehind { db: String, dir: PathBuf, seq: u64 },
    #[error(
        "journal {dir} is not the history database {db} was built from: {} (the journal was \
         repaired, restored or replaced after the sidecar applied it), so the tables would \
         silently differ from the journal. Rebuild the database from scratch (a new --db, or \
         drop its tables) and run the sidecar again",
        continuity::where_changed(*.seq, *.located)
    )]
    HistoryChanged {
        db: String,
        dir: PathBuf,
        /// The first record that differs (`located`), else the last one applied.
        seq: u64,
        located: bool,
    },
}

/// How the database remembers which journal it reads: the directory's canonical
/// path (its parent's, when it does not exist yet).
fn dir_identity(dir: &Path) -> String {
    let path = std::fs::canonicalize(dir)
        .ok()
        .or_else(|| {
            let parent = dir
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(parent).ok()?.join(dir.file_name()?))
        })
        .or_else(|| std::path::absolute(dir).ok())
        .unwrap_or_else(|| dir.to_path_buf());
    path.to_string_lossy().into_owned()
}

fn open_store(db: &str) -> Result<Box<dyn Store>, SidecarError> {
    if let Some(path) = db.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(SidecarError::Address(db.to_string()));
        }
        return Ok(Box::new(sqlite::Sqlite::open(Path::new(path))?));
    }
    if is_postgres(db) {
        return Ok(Box::new(postgres::Postgres::open(&PgTarget::parse(db)?)?));
    }
    Err(SidecarError::Address(mask_db(db)))
}

/// Replay the journal in `journal_dir` into the database `db` (`sqlite:PATH`,
/// `postgres://...` or libpq `key=value` pairs, its password from there,
/// `PGPASSWORD` or the password file: see `PgTarget`), from where the database's
/// last run stopped. Without `follow`, returns at the end of the journal; with
/// it, when `stop` is set.
pub fn run(
    journal_dir: &Path,
    db: &str,
    opts: SidecarOptions,
) -> Result<SidecarStats, SidecarError> {
    let started = Instant::now();
    if !opts.follow && !journal_dir.is_dir() {
        return Err(SidecarError::NoJournal(journal_dir.into()));
    }
    let mut store = open_store(db)?;
    let dir_text = dir_identity(journal_dir);
    let saved = store.saved(&dir_text)?;
    if let Some(stored) = saved.journal_dir.as_ref().filter(|d| **d != dir_text) {
        return Err(SidecarError::OtherJournal {
            db: store.name().to_string(),
            stored: stored.clone(),
            given: dir_text,
        });
    }
    let mut builder = Builder::new();
    let (mut chain, mut continuity) = (continuity::CHAIN_START, Continuity::Fresh);
    if saved.next_seq > 1 {
        // The journal must still hold what the database says it read, the same
        // records, and the input whose outputs may come next.
        let reader = JournalReader::open(journal_dir)?;
        (chain, continuity) = continuity::resume(&reader, journal_dir, &mut *store, &saved)?;
        let at = |seq: u64| -> Result<Option<(u64, u64, Entry)>, SidecarError> {
            let Some(rec) = reader.iter_from(seq).next().transpose()? else {
                return Ok(None);
            };
            if rec.seq != seq {
                return Ok(None);
            }
            let entry =
                decode(rec.kind, rec.schema, rec.payload).map_err(|e| SidecarError::Record {
                    seq: rec.seq,
                    message: e.to_string(),
                })?;
            Ok(Some((rec.seq, rec.ts, entry)))
        };
        let behind = |seq: u64| SidecarError::JournalBehind {
            db: store.name().to_string(),
            dir: journal_dir.into(),
            seq,
        };
        if at(saved.next_seq - 1)?.is_none() {
            return Err(behind(saved.next_seq - 1));
        }
        let input = match saved.input_seq {
            0 => None,
            seq => Some(at(seq)?.ok_or_else(|| behind(seq))?),
        };
        if let Some(rev) = &saved.config_revision {
            builder.restore(
                &mut *store,
                rev,
                input.as_ref().map(|(s, t, e)| (*s, *t, e)),
            )?;
        }
    }
    if saved.next_seq == 1 {
        // A fresh database: fill it first and index it once caught up.
        store.indexes(&schema::drop_secondary_indexes())?;
    }
    let mut d = Driver {
        store,
        builder,
        batch: Batch::default(),
        batch_rows: opts.batch_rows.max(1),
        flush_every: opts.flush_every,
        progress: opts.progress,
        stop: opts.stop,
        dir: journal_dir.into(),
        next_seq: saved.next_seq,
        committed: saved.next_seq,
        batch_started: None,
        indexed: false,
        chain,
        hashes: Vec::new(),
        started,
        stats: SidecarStats {
            start_seq: saved.next_seq,
            next_seq: saved.next_seq,
            continuity,
            ..SidecarStats::default()
        },
    };
    if opts.follow {
        d.follow()?;
    } else {
        d.replay_to_end()?;
    }
    d.stats.elapsed = started.elapsed();
    Ok(d.stats)
}

struct Driver {
    store: Box<dyn Store>,
    builder: Builder,
    batch: Batch,
    batch_rows: usize,
    flush_every: Duration,
    progress: Option<Progress>,
    stop: Option<Arc<AtomicBool>>,
    dir: PathBuf,
    /// The record after the last one built into the batch.
    next_seq: u64,
    /// What `sidecar_state.next_seq` holds.
    committed: u64,
    batch_started: Option<Instant>,
    /// Whether this run has made sure the secondary indexes exist.
    indexed: bool,
    /// The chain of the records before `next_seq`.
    chain: u64,
    /// The short hashes of the records `committed..next_seq`.
    hashes: Vec<u8>,
    started: Instant,
    stats: SidecarStats,
}

/// Idle polls of a followed journal back off up to this.
const IDLE_SLEEP_MAX: Duration = Duration::from_millis(20);

impl Driver {
    fn stopping(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    fn replay_to_end(&mut self) -> Result<(), SidecarError> {
        let reader = JournalReader::open(&self.dir)?;
        for rec in reader.iter_from(self.next_seq) {
            if self.stopping() {
                break;
            }
            let rec = rec.map_err(|source| SidecarError::JournalAt {
                seq: self.next_seq,
                source,
            })?;
            self.handle(rec)?;
        }
        self.caught_up()
    }

    fn follow(&mut self) -> Result<(), SidecarError> {
        let mut tailer = Tailer::open(&self.dir, self.next_seq)?;
        let mut idle = Duration::from_micros(200);
        while !self.stopping() {
            let polled = tailer.poll_with(|rec| self.handle(rec));
            let polled = polled.map_err(|source| SidecarError::JournalAt {
                seq: self.next_seq,
                source,
            })?;
            match polled {
                Some(handled) => {
                    handled?;
                    idle = Duration::from_micros(200);
                    if self
                        .batch_started
                        .is_some_and(|t| t.elapsed() >= self.flush_every)
                    {
                        self.flush()?;
                    }
                }
                None => {
                    self.caught_up()?;
                    std::thread::sleep(idle);
                    idle = (idle * 2).min(IDLE_SLEEP_MAX);
                }
            }
        }
        self.caught_up()
    }

    /// At the end of what the journal holds: commits the batch, and builds the
    /// secondary indexes if a fresh database's first catch-up left them out.
    fn caught_up(&mut self) -> Result<(), SidecarError> {
        self.flush()?;
        if !self.indexed {
            self.store.indexes(&schema::create_secondary_indexes())?;
            self.indexed = true;
        }
        Ok(())
    }

    fn handle(&mut self, rec: RecordRef<'_>) -> Result<(), SidecarError> {
        if rec.seq != self.next_seq {
            return Err(SidecarError::Gap {
                dir: self.dir.clone(),
                expected: self.next_seq,
                found: rec.seq,
            });
        }
        let entry =
            decode(rec.kind, rec.schema, rec.payload).map_err(|e| SidecarError::Record {
                seq: rec.seq,
                message: e.to_string(),
            })?;
        if let Entry::Config(c) = &entry {
            // A batch is written under one config: names resolve in it.
            if self.builder.revision() != Some(c.revision) {
                self.flush()?;
            }
        }
        self.builder
            .apply(rec.seq, rec.ts, entry, &mut self.batch, &mut *self.store)?;
        // After the flush before a config change: that batch ends before this record.
        let h = continuity::record_hash(&rec);
        self.chain = continuity::chain(self.chain, h);
        self.hashes.extend_from_slice(&continuity::short(h));
        self.next_seq = rec.seq + 1;
        self.batch_started.get_or_insert_with(Instant::now);
        if self.batch.appended() + self.builder.pending_rows() >= self.batch_rows {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the batch and the read position in one transaction.
    fn flush(&mut self) -> Result<(), SidecarError> {
        if self.next_seq == self.committed || self.builder.config_incomplete() {
            return Ok(());
        }
        let Some(u) = self.builder.universe().cloned() else {
            return Ok(());
        };
        self.builder.take_dirty(&mut self.batch);
        let commit = Commit {
            next_seq: i64::try_from(self.next_seq).unwrap_or(i64::MAX),
            expected_next_seq: i64::try_from(self.committed).unwrap_or(i64::MAX),
            input_seq: i64::try_from(self.builder.input_seq()).unwrap_or(0),
            config_revision: self
                .builder
                .revision()
                .map(|r| Id::hex(r).as_str().to_string()),
            chain: Id::hex(self.chain).as_str().to_string(),
            hashes: &self.hashes,
        };
        debug_assert_eq!(
            self.hashes.len() as u64,
            4 * (self.next_seq - self.committed)
        );
        let rows = self.batch.rows(&u) as u64;
        self.store.write(&self.batch, &u, &commit)?;
        self.hashes.clear();
        self.batch.clear();
        self.builder.evict();
        self.stats.records += self.next_seq - self.committed;
        self.committed = self.next_seq;
        self.batch_started = None;
        self.stats.rows += rows;
        self.stats.batches += 1;
        self.stats.next_seq = self.next_seq;
        self.stats.elapsed = self.started.elapsed();
        if let Some(p) = self.progress.as_mut() {
            p(&self.stats);
        }
        Ok(())
    }
}
