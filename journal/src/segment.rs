//! The on-disk format of one segment file, and the scan over its bytes that the
//! reader, the tailer, recovery and the fuzz target all share.
//!
//! ```text
//! segment  = header (64 bytes) record* [end marker] zeros
//! header   = magic "FCJRNL\0" format-byte | format u32 | 0 u32 | segment bytes u64 | first seq u64 | zeros
//! record   = commit u32 | kind u16 | schema u16 | seq u64 | ts u64 | crc u32 | 0 u32 | payload | pad to 16
//! ```
//!
//! The magic's last byte and the format word say the format twice, and must
//! agree: a header whose one field was damaged is refused, rather than read with
//! the other checksum, which would fail every record and look like a torn tail
//! that recovery would cut.
//!
//! `format` names the checksum and what records may hold:
//! - 3 (what this build writes): CRC-32C, and row records (below);
//! - 2: CRC-32C, one hardware instruction per 8 bytes on x86-64 (SSE 4.2) and
//!   AArch64, no row records;
//! - 1: the IEEE CRC-32, which costs a table walk or a carry-less multiply set-up
//!   per record and was a third of an append's instructions.
//!
//! Segments of formats 1 and 2 (earlier builds) are still read, and a writer
//! reopened on one appends to it in its format until it rolls.
//!
//! **Row records** (format 3): a record of a row kind (`row_bytes`: a fan-out's
//! orders and decisions, venue reports) holds `len / row bytes` fixed-size rows,
//! each its own entry of the journal with its own sequence number: the record's
//! `seq` is its first row's, the next record's is past its last. Readers hand
//! each row on as a record of its own (`row`), so what a journal says is the
//! same whether its entries were written one a record or many; the writer saves
//! a header, a checksum set-up and a commit per row. Format 3 exists
//! so that an earlier build, which would take the sequence jump after a row
//! record for damage, refuses the segment instead.
//!
//! All integers little-endian. `commit` = payload length + 1, written last with a
//! release store (an `AtomicU32` in the map): a record whose `commit` is 0 is not
//! there yet (so an empty payload is still a record). `commit == END` marks the end
//! of the segment, and so does an offset where no record header fits any more; the
//! next segment is named by the next sequence number. Payloads start 16-byte
//! aligned (the map is page aligned, the header is 64 bytes, records are padded to
//! 16), as rkyv needs.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// The magic of a format-1 segment; a format-`n` segment's ends in byte `n`.
pub const MAGIC: [u8; 8] = *b"FCJRNL\0\x01";
/// The format new segments get (`checksum`, row records).
pub const FORMAT: u32 = 3;
/// CRC-32C without row records: read, and appended to in place.
pub const FORMAT_CRC32C: u32 = 2;
/// The first format, with the IEEE CRC-32: read, and appended to in place.
pub const FORMAT_CRC32: u32 = 1;
pub const SEGMENT_HEADER: usize = 64;
pub const RECORD_HEADER: usize = 32;
/// `len` of the end-of-segment marker.
pub const END: u32 = u32::MAX;
pub const END_KIND: u16 = 0xFFFF;
/// Smallest segment the writer makes: header, one small record, an end marker.
pub const SEGMENT_MIN: u64 = 4096;
/// A record's length is a `u32`, so a bigger segment holds nothing a 4 GiB one
/// cannot; the bound also keeps a garbage header from making recovery extend a
/// file to a terabyte.
pub const SEGMENT_MAX: u64 = 1 << 32;
pub const EXTENSION: &str = "fcj";
/// Sequences start at 1; the bound keeps `seq + 1` from overflowing whatever a
/// header says (a segment holds far fewer than 2^62 records).
pub const SEQ_MAX: u64 = 1 << 62;
/// A row record of orders and their decisions (`record::Kind::PairRows`), and
/// its rows' size.
pub const PAIR_ROWS_KIND: u16 = 17;
pub const PAIR_ROW_BYTES: usize = 80;
/// A row record of venue reports (`record::Kind::ExecRows`), and its rows' size.
pub const EXEC_ROWS_KIND: u16 = 18;
pub const EXEC_ROW_BYTES: usize = 64;
// Multiples of 16, so each row starts 16-byte aligned; at least a record
// header, so the scan's bound on the sequences a segment holds stays true.
const _: () = assert!(PAIR_ROW_BYTES.is_multiple_of(16) && PAIR_ROW_BYTES >= RECORD_HEADER);
const _: () = assert!(EXEC_ROW_BYTES.is_multiple_of(16) && EXEC_ROW_BYTES >= RECORD_HEADER);

/// The size of a row of `kind`, if it is a row kind.
#[inline]
pub fn row_bytes(kind: u16) -> Option<usize> {
    match kind {
        PAIR_ROWS_KIND => Some(PAIR_ROW_BYTES),
        EXEC_ROWS_KIND => Some(EXEC_ROW_BYTES),
        _ => None,
    }
}

/// The sequence numbers a record of `kind` with a `len`-byte payload takes:
/// its rows for a row record, else 1. `None`: a row record that is not a
/// whole, non-zero number of rows (no writer makes one).
#[inline]
pub fn span_of(kind: u16, len: usize) -> Option<u64> {
    match row_bytes(kind) {
        None => Some(1),
        Some(b) => (len > 0 && len.is_multiple_of(b)).then_some((len / b) as u64),
    }
}

/// Row `i` of `rec`, a record that takes `span` sequence numbers (`Step::Record`),
/// as a record of its own: sequence `rec.seq + i`, the record's kind, schema and
/// time, the row's bytes. A record of span 1 is its own row 0.
#[inline]
pub fn row<'a>(rec: &RecordRef<'a>, span: u64, i: u64) -> RecordRef<'a> {
    debug_assert!(i < span);
    if span == 1 {
        return *rec;
    }
    let b = rec.payload.len() / span as usize;
    let at = i as usize * b;
    RecordRef {
        seq: rec.seq + i,
        payload: &rec.payload[at..at + b],
        ..*rec
    }
}

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.{EXTENSION}")
}

/// The first sequence number a segment file name says, if it is one of ours.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|seq| (1..=SEQ_MAX).contains(seq))
}

/// Bytes a record with a payload of `len` bytes takes, header and padding included.
pub fn record_bytes(len: usize) -> usize {
    RECORD_HEADER + len.div_ceil(16) * 16
}

pub fn encode_header(segment_bytes: u64, first_seq: u64) -> [u8; SEGMENT_HEADER] {
    encode_header_format(segment_bytes, first_seq, FORMAT)
}

/// A header of the given format: `FORMAT`, or an earlier one where a test makes
/// the segments of an earlier build.
pub fn encode_header_format(
    segment_bytes: u64,
    first_seq: u64,
    format: u32,
) -> [u8; SEGMENT_HEADER] {
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[7] = format as u8;
    h[8..12].copy_from_slice(&format.to_le_bytes());
    h[16..24].copy_from_slice(&segment_bytes.to_le_bytes());
    h[24..32].copy_from_slice(&first_seq.to_le_bytes());
    h
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_bytes: u64,
    pub first_seq: u64,
    pub checksum: Checksum,
    pub format: u32,
}

impl SegmentHeader {
    /// Whether row records may be appended to this segment (format 3 on).
    pub fn takes_rows(&self) -> bool {
        self.format >= FORMAT
    }
}

/// A segment's record checksum, as its header's format says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Checksum {
    /// Format 1: the IEEE CRC-32 (`crc32fast`).
    Crc32,
    /// Formats 2 and 3: CRC-32C (Castagnoli), in hardware where the CPU has it.
    #[default]
    Crc32c,
}

impl Checksum {
    /// The checksum of a segment with `format`; `None` for a format this build
    /// does not know.
    pub fn of_format(format: u32) -> Option<Checksum> {
        match format {
            FORMAT_CRC32 => Some(Checksum::Crc32),
            FORMAT_CRC32C | FORMAT => Some(Checksum::Crc32c),
            _ => None,
        }
    }

    /// The checksum of the segment whose bytes `view` holds, read from its
    /// header's format word (CRC-32C unless it says format 1: a header the scan
    /// cannot trust fails every record either way).
    fn of_view(view: View<'_>) -> Checksum {
        if view.len() < 12 {
            return Checksum::Crc32c;
        }
        let f = view.final_bytes(8, 4);
        match u32::from_le_bytes([f[0], f[1], f[2], f[3]]) {
            FORMAT_CRC32 => Checksum::Crc32,
            _ => Checksum::Crc32c,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header, or all zeros: a segment whose creation was cut short.
    Unwritten,
    BadMagic,
    UnknownFormat(u32),
    /// The magic's format byte and the format word disagree: a damaged header.
    FormatMismatch {
        magic: u8,
        format: u32,
    },
    BadSize(u64),
    BadFirstSeq(u64),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Unwritten => write!(f, "segment header not written"),
            HeaderError::BadMagic => write!(f, "not a fillcast journal segment (bad magic)"),
            HeaderError::UnknownFormat(v) => {
                write!(
                    f,
                    "segment format {v} is not one this build reads (it reads {FORMAT_CRC32} to {FORMAT}): use a fillcast that knows it"
                )
            }
            HeaderError::FormatMismatch { magic, format } => write!(
                f,
                "damaged segment header: its magic says format {magic}, its format word {format}"
            ),
            HeaderError::BadSize(n) => write!(f, "implausible segment size {n}"),
            HeaderError::BadFirstSeq(n) => write!(f, "implausible first sequence {n}"),
        }
    }
}

pub fn parse_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if bytes.len() < SEGMENT_HEADER || bytes[..SEGMENT_HEADER].iter().all(|b| *b == 0) {
        return Err(HeaderError::Unwritten);
    }
    if bytes[..7] != MAGIC[..7] {
        return Err(HeaderError::BadMagic);
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    let Some(checksum) = Checksum::of_format(format) else {
        return Err(HeaderError::UnknownFormat(format));
    };
    if u32::from(bytes[7]) != format {
        return Err(HeaderError::FormatMismatch {
            magic: bytes[7],
            format,
        });
    }
    let segment_bytes = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    if !(SEGMENT_MIN..=SEGMENT_MAX).contains(&segment_bytes) || !segment_bytes.is_multiple_of(16) {
        return Err(HeaderError::BadSize(segment_bytes));
    }
    let first_seq = u64::from_le_bytes(bytes[24..32].try_into().unwrap_or_default());
    if !(1..=SEQ_MAX).contains(&first_seq) {
        return Err(HeaderError::BadFirstSeq(first_seq));
    }
    Ok(SegmentHeader {
        segment_bytes,
        first_seq,
        checksum,
        format,
    })
}

/// The checksum of a record: header fields after `len`, `len` itself, the
/// payload.
#[inline]
pub fn checksum(sum: Checksum, header: &[u8], len: u32, payload: &[u8]) -> u32 {
    match sum {
        Checksum::Crc32c => crc32c_record(header, len, payload),
        Checksum::Crc32 => {
            let mut h = crc32fast::Hasher::new();
            h.update(&header[4..24]);
            h.update(&len.to_le_bytes());
            h.update(payload);
            h.finalize()
        }
    }
}

/// CRC-32C of the concatenation of `parts`: the same value as the `crc32c`
/// crate's, which is the fallback. On x86-64 with SSE 4.2 it is a plain loop of
/// the `crc32` instruction, 8 bytes each: the crate's own path is built for long
/// buffers (three interleaved streams, alignment prologues) and cost about 120
/// instructions of set-up per call on a record's 20-, 4- and 96-byte parts, more
/// than the IEEE CRC it replaced.
#[inline]
fn crc32c_parts(parts: &[&[u8]]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2 (checked just above), the only
        // requirement of the `target_feature` function; it reads only `parts`.
        return unsafe { crc32c_sse42(parts) };
    }
    parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p))
}

/// `crc32c_parts(&[&header[4..24], &len.to_le_bytes(), payload])`, with the
/// 24 bytes before the payload in four instructions rather than two trips
/// through the general loop (a record's checksum was a quarter of an append).
#[inline]
fn crc32c_record(header: &[u8], len: u32, payload: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        if let Ok(h) = <&[u8; 24]>::try_from(&header[..24]) {
            // SAFETY: the CPU has SSE 4.2 (checked just above), the only
            // requirement of the `target_feature` function; it reads only its
            // arguments.
            return unsafe { crc32c_record_sse42(h, len, payload) };
        }
    }
    crc32c_parts(&[&header[4..24], &len.to_le_bytes(), payload])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_record_sse42(h: &[u8; 24], len: u32, payload: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u32, _mm_crc32_u64};
    let word = |i: usize| {
        u64::from_le_bytes([
            h[i],
            h[i + 1],
            h[i + 2],
            h[i + 3],
            h[i + 4],
            h[i + 5],
            h[i + 6],
            h[i + 7],
        ])
    };
    let mut c = _mm_crc32_u64(u64::from(u32::MAX), word(4));
    c = _mm_crc32_u64(c, word(12));
    let mut c = _mm_crc32_u32(c as u32, u32::from_le_bytes([h[20], h[21], h[22], h[23]]));
    c = _mm_crc32_u32(c, len);
    !crc32c_sse42_from(c, payload)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_sse42(parts: &[&[u8]]) -> u32 {
    let mut c = u32::MAX;
    for part in parts {
        c = crc32c_sse42_from(c, part);
    }
    !c
}

/// The running (not inverted) CRC-32C state `c` over `data`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
#[inline]
fn crc32c_sse42_from(c: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let (words, tail) = data.as_chunks::<8>();
    let mut w = u64::from(c);
    for word in words {
        w = _mm_crc32_u64(w, u64::from_le_bytes(*word));
    }
    let mut c = w as u32;
    for &b in tail {
        c = _mm_crc32_u8(c, b);
    }
    c
}

/// One complete record, borrowed from a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub seq: u64,
    pub kind: u16,
    pub schema: u16,
    pub ts: u64,
    pub payload: &'a [u8],
}

/// What is at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A complete, checked record, which takes `span` sequence numbers (`row`);
    /// the next record starts at `next`.
    Record {
        rec: RecordRef<'a>,
        next: usize,
        span: u64,
    },
    /// Nothing written here (yet).
    Empty,
    /// The end-of-segment marker, or no room left for a record header.
    End,
    /// Not a valid record: why.
    Corrupt(String),
}

/// The bytes of one segment as the scan sees them: an ordinary slice (a fuzz
/// input, the writer's own mapping), or a shared read-only mapping of a file that
/// a writer in another process (or thread) may be appending to.
///
/// For the second, no `&[u8]` may cover bytes that can still change under it, so
/// a `View` holds a raw pointer and hands out slices only of bytes that are final:
/// the segment header (written before the file got its name) and records whose
/// commit word was seen (written before it, never again while the journal is in
/// use). The commit word itself is only ever loaded atomically.
#[derive(Clone, Copy)]
pub struct View<'a> {
    ptr: *const u8,
    len: usize,
    _bytes: PhantomData<&'a [u8]>,
}

impl<'a> From<&'a [u8]> for View<'a> {
    fn from(bytes: &'a [u8]) -> View<'a> {
        View {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            _bytes: PhantomData,
        }
    }
}

impl<'a> From<&'a Vec<u8>> for View<'a> {
    fn from(bytes: &'a Vec<u8>) -> View<'a> {
        View::from(bytes.as_slice())
    }
}

impl<'a> View<'a> {
    /// A view of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For all of `'a`: `ptr` is valid for reads of `len` bytes; the only writes
    /// to them are a journal writer's, which writes a record's bytes, then
    /// publishes its commit word with a release store (`commit_len`), and never
    /// writes a committed record or the segment header again.
    pub unsafe fn from_raw(ptr: *const u8, len: usize) -> View<'a> {
        View {
            ptr,
            len,
            _bytes: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `len` bytes from `off`, which the caller has established are final (see
    /// the type's doc): the header, or a record whose commit word it loaded.
    fn final_bytes(&self, off: usize, len: usize) -> &'a [u8] {
        assert!(
            off <= self.len && len <= self.len - off,
            "{off}+{len} out of {}",
            self.len
        );
        // SAFETY: in bounds (asserted above) of memory valid for reads for 'a
        // (`from_raw`'s contract, or a borrowed slice); the caller only asks for
        // bytes no one writes any more while 'a lasts, so the shared slice is
        // never aliased by a write.
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) }
    }

    /// The commit word at `off` (little-endian), with acquire semantics: once a
    /// non-zero word is seen, every byte of the record written before the
    /// writer's release store of it is visible (across processes too: they
    /// share the physical page).
    fn commit_word(&self, off: usize) -> u32 {
        assert!(
            off <= self.len && self.len - off >= 4,
            "commit word out of bounds"
        );
        // SAFETY: in bounds (asserted above) of memory valid for reads for 'a.
        let ptr = unsafe { self.ptr.add(off) };
        if !ptr.cast::<u32>().is_aligned() {
            // Only bytes that are not a mapping (a fuzz input in a `Vec`) are
            // misaligned here, and nobody writes those concurrently.
            // SAFETY: 4 readable bytes (above), read without a reference.
            let b = unsafe { std::ptr::read_unaligned(ptr.cast::<[u8; 4]>()) };
            return u32::from_le_bytes(b);
        }
        // SAFETY: `ptr` is 4-byte aligned (checked above) and valid for reads of
        // 4 bytes for as long as this borrow; `AtomicU32` has the size and
        // alignment of `u32`. The memory may be a read-only mapping, so this is
        // not `AtomicU32::from_ptr` (whose contract wants memory valid for
        // writes) but a shared reference used for one `Relaxed` load only: the
        // standard library documents (`core::sync::atomic`, "Atomic accesses to
        // read-only memory") that relaxed loads of at most the target's register
        // width work on read-only memory and are not undefined behaviour. The
        // only concurrent access is the writer's atomic store of the same word
        // (same size), so there is no data race. The acquire ordering the scan
        // needs comes from the fence below.
        let word = unsafe { &*ptr.cast::<AtomicU32>() }.load(Ordering::Relaxed);
        if word != 0 {
            // A relaxed load that reads a release store, followed by an acquire
            // fence, synchronises with that store (the fence-to-atomic rule).
            fence(Ordering::Acquire);
        }
        u32::from_le(word)
    }
}

/// Publishes the commit word at `off` of a writable mapping: a release store, so
/// every byte of the record written before it is visible to a reader that loads
/// the word (then fences with acquire) and sees it.
pub(crate) fn commit_len(bytes: &mut [u8], off: usize, commit: u32) {
    let dst = &mut bytes[off..off + 4];
    let ptr = dst.as_mut_ptr().cast::<u32>();
    assert!(
        ptr.is_aligned(),
        "record offsets in a mapping are 16-byte aligned"
    );
    // SAFETY: `ptr` points to 4 bytes of a read-write mapping (or buffer) that we
    // borrow exclusively for this call (bounds checked by the slice above), so it
    // is valid for reads and writes as `from_ptr` requires; it is 4-byte aligned
    // (asserted above) and `AtomicU32` has the size and alignment of `u32`.
    // Readers elsewhere only ever load this word atomically, with the same size.
    let word = unsafe { AtomicU32::from_ptr(ptr) };
    word.store(commit.to_le(), Ordering::Release);
}

/// The header of the segment in `view`.
pub fn view_header(view: View<'_>) -> Result<SegmentHeader, HeaderError> {
    // The header is final: written before the file got its segment name.
    parse_header(view.final_bytes(0, view.len().min(SEGMENT_HEADER)))
}

/// The record at `off` of a segment held in `bytes`, which must be `expect_seq`.
pub fn step<'a>(bytes: impl Into<View<'a>>, off: usize, expect_seq: u64) -> Step<'a> {
    let view = bytes.into();
    if !off.is_multiple_of(16) || off < SEGMENT_HEADER {
        return Step::Corrupt(format!(
            "record offset {off} is not 16-byte aligned past the header"
        ));
    }
    if off > view.len() || view.len() - off < RECORD_HEADER {
        // No record header fits: the segment is full, as if it ended with a marker.
        return Step::End;
    }
    let commit = view.commit_word(off);
    if commit == 0 {
        return Step::Empty;
    }
    if commit == END {
        let h = view.final_bytes(off, RECORD_HEADER);
        return if u16::from_le_bytes([h[4], h[5]]) == END_KIND {
            Step::End
        } else {
            Step::Corrupt("end marker with a wrong kind".into())
        };
    }
    let len = commit - 1;
    let total = record_bytes(len as usize);
    if total > view.len() - off {
        return Step::Corrupt(format!("record length {len} runs past the segment end"));
    }
    // Committed (the word was seen, with acquire): these bytes are final.
    let h = view.final_bytes(off, RECORD_HEADER);
    let kind = u16::from_le_bytes([h[4], h[5]]);
    let schema = u16::from_le_bytes([h[6], h[7]]);
    let seq = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    let ts = u64::from_le_bytes(h[16..24].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(h[24..28].try_into().unwrap_or_default());
    if seq != expect_seq {
        return Step::Corrupt(format!("sequence {seq} where {expect_seq} was expected"));
    }
    let payload = view.final_bytes(off + RECORD_HEADER, len as usize);
    if checksum(Checksum::of_view(view), h, len, payload) != crc {
        return Step::Corrupt(format!("checksum mismatch in record {seq}"));
    }
    let Some(span) = span_of(kind, len as usize) else {
        return Step::Corrupt(format!(
            "row record {seq} of {len} bytes is not a whole number of {}-byte rows",
            row_bytes(kind).unwrap_or_default()
        ));
    };
    Step::Record {
        rec: RecordRef {
            seq,
            kind,
            schema,
            ts,
            payload,
        },
        next: off + total,
        span,
    }
}

/// The record at `off` as `step` found it before, without checking its
/// checksum again (its bytes are final once committed): for a reader that
/// hands on a row record's rows one call at a time. `None` where no committed
/// record fits.
pub fn record_again<'a>(bytes: impl Into<View<'a>>, off: usize) -> Option<RecordRef<'a>> {
    let view = bytes.into();
    if off < SEGMENT_HEADER || off > view.len() || view.len() - off < RECORD_HEADER {
        return None;
    }
    let commit = view.commit_word(off);
    if commit == 0 || commit == END || record_bytes((commit - 1) as usize) > view.len() - off {
        return None;
    }
    let h = view.final_bytes(off, RECORD_HEADER);
    Some(RecordRef {
        kind: u16::from_le_bytes([h[4], h[5]]),
        schema: u16::from_le_bytes([h[6], h[7]]),
        seq: u64::from_le_bytes(h[8..16].try_into().unwrap_or_default()),
        ts: u64::from_le_bytes(h[16..24].try_into().unwrap_or_default()),
        payload: view.final_bytes(off + RECORD_HEADER, (commit - 1) as usize),
    })
}

/// The first valid record (length in bounds, checksum holds, a sequence from
/// `min_seq` on that this segment could hold) at a 16-byte aligned offset after
/// `bad`, where a scan expecting `min_seq` found no record or a bad one.
/// `Some((offset, seq))` means the bad spot is DAMAGE in the middle of history;
/// `None` means nothing valid follows it: a torn tail.
///
/// Why this is the line between the two: the writer writes a record's bytes,
/// then its commit word with a release store, one record after the other, so a
/// crash mid-append leaves at most one record with no commit word (its bytes
/// partly written) and nothing after it; a power loss loses pages at the end that
/// were never flushed. Neither leaves a checksummed record *after* a bad one, but
/// a flipped bit or a zeroed page in the middle of a segment does, and cutting
/// there would throw away valid history the engine acted upon.
pub fn next_valid<'a>(
    bytes: impl Into<View<'a>>,
    bad: usize,
    min_seq: u64,
) -> Option<(usize, u64)> {
    let view = bytes.into();
    // Each sequence number takes at least `RECORD_HEADER` bytes (a record's
    // header, or a row, at least as long), so a segment of `len` bytes holds fewer
    // than `len / RECORD_HEADER`: a record whose sequence is further on cannot
    // be ours.
    let max_seq = min_seq.saturating_add((view.len() / RECORD_HEADER) as u64);
    let start = bad.max(SEGMENT_HEADER - 16).next_multiple_of(16) + 16;
    let last = view.len().checked_sub(RECORD_HEADER)?;
    (start..=last)
        .step_by(16)
        .find_map(|off| valid_record_at(view, off, min_seq, max_seq).map(|seq| (off, seq)))
}

/// The sequence of a checksummed record at `off` whose sequence is in `min..=max`
/// and that `step` would read: a row record of whole rows, no part row.
fn valid_record_at(view: View<'_>, off: usize, min: u64, max: u64) -> Option<u64> {
    let commit = view.commit_word(off);
    if commit == 0 || commit == END {
        return None;
    }
    let len = commit - 1;
    if record_bytes(len as usize) > view.len() - off {
        return None;
    }
    let h = view.final_bytes(off, RECORD_HEADER);
    let seq = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    if !(min..=max).contains(&seq) {
        return None;
    }
    span_of(u16::from_le_bytes([h[4], h[5]]), len as usize)?;
    let crc = u32::from_le_bytes(h[24..28].try_into().unwrap_or_default());
    let payload = view.final_bytes(off + RECORD_HEADER, len as usize);
    (checksum(Checksum::of_view(view), h, len, payload) == crc).then_some(seq)
}

/// Offset of record `seq` in the segment held in `bytes` (which starts at
/// `first_seq`; for a row's sequence, the row record's), if every record before
/// it is good: where a repair or a damage test points.
pub fn offset_of<'a>(bytes: impl Into<View<'a>>, first_seq: u64, seq: u64) -> Option<usize> {
    let view = bytes.into();
    let scan = scan(view, SEGMENT_HEADER, first_seq);
    let (mut off, mut s) = (SEGMENT_HEADER, first_seq);
    while s < seq.min(scan.next_seq) {
        match step(view, off, s) {
            // A sequence inside a row record is at the record's offset.
            Step::Record { next, span, .. } if s + span <= seq => (off, s) = (next, s + span),
            Step::Record { .. } => return Some(off),
            _ => return None,
        }
    }
    (seq <= scan.next_seq).then_some(off)
}

/// How a scan of a segment's records ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// An end marker, or no room for another record header: the segment is done.
    Sealed,
    /// Nothing committed at `end` and no valid record after it: where the writer
    /// appends next (bytes of an append cut short may lie there).
    Open,
    /// A bad record at `end` and nothing valid after it: a torn tail.
    Torn { reason: String },
    /// No record or a bad one at `end`, and a valid record further on: damage.
    Damaged {
        reason: String,
        resume: usize,
        resume_seq: u64,
    },
}

/// The records of a segment from `off` on, expecting `seq` first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Records read.
    pub records: u64,
    /// Offset just past the last good record: where the scan stopped.
    pub end: usize,
    /// The sequence the next record would have.
    pub next_seq: u64,
    pub stop: Stop,
}

/// The one checked walk over a segment: every good record from `off`, then why
/// it stopped, telling a torn tail from damage (`next_valid`).
pub fn scan<'a>(bytes: impl Into<View<'a>>, mut off: usize, mut seq: u64) -> Scan {
    let view = bytes.into();
    let mut records = 0;
    loop {
        let bad = match step(view, off, seq) {
            Step::Record { next, span, .. } => {
                off = next;
                seq += span;
                records += 1;
                continue;
            }
            Step::End => None,
            Step::Empty => Some(None),
            Step::Corrupt(reason) => Some(Some(reason)),
        };
        let stop = match bad.map(|reason| (reason, next_valid(view, off, seq))) {
            None => Stop::Sealed,
            Some((reason, Some((resume, resume_seq)))) => Stop::Damaged {
                reason: reason
                    .unwrap_or_else(|| format!("no record where sequence {seq} belongs (zeroed?)")),
                resume,
                resume_seq,
            },
            Some((None, None)) => Stop::Open,
            Some((Some(reason), None)) => Stop::Torn { reason },
        };
        return Scan {
            records,
            end: off,
            next_seq: seq,
            stop,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip_and_reject_strangers() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert_eq!(parse_file_name("42.fcj"), None);
        assert_eq!(parse_file_name("0000000000000000004x.fcj"), None);
        assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
        assert_eq!(parse_file_name(&file_name(0)), None);
        assert_eq!(parse_file_name(&file_name(u64::MAX)), None);
    }

    #[test]
    fn header_checks() {
        let h = encode_header(1 << 20, 7);
        assert_eq!(
            parse_header(&h),
            Ok(SegmentHeader {
                segment_bytes: 1 << 20,
                first_seq: 7,
                checksum: Checksum::Crc32c,
                format: FORMAT,
            })
        );
        assert_eq!(parse_header(&[0u8; 64]), Err(HeaderError::Unwritten));
        assert_eq!(parse_header(&h[..10]), Err(HeaderError::Unwritten));
        let mut bad = h;
        bad[8] = 9;
        assert_eq!(parse_header(&bad), Err(HeaderError::UnknownFormat(9)));
        bad = h;
        bad[0] = b'X';
        assert_eq!(parse_header(&bad), Err(HeaderError::BadMagic));
        assert_eq!(
            parse_header(&encode_header(1 << 20, 0)),
            Err(HeaderError::BadFirstSeq(0))
        );
    }

    /// The SSE 4.2 loop against the `crc32c` crate (its fallback, and the
    /// definition) on every split of inputs of every length up to 100 bytes, and
    /// the standard check value.
    #[test]
    fn crc32c_parts_matches_the_crate_on_every_split() {
        assert_eq!(crc32c_parts(&[b"123456789"]), 0xE306_9283);
        let data: Vec<u8> = (0..100u32).map(|i| (i * 151 + 7) as u8).collect();
        for n in 0..=data.len() {
            let whole = crc32c::crc32c(&data[..n]);
            for a in 0..=n {
                for b in [a, (a + n) / 2, n] {
                    let parts = [&data[..a], &data[a..b], &data[b..n]];
                    assert_eq!(crc32c_parts(&parts), whole, "n {n}, split {a} {b}");
                }
            }
        }
    }

    /// The record checksum's fast path is the definition: CRC-32C of the
    /// header's bytes 4..24, the length, the payload.
    #[test]
    fn crc32c_record_is_crc32c_of_its_parts() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 97 + 3) as u8).collect();
        for n in 0..=150 {
            let (h, p) = (&data[..32], &data[32..32 + n]);
            let want = crc32c::crc32c_append(
                crc32c::crc32c_append(crc32c::crc32c(&h[4..24]), &(n as u32).to_le_bytes()),
                p,
            );
            assert_eq!(checksum(Checksum::Crc32c, h, n as u32, p), want, "n {n}");
        }
    }

    /// A segment in a 16-byte aligned buffer, records committed with
    /// `commit_len`, read back through `View::from_raw` the way the reader reads
    /// a mapping (runs under Miri: no file, no mmap).
    /// Writes a record of `kind` with `payload` at `off` of `bytes`, committed;
    /// returns the offset after it.
    fn put(bytes: &mut [u8], off: usize, kind: u16, seq: u64, payload: &[u8]) -> usize {
        let len = payload.len();
        bytes[off + 4..off + 6].copy_from_slice(&kind.to_le_bytes());
        bytes[off + 8..off + 16].copy_from_slice(&seq.to_le_bytes());
        bytes[off + RECORD_HEADER..off + RECORD_HEADER + len].copy_from_slice(payload);
        let crc = {
            let (h, p) = bytes[off..].split_at(RECORD_HEADER);
            checksum(Checksum::Crc32c, h, len as u32, &p[..len])
        };
        bytes[off + 24..off + 28].copy_from_slice(&crc.to_le_bytes());
        commit_len(bytes, off, len as u32 + 1);
        off + record_bytes(len)
    }

    /// A row record takes a sequence number a row: the scan, `step`, `row`,
    /// `offset_of` and `record_again` all count them; a row record that is not
    /// whole rows is damage, not a record.
    #[test]
    fn row_records_take_a_sequence_a_row() {
        let mut bytes = vec![0u8; 4096];
        bytes[..SEGMENT_HEADER].copy_from_slice(&encode_header(4096, 10));
        let rows: Vec<u8> = (0..3 * PAIR_ROW_BYTES)
            .map(|i| (i / PAIR_ROW_BYTES) as u8 + 1)
            .collect();
        let a = put(&mut bytes, SEGMENT_HEADER, 7, 10, b"one");
        let b = put(&mut bytes, a, PAIR_ROWS_KIND, 11, &rows);
        let c = put(&mut bytes, b, 7, 14, b"after");
        let scan = scan(&bytes[..], SEGMENT_HEADER, 10);
        assert_eq!((scan.records, scan.next_seq, scan.end), (3, 15, c));
        assert_eq!(scan.stop, Stop::Open);
        let Step::Record { rec, next, span } = step(&bytes[..], a, 11) else {
            panic!("the row record");
        };
        assert_eq!((span, next, rec.payload.len()), (3, b, 3 * PAIR_ROW_BYTES));
        for i in 0..3 {
            let r = row(&rec, span, i);
            assert_eq!(
                (r.seq, r.kind, r.payload),
                (
                    11 + i,
                    PAIR_ROWS_KIND,
                    &rows[i as usize * PAIR_ROW_BYTES..][..PAIR_ROW_BYTES]
                )
            );
        }
        assert_eq!(record_again(&bytes[..], a), Some(rec));
        assert_eq!(
            offset_of(&bytes[..], 10, 12),
            Some(a),
            "a row's sequence is at its record"
        );
        assert_eq!(offset_of(&bytes[..], 10, 14), Some(b));
        assert_eq!(offset_of(&bytes[..], 10, 15), Some(c));
        // A row record of 2.5 rows: its checksum holds, its length does not.
        let mut torn = vec![0u8; 4096];
        torn[..SEGMENT_HEADER].copy_from_slice(&encode_header(4096, 1));
        put(
            &mut torn,
            SEGMENT_HEADER,
            PAIR_ROWS_KIND,
            1,
            &rows[..PAIR_ROW_BYTES * 5 / 2],
        );
        match step(&torn[..], SEGMENT_HEADER, 1) {
            Step::Corrupt(why) => assert!(why.contains("whole number"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(span_of(PAIR_ROWS_KIND, 0), None);
        assert_eq!(span_of(EXEC_ROWS_KIND, 128), Some(2));
        assert_eq!(span_of(EXEC_ROWS_KIND, 80), None);
        assert_eq!(span_of(7, 5), Some(1));
    }

    #[test]
    fn regression_view_over_raw_bytes_reads_only_committed_records() {
        let mut buf = vec![0u128; 4096 / 16];
        // SAFETY: the Vec's 4096 initialised bytes, borrowed mutably for this scope.
        let bytes: &mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), 4096) };
        bytes[..SEGMENT_HEADER].copy_from_slice(&encode_header(4096, 1));
        let mut off = SEGMENT_HEADER;
        for seq in 1..=3u64 {
            let len = seq as usize * 5;
            bytes[off + 8..off + 16].copy_from_slice(&seq.to_le_bytes());
            bytes[off + RECORD_HEADER..off + RECORD_HEADER + len].fill(seq as u8);
            let crc = {
                let (h, p) = bytes[off..].split_at(RECORD_HEADER);
                checksum(Checksum::Crc32c, h, len as u32, &p[..len])
            };
            bytes[off + 24..off + 28].copy_from_slice(&crc.to_le_bytes());
            if seq < 3 {
                commit_len(bytes, off, len as u32 + 1);
            }
            off += record_bytes(len);
        }
        // SAFETY: 4096 readable bytes that nothing writes while `view` lives.
        let view = unsafe { View::from_raw(buf.as_ptr().cast::<u8>(), 4096) };
        assert_eq!(view_header(view).map(|h| h.first_seq), Ok(1));
        let scan = scan(view, SEGMENT_HEADER, 1);
        assert_eq!((scan.records, scan.next_seq), (2, 3));
        // Record 3 is written but not committed: not read, and not damage.
        assert_eq!(scan.stop, Stop::Open);
        match step(view, SEGMENT_HEADER, 1) {
            Step::Record { rec, .. } => assert_eq!(rec.payload, &[1u8; 5]),
            other => panic!("{other:?}"),
        }
        // A misaligned view (a fuzz input) reads the word without an atomic.
        let copy: Vec<u8> = std::iter::once(0)
            .chain(buf.iter().flat_map(|w| w.to_ne_bytes()))
            .collect();
        assert_eq!(View::from(&copy[1..]).commit_word(SEGMENT_HEADER), 6);
    }
}
