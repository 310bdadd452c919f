//! Reading a journal from any sequence number, zero-copy: records borrow the
//! read-only mappings of the segment files.
//!
//! A reader reads what is there without repairing anything: the last segment may
//! end in a torn tail (an append cut short, a file cut short), which ends the
//! read cleanly and is reported (`Records::torn_tail`); anything else that is
//! wrong (a bad record with valid ones after it, a segment missing or without a
//! header, a sequence jump between segments) is damage: `iter_from` stops there
//! with an error, `walk` names it and reads on past it.

use crate::error::JournalError;
use crate::segment::{self, RecordRef, Step, View, SEGMENT_HEADER};
use crate::writer::list_segments;
use memmap2::MmapRaw;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

pub struct JournalReader {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Segment files whose header is not written (all zeros or too short).
    unwritten: Vec<(u64, PathBuf)>,
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
    /// Records read (all that could be, past any damage).
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub by_kind: BTreeMap<u16, u64>,
    /// The first problem, if any (`problems[0]`).
    pub error: Option<String>,
    /// Every gap and every bad spot, in journal order.
    pub problems: Vec<Problem>,
    /// The torn tail that ends the last segment, if any (not damage: the next
    /// `run` cuts it).
    pub torn_tail: Option<String>,
}

/// Something wrong in a journal: where, which sequences it costs, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub offset: Option<u64>,
    /// The sequences that cannot be read because of it (inclusive), if known.
    pub lost: Option<(u64, u64)>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(off) = self.offset {
            write!(f, " at offset {off}")?;
        }
        write!(f, ": {}", self.message)?;
        match self.lost {
            Some((a, b)) if a == b => write!(f, " (record {a} lost)"),
            Some((a, b)) => write!(f, " (records {a}..{b} lost)"),
            None => Ok(()),
        }
    }
}

/// What `JournalReader::walk` finds, in journal order.
pub enum Found<'a> {
    Record(RecordRef<'a>),
    Problem(Problem),
    TornTail(String),
}

struct Segment {
    path: PathBuf,
    first_seq: u64,
    map: MmapRaw,
    /// The size the header claims, when the file is shorter.
    short_of: Option<u64>,
}

impl Segment {
    fn view(&self) -> View<'_> {
        // SAFETY: the mapping lives as long as `&self`, and is valid for reads of
        // `map.len()` bytes. Its file is a journal segment, written only by a
        // journal writer (in this process or another): header before the file
        // got its name, then record bytes before each record's commit word, and
        // never a committed record again, which is `View::from_raw`'s contract.
        // Recovery and repair rewrite a tail only with no writer running.
        unsafe { View::from_raw(self.map.as_ptr(), self.map.len()) }
    }

    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// A segment file mapped read-only, with its header; `Ok(None)` for a segment
/// whose header is not written yet (being created, or its creation cut short).
/// A file shorter than its header says is mapped as it is (a truncated last
/// segment is read up to where it stops).
pub(crate) fn map_segment(
    path: &Path,
) -> Result<Option<(u64, MmapRaw, Option<u64>)>, JournalError> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    // A shared read-only mapping, never turned into a `&[u8]` as a whole: bytes
    // past what is committed may change under it (see `segment::View`).
    let map = memmap2::MmapOptions::new()
        .map_raw_read_only(&file)
        .map_err(JournalError::io(path))?;
    // SAFETY: as in `Segment::view`: a journal segment's mapping, alive for this call.
    let view = unsafe { View::from_raw(map.as_ptr(), map.len()) };
    match segment::view_header(view) {
        Ok(h) => {
            let short_of = (h.segment_bytes > map.len() as u64).then_some(h.segment_bytes);
            Ok(Some((h.first_seq, map, short_of)))
        }
        Err(segment::HeaderError::Unwritten) => Ok(None),
        Err(e) => Err(JournalError::BadSegment {
            path: path.into(),
            message: e.to_string(),
        }),
    }
}

impl JournalReader {
    pub fn open(dir: &Path) -> Result<JournalReader, JournalError> {
        let mut segments = Vec::new();
        let mut unwritten = Vec::new();
        if dir.exists() {
            for (first_seq, path) in list_segments(dir)? {
                let Some((header_seq, map, short_of)) = map_segment(&path)? else {
                    unwritten.push((first_seq, path));
                    continue;
                };
                if header_seq != first_seq {
                    return Err(JournalError::BadSegment {
                        path,
                        message: format!(
                            "header says first sequence {header_seq}, the name says {first_seq}"
                        ),
                    });
                }
                segments.push(Segment {
                    path,
                    first_seq,
                    map,
                    short_of,
                });
            }
        }
        Ok(JournalReader {
            dir: dir.into(),
            segments,
            unwritten,
        })
    }

    /// Records from `seq` on (from the first one if `seq` is older), in order.
    /// Stops at the end of what is written, or at a torn tail of the last segment
    /// (`Records::torn_tail` says so); damage yields one error, then the end.
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
            torn_tail: None,
            rows: None,
        }
    }

    /// Every record that can be read, every problem between them, and the torn
    /// tail if any, in journal order: reads on past damage (at the next valid
    /// record, or the next segment).
    pub fn walk(&self, mut f: impl FnMut(Found<'_>)) {
        let mut expect: Option<u64> = None;
        let last = self.segments.len().saturating_sub(1);
        let mut unwritten = self.unwritten.iter().peekable();
        for (i, seg) in self.segments.iter().enumerate() {
            while let Some((first, path)) = unwritten.next_if(|(s, _)| *s < seg.first_seq) {
                f(Found::Problem(Problem {
                    path: path.clone(),
                    offset: Some(0),
                    lost: None,
                    message: format!(
                        "segment for sequence {first} on has no header (zeroed, or never written)"
                    ),
                }));
            }
            let want = expect.unwrap_or(1);
            if seg.first_seq > want {
                f(Found::Problem(Problem {
                    path: seg.path.clone(),
                    offset: None,
                    lost: Some((want, seg.first_seq - 1)),
                    message: format!(
                        "no segment holds sequences {want}..{} (a missing segment, or one cut short)",
                        seg.first_seq - 1
                    ),
                }));
            } else if seg.first_seq < want {
                f(Found::Problem(Problem {
                    path: seg.path.clone(),
                    offset: None,
                    lost: None,
                    message: format!(
                        "starts at sequence {} but the segment before it reaches {}",
                        seg.first_seq,
                        want - 1
                    ),
                }));
            }
            let view = seg.view();
            let (mut off, mut seq) = (SEGMENT_HEADER, seg.first_seq);
            loop {
                match segment::step(view, off, seq) {
                    Step::Record { rec, next, span } => {
                        for i in 0..span {
                            f(Found::Record(segment::row(&rec, span, i)));
                        }
                        off = next;
                        seq += span;
                        continue;
                    }
                    Step::End => break,
                    Step::Empty | Step::Corrupt(_) => {}
                }
                let scan = segment::scan(view, off, seq);
                if scan.records > 0 {
                    // A writer committed more while we looked: read on.
                    continue;
                }
                match scan.stop {
                    segment::Stop::Sealed | segment::Stop::Open => break,
                    segment::Stop::Torn { reason } if i == last => {
                        f(Found::TornTail(format!(
                            "{} at offset {off}: {reason}: the journal ends at sequence {}",
                            seg.path.display(),
                            seq - 1
                        )));
                        break;
                    }
                    segment::Stop::Torn { reason } => {
                        f(Found::Problem(Problem {
                            path: seg.path.clone(),
                            offset: Some(off as u64),
                            lost: None,
                            message: reason,
                        }));
                        break;
                    }
                    segment::Stop::Damaged {
                        reason,
                        resume,
                        resume_seq,
                    } => {
                        f(Found::Problem(Problem {
                            path: seg.path.clone(),
                            offset: Some(off as u64),
                            lost: Some((seq, resume_seq - 1)).filter(|_| resume_seq > seq),
                            message: format!(
                                "{reason}; {} bytes unreadable up to the next valid record",
                                resume - off
                            ),
                        }));
                        off = resume;
                        seq = resume_seq;
                    }
                }
            }
            if let Some(claimed) = seg.short_of {
                let message = format!("file is {} bytes, its header says {claimed}", seg.map.len());
                if i == last {
                    f(Found::TornTail(format!(
                        "{}: {message}",
                        seg.path.display()
                    )));
                } else {
                    f(Found::Problem(Problem {
                        path: seg.path.clone(),
                        offset: None,
                        lost: None,
                        message,
                    }));
                }
            }
            expect = Some(seq);
        }
        for (first, path) in unwritten {
            // After the last mapped segment: the one being created, unless its
            // file holds anything.
            let written = std::fs::read(path).map_or(true, |b| b.iter().any(|x| *x != 0));
            if written {
                f(Found::Problem(Problem {
                    path: path.clone(),
                    offset: Some(0),
                    lost: None,
                    message: format!(
                        "segment for sequence {first} on has no header but holds data"
                    ),
                }));
            }
        }
    }

    /// Counts, per segment and kind, and every problem (`walk`).
    pub fn summary(&self) -> Result<Summary, JournalError> {
        let mut s = Summary::default();
        let mut used: Vec<u64> = vec![0; self.segments.len()];
        let mut seg = 0;
        self.walk(|found| match found {
            Found::Record(rec) => {
                if s.records == 0 {
                    s.first_seq = rec.seq;
                }
                s.records += 1;
                s.last_seq = rec.seq;
                *s.by_kind.entry(rec.kind).or_default() += 1;
                while seg + 1 < self.segments.len() && self.segments[seg + 1].first_seq <= rec.seq {
                    seg += 1;
                }
                if let Some(u) = used.get_mut(seg) {
                    let base = self.segments[seg].map.as_ptr() as usize;
                    let end = rec.payload.as_ptr() as usize + rec.payload.len();
                    *u = end.saturating_sub(base).next_multiple_of(16) as u64;
                }
            }
            Found::Problem(p) => s.problems.push(p),
            Found::TornTail(t) => s.torn_tail = Some(t),
        });
        s.error = s.problems.first().map(|p| p.to_string());
        for (seg, used) in self.segments.iter().zip(used) {
            s.segments.push(SegmentSummary {
                name: seg.name(),
                first_seq: seg.first_seq,
                bytes_used: used.max(SEGMENT_HEADER as u64),
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
    torn_tail: Option<String>,
    /// A row record being handed on row by row: the record, its span, the next row.
    rows: Option<(RecordRef<'a>, u64, u64)>,
}

impl<'a> Records<'a> {
    /// Why the read ended before the end of the last segment, if it did: a torn
    /// tail (an append or a file cut short), which the next `run` cuts.
    pub fn torn_tail(&self) -> Option<&str> {
        self.torn_tail.as_deref()
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordRef<'a>, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            if let Some((rec, span, i)) = self.rows.take() {
                if i + 1 < span {
                    self.rows = Some((rec, span, i + 1));
                }
                let row = segment::row(&rec, span, i);
                if row.seq >= self.from {
                    return Some(Ok(row));
                }
                continue;
            }
            let seg = self.reader.segments.get(self.seg)?;
            let is_last = self.seg + 1 == self.reader.segments.len();
            let view = seg.view();
            let reason = match segment::step(view, self.off, self.expect) {
                Step::Record { rec, next, span } => {
                    self.off = next;
                    self.expect += span;
                    if rec.seq + span > self.from {
                        self.rows = Some((rec, span, 0));
                    }
                    continue;
                }
                Step::End => None,
                Step::Empty => {
                    match segment::next_valid(view, self.off, self.expect) {
                        // A writer may have committed this record and more while
                        // we looked: look again (it commits in order, so a later
                        // record seen means this one is visible now).
                        Some(_) if !matches!(segment::step(view, self.off, self.expect), Step::Empty) => {
                            continue;
                        }
                        Some(_) => Some(format!(
                            "no record where sequence {} belongs (zeroed?), but valid records follow",
                            self.expect
                        )),
                        None => None,
                    }
                }
                Step::Corrupt(reason) => {
                    if is_last && segment::next_valid(view, self.off, self.expect).is_none() {
                        self.done = true;
                        self.torn_tail = Some(format!(
                            "{} at offset {}: {reason}",
                            seg.path.display(),
                            self.off
                        ));
                        return None;
                    }
                    Some(reason)
                }
            };
            if let Some(reason) = reason {
                self.done = true;
                return Some(Err(JournalError::Corrupt {
                    path: seg.path.clone(),
                    offset: self.off as u64,
                    reason,
                }));
            }
            if is_last {
                if let Some(claimed) = seg.short_of {
                    self.torn_tail = Some(format!(
                        "{}: file is {} bytes, its header says {claimed}",
                        seg.path.display(),
                        seg.map.len()
                    ));
                }
            }
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
        None
    }
}
