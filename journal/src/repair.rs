//! `fillcast journal repair`: cutting a damaged journal at its first bad spot, so
//! that the writer can open it again. Recovery on open cuts only a torn tail; a
//! bad record with valid ones after it is damage, and dropping those is a
//! decision for an operator, made here: `plan` says what would go, `apply` keeps a
//! copy of every file it changes and then changes them.
//!
//! **Invariant:** nothing is changed before its copy is on disk, and nothing is
//! deleted: a dropped segment is moved into the copy folder.

use crate::error::JournalError;
use crate::reader::JournalReader;
use crate::segment::{self, Stop, View, SEGMENT_HEADER};
use crate::writer::{create_file, list_segments, sync_dir};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

/// Where a journal would be cut, and what that drops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The segment the cut is in, and the offset in it.
    pub path: PathBuf,
    pub offset: u64,
    /// Why: the damage found there.
    pub reason: String,
    /// The first sequence dropped (the bad record's), and the last one any
    /// valid record after the cut has (`None`: no valid record is dropped).
    pub from_seq: u64,
    pub to_seq: Option<u64>,
    /// Bytes zeroed in `path` from `offset` on (0 when the whole file goes).
    pub bytes: u64,
    /// Segment files after the cut (and `path` itself if the cut is at its
    /// header), moved out of the journal whole.
    pub dropped_files: Vec<PathBuf>,
}

impl Cut {
    /// What the cut drops, in words.
    pub fn describe(&self) -> String {
        let records = match self.to_seq {
            Some(to) => format!("records {}..{to}", self.from_seq),
            None => format!(
                "no valid record (the journal then ends at {})",
                self.from_seq - 1
            ),
        };
        let mut s = format!(
            "{records}: {} bytes of {} from offset {}",
            self.bytes,
            self.path.display(),
            self.offset
        );
        for f in &self.dropped_files {
            s.push_str(&format!(", and all of {}", f.display()));
        }
        s
    }
}

/// The first bad spot of the journal in `dir` (a bad or missing record, a
/// segment without a header, a sequence jump between segments, a torn tail), or
/// `None` if it reads clean to its end.
pub fn plan(dir: &Path) -> Result<Option<Cut>, JournalError> {
    let segments = list_segments(dir)?;
    let last_seq = JournalReader::open(dir)
        .and_then(|r| r.summary())
        .map(|s| s.last_seq)
        .unwrap_or(0);
    let mut expect: Option<u64> = None;
    for (i, (first_seq, path)) in segments.iter().enumerate() {
        let later = || segments[i + 1..].iter().map(|(_, p)| p.clone());
        let whole = |reason: String, from_seq: u64| Cut {
            path: path.clone(),
            offset: 0,
            reason,
            from_seq,
            to_seq: (last_seq >= from_seq).then_some(last_seq),
            bytes: 0,
            dropped_files: std::iter::once(path.clone()).chain(later()).collect(),
        };
        // (A journal whose oldest segments were removed starts later: not a gap.)
        if let Some(want) = expect.filter(|e| e != first_seq) {
            return Ok(Some(whole(
                format!(
                    "sequences {want}..{} are in no segment",
                    first_seq.saturating_sub(1)
                ),
                want.min(*first_seq),
            )));
        }
        let file = File::open(path).map_err(JournalError::io(path))?;
        let map = memmap2::MmapOptions::new()
            .map_raw_read_only(&file)
            .map_err(JournalError::io(path))?;
        // SAFETY: a journal segment's mapping, alive for this loop iteration;
        // repair runs with no writer on the journal (`View::from_raw`'s contract).
        let view = unsafe { View::from_raw(map.as_ptr(), map.len()) };
        let header = match segment::view_header(view) {
            Ok(h) if h.first_seq == *first_seq => h,
            Ok(h) => {
                return Ok(Some(whole(
                    format!("header says first sequence {}", h.first_seq),
                    *first_seq,
                )))
            }
            Err(e) => return Ok(Some(whole(e.to_string(), *first_seq))),
        };
        let scan = segment::scan(view, SEGMENT_HEADER, header.first_seq);
        let reason = match scan.stop {
            Stop::Sealed | Stop::Open => None,
            Stop::Torn { reason } => Some(reason),
            Stop::Damaged { reason, .. } => Some(reason),
        };
        if let Some(reason) = reason {
            let used = used_bytes(&file, path)?;
            return Ok(Some(Cut {
                path: path.clone(),
                offset: scan.end as u64,
                reason,
                from_seq: scan.next_seq,
                to_seq: (last_seq >= scan.next_seq).then_some(last_seq),
                bytes: used.saturating_sub(scan.end as u64),
                dropped_files: later().collect(),
            }));
        }
        expect = Some(scan.next_seq);
    }
    Ok(None)
}

/// Offset just past the last non-zero byte of `file`.
fn used_bytes(file: &File, path: &Path) -> Result<u64, JournalError> {
    let len = file.metadata().map_err(JournalError::io(path))?.len();
    let mut buf = vec![0u8; 1 << 16];
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let n = (end - start) as usize;
        file.read_exact_at(&mut buf[..n], start)
            .map_err(JournalError::io(path))?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b != 0) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Makes the cut: copies the segment it changes into a new `dir/repair-<time>/`
/// folder (owner-only), moves the segments it drops there, zeroes the rest of
/// the cut segment, and syncs it all. Returns the folder.
pub fn apply(dir: &Path, cut: &Cut) -> Result<PathBuf, JournalError> {
    // Not beside a running engine: held until the cut is made.
    let _lock = crate::writer::lock(dir)?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut keep = dir.join(format!("repair-{stamp}"));
    let mut n = 1;
    while keep.exists() {
        keep = dir.join(format!("repair-{stamp}-{n}"));
        n += 1;
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&keep)
        .map_err(JournalError::io(&keep))?;
    let name = |p: &Path| keep.join(p.file_name().unwrap_or_default());
    if cut.bytes > 0 && !cut.dropped_files.contains(&cut.path) {
        let copy = name(&cut.path);
        let mut to = create_file(&copy)?;
        let mut from = File::open(&cut.path).map_err(JournalError::io(&cut.path))?;
        std::io::copy(&mut from, &mut to).map_err(JournalError::io(&copy))?;
        to.sync_all().map_err(JournalError::io(&copy))?;
    }
    for f in &cut.dropped_files {
        std::fs::rename(f, name(f)).map_err(JournalError::io(f))?;
    }
    sync_dir(&keep)?;
    if cut.bytes > 0 && !cut.dropped_files.contains(&cut.path) {
        let file = OpenOptions::new()
            .write(true)
            .open(&cut.path)
            .map_err(JournalError::io(&cut.path))?;
        let zeros = vec![0u8; 1 << 16];
        let mut off = cut.offset;
        let end = cut.offset + cut.bytes;
        while off < end {
            let n = zeros.len().min((end - off) as usize);
            file.write_all_at(&zeros[..n], off)
                .map_err(JournalError::io(&cut.path))?;
            off += n as u64;
        }
        file.sync_all().map_err(JournalError::io(&cut.path))?;
    }
    sync_dir(dir)?;
    Ok(keep)
}
