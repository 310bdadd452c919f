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
    self, Checksum, Stop, View, END, END_KIND, RECORD_HEADER, SEGMENT_HEADER, SEGMENT_MAX,
    SEGMENT_MIN,
};
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{
    AtomicBool, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// What opening an existing journal found and cut.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    pub records_in_last: u64,
    /// The last sequence kept (0 for an empty journal).
    pub last_seq: u64,
    /// Bytes of torn tail zeroed in the last segment.
    pub cut_bytes: u64,
    pub cut_reason: Option<String>,
    pub cut_at: Option<(PathBuf, u64)>,
    /// The sequence the torn record would have had (`last_seq + 1`), when a
    /// record was cut rather than only zeros or an unwritten header.
    pub cut_seq: Option<u64>,
}

/// Segment files (and repair copies) hold the whole config: owner only.
pub(crate) const FILE_MODE: u32 = 0o600;

pub struct JournalWriter {
    dir: PathBuf,
    opts: JournalOptions,
    path: PathBuf,
    map: MmapMut,
    /// The current segment's checksum: CRC-32C, or CRC-32 in a segment of an
    /// earlier build that appending continues in.
    sum: Checksum,
    /// Row records may go in the current segment (format 3 on; not in a
    /// segment of an earlier build that appending continues in).
    rows: bool,
    off: usize,
    next_seq: u64,
    /// Start of the bytes appended since the last flush.
    dirty_from: usize,
    last_flush: Instant,
    appends_since_clock: u32,
    flushed_seq: u64,
    /// The next segment, being made ready beside this one.
    spare: Option<Spare>,
    /// A segment was renamed into place since the directory was last fsynced.
    dir_dirty: bool,
    counters: Arc<Counters>,
    /// The journal's lock (`lock`), held while this writer lives.
    _lock: Option<File>,
}

/// What the writer did to the disk, for tests and the curious: a flush or a
/// directory sync is otherwise invisible.
#[derive(Debug, Default)]
struct Counters {
    flushes: AtomicU64,
    dir_syncs: AtomicU64,
}

/// The file a spare segment is prepared under; the roll renames it.
const SPARE_NAME: &str = "next-segment.tmp";

/// Prefaulting writes one byte per page of this size (smaller than any real page,
/// so every page is touched whatever the system's page size).
const TOUCH_STRIDE: usize = 4096;

/// The next segment, made ready by a helper thread while the current one fills:
/// created, given real blocks (`allocate`), written with zeros (`write_zeros`),
/// mapped and every page touched. A first
/// write to a page of a file mapping is a page fault that costs microseconds in
/// the kernel (and, on a real filesystem, sometimes milliseconds while blocks are
/// allocated), which was most of an append's cost and all of the journaled
/// pipeline's latency tail; with the pages touched in advance, appends do not
/// fault and a roll costs a rename. It is also the journal's reservation of disk:
/// appends are refused as soon as it is known that the next segment cannot be
/// made, while the current one (whose blocks are allocated) still has room.
struct Spare {
    ready: mpsc::Receiver<Result<MmapMut, JournalError>>,
    /// Set once the answer is in `ready`: `poll`, on every append, reads this
    /// flag rather than the channel (a `try_recv` was 60 instructions a record).
    sent: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    map: Option<MmapMut>,
}

impl Spare {
    fn start(dir: &Path, segment_bytes: u64) -> Spare {
        let (tx, ready) = mpsc::sync_channel(1);
        let dir = dir.to_path_buf();
        let sent = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&sent);
        let thread = std::thread::Builder::new()
            .name("fillcast-journal-spare".into())
            .spawn(move || {
                let _ = tx.send(make_spare(&dir, segment_bytes));
                flag.store(true, Release);
            })
            .ok();
        Spare {
            ready,
            sent,
            thread,
            map: None,
        }
    }

    /// Without waiting: `Ok(())` while the spare is being made or is ready, its
    /// error if making it failed.
    #[inline]
    fn poll(&mut self) -> Result<(), JournalError> {
        if self.map.is_some() || !self.sent.load(Acquire) {
            return Ok(());
        }
        // The answer is in the channel: `wait` takes it without blocking.
        self.wait()
    }

    /// Waits for the spare (normally ready long before); `None` if its thread
    /// could not run or failed, in which case the caller makes the segment itself
    /// and reports any error with its own path.
    fn take(mut self) -> Option<MmapMut> {
        // Its error is the caller's to find again, with its own path.
        let _ = self.wait();
        self.map.take()
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Blocks until the spare is made: `Ok(())` with it kept for the roll (or
    /// when its thread could not run: the roll then makes the segment), its
    /// error if making it failed.
    #[cold]
    #[inline(never)]
    fn wait(&mut self) -> Result<(), JournalError> {
        if self.map.is_some() {
            return Ok(());
        }
        let got = self.ready.recv();
        self.join();
        match got {
            Ok(Ok(map)) => {
                self.map = Some(map);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Ok(()),
        }
    }
}

fn make_spare(dir: &Path, segment_bytes: u64) -> Result<MmapMut, JournalError> {
    let path = dir.join(SPARE_NAME);
    let file = create_file(&path)?;
    allocate(&file, &path, dir, segment_bytes)?;
    write_zeros(&file, &path, dir, 0, segment_bytes)?;
    let mut map = map_rw(&file, &path, segment_bytes)?;
    touch(&mut map, 0);
    Ok(map)
}

/// Writes zeros over `from..len` of `file`, a new segment, with `write(2)`,
/// so that its pages are in the page cache before it is mapped. A page of a
/// new file first touched through a shared mapping goes through the
/// filesystem's read path (on ext4: readahead of an unwritten extent, the page
/// zeroed, then `page_mkwrite`): 10.7 µs a page on this VM, 0.36 GiB/s, where
/// writing the same zeros costs 0.37 µs a page and the touch after it is a
/// minor fault. Measured on the 2-core VM of docs/BENCHMARKS.md, 256 MiB: 699
/// ms touched as before, 94 ms written + 17 ms touched now (issue 14: the spare
/// segment could not keep up with the appends, which then waited at a roll).
fn write_zeros(
    file: &File,
    path: &Path,
    dir: &Path,
    from: u64,
    len: u64,
) -> Result<(), JournalError> {
    const BLOCK: usize = 1 << 20;
    let zeros = vec![0u8; BLOCK];
    let mut off = from;
    while off < len {
        let n = (len - off).min(BLOCK as u64) as usize;
        file.write_all_at(&zeros[..n], off)
            .map_err(|e| no_space(e, path, dir, len))?;
        off += n as u64;
    }
    Ok(())
}

/// `e`, from giving `path` (in journal `dir`) its `len` bytes: a full disk or
/// quota is `JournalError::NoSpace`.
fn no_space(e: std::io::Error, path: &Path, dir: &Path, len: u64) -> JournalError {
    use rustix::io::Errno;
    match e.raw_os_error() {
        Some(code)
            if [Errno::NOSPC, Errno::FBIG, Errno::DQUOT]
                .iter()
                .any(|x| x.raw_os_error() == code) =>
        {
            JournalError::NoSpace {
                dir: dir.into(),
                bytes: len,
                source: e,
            }
        }
        _ => JournalError::Io {
            path: path.into(),
            source: e,
        },
    }
}

/// Writes a zero into every page of `map` from `from` on (whose bytes are all zero
/// already: unwritten file space), so later appends find the pages mapped.
fn touch(map: &mut MmapMut, from: usize) {
    let start = from.next_multiple_of(TOUCH_STRIDE);
    for i in (start..map.len()).step_by(TOUCH_STRIDE) {
        map[i] = 0;
    }
}

/// A new file, owner-only (it will hold the config), replacing any leftover.
pub(crate) fn create_file(path: &Path) -> Result<File, JournalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(JournalError::io(path))
}

/// Gives `file` (`path`, in journal `dir`) real blocks for its first `len` bytes,
/// extending it if shorter. A segment is written through a shared mapping, where
/// a write into a hole the filesystem cannot fill is a SIGBUS that kills the
/// engine without a word (and again at every restart); allocated up front, a full
/// disk is this error instead, before anything depends on the space.
pub(crate) fn allocate(file: &File, path: &Path, dir: &Path, len: u64) -> Result<(), JournalError> {
    use rustix::io::Errno;
    let no_space = |e: std::io::Error| no_space(e, path, dir, len);
    loop {
        match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            // A filesystem without fallocate: write a zero into every block, which
            // allocates it just the same (what glibc's posix_fallocate does).
            Err(Errno::OPNOTSUPP) => break,
            Err(e) => return Err(no_space(e.into())),
        }
    }
    if file.metadata().map_err(JournalError::io(path))?.len() < len {
        file.set_len(len).map_err(JournalError::io(path))?;
    }
    for off in (0..len).step_by(TOUCH_STRIDE) {
        let mut b = [0u8];
        file.read_exact_at(&mut b, off)
            .map_err(JournalError::io(path))?;
        file.write_all_at(&b, off).map_err(no_space)?;
    }
    file.sync_data().map_err(no_space)
}

/// fsync of a directory: makes the names created and renamed in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(JournalError::io(dir))
}

/// Sorted (first_seq, path) of the segment files in `dir`.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
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

fn map_rw(file: &File, path: &Path, len: u64) -> Result<MmapMut, JournalError> {
    // SAFETY: the file is ours (named by us in our directory), at least `len`
    // bytes long with its blocks allocated (`allocate`), and this writer is its
    // only writer (it holds the journal's lock, `lock`; a second writer, in this
    // process or another, is refused); other processes only read it, through read-only mappings and
    // the protocol of `segment::View` (record bytes, then the commit word with a
    // release store). Nothing truncates it while the journal is in use.
    unsafe { memmap2::MmapOptions::new().len(len as usize).map_mut(file) }
        .map_err(JournalError::io(path))
}

/// Creates a full-size segment atomically: allocated, headed, touched and synced
/// under a temporary name, then renamed, then the directory synced.
fn create_segment(
    dir: &Path,
    segment_bytes: u64,
    first_seq: u64,
    counters: &Counters,
) -> Result<(PathBuf, MmapMut), JournalError> {
    let path = dir.join(segment::file_name(first_seq));
    let tmp = dir.join(format!("{}.tmp", segment::file_name(first_seq)));
    let file = create_file(&tmp)?;
    allocate(&file, &tmp, dir, segment_bytes)?;
    write_zeros(&file, &tmp, dir, 0, segment_bytes)?;
    let mut map = map_rw(&file, &tmp, segment_bytes)?;
    map[..SEGMENT_HEADER].copy_from_slice(&segment::encode_header(segment_bytes, first_seq));
    // Made at start-up (or when a spare failed): fault its pages in now rather
    // than on the first appends.
    touch(&mut map, SEGMENT_HEADER);
    map.flush_range(0, SEGMENT_HEADER)
        .map_err(JournalError::io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(JournalError::io(&path))?;
    sync_dir(dir)?;
    counters.dir_syncs.fetch_add(1, Relaxed);
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

/// What recovery decided about the last segment, before it changes anything.
struct LastSegment {
    records: u64,
    /// Where appending continues, and with which sequence.
    end: usize,
    next_seq: u64,
    sealed: bool,
    /// Bytes from `end` on that must be zeroed (an append or file cut short).
    junk: usize,
    cut: Option<String>,
}

/// Reads the last segment (`file_len` bytes of it) read-only and tells a torn
/// tail, which recovery may cut, from damage, which it must not.
fn examine_last(
    dir: &Path,
    path: &Path,
    first_seq: u64,
    segment_bytes: u64,
) -> Result<LastSegment, JournalError> {
    let file = File::open(path).map_err(JournalError::io(path))?;
    let map = memmap2::MmapOptions::new()
        .map_raw_read_only(&file)
        .map_err(JournalError::io(path))?;
    // SAFETY: a journal segment's mapping, alive for this function; no writer is
    // running on it (the caller is the writer, opening): `View::from_raw`'s contract.
    let view = unsafe { View::from_raw(map.as_ptr(), map.len()) };
    let scan = segment::scan(view, SEGMENT_HEADER, first_seq);
    let short = (view.len() as u64) < segment_bytes;
    let (sealed, cut) = match scan.stop {
        Stop::Damaged {
            reason, resume_seq, ..
        } => {
            return Err(JournalError::Damaged {
                dir: dir.into(),
                path: path.into(),
                offset: scan.end as u64,
                seq: scan.next_seq,
                next_seq: resume_seq,
                reason,
            })
        }
        // Where no record header fits any more because the file was cut short,
        // the segment is not sealed: appending goes on once it is full size.
        Stop::Sealed => (!short || view.len() - scan.end >= RECORD_HEADER, None),
        Stop::Open => (false, None),
        Stop::Torn { reason } => (false, Some(reason)),
    };
    // Bytes of a record cut short (process crash: its commit word never came;
    // power loss: pages of it never written back). No valid record follows them.
    let junk = if sealed {
        0
    } else {
        let mut last = scan.end;
        let mut block = vec![0u8; 1 << 16];
        for off in (scan.end..view.len()).step_by(block.len()) {
            let n = block.len().min(view.len() - off);
            file.read_exact_at(&mut block[..n], off as u64)
                .map_err(JournalError::io(path))?;
            if let Some(i) = block[..n].iter().rposition(|b| *b != 0) {
                last = off + i + 1;
            }
        }
        last - scan.end
    };
    let cut = cut.or_else(|| (junk > 0).then(|| "incomplete record".to_string()));
    let cut = match (cut, short) {
        (cut, true) => Some(format!(
            "segment file is {} bytes, its header says {segment_bytes}{}",
            view.len(),
            cut.map_or(String::new(), |c| format!(" ({c})"))
        )),
        (cut, false) => cut,
    };
    Ok(LastSegment {
        records: scan.records,
        end: scan.end,
        next_seq: scan.next_seq,
        sealed,
        junk,
        cut,
    })
}

/// The lock file's name in a journal directory.
pub const LOCK_FILE: &str = "writer.lock";

/// Takes the journal's exclusive lock (`flock` on `LOCK_FILE`), held as long as
/// the returned file is open: released when the process ends, however it ends, so
/// a crash leaves no stale lock. `JournalError::Locked` when another process holds
/// it: a running engine, or a repair.
///
/// A holder that lets go within `LOCK_PATIENCE` is waited for: the lock belongs to
/// an open file description, so a process that forks another (any program that
/// runs a child) shares the descriptor with the child until the child's `exec`
/// closes it. A writer dropped just before a restart in such a process (the
/// simulator inside a test binary whose other tests start `fillcast` children) may
/// find its own lock still held for those few milliseconds.
pub fn lock(dir: &Path) -> Result<File, JournalError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(JournalError::io(&path))?;
    let until = std::time::Instant::now() + LOCK_PATIENCE;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked { dir: dir.into() })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(JournalError::Io { path, source: e })
            }
        }
    }
}

/// How long `lock` waits for a holder to let go before it says the journal is
/// taken: far longer than a fork's window before `exec`, short enough that a
/// second engine is refused at once to a person.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether any byte of the file at `path` is not zero.
fn holds_data(path: &Path) -> Result<bool, JournalError> {
    use std::io::Read;
    let mut f = File::open(path).map_err(JournalError::io(path))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(JournalError::io(path))?;
        if n == 0 {
            return Ok(false);
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(true);
        }
    }
}

impl JournalWriter {
    /// Open the journal in `dir` (created if missing) for appending, recovering its
    /// last segment first: every record whose checksum holds is kept, a torn tail
    /// after them (an append or a file cut short, with nothing valid after it) is
    /// zeroed, and the `Recovery` says what was cut and why. A bad record with
    /// valid records after it is damage, not a torn tail: `JournalError::Damaged`,
    /// and nothing on disk is changed (`fillcast journal repair` is the way out).
    ///
    /// Takes the journal's lock first (`lock`): a journal another process has open
    /// is `JournalError::Locked`, before anything is read or cut.
    pub fn open(
        dir: &Path,
        opts: JournalOptions,
    ) -> Result<(JournalWriter, Recovery), JournalError> {
        std::fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        let lock = lock(dir)?;
        let (mut w, recovery) = JournalWriter::open_locked(dir, opts)?;
        w._lock = Some(lock);
        Ok((w, recovery))
    }

    fn open_locked(
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
        let counters = Arc::new(Counters::default());
        let segments = list_segments(dir)?;
        let mut recovery = Recovery {
            segments: segments.len(),
            ..Recovery::default()
        };
        let Some((first_seq, path)) = segments.last().cloned() else {
            let (path, map) = create_segment(dir, opts.segment_bytes, 1, &counters)?;
            recovery.segments = 1;
            return Ok((
                JournalWriter::new_segment(dir, opts, path, map, 1, counters),
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
        let (segment_bytes, sum, rows) = match segment::parse_header(&head) {
            Ok(h) if h.first_seq == first_seq => (h.segment_bytes, h.checksum, h.takes_rows()),
            Ok(h) => {
                return Err(JournalError::BadSegment {
                    path,
                    message: format!(
                        "header says first sequence {}, the name says {first_seq}",
                        h.first_seq
                    ),
                })
            }
            // Its creation was cut short (a writer before headers were written
            // ahead of the name, or a power loss before the header reached the
            // disk): start it again, unless it holds anything, which would be a
            // zeroed header over records: damage.
            Err(segment::HeaderError::Unwritten) if !holds_data(&path)? => {
                recovery.cut_reason = Some("segment header was never written".into());
                recovery.cut_at = Some((path.clone(), 0));
                std::fs::remove_file(&path).map_err(JournalError::io(&path))?;
                let (path, map) = create_segment(dir, opts.segment_bytes, first_seq, &counters)?;
                recovery.last_seq = first_seq - 1;
                return Ok((
                    JournalWriter::new_segment(dir, opts, path, map, first_seq, counters),
                    recovery,
                ));
            }
            Err(segment::HeaderError::Unwritten) => {
                return Err(JournalError::Damaged {
                    dir: dir.into(),
                    path,
                    offset: 0,
                    seq: first_seq,
                    next_seq: first_seq,
                    reason: "the segment header is zeroed but the file holds data".into(),
                })
            }
            Err(e) => {
                return Err(JournalError::BadSegment {
                    path,
                    message: e.to_string(),
                })
            }
        };
        // Decide first, read-only; change the disk only once it is a torn tail.
        let last = examine_last(dir, &path, first_seq, segment_bytes)?;
        recovery.records_in_last = last.records;
        recovery.last_seq = last.next_seq - 1;
        if last.sealed {
            // Crashed after sealing this segment and before making the next one.
            let (path, map) = create_segment(dir, opts.segment_bytes, last.next_seq, &counters)?;
            recovery.segments += 1;
            return Ok((
                JournalWriter::new_segment(dir, opts, path, map, last.next_seq, counters),
                recovery,
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(JournalError::io(&path))?;
        // Also gives real blocks to a segment written sparse by an older writer,
        // and restores the size of one cut short.
        allocate(&file, &path, dir, segment_bytes)?;
        let mut map = map_rw(&file, &path, segment_bytes)?;
        let off = last.end;
        if last.junk > 0 {
            map[off..off + last.junk].fill(0);
            map.flush_range(off, last.junk)
                .map_err(JournalError::io(&path))?;
            recovery.cut_bytes = last.junk as u64;
            recovery.cut_at = Some((path.clone(), off as u64));
            recovery.cut_seq = Some(last.next_seq);
        }
        if last.cut.is_some() {
            file.sync_all().map_err(JournalError::io(&path))?;
        }
        recovery.cut_reason = last.cut;
        Ok((
            JournalWriter::at(
                dir,
                opts,
                path,
                map,
                (sum, rows),
                off,
                last.next_seq,
                counters,
            ),
            recovery,
        ))
    }

    /// A writer at the start of `map`, a segment just made (`create_segment`),
    /// whose first record will be `first_seq`.
    fn new_segment(
        dir: &Path,
        opts: JournalOptions,
        path: PathBuf,
        map: MmapMut,
        first_seq: u64,
        counters: Arc<Counters>,
    ) -> JournalWriter {
        JournalWriter::at(
            dir,
            opts,
            path,
            map,
            (Checksum::default(), true),
            SEGMENT_HEADER,
            first_seq,
            counters,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn at(
        dir: &Path,
        opts: JournalOptions,
        path: PathBuf,
        map: MmapMut,
        (sum, rows): (Checksum, bool),
        off: usize,
        next_seq: u64,
        counters: Arc<Counters>,
    ) -> JournalWriter {
        JournalWriter {
            dir: dir.into(),
            opts,
            path,
            map,
            sum,
            rows,
            off,
            next_seq,
            dirty_from: off,
            last_flush: Instant::now(),
            appends_since_clock: 0,
            flushed_seq: next_seq - 1,
            spare: Some(Spare::start(dir, opts.segment_bytes)),
            dir_dirty: false,
            counters,
            _lock: None,
        }
    }

    /// Waits until the next segment, which a helper thread makes beside the
    /// appends, is ready. Nothing needs to: an append never waits for it until
    /// a roll. It is for a caller that times appends and wants the making of a
    /// segment out of the figures (the fanout bench); an error is the making's
    /// (a full disk), as the next append would report it.
    pub fn wait_for_spare(&mut self) -> Result<(), JournalError> {
        match self.spare.as_mut() {
            Some(spare) => spare.wait(),
            None => Ok(()),
        }
    }

    /// Flushes (msyncs) done so far.
    pub fn flushes(&self) -> u64 {
        self.counters.flushes.load(Relaxed)
    }

    /// Directory fsyncs done so far (after segment creates and renames).
    pub fn dir_syncs(&self) -> u64 {
        self.counters.dir_syncs.load(Relaxed)
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
        self.try_append_with(kind, schema, ts, len, |buf| {
            fill(buf);
            Ok::<(), std::convert::Infallible>(())
        })?
        .map_err(|never| match never {})
    }

    /// `append_with` for a `fill` that can fail (an encoder writing in place):
    /// on its error nothing is appended (the bytes it wrote are not committed
    /// and the next record overwrites them) and the error is returned inside.
    #[inline]
    pub fn try_append_with<E>(
        &mut self,
        kind: u16,
        schema: u16,
        ts: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<u64, E>, JournalError> {
        if segment::row_bytes(kind).is_some() {
            // Rows one at a time, or a whole row record (as a copy of a journal
            // record by record makes them).
            return match segment::span_of(kind, len) {
                Some(rows) => self.try_append_rows_with(kind, schema, ts, rows as usize, fill),
                None => Err(JournalError::BadArgument(format!(
                    "a row record of {len} bytes is not whole rows"
                ))),
            };
        }
        self.append_span(kind, schema, ts, len, 1, fill)
    }

    /// The most rows a record of row kind `kind` holds: what fits in a
    /// segment of this journal (the current one, and the next, which may be
    /// smaller) with its header and an end marker. 0 for a kind without rows.
    pub fn rows_max(&self, kind: u16) -> usize {
        let Some(row_bytes) = segment::row_bytes(kind) else {
            return 0;
        };
        let rows = Self::payload_max(self.segment_bytes_max()) / row_bytes;
        // A segment holds at least `SEGMENT_MIN` bytes: many rows.
        debug_assert!(rows > 0);
        rows
    }

    /// The smaller of the current segment's size and the next one's.
    fn segment_bytes_max(&self) -> usize {
        self.map.len().min(self.opts.segment_bytes as usize)
    }

    /// The longest payload a record can have in a segment of `segment_bytes`:
    /// after the segment header, with room for the end marker, its length
    /// below `END - 1`; a multiple of 16, so rounding the record up keeps it.
    fn payload_max(segment_bytes: usize) -> usize {
        segment_bytes
            .saturating_sub(SEGMENT_HEADER + 2 * RECORD_HEADER)
            .min((END - 2) as usize)
            / 16
            * 16
    }

    /// Whether the current segment takes row records (`try_append_rows_with`):
    /// not one of an earlier build that appending continues in, until it rolls.
    pub fn takes_rows(&self) -> bool {
        self.rows
    }

    /// A row record of `kind` (`segment::row_bytes`) with `rows` rows, which
    /// `fill` writes in place; its rows take sequences from the returned one on.
    /// Only where `takes_rows` (else `JournalError::BadArgument`).
    #[inline]
    pub fn try_append_rows_with<E>(
        &mut self,
        kind: u16,
        schema: u16,
        ts: u64,
        rows: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<u64, E>, JournalError> {
        let Some(row_bytes) = segment::row_bytes(kind).filter(|_| self.rows && rows > 0) else {
            return Err(JournalError::BadArgument(format!(
                "a record of kind {kind} with {rows} rows where the segment takes {}",
                if self.rows {
                    "rows of the row kinds"
                } else {
                    "none"
                }
            )));
        };
        let len = rows.saturating_mul(row_bytes);
        self.append_span(kind, schema, ts, len, rows as u64, fill)
    }

    #[inline(always)]
    fn append_span<E>(
        &mut self,
        kind: u16,
        schema: u16,
        ts: u64,
        len: usize,
        span: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Result<u64, E>, JournalError> {
        assert!(kind != END_KIND, "kind 0xFFFF is the end marker");
        // It must fit in the next segment too, which may be smaller than this one
        // (the journal was reopened with a smaller `segment_bytes`). The length
        // is bounded before it is rounded up: a row count near `usize::MAX`
        // saturates `len` there.
        let segment_bytes = self.segment_bytes_max();
        if len > Self::payload_max(segment_bytes) {
            return Err(JournalError::TooLarge {
                len,
                segment: segment_bytes as u64,
            });
        }
        let total = segment::record_bytes(len);
        debug_assert!(SEGMENT_HEADER + total + RECORD_HEADER <= segment_bytes);
        if let Some(spare) = self.spare.as_mut() {
            if let Err(e) = spare.poll() {
                // No next segment can be made: refuse now, while this one still
                // has room, rather than at the roll with nowhere to go. Try again
                // in the background: a later append succeeds once there is space.
                self.spare = Some(Spare::start(&self.dir, self.opts.segment_bytes));
                return Err(e);
            }
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
            if let Err(e) = fill(&mut rec[RECORD_HEADER..RECORD_HEADER + len]) {
                return Ok(Err(e));
            }
            let (head, body) = rec.split_at_mut(RECORD_HEADER);
            let crc = segment::checksum(self.sum, head, len as u32, &body[..len]);
            head[24..28].copy_from_slice(&crc.to_le_bytes());
        }
        self.commit(off, len as u32 + 1);
        self.off += total;
        self.next_seq += span;
        if let Durability::EveryMs(ms) = self.opts.durability {
            self.appends_since_clock += 1;
            if self.appends_since_clock >= 256 {
                self.appends_since_clock = 0;
                if self.last_flush.elapsed().as_millis() >= u128::from(ms) {
                    self.flush()?;
                }
            }
        }
        Ok(Ok(seq))
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
                // The name is made durable by the next flush (`Never` promises
                // nothing across a power loss, so it never pays for this).
                self.dir_dirty = true;
                (path, map)
            }
            // On an error the segment stays sealed and `off` stays at its end
            // marker: the next append rolls again (and a restart makes the next
            // segment), so no record is ever written past the marker.
            None => create_segment(
                &self.dir,
                self.opts.segment_bytes,
                self.next_seq,
                &self.counters,
            )?,
        };
        self.spare = Some(Spare::start(&self.dir, self.opts.segment_bytes));
        self.path = path;
        self.map = map;
        self.sum = Checksum::default();
        self.rows = true;
        self.off = SEGMENT_HEADER;
        // From 0: the header, written through the map, goes with the first flush.
        self.dirty_from = 0;
        Ok(())
    }

    /// Flush everything appended so far to disk (msync of the dirty range, and an
    /// fsync of the directory if a segment was renamed into place since the last).
    pub fn flush(&mut self) -> Result<(), JournalError> {
        // The end marker, if this segment was sealed, sits just past `off`.
        let end = (self.off + RECORD_HEADER).min(self.map.len());
        if end > self.dirty_from {
            self.map
                .flush_range(self.dirty_from, end - self.dirty_from)
                .map_err(JournalError::io(&self.path))?;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.counters.dir_syncs.fetch_add(1, Relaxed);
            self.dir_dirty = false;
        }
        self.counters.flushes.fetch_add(1, Relaxed);
        self.dirty_from = self.off;
        self.flushed_seq = self.next_seq - 1;
        self.last_flush = Instant::now();
        Ok(())
    }

    /// For `EveryMs(n)`: flush if `n` ms passed since the last flush and something
    /// is unflushed. Appends check this only every 256 records, so the engine's
    /// I/O thread calls it when idle (`JournalSink::tick`): a quiet tail is
    /// flushed on time with no further appends.
    pub fn tick(&mut self) -> Result<(), JournalError> {
        self.tick_at(Instant::now())
    }

    /// `tick` as if the time were `now` (tests pass a time instead of sleeping).
    pub fn tick_at(&mut self, now: Instant) -> Result<(), JournalError> {
        match self.opts.durability {
            Durability::EveryMs(ms)
                if self.flushed_seq < self.written_seq()
                    && now.saturating_duration_since(self.last_flush)
                        >= Duration::from_millis(u64::from(ms)) =>
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
