//! Following a journal while another process writes it: every record exactly
//! once, in order, as soon as it is complete.

use crate::error::JournalError;
use crate::reader::map_segment;
use crate::segment::{self, RecordRef, Step, View, SEGMENT_HEADER};
use crate::writer::list_segments;
use memmap2::MmapRaw;
use std::path::{Path, PathBuf};

pub struct Tailer {
    dir: PathBuf,
    /// First sequence of the segment being read.
    seg_first: u64,
    map: Option<MmapRaw>,
    /// The mapped file is shorter than its header says (cut short): where no
    /// record header fits any more is its end, not a seal.
    short: bool,
    off: usize,
    expect: u64,
    from: u64,
    /// A row record being handed on a row a call: its offset, span and next row.
    rows: Option<(usize, u64, u64)>,
}

impl Tailer {
    /// Follow the journal in `dir` from sequence `from` (which may not exist yet).
    pub fn open(dir: &Path, from: u64) -> Result<Tailer, JournalError> {
        let from = from.max(1);
        // The segment holding `from`, or the oldest one if `from` is older still.
        let seg_first = if dir.exists() {
            let firsts: Vec<u64> = list_segments(dir)?.into_iter().map(|(s, _)| s).collect();
            firsts
                .iter()
                .rfind(|s| **s <= from)
                .or(firsts.first())
                .copied()
                .unwrap_or(1)
        } else {
            1
        };
        Ok(Tailer {
            dir: dir.into(),
            seg_first,
            map: None,
            short: false,
            off: SEGMENT_HEADER,
            expect: seg_first,
            from,
            rows: None,
        })
    }

    /// The sequence of the next record this tailer will deliver.
    pub fn next_seq(&self) -> u64 {
        match self.rows {
            // `expect` is already past the row record being handed on.
            Some((_, span, i)) => (self.expect - span + i).max(self.from),
            None => self.expect.max(self.from),
        }
    }

    /// Hand the next complete record to `f`. `Ok(None)`: nothing new yet.
    pub fn poll_with<R>(
        &mut self,
        f: impl FnOnce(RecordRef<'_>) -> R,
    ) -> Result<Option<R>, JournalError> {
        loop {
            if self.map.is_none() {
                let path = self.dir.join(segment::file_name(self.seg_first));
                if !path.exists() {
                    return Ok(None);
                }
                match map_segment(&path)? {
                    Some((_, map, short_of)) => {
                        self.short = short_of.is_some();
                        self.map = Some(map);
                        self.off = SEGMENT_HEADER;
                    }
                    None => return Ok(None),
                }
            }
            let Some(map) = self.map.as_ref() else {
                return Ok(None);
            };
            // SAFETY: the mapping is alive for this borrow and is a journal
            // segment's (see `reader::map_segment`), which `View::from_raw` asks.
            let view = unsafe { View::from_raw(map.as_ptr(), map.len()) };
            if let Some((at, span, i)) = self.rows.take() {
                // Checked when first read (below); its bytes are final.
                let Some(rec) = segment::record_again(view, at) else {
                    return Err(JournalError::Corrupt {
                        path: self.dir.join(segment::file_name(self.seg_first)),
                        offset: at as u64,
                        reason: "a row record changed while its rows were read".into(),
                    });
                };
                if i + 1 < span {
                    self.rows = Some((at, span, i + 1));
                }
                let row = segment::row(&rec, span, i);
                if row.seq >= self.from {
                    return Ok(Some(f(row)));
                }
                continue;
            }
            match segment::step(view, self.off, self.expect) {
                Step::Record { rec, next, span } => {
                    let at = self.off;
                    self.off = next;
                    self.expect += span;
                    if rec.seq + span > self.from {
                        self.rows = Some((at, span, 0));
                    }
                }
                Step::Empty => return Ok(None),
                Step::End if self.short => return Ok(None),
                Step::End => {
                    self.seg_first = self.expect;
                    self.map = None;
                }
                Step::Corrupt(reason) => {
                    let path = self.dir.join(segment::file_name(self.seg_first));
                    return Err(JournalError::Corrupt {
                        path,
                        offset: self.off as u64,
                        reason,
                    });
                }
            }
        }
    }
}
