//! The body of the `record_reader` fuzz target, callable from tests on stable too:
//! arbitrary bytes as a segment, scanned and decoded in memory, then written as the
//! only segment file of a journal and put through the reader, the tailer and
//! recovery (which must tell a torn tail, cut, from damage, refused with the disk
//! unchanged). Must never panic; panics on a broken invariant.

use crate::error::JournalError;
use crate::reader::JournalReader;
use crate::record::decode;
use crate::segment::{self, Step, SEGMENT_HEADER};
use crate::tail::Tailer;
use crate::writer::{Durability, JournalOptions, JournalWriter};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Inputs whose header asks for a bigger segment skip the file checks: recovery
/// would extend the file to that size, which is slow and proves nothing more.
const FILE_CHECK_SEGMENT_MAX: u64 = 1 << 20;

/// Returns how many records decoded, so the optimiser cannot drop the work.
pub fn fuzz_one(data: &[u8]) -> usize {
    let first_seq = segment::parse_header(data)
        .map(|h| h.first_seq)
        .unwrap_or(1);
    let mut off = SEGMENT_HEADER;
    let mut seq = first_seq;
    let mut decoded = 0;
    let mut records = 0;
    // Each step advances at least one record header, so this is bounded by the size.
    while off < data.len() {
        match segment::step(data, off, seq) {
            Step::Record { rec, next, span } => {
                for i in 0..span {
                    let row = segment::row(&rec, span, i);
                    if decode(row.kind, row.schema, row.payload).is_ok() {
                        decoded += 1;
                    }
                }
                records += 1;
                off = next;
                seq = seq.wrapping_add(span);
            }
            _ => break,
        }
    }
    // The scan with its torn-tail-or-damage decision (the probe past a bad
    // record reads every aligned offset after it).
    let scan = segment::scan(data, SEGMENT_HEADER, first_seq);
    assert_eq!(scan.records, records, "the scan reads what stepping reads");
    if let segment::Stop::Damaged {
        resume, resume_seq, ..
    } = scan.stop
    {
        assert!(resume > scan.end && resume_seq >= scan.next_seq);
        assert!(matches!(
            segment::step(data, resume, resume_seq),
            Step::Record { .. }
        ));
    }
    // Payload decoding on its own, for inputs that are not segments at all.
    for kind in crate::record::Kind::ALL.map(|k| k as u16) {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(data);
        if decode(kind, crate::record::SCHEMA, &aligned).is_ok() {
            decoded += 1;
        }
    }
    check_as_journal(data);
    decoded
}

/// (seq, kind, schema, ts, payload) of a record read back.
type Owned = (u64, u16, u16, u64, Vec<u8>);

/// Writes `data` as the segment file of a fresh journal directory and checks: the
/// reader yields consecutive, aligned records and at most one error, last; the
/// tailer yields the same records; recovery keeps exactly those records, after
/// which the journal reads without error and appending continues the sequence.
fn check_as_journal(data: &[u8]) {
    static DIRS: AtomicU64 = AtomicU64::new(0);
    let header = segment::parse_header(data);
    if header
        .as_ref()
        .is_ok_and(|h| h.segment_bytes > FILE_CHECK_SEGMENT_MAX)
    {
        return;
    }
    let name_seq = header.map(|h| h.first_seq).unwrap_or(1);
    let dir = std::env::temp_dir().join(format!(
        "fillcast-fuzz-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("fuzz temp dir");
    std::fs::write(dir.join(segment::file_name(name_seq)), data).expect("fuzz segment");
    check_dir(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_dir(dir: &Path) {
    let Some((before, error_before)) = read_all(dir) else {
        // The reader refused a segment: recovery must not panic either.
        let _ = JournalWriter::open(dir, options());
        return;
    };
    let tailed = tail_all(dir, before.len() + 2);
    assert_eq!(tailed, before, "the tailer reads what the reader reads");
    let damaged = JournalReader::open(dir)
        .ok()
        .and_then(|r| r.summary().ok())
        .is_some_and(|s| !s.problems.is_empty());
    let files = snapshot(dir);
    let (mut writer, recovery) = match JournalWriter::open(dir, options()) {
        Ok(opened) => opened,
        // Damage (a bad record with valid ones after it) is refused, never cut:
        // the disk is left as it was, and the reader saw it too.
        Err(JournalError::Damaged { .. }) => {
            assert_eq!(snapshot(dir), files, "refusing to open changes nothing");
            assert!(
                error_before.is_some() || damaged,
                "the writer found damage the reader did not"
            );
            return;
        }
        Err(_) => return,
    };
    assert!(
        error_before.is_none() || !damaged,
        "the writer cut what the reader calls damage: {error_before:?}"
    );
    assert_eq!(recovery.last_seq, writer.written_seq());
    let (after, error_after) = read_all(dir).expect("a recovered journal opens");
    assert_eq!(after, before, "recovery keeps exactly what the reader read");
    assert!(
        error_after.is_none(),
        "a recovered journal reads without error (before: {error_before:?})"
    );
    let seq = writer
        .append(1, 1, 0, b"after recovery")
        .expect("append after recovery");
    assert_eq!(seq, recovery.last_seq + 1);
    drop(writer);
    let (again, error_again) = read_all(dir).expect("reopens");
    assert_eq!((again.len(), error_again), (after.len() + 1, None));
    assert_eq!(again.last().map(|r| r.0), Some(seq));
}

/// Every file of `dir`, by name.
/// The journal's files and their bytes; not the (empty) lock file, which opening
/// makes and which holds nothing of the journal.
fn snapshot(dir: &Path) -> BTreeMap<std::ffi::OsString, Vec<u8>> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != crate::writer::LOCK_FILE)
        .map(|e| (e.file_name(), std::fs::read(e.path()).unwrap_or_default()))
        .collect()
}

fn options() -> JournalOptions {
    JournalOptions {
        segment_bytes: segment::SEGMENT_MIN,
        durability: Durability::Never,
    }
}

/// Every record from the start, and the error that ended the read, if any;
/// `None` if the reader refused to open.
fn read_all(dir: &Path) -> Option<(Vec<Owned>, Option<String>)> {
    let reader = JournalReader::open(dir).ok()?;
    let mut records: Vec<Owned> = Vec::new();
    let mut iter = reader.iter_from(0);
    let mut error = None;
    for item in iter.by_ref() {
        match item {
            Ok(r) => {
                assert_eq!(r.payload.as_ptr() as usize % 16, 0, "aligned payload");
                if let Some(last) = records.last() {
                    assert_eq!(r.seq, last.0 + 1, "consecutive sequences");
                }
                records.push((r.seq, r.kind, r.schema, r.ts, r.payload.to_vec()));
            }
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    assert!(iter.next().is_none(), "nothing after the end or an error");
    let _ = reader.summary();
    Some((records, error))
}

fn tail_all(dir: &Path, polls_max: usize) -> Vec<Owned> {
    let mut out = Vec::new();
    let Ok(mut tailer) = Tailer::open(dir, 1) else {
        return out;
    };
    for _ in 0..polls_max {
        match tailer.poll_with(|r| (r.seq, r.kind, r.schema, r.ts, r.payload.to_vec())) {
            Ok(Some(r)) => out.push(r),
            Ok(None) | Err(_) => break,
        }
    }
    out
}
