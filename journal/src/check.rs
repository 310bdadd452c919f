//! Checking a config file against a journal without touching it: what
//! `fillcast check-config` does so that every file it accepts, `run` can start on
//! the journal the file names (and `ctl reload` can apply to the engine running
//! on it).
//!
//! Read-only: it takes no lock and writes nothing, so it may run beside the
//! engine that is writing the journal.

use crate::reader::JournalReader;
use crate::record::{decode, ConfigParts, Entry, Kind};
use crate::replay::ReplayError;
use crate::restart::RestartError;
use fillcast_engine::config::{model_diff, ArrangeError, Config};
use fillcast_engine::core::RevisionPatch;
use fillcast_engine::model::Universe;
use std::path::Path;
use std::sync::Arc;

/// What a config file would do to the journal it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The revision in force in the journal (its last complete config).
    pub journaled: u64,
    /// The file's revision, laid out after the journal's model.
    pub now: u64,
    /// What changes, one line each (`config::model_diff`); empty when unchanged.
    pub diff: Vec<String>,
}

/// The last complete model the journal in `dir` holds, with its revision; `None`
/// for a journal with no complete config (a new one). Reads only config records.
pub fn model_in_force(dir: &Path) -> Result<Option<(u64, Config)>, ReplayError> {
    let reader = JournalReader::open(dir).map_err(|e| ReplayError::Journal(Box::new(e)))?;
    let mut parts = ConfigParts::default();
    let mut last = None;
    for rec in reader.iter_from(1) {
        let rec = rec.map_err(|e| ReplayError::Journal(Box::new(e)))?;
        if rec.kind != Kind::Config as u16 {
            continue;
        }
        let record = |source| ReplayError::Record {
            seq: rec.seq,
            source,
        };
        let Entry::Config(c) = decode(rec.kind, rec.schema, rec.payload).map_err(record)? else {
            continue;
        };
        if let Some(done) = parts.add(c).map_err(record)? {
            last = Some(done);
        }
    }
    let Some((revision, text)) = last else {
        return Ok(None);
    };
    let config =
        fillcast_engine::config::load_model(&text).map_err(|e| ReplayError::BadConfig {
            revision,
            message: e.to_string(),
        })?;
    Ok(Some((revision, config)))
}

/// Whether `cfg` (loaded and checked) can follow the model in force in the
/// journal at `dir`, as `restart::open` would apply it: `None` when the journal
/// holds no model yet (the file starts it), else what the file changes.
pub fn against_journal(dir: &Path, cfg: &Config) -> Result<Option<Verdict>, RestartError> {
    let replay = |error| RestartError::Replay {
        dir: dir.into(),
        error,
    };
    let arrange = |error: ArrangeError| RestartError::Arrange {
        dir: dir.into(),
        error: Box::new(error),
    };
    let Some((journaled, old)) = model_in_force(dir).map_err(replay)? else {
        return Ok(None);
    };
    let old_u = Universe::from_config(&old).map_err(|e| {
        replay(ReplayError::BadConfig {
            revision: journaled,
            message: e.to_string(),
        })
    })?;
    let arranged = cfg.arranged_after(&old).map_err(arrange)?;
    let new_u = Universe::from_config(&arranged)
        .map_err(|e| arrange(ArrangeError::Model(e.to_string())))?;
    let now = new_u.revision;
    if now == journaled {
        return Ok(Some(Verdict {
            journaled,
            now,
            diff: Vec::new(),
        }));
    }
    let diff = model_diff(&old, &arranged);
    RevisionPatch::prepare(
        &Arc::new(old_u),
        Arc::new(new_u),
        &old.engine,
        &arranged.engine,
    )
    .map_err(|shape| RestartError::ConfigChanged {
        dir: dir.into(),
        journaled,
        now,
        shape,
        diff: diff.clone(),
    })?;
    Ok(Some(Verdict {
        journaled,
        now,
        diff,
    }))
}
