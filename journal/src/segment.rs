//! The on-disk format of one segment file, and the scan over its bytes that the
//! reader, the tailer, recovery and the fuzz target all share.
//!
//! ```text
//! segment  = header (64 bytes) record* [end marker] zeros
//! header   = magic "FCJRNL\0\x01" | format u32 | 0 u32 | segment bytes u64 | first seq u64 | zeros
//! record   = commit u32 | kind u16 | schema u16 | seq u64 | ts u64 | crc32 u32 | 0 u32 | payload | pad to 16
//! ```
//!
//! All integers little-endian. `commit` = payload length + 1, written last with a
//! release store (an `AtomicU32` in the map): a record whose `commit` is 0 is not
//! there yet (so an empty payload is still a record). `commit == END` marks the end
//! of the segment, and so does an offset where no record header fits any more; the
//! next segment is named by the next sequence number. Payloads start 16-byte
//! aligned (the map is page aligned, the header is 64 bytes, records are padded to
//! 16), as rkyv needs.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

pub const MAGIC: [u8; 8] = *b"FCJRNL\0\x01";
pub const FORMAT: u32 = 1;
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
    let mut h = [0u8; SEGMENT_HEADER];
    h[..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    h[16..24].copy_from_slice(&segment_bytes.to_le_bytes());
    h[24..32].copy_from_slice(&first_seq.to_le_bytes());
    h
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment_bytes: u64,
    pub first_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than a header, or all zeros: a segment whose creation was cut short.
    Unwritten,
    BadMagic,
    UnknownFormat(u32),
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
                    "segment format {v} is not one this build reads (it reads {FORMAT})"
                )
            }
            HeaderError::BadSize(n) => write!(f, "implausible segment size {n}"),
            HeaderError::BadFirstSeq(n) => write!(f, "implausible first sequence {n}"),
        }
    }
}

pub fn parse_header(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
    if bytes.len() < SEGMENT_HEADER || bytes[..SEGMENT_HEADER].iter().all(|b| *b == 0) {
        return Err(HeaderError::Unwritten);
    }
    if bytes[..8] != MAGIC {
        return Err(HeaderError::BadMagic);
    }
    let format = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if format != FORMAT {
        return Err(HeaderError::UnknownFormat(format));
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
    })
}

/// CRC-32 of a record: header fields after `len`, `len` itself, the payload.
pub fn checksum(header: &[u8], len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[4..24]);
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
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
    /// A complete, checked record; the next one starts at `next`.
    Record { rec: RecordRef<'a>, next: usize },
    /// Nothing written here (yet).
    Empty,
    /// The end-of-segment marker, or no room left for a record header.
    End,
    /// Not a valid record: why.
    Corrupt(String),
}

/// Reads the commit word at `off` with acquire ordering, so that the rest of the
/// record, written before the writer's release store of it, is visible once it is
/// (also across processes sharing the file: they share the physical page).
fn committed_len(bytes: &[u8], off: usize) -> u32 {
    let b = &bytes[off..off + 4];
    let ptr = b.as_ptr();
    if !ptr.cast::<u32>().is_aligned() {
        // Only bytes that are not a mapping (a fuzz input in a `Vec`) are
        // misaligned here, and nobody writes those concurrently.
        return u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    // SAFETY: `ptr` points to 4 readable bytes (bounds checked by the slice above)
    // and is 4-byte aligned (checked above); `AtomicU32` has the size and alignment
    // of `u32`. The only concurrent access to these bytes is the writer's atomic
    // store in `commit_len` (through its own mapping, maybe in another process), and
    // this is a load, so it neither races nor writes through a shared reference.
    let word = unsafe { AtomicU32::from_ptr(ptr.cast::<u32>().cast_mut()) };
    u32::from_le(word.load(Ordering::Acquire))
}

/// Publishes the commit word at `off` of a writable mapping: a release store, so
/// every byte of the record written before it is visible to a reader that loads
/// the word with acquire ordering and sees it.
pub(crate) fn commit_len(bytes: &mut [u8], off: usize, commit: u32) {
    let dst = &mut bytes[off..off + 4];
    let ptr = dst.as_mut_ptr().cast::<u32>();
    assert!(
        ptr.is_aligned(),
        "record offsets in a mapping are 16-byte aligned"
    );
    // SAFETY: `ptr` points to 4 writable bytes we borrow exclusively (bounds checked
    // by the slice above) and is 4-byte aligned (asserted above); `AtomicU32` has the
    // size and alignment of `u32`. Readers elsewhere only load it atomically.
    let word = unsafe { AtomicU32::from_ptr(ptr) };
    word.store(commit.to_le(), Ordering::Release);
}

/// The record at `off` of a segment held in `bytes`, which must be `expect_seq`.
pub fn step(bytes: &[u8], off: usize, expect_seq: u64) -> Step<'_> {
    if !off.is_multiple_of(16) || off < SEGMENT_HEADER {
        return Step::Corrupt(format!(
            "record offset {off} is not 16-byte aligned past the header"
        ));
    }
    if off + RECORD_HEADER > bytes.len() {
        // No record header fits: the segment is full, as if it ended with a marker.
        return Step::End;
    }
    let commit = committed_len(bytes, off);
    if commit == 0 {
        return Step::Empty;
    }
    let h = &bytes[off..off + RECORD_HEADER];
    if commit == END {
        return if u16::from_le_bytes([h[4], h[5]]) == END_KIND {
            Step::End
        } else {
            Step::Corrupt("end marker with a wrong kind".into())
        };
    }
    let len = commit - 1;
    let total = record_bytes(len as usize);
    if total > bytes.len() - off {
        return Step::Corrupt(format!("record length {len} runs past the segment end"));
    }
    let kind = u16::from_le_bytes([h[4], h[5]]);
    let schema = u16::from_le_bytes([h[6], h[7]]);
    let seq = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
    let ts = u64::from_le_bytes(h[16..24].try_into().unwrap_or_default());
    let crc = u32::from_le_bytes(h[24..28].try_into().unwrap_or_default());
    if seq != expect_seq {
        return Step::Corrupt(format!("sequence {seq} where {expect_seq} was expected"));
    }
    let payload = &bytes[off + RECORD_HEADER..off + RECORD_HEADER + len as usize];
    if checksum(h, len, payload) != crc {
        return Step::Corrupt(format!("checksum mismatch in record {seq}"));
    }
    Step::Record {
        rec: RecordRef {
            seq,
            kind,
            schema,
            ts,
            payload,
        },
        next: off + total,
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
                first_seq: 7
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
}
