//! The journal stage: the engine's `JournalSink`, turning journal entries into
//! typed records on the segment files.

use crate::error::JournalError;
use crate::record::RecordError;
use crate::record::{config_parts, Encoder, Kind, SCHEMA};
use crate::segment::RECORD_HEADER;
use crate::writer::JournalWriter;
use fillcast_engine::port::{JournalEntry, JournalSink, SinkError};
use fillcast_engine::units::Nanos;

pub struct JournalStage {
    writer: JournalWriter,
    enc: Encoder,
    records: u64,
    bytes: u64,
}

impl JournalStage {
    pub fn new(writer: JournalWriter) -> JournalStage {
        JournalStage {
            writer,
            enc: Encoder::default(),
            records: 0,
            bytes: 0,
        }
    }

    /// Record a config revision and its whole decision model, in as many records
    /// as it takes (`record::config_parts`). The sequence of the last.
    pub fn write_config(&mut self, revision: u64, toml: &str, ts: u64) -> Result<u64, StageError> {
        let parts = config_parts(toml);
        let n = u32::try_from(parts.len()).map_err(|_| StageError::ConfigTooLarge)?;
        let mut seq = 0;
        for (i, part) in parts.into_iter().enumerate() {
            let bytes = self.enc.config(revision, i as u32, n, part)?;
            self.bytes += (RECORD_HEADER + bytes.len()) as u64;
            seq = self.writer.append(Kind::Config as u16, SCHEMA, ts, bytes)?;
            self.records += 1;
        }
        Ok(seq)
    }

    /// Records appended by this stage.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn writer(&mut self) -> &mut JournalWriter {
        &mut self.writer
    }
}

impl JournalSink for JournalStage {
    fn append(&mut self, entries: &[JournalEntry]) -> Result<(), SinkError> {
        self.append_entries(entries).map_err(SinkError::new)
    }

    fn before_send(&mut self) -> Result<(), SinkError> {
        self.writer.before_send().map_err(SinkError::new)
    }

    fn tick(&mut self) -> Result<(), SinkError> {
        self.writer.tick().map_err(SinkError::new)
    }

    fn position(&self) -> (u64, u64) {
        (self.writer.written_seq(), self.bytes)
    }

    fn revision(&mut self, revision: u64, model_toml: &str, ts: Nanos) -> Result<(), SinkError> {
        self.write_config(revision, model_toml, ts.0)
            .map(|_| ())
            .map_err(SinkError::new)
    }
}

impl JournalStage {
    fn append_entries(&mut self, entries: &[JournalEntry]) -> Result<(), StageError> {
        let mut i = 0;
        while i < entries.len() {
            // An order and its decision, next to each other in one chunk, go in one
            // record (the core emits a decision right after its single order).
            let encoded = match (&entries[i], entries.get(i + 1)) {
                (JournalEntry::Order(o), Some(JournalEntry::Decision(d))) => {
                    match self.enc.pair(o, d)? {
                        Some(rec) => {
                            i += 1;
                            Some(rec)
                        }
                        None => self.enc.entry(&entries[i])?,
                    }
                }
                (e, _) => self.enc.entry(e)?,
            };
            i += 1;
            if let Some((kind, ts, bytes)) = encoded {
                self.bytes += (RECORD_HEADER + bytes.len()) as u64;
                self.writer.append(kind as u16, SCHEMA, ts, bytes)?;
                self.records += 1;
            }
        }
        Ok(())
    }
}

/// Why the journal stage could not write: a record that does not encode, or the
/// segment files refused it.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("config too large")]
    ConfigTooLarge,
}
