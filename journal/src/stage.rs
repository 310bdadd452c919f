//! The journal stage: the engine's `JournalSink`, turning journal entries into
//! typed records on the segment files.

use crate::error::JournalError;
use crate::record::RecordError;
use crate::record::{
    config_parts, decision_rec, exec_rec, pair_rec, row_fits, write_exec_row, write_into,
    write_row, Encoder, Kind, SCHEMA,
};
use crate::segment::{EXEC_ROW_BYTES, PAIR_ROW_BYTES, RECORD_HEADER};
use crate::writer::JournalWriter;
use fillcast_engine::outputs::SyncReason;
use fillcast_engine::port::{JournalEntry, JournalSink, SinkError};
use fillcast_engine::units::Nanos;
use rkyv::{Archive, Serialize};

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
            // The records of the fan-out and of venue reports, the bulk of a
            // journal, are archived straight into the mapping; the rest through
            // the encoder's buffer.
            match (&entries[i], entries.get(i + 1)) {
                (JournalEntry::Order(o), Some(JournalEntry::Decision(d))) => {
                    // A run of such pairs at one time (a fan-out's) goes in one
                    // row record, where the segment takes them; a run longer
                    // than a segment holds, in as many as it takes.
                    let ts = o.ts.0;
                    let run = if self.writer.takes_rows() {
                        let rows_max = self.writer.rows_max(Kind::PairRows as u16);
                        pairs_from(&entries[i..], ts, rows_max)
                    } else {
                        0
                    };
                    if run > 0 {
                        self.rows(&entries[i..i + 2 * run], ts)?;
                        i += 2 * run;
                        continue;
                    }
                    if let Some(rec) = pair_rec(o, d) {
                        self.in_place(Kind::OrderDecision, o.ts.0, &rec)?;
                        i += 2;
                        continue;
                    }
                }
                (JournalEntry::Decision(d), _) if d.resync == SyncReason::None => {
                    self.in_place(Kind::Decision, 0, &decision_rec(d))?;
                    i += 1;
                    continue;
                }
                (JournalEntry::Exec(r), _) => {
                    // Reports received together (one `recv_ts`) go in one row
                    // record, where the segment takes them (in more than one
                    // if a segment holds fewer rows). A report alone (the core
                    // answered it with something) is archived on its own: a
                    // row record of one costs more instructions (callgrind:
                    // about 40 a report) for 16 bytes less.
                    let ts = r.recv_ts.0;
                    let run = if self.writer.takes_rows() {
                        let rows_max = self.writer.rows_max(Kind::ExecRows as u16);
                        entries[i..]
                            .iter()
                            .take(rows_max)
                            .take_while(|e| matches!(e, JournalEntry::Exec(x) if x.recv_ts.0 == ts))
                            .count()
                    } else {
                        1
                    };
                    if run > 1 {
                        self.exec_rows(&entries[i..i + run], ts)?;
                        i += run;
                        continue;
                    }
                    self.in_place(Kind::Exec, ts, &exec_rec(r))?;
                    i += 1;
                    continue;
                }
                _ => {}
            }
            let encoded = self.enc.entry(&entries[i])?;
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

/// How many (order, decision) pairs that `row_fits` at `ts` start `entries`,
/// at most `rows_max` (what one row record holds).
#[inline]
fn pairs_from(entries: &[JournalEntry], ts: u64, rows_max: usize) -> usize {
    entries
        .chunks_exact(2)
        .take(rows_max)
        .take_while(|p| matches!(p, [JournalEntry::Order(o), JournalEntry::Decision(d)] if row_fits(o, d, ts)))
        .count()
}

impl JournalStage {
    /// Appends `pairs` (order, decision, order, decision, …, each pair
    /// `row_fits` at `ts`) as one row record, written in place.
    #[inline]
    fn rows(&mut self, pairs: &[JournalEntry], ts: u64) -> Result<(), StageError> {
        let n = pairs.len() / 2;
        self.writer
            .try_append_rows_with(Kind::PairRows as u16, SCHEMA, ts, n, |buf| {
                for (row, pair) in buf
                    .chunks_exact_mut(PAIR_ROW_BYTES)
                    .zip(pairs.chunks_exact(2))
                {
                    if let (Ok(row), [JournalEntry::Order(o), JournalEntry::Decision(d)]) =
                        (<&mut [u8; PAIR_ROW_BYTES]>::try_from(row), pair)
                    {
                        write_row(o, d, row);
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            })?
            .unwrap_or_else(|never| match never {});
        self.bytes += (RECORD_HEADER + n * PAIR_ROW_BYTES) as u64;
        self.records += n as u64;
        Ok(())
    }

    /// Appends `reports` (venue reports, all received at `ts`) as one row
    /// record, written in place.
    #[inline]
    fn exec_rows(&mut self, reports: &[JournalEntry], ts: u64) -> Result<(), StageError> {
        let n = reports.len();
        self.writer
            .try_append_rows_with(Kind::ExecRows as u16, SCHEMA, ts, n, |buf| {
                for (row, e) in buf.chunks_exact_mut(EXEC_ROW_BYTES).zip(reports) {
                    if let (Ok(row), JournalEntry::Exec(r)) =
                        (<&mut [u8; EXEC_ROW_BYTES]>::try_from(row), e)
                    {
                        write_exec_row(r, row);
                    }
                }
                Ok::<(), std::convert::Infallible>(())
            })?
            .unwrap_or_else(|never| match never {});
        self.bytes += (RECORD_HEADER + n * EXEC_ROW_BYTES) as u64;
        self.records += n as u64;
        Ok(())
    }

    /// Appends `rec`, a record without out-of-line data (its archive is
    /// `Archived<T>` alone), archived into the mapping (`record::write_into`).
    #[inline]
    fn in_place<T>(&mut self, kind: Kind, ts: u64, rec: &T) -> Result<(), StageError>
    where
        T: Archive
            + for<'a, 'b> Serialize<
                rkyv::api::low::LowSerializer<
                    rkyv::ser::writer::Buffer<'a>,
                    rkyv::ser::allocator::SubAllocator<'b>,
                    rkyv::rancor::Error,
                >,
            >,
    {
        let len = std::mem::size_of::<T::Archived>();
        self.writer
            .try_append_with(kind as u16, SCHEMA, ts, len, |buf| write_into(rec, buf))??;
        self.bytes += (RECORD_HEADER + len) as u64;
        self.records += 1;
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
