//! The journal stage: the engine's `JournalSink`, turning journal entries into
//! typed records on the segment files.

use crate::record::{config_parts, Encoder, Kind, SCHEMA};
use crate::writer::JournalWriter;
use fillcast_engine::port::{JournalEntry, JournalSink};

pub struct JournalStage {
    writer: JournalWriter,
    enc: Encoder,
    records: u64,
}

impl JournalStage {
    pub fn new(writer: JournalWriter) -> JournalStage {
        JournalStage {
            writer,
            enc: Encoder::default(),
            records: 0,
        }
    }

    /// Record a config revision and its whole decision model, in as many records
    /// as it takes (`record::config_parts`). The sequence of the last.
    pub fn write_config(&mut self, revision: u64, toml: &str, ts: u64) -> Result<u64, String> {
        let parts = config_parts(toml);
        let n = u32::try_from(parts.len()).map_err(|_| "config too large".to_string())?;
        let mut seq = 0;
        for (i, part) in parts.into_iter().enumerate() {
            let bytes = self.enc.config(revision, i as u32, n, part)?;
            seq = self
                .writer
                .append(Kind::Config as u16, SCHEMA, ts, bytes)
                .map_err(|e| e.to_string())?;
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
    fn append(&mut self, entries: &[JournalEntry]) -> Result<(), String> {
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
                self.writer
                    .append(kind as u16, SCHEMA, ts, bytes)
                    .map_err(|e| e.to_string())?;
                self.records += 1;
            }
        }
        Ok(())
    }

    fn before_send(&mut self) -> Result<(), String> {
        self.writer.before_send().map_err(|e| e.to_string())
    }

    fn tick(&mut self) -> Result<(), String> {
        self.writer.tick().map_err(|e| e.to_string())
    }
}
