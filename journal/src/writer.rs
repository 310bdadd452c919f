//! Appending to the journal, and recovering it on open.
//!
//! What each durability setting survives:
//!
//! | setting | process crash (SIGKILL, panic) | power loss / kernel crash |
//! |---|---|---|
//! | `Never` | everything appended: the mapping is shared, the kernel keeps the dirty pages | whatever the kernel had written back (up to ~30 s lost) |
//! | `EveryMs(n)` | everything appended | all but the last `n` ms |
//! | `Sync` | everything appended | everything whose orders left: `before_send` flushes first |
//!
//! No allocation and no lock per append: a record is copied into the mapping, and
//! its `len` is stored last, behind a release fence, so readers in any process see
//! either nothing or the whole record.

use crate::error::JournalError;
use crate::segment::{
    self, Step, END, END_KIND, RECORD_HEADER, SEGMENT_HEADER, SEGMENT_MAX, SEGMENT_MIN,
};
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Durability {
    Never,
    EveryMs(u32),
    Sync,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size of new segment files (existing ones keep theirs).
    pub segment_bytes: u64,
    pub durability: Durability,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 64 << 20,
            durability: Durability::Never,
        }
    }
}

/// What opening an existing journal found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records_in_last: u64,
    /// The last sequence kept (0 for an empty journal).
    pub last_seq: u64,
    /// Bytes of torn or damaged tail zeroed in the last segment.
    pub cut_bytes: u64,
    pub cut_reason: Option<String>,
    pub cut_at: Option<(PathBuf, u64)>,
}

pub struct JournalWriter {
    dir: PathBuf,
    opts: JournalOptions,
    path: PathBuf,
    map: MmapMut,
    off: usize,
    next_seq: u64,
    /// Start of the bytes appended since the last flush.
    dirty_from: usize,
    last_flush: Instant,
    appends_since_clock: u32,
    flushed_seq: u64,
    /// The next segment, being made ready beside this one.
    spare: Option<Spare>,
}

/// The file a spare segment is prepared under; the roll renames it.
const SPARE_NAME: &str = "next-segment.tmp";

/// Prefaulting writes one byte per page of this size (smaller than any real page,
/// so every page is touched whatever the system's page size).
const TOUCH_STRIDE: usize = 4096;

/// The next segment, made ready by a helper thread while the current one fills:
/// created, sized, mapped and every page touched. A first write to a page of a file
/// mapping is a page fault that costs microseconds in the kernel (and, on a real
/// filesystem, sometimes milliseconds while blocks are allocated), which was most
/// of an append's cost and all of the journaled pipeline's latency tail; with the
/// pages touched in advance, appends do not fault and a roll costs a rename.
struct Spare {
    ready: mpsc::Receiver<Result<MmapMut, JournalError>>,
    thread: Option<JoinHandle<()>>,
}

impl Spare {
    fn start(dir: &Path, segment_bytes: u64) -> Spare {
        let (tx, ready) = mpsc::sync_channel(1);
        let path = dir.join(SPARE_NAME);
        let thread = std::thread::Builder::new()
            .name("fillcast-journal-spare".into())
            .spawn(move || {
                let _ = tx.send(make_spare(&path, segment_bytes));
            })
            .ok();
        Spare { ready, thread }
    }

    /// Waits for the spare (normally ready long before); `None` if its thread
    /// could not run or failed, in which case the caller makes the segment itself
    /// and reports any error with its own path.
    fn take(mut self) -> Option<MmapMut> {
        let map = self.ready.recv().ok().and_then(Result::ok);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        map
    }
}

fn make_spare(path: &Path, segment_bytes: u64) -> Result<MmapMut, JournalError> {
    let f = File::create(path).map_err(JournalError::io(path))?;
    f.set_len(segment_bytes).map_err(JournalError::io(path))?;
    drop(f);
    let (_, mut map) = map_rw(path, segment_bytes)?;
    touch(&mut map, 0);
    Ok(map)
}

/// Writes a zero into every page of `map` from `from` on (whose bytes are all zero
/// already: unwritten file space), so later appends find the pages mapped.
fn touch(map: &mut MmapMut, from: usize) {
    let start = from.next_multiple_of(TOUCH_STRIDE);
    for i in (start..map.len()).step_by(TOUCH_STRIDE) {
        map[i] = 0;
    }
}

/// Sorted (first_seq, path) of the segment files in `dir`.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(JournalError::io(dir))? {
        let entry = entry.map_err(JournalError::io(dir))?;
        if let Some(seq) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_file_name)
        {
            v.push((seq, entry.path()));
        }
    }
    v.sort();
    Ok(v)
}

fn map_rw(path: &Path, len: u64) -> Result<(File, MmapMut), JournalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(JournalError::io(path))?;
    if file.metadata().map_err(JournalError::io(path))?.len() < len {
        file.set_len(len).map_err(JournalError::io(path))?;
    }
    // SAFETY: the file is ours (named by us in our directory) and at least `len`
    // bytes long; other processes only read it. Writes go through this mapping only,
    // and readers tolerate any byte pattern (every record is length- and
    // checksum-checked), so concurrent reads of a page being written are benign.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map_mut(&file) }
        .map_err(JournalError::io(path))?;
    Ok((file, map))
}

/// Creates a full-size segment atomically: written under a temporary name, then renamed.
fn create_segment(
    dir: &Path,
    segment_bytes: u64,
    first_seq: u64,
) -> Result<(PathBuf, MmapMut), JournalError> {
    let path = dir.join(segment::file_name(first_seq));
    let tmp = dir.join(format!("{}.tmp", segment::file_name(first_seq)));
    {
        let f = File::create(&tmp).map_err(JournalError::io(&tmp))?;
        f.set_len(segment_bytes).map_err(JournalError::io(&tmp))?;
        use std::io::Write;
        (&f).write_all(&segment::encode_header(segment_bytes, first_seq))
            .map_err(JournalError::io(&tmp))?;
    }
    std::fs::rename(&tmp, &path).map_err(JournalError::io(&path))?;
    let (_, mut map) = map_rw(&path, segment_bytes)?;
    // Made at start-up (or when a spare failed): fault its pages in now rather
    // than on the first appends. A recovered segment is not touched: its header
    // may claim any size.
    touch(&mut map, SEGMENT_HEADER);
    Ok((path, map))
}

impl Drop for JournalWriter {
    /// An unused spare is not part of the journal: remove it.
    fn drop(&mut self) {
        if let Some(spare) = self.spare.take() {
            drop(spare.take());
            let _ = std::fs::remove_file(self.dir.join(SPARE_NAME));
        }
    }
}

impl JournalWriter {
    /// Open the journal in `dir` (created if missing) for appending, recovering its
    /// last segment first: every record whose checksum holds is kept, the torn or
    /// damaged tail after it is zeroed, and the `Recovery` says what was cut and why.
    pub fn open(
        dir: &Path,
        opts: JournalOptions,
    ) -> Result<(JournalWriter, Recovery), JournalError> {
        if !(SEGMENT_MIN..=SEGMENT_MAX).contains(&opts.segment_bytes)
            || !opts.segment_bytes.is_multiple_of(16)
        {
            return Err(JournalError::BadSegment {
                path: dir.into(),
                message: format!(
                    "segment size {} must be a multiple of 16 from {SEGMENT_MIN} to {SEGMENT_MAX}",
                    opts.segment_bytes
                ),
            });
        }
        std::fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        let segments = list_segments(dir)?;
        let mut recovery = Recovery {
            segments: segments.len(),
            ..Recovery::default()
        };
        let Some((first_seq, path)) = segments.last().cloned() else {
            let (path, map) = create_segment(dir, opts.segment_bytes, 1)?;
            recovery.segments = 1;
            return Ok((
                JournalWriter::at(dir, opts, path, map, SEGMENT_HEADER, 1),
                recovery,
            ));
        };
        let file_len = std::fs::metadata(&path)
            .map_err(JournalError::io(&path))?
            .len();
        let mut head = [0u8; SEGMENT_HEADER];
        if file_len >= SEGMENT_HEADER as u64 {
            use std::io::Read;
            File::open(&path)
                .and_then(|mut f| f.read_exact(&mut head))
                .map_err(JournalError::io(&path))?;
        }
        let segment_bytes = match segment::parse_header(&head) {
            Ok(h) if h.first_seq == first_seq => h.segment_bytes,
            Ok(h) => {
                return Err(JournalError::BadSegment {
                    path,
                    message: format!(
                        "header says first sequence {}, the name says {first_seq}",
                        h.first_seq
                    ),
                })
            }
            // Its creation was cut short: start it again.
            Err(segment::HeaderError::Unwritten) => {
                recovery.cut_reason = Some("segment header was never written".into());
                recovery.cut_at = Some((path.clone(), 0));
                std::fs::remove_file(&path).map_err(JournalError::io(&path))?;
                let (path, map) = create_segment(dir, opts.segment_bytes, first_seq)?;
                recovery.last_seq = first_seq - 1;
                return Ok((
                    JournalWriter::at(dir, opts, path, map, SEGMENT_HEADER, first_seq),
                    recovery,
                ));
            }
            Err(e) => {
                return Err(JournalError::BadSegment {
                    path,
                    message: e.to_string(),
                })
            }
        };
        if file_len < segment_bytes {
            recovery.cut_reason = Some(format!(
                "segment file is {file_len} bytes, its header says {segment_bytes}"
            ));
        }
        let (_, mut map) = map_rw(&path, segment_bytes)?;
        let mut off = SEGMENT_HEADER;
        let mut seq = first_seq;
        let ended = loop {
            match segment::step(&map, off, seq) {
                Step::Record { next, .. } => {
                    off = next;
                    seq += 1;
                    recovery.records_in_last += 1;
                }
                Step::Empty => break false,
                Step::End => break true,
                Step::Corrupt(reason) => {
                    recovery.cut_reason = Some(reason);
                    break false;
                }
            }
        };
        recovery.last_seq = seq - 1;
        if ended {
            // Crashed after sealing this segment and before making the next one.
            drop(map);
            let (path, map) = create_segment(dir, opts.segment_bytes, seq)?;
            recovery.segments += 1;
            return Ok((
                JournalWriter::at(dir, opts, path, map, SEGMENT_HEADER, seq),
                recovery,
            ));
        }
        // Past the file's length before recovery, `set_len` left zeros: no need to
        // read them (a header may say a segment is far bigger than its file).
        let scan_end = (file_len as usize).clamp(off, map.len());
        let tail = &mut map[off..scan_end];
        let dirty = tail
            .iter()
            .rposition(|b| *b != 0)
            .map(|i| i + 1)
            .unwrap_or(0);
        if dirty > 0 {
            tail[..dirty].fill(0);
            map.flush_range(off, dirty)
                .map_err(JournalError::io(&path))?;
            recovery.cut_bytes = dirty as u64;
            recovery
                .cut_reason
                .get_or_insert_with(|| "incomplete record".into());
            recovery.cut_at = Some((path.clone(), off as u64));
        }
        Ok((JournalWriter::at(dir, opts, path, map, off, seq), recovery))
    }

    fn at(
        dir: &Path,
        opts: JournalOptions,
        path: PathBuf,
        map: MmapMut,
        off: usize,
        next_seq: u64,
    ) -> JournalWriter {
        JournalWriter {
            dir: dir.into(),
            opts,
            path,
            map,
            off,
            next_seq,
            dirty_from: off,
            last_flush: Instant::now(),
            appends_since_clock: 0,
            flushed_seq: next_seq - 1,
            spare: Some(Spare::start(dir, opts.segment_bytes)),
        }
    }

    /// The sequence the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence appended (0 for an empty journal).
    pub fn written_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The last sequence flushed to disk (by `before_send`, `flush` or the timer).
    pub fn flushed_seq(&self) -> u64 {
        self.flushed_seq
    }

    /// Append one record; returns its sequence number.
    pub fn append(
        &mut self,
        kind: u16,
        schema: u16,
        ts: u64,
        payload: &[u8],
    ) -> Result<u64, JournalError> {
        self.append_with(kind, schema, ts, payload.len(), |buf| {
            buf.copy_from_slice(payload)
        })
    }

    /// Append a record of `len` payload bytes written by `fill` straight into the map.
    pub fn append_with(
        &mut self,
        kind: u16,
        schema: u16,
        ts: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, JournalError> {
        assert!(kind != END_KIND, "kind 0xFFFF is the end marker");
        let total = segment::record_bytes(len);
        // It must fit in the next segment too, which may be smaller than this one
        // (the journal was reopened with a smaller `segment_bytes`).
        let segment_bytes = self.map.len().min(self.opts.segment_bytes as usize);
        if SEGMENT_HEADER + total + RECORD_HEADER > segment_bytes || len >= (END - 1) as usize {
            return Err(JournalError::TooLarge {
                len,
                segment: segment_bytes as u64,
            });
        }
        if self.off + total + RECORD_HEADER > self.map.len() {
            self.roll()?;
        }
        let off = self.off;
        let seq = self.next_seq;
        debug_assert!(off.is_multiple_of(16) && self.map[off..off + 4] == [0; 4]);
        {
            let rec = &mut self.map[off..off + total];
            rec[4..6].copy_from_slice(&kind.to_le_bytes());
            rec[6..8].copy_from_slice(&schema.to_le_bytes());
            rec[8..16].copy_from_slice(&seq.to_le_bytes());
            rec[16..24].copy_from_slice(&ts.to_le_bytes());
            fill(&mut rec[RECORD_HEADER..RECORD_HEADER + len]);
            let (head, body) = rec.split_at_mut(RECORD_HEADER);
            let crc = segment::checksum(head, len as u32, &body[..len]);
            head[24..28].copy_from_slice(&crc.to_le_bytes());
        }
        self.commit(off, len as u32 + 1);
        self.off += total;
        self.next_seq += 1;
        if let Durability::EveryMs(ms) = self.opts.durability {
            self.appends_since_clock += 1;
            if self.appends_since_clock >= 256 {
                self.appends_since_clock = 0;
                if self.last_flush.elapsed().as_millis() >= u128::from(ms) {
                    self.flush()?;
                }
            }
        }
        Ok(seq)
    }

    /// Publish the commit field (payload length + 1, or `END`) at `off`.
    fn commit(&mut self, off: usize, len: u32) {
        segment::commit_len(&mut self.map, off, len);
    }

    /// Seal this segment with an end marker and continue in a new one.
    fn roll(&mut self) -> Result<(), JournalError> {
        let off = self.off;
        self.map[off + 4..off + 6].copy_from_slice(&END_KIND.to_le_bytes());
        self.commit(off, END);
        if self.opts.durability != Durability::Never {
            self.flush()?;
        }
        let (path, map) = match self.spare.take().and_then(Spare::take) {
            Some(mut map) => {
                // The header first, then the name: a reader that lists the segment
                // finds it complete.
                map[..SEGMENT_HEADER].copy_from_slice(&segment::encode_header(
                    self.opts.segment_bytes,
                    self.next_seq,
                ));
                let path = self.dir.join(segment::file_name(self.next_seq));
                std::fs::rename(self.dir.join(SPARE_NAME), &path)
                    .map_err(JournalError::io(&path))?;
                (path, map)
            }
            None => create_segment(&self.dir, self.opts.segment_bytes, self.next_seq)?,
        };
        self.spare = Some(Spare::start(&self.dir, self.opts.segment_bytes));
        self.path = path;
        self.map = map;
        self.off = SEGMENT_HEADER;
        self.dirty_from = SEGMENT_HEADER;
        Ok(())
    }

    /// Flush everything appended so far to disk (msync of the dirty range).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        // The end marker, if this segment was sealed, sits just past `off`.
        let end = (self.off + RECORD_HEADER).min(self.map.len());
        if end > self.dirty_from {
            self.map
                .flush_range(self.dirty_from, end - self.dirty_from)
                .map_err(JournalError::io(&self.path))?;
        }
        self.dirty_from = self.off;
        self.flushed_seq = self.next_seq - 1;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// For `EveryMs(n)`: flush if `n` ms passed since the last flush and something
    /// is unflushed. Appends check this only every 256 records, so a writer that
    /// appends rarely calls `tick` (or `before_send`) to keep the promise.
    pub fn tick(&mut self) -> Result<(), JournalError> {
        match self.opts.durability {
            Durability::EveryMs(ms)
                if self.flushed_seq < self.written_seq()
                    && self.last_flush.elapsed().as_millis() >= u128::from(ms) =>
            {
                self.flush()
            }
            _ => Ok(()),
        }
    }

    /// What the durability setting promises before orders leave.
    pub fn before_send(&mut self) -> Result<(), JournalError> {
        match self.opts.durability {
            Durability::Never => Ok(()),
            Durability::Sync => self.flush(),
            Durability::EveryMs(ms) => {
                if self.last_flush.elapsed().as_millis() >= u128::from(ms) {
                    self.flush()
                } else {
                    Ok(())
                }
            }
        }
    }
}
