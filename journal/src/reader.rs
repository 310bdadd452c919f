//! Reading a journal from any sequence number, zero-copy: records borrow the
//! read-only mappings of the segment files.

use crate::error::JournalError;
use crate::segment::{self, RecordRef, Step, SEGMENT_HEADER};
use crate::writer::list_segments;
use memmap2::Mmap;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

pub(crate) struct Segment {
    pub path: PathBuf,
    pub first_seq: u64,
    pub map: Mmap,
}

/// Maps a segment file read-only, after checking its header. `Ok(None)` for a
/// segment whose header is not written yet (being created, or its creation cut short).
pub(crate) fn map_segment(path: &Path) -> Result<Option<(u64, Mmap)>, JournalError> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    // SAFETY: read-only shared mapping of a journal segment. The writer (maybe in
    // another process) only ever writes bytes past what readers have validated, and
    // every read goes through length and checksum checks, so concurrent writes can
    // make a record look incomplete, never make a read unsound. Files are never
    // truncated while the journal is in use.
    let map = unsafe { Mmap::map(&file) }.map_err(JournalError::io(path))?;
    match segment::parse_header(&map) {
        Ok(h) if (map.len() as u64) < h.segment_bytes => Err(JournalError::BadSegment {
            path: path.into(),
            message: format!(
                "file is {} bytes, its header says {}",
                map.len(),
                h.segment_bytes
            ),
        }),
        Ok(h) => Ok(Some((h.first_seq, map))),
        Err(segment::HeaderError::Unwritten) => Ok(None),
        Err(e) => Err(JournalError::BadSegment {
            path: path.into(),
            message: e.to_string(),
        }),
    }
}

pub struct JournalReader {
    dir: PathBuf,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentSummary {
    pub name: String,
    pub first_seq: u64,
    pub bytes_used: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub segments: Vec<SegmentSummary>,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub by_kind: BTreeMap<u16, u64>,
    /// The damage that ended the scan early, if any.
    pub error: Option<String>,
}

impl JournalReader {
    pub fn open(dir: &Path) -> Result<JournalReader, JournalError> {
        let mut segments = Vec::new();
        if dir.exists() {
            for (first_seq, path) in list_segments(dir)? {
                if let Some((header_seq, map)) = map_segment(&path)? {
                    if header_seq != first_seq {
                        return Err(JournalError::BadSegment {
                            path,
                            message: format!("header says first sequence {header_seq}, the name says {first_seq}"),
                        });
                    }
                    segments.push(Segment {
                        path,
                        first_seq,
                        map,
                    });
                }
            }
        }
        Ok(JournalReader {
            dir: dir.into(),
            segments,
        })
    }

    /// Records from `seq` on (from the first one if `seq` is older), in order. Stops
    /// at the end of what is written; damage yields one error, then the end.
    pub fn iter_from(&self, seq: u64) -> Records<'_> {
        let start = self
            .segments
            .iter()
            .rposition(|s| s.first_seq <= seq)
            .unwrap_or(0);
        let expect = self.segments.get(start).map(|s| s.first_seq).unwrap_or(1);
        Records {
            reader: self,
            seg: start,
            off: SEGMENT_HEADER,
            expect,
            from: seq,
            done: false,
        }
    }

    pub fn summary(&self) -> Result<Summary, JournalError> {
        let mut s = Summary::default();
        for seg in &self.segments {
            let mut off = SEGMENT_HEADER;
            let mut expect = seg.first_seq;
            loop {
                match segment::step(&seg.map, off, expect) {
                    Step::Record { rec, next } => {
                        if s.records == 0 {
                            s.first_seq = rec.seq;
                        }
                        s.records += 1;
                        s.last_seq = rec.seq;
                        *s.by_kind.entry(rec.kind).or_default() += 1;
                        off = next;
                        expect += 1;
                    }
                    Step::Empty | Step::End => break,
                    Step::Corrupt(reason) => {
                        s.error.get_or_insert(format!(
                            "{} at offset {off}: {reason}",
                            seg.path.display()
                        ));
                        break;
                    }
                }
            }
            let name = seg
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            s.segments.push(SegmentSummary {
                name,
                first_seq: seg.first_seq,
                bytes_used: off as u64,
            });
        }
        Ok(s)
    }
}

pub struct Records<'a> {
    reader: &'a JournalReader,
    seg: usize,
    off: usize,
    expect: u64,
    from: u64,
    done: bool,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordRef<'a>, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let seg = self.reader.segments.get(self.seg)?;
            match segment::step(&seg.map, self.off, self.expect) {
                Step::Record { rec, next } => {
                    self.off = next;
                    self.expect += 1;
                    if rec.seq >= self.from {
                        return Some(Ok(rec));
                    }
                }
                Step::Empty | Step::End => {
                    self.seg += 1;
                    self.off = SEGMENT_HEADER;
                    match self.reader.segments.get(self.seg) {
                        None => return None,
                        Some(n) if n.first_seq != self.expect => {
                            self.done = true;
                            return Some(Err(JournalError::Gap {
                                dir: self.reader.dir.clone(),
                                seq: self.expect,
                            }));
                        }
                        Some(_) => {}
                    }
                }
                Step::Corrupt(reason) => {
                    self.done = true;
                    return Some(Err(JournalError::Corrupt {
                        path: seg.path.clone(),
                        offset: self.off as u64,
                        reason,
                    }));
                }
            }
        }
        None
    }
}
