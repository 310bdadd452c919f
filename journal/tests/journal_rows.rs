//! Row records (segment format 3) against the journal's promises: every row is
//! an entry of its own, read once and in order from any sequence (inside a row
//! record too) by the reader and the tailer, across rolls and while the writer
//! appends; a row record cut short at the tail is cut and appending goes on at
//! its first row; a damaged one with valid records after it is refused, and
//! `walk`, `summary` and `repair` name all of its rows; no byte of one panics a
//! reader or recovery; a segment of an earlier format never gets one; and row
//! records that are not whole rows, empty or huge are refused, never read.

use crate::journal::segments;
use fillcast_journal::reader::Found;
use fillcast_journal::record::{decode, Entry, Kind};
use fillcast_journal::segment::{
    self, Checksum, EXEC_ROWS_KIND, EXEC_ROW_BYTES, PAIR_ROWS_KIND, PAIR_ROW_BYTES, RECORD_HEADER,
    SEGMENT_HEADER,
};
use fillcast_journal::{
    repair, Durability, JournalError, JournalOptions, JournalReader, JournalWriter, Tailer,
};
use std::path::{Path, PathBuf};

/// Small segments, so that a journal of a few hundred entries rolls often.
const SEG: u64 = 8192;

/// A plain (one-entry) record's kind in these journals.
const PLAIN: u16 = 3;

fn opts(segment_bytes: u64) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        durability: Durability::Never,
    }
}

/// (seq, kind, ts, payload) of an entry: a record, or a row of a row record.
type Rec = (u64, u16, u64, Vec<u8>);

/// What to append: a plain record of `n` payload bytes, or a row record of `n`
/// rows.
#[derive(Clone, Copy, Debug)]
struct Put {
    kind: u16,
    n: usize,
}

/// Bytes that differ from record to record and from row to row.
fn bytes(tag: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (tag.wrapping_mul(131) as usize + j * 7 + j / 64) as u8)
        .collect()
}

/// Appends `put` as record number `tag`; pushes the entries it makes onto
/// `expect` (a row record: one a row) and returns its first sequence.
fn append(w: &mut JournalWriter, put: Put, tag: u64, expect: &mut Vec<Rec>) -> u64 {
    let ts = 1000 + tag;
    let Some(row) = segment::row_bytes(put.kind) else {
        let p = bytes(tag, put.n);
        let seq = w.append(put.kind, 1, ts, &p).unwrap();
        expect.push((seq, put.kind, ts, p));
        return seq;
    };
    let p = bytes(tag, put.n * row);
    let seq = w
        .try_append_rows_with(put.kind, 1, ts, put.n, |buf| {
            buf.copy_from_slice(&p);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
    for (i, r) in p.chunks_exact(row).enumerate() {
        expect.push((seq + i as u64, put.kind, ts, r.to_vec()));
    }
    seq
}

/// A mix of plain records and row records of both kinds (1 to 12 rows), as a
/// seeded sequence.
fn mix(n: usize, seed: u64) -> Vec<Put> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 3 {
                0 => Put {
                    kind: PLAIN,
                    n: (x >> 8) as usize % 200,
                },
                1 => Put {
                    kind: PAIR_ROWS_KIND,
                    n: 1 + (x >> 8) as usize % 12,
                },
                _ => Put {
                    kind: EXEC_ROWS_KIND,
                    n: 1 + (x >> 8) as usize % 12,
                },
            }
        })
        .collect()
}

/// Writes `puts` into a new journal in `dir`; the entries it holds.
fn write(dir: &Path, segment_bytes: u64, puts: &[Put]) -> Vec<Rec> {
    let (mut w, _) = JournalWriter::open(dir, opts(segment_bytes)).unwrap();
    assert!(w.takes_rows());
    let mut expect = Vec::new();
    for (i, p) in puts.iter().enumerate() {
        append(&mut w, *p, i as u64, &mut expect);
    }
    expect
}

fn owned(r: fillcast_journal::RecordRef<'_>) -> Rec {
    (r.seq, r.kind, r.ts, r.payload.to_vec())
}

/// Every entry from `from` on, through the reader, which must end cleanly.
fn read_from(dir: &Path, from: u64) -> Vec<Rec> {
    let (out, torn) = read_to_tail(dir, from);
    assert_eq!(torn, None);
    out
}

/// Every entry from `from` on, through the reader, and the torn tail that
/// ended the read, if any.
fn read_to_tail(dir: &Path, from: u64) -> (Vec<Rec>, Option<String>) {
    let r = JournalReader::open(dir).unwrap();
    let mut it = r.iter_from(from);
    let out: Vec<Rec> = it.by_ref().map(|rec| owned(rec.unwrap())).collect();
    (out, it.torn_tail().map(str::to_string))
}

/// Every entry from `from` on, through a tailer, checking `next_seq` before
/// each one it hands on.
fn tail_from(dir: &Path, from: u64) -> Vec<Rec> {
    let mut t = Tailer::open(dir, from).unwrap();
    let mut out: Vec<Rec> = Vec::new();
    loop {
        let before = t.next_seq();
        let Some(rec) = t.poll_with(owned).unwrap() else {
            break;
        };
        assert_eq!(rec.0, before, "next_seq names the record polled next");
        out.push(rec);
    }
    out
}

fn first_seq_of(path: &Path) -> u64 {
    segment::parse_file_name(path.file_name().unwrap().to_str().unwrap()).unwrap()
}

/// Offset and first sequence of each record of the segment file at `path`.
fn record_offsets(path: &Path) -> Vec<(usize, u64, u64)> {
    let b = std::fs::read(path).unwrap();
    let (mut off, mut seq) = (SEGMENT_HEADER, first_seq_of(path));
    let mut out = Vec::new();
    while let segment::Step::Record { next, span, .. } = segment::step(&b[..], off, seq) {
        out.push((off, seq, span));
        off = next;
        seq += span;
    }
    out
}

/// Every file of the journal (not its lock file) and its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != fillcast_journal::writer::LOCK_FILE)
        .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
        .collect();
    v.sort();
    v
}

/// Writes a committed record with the given header fields and payload at `off`
/// of `b`, checksummed as format 3 does; returns the offset after it.
fn put_raw(b: &mut [u8], off: usize, kind: u16, seq: u64, payload: &[u8]) -> usize {
    let len = payload.len();
    b[off..off + RECORD_HEADER].fill(0);
    b[off + 4..off + 6].copy_from_slice(&kind.to_le_bytes());
    b[off + 8..off + 16].copy_from_slice(&seq.to_le_bytes());
    b[off + RECORD_HEADER..off + RECORD_HEADER + len].copy_from_slice(payload);
    let crc = segment::checksum(
        Checksum::Crc32c,
        &b[off..off + RECORD_HEADER],
        len as u32,
        &b[off + RECORD_HEADER..off + RECORD_HEADER + len],
    );
    b[off + 24..off + 28].copy_from_slice(&crc.to_le_bytes());
    b[off..off + 4].copy_from_slice(&(len as u32 + 1).to_le_bytes());
    off + segment::record_bytes(len)
}

/// From every sequence inside, at the edges of, before and past row records,
/// across segment rolls, the reader and a tailer opened there hand on exactly
/// the entries from that sequence on, once each, in order.
#[test]
fn every_start_inside_and_around_row_records_reads_the_rest_once_in_order() {
    let d = tempfile::tempdir().unwrap();
    let all = write(d.path(), SEG, &mix(120, 7));
    let last = all.last().unwrap().0;
    assert_eq!(
        all.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "a sequence an entry"
    );
    let segs = segments(d.path());
    assert!(segs.len() >= 4, "rolls: {}", segs.len());
    // Some segment starts with a row record, so a start at its first row is
    // also a start at a segment.
    assert!(segs.iter().any(|p| {
        let b = std::fs::read(p).unwrap();
        u16::from_le_bytes([b[SEGMENT_HEADER + 4], b[SEGMENT_HEADER + 5]]) != PLAIN
    }));
    for from in 0..=last + 2 {
        let want: Vec<Rec> = all.iter().filter(|r| r.0 >= from).cloned().collect();
        assert_eq!(read_from(d.path(), from), want, "iter_from({from})");
        assert_eq!(tail_from(d.path(), from), want, "Tailer::open(.., {from})");
    }
    let s = JournalReader::open(d.path()).unwrap().summary().unwrap();
    assert_eq!((s.records, s.first_seq, s.last_seq), (last, 1, last));
    assert!(s.problems.is_empty() && s.torn_tail.is_none(), "{s:?}");
    let rows = |k: u16| all.iter().filter(|r| r.1 == k).count() as u64;
    assert_eq!(s.by_kind[&PAIR_ROWS_KIND], rows(PAIR_ROWS_KIND));
    assert_eq!(s.by_kind[&EXEC_ROWS_KIND], rows(EXEC_ROWS_KIND));
    // Each segment's used bytes end at its last record.
    for (seg, p) in s.segments.iter().zip(&segs) {
        let recs = record_offsets(p);
        let (off, _, span) = *recs.last().unwrap();
        let b = std::fs::read(p).unwrap();
        let len = u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize - 1;
        assert!(span >= 1);
        assert_eq!(seg.bytes_used, (off + segment::record_bytes(len)) as u64);
    }
    // The reopened writer goes on after the last row.
    let (w, rec) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    assert_eq!(
        (rec.cut_reason, rec.last_seq, w.next_seq()),
        (None, last, last + 1)
    );
}

/// A tailer polling while the writer appends row records (in between appends,
/// and from another thread) gets every row once, in order, and nothing early.
#[test]
fn a_tailer_following_appends_of_row_records_gets_each_row_once() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    let mut t = Tailer::open(d.path(), 1).unwrap();
    let (mut expect, mut got) = (Vec::new(), Vec::new());
    for (i, p) in mix(200, 11).into_iter().enumerate() {
        append(&mut w, p, i as u64, &mut expect);
        // Some of what is there, then (every third append) all of it.
        for _ in 0..(i % 4) {
            if let Some(r) = t.poll_with(owned).unwrap() {
                got.push(r);
            }
        }
        if i % 3 == 0 {
            while let Some(r) = t.poll_with(owned).unwrap() {
                got.push(r);
            }
            assert_eq!(got, expect, "caught up after append {i}");
            assert_eq!(t.next_seq(), w.next_seq());
        }
        assert!(got.len() <= expect.len());
    }
    while let Some(r) = t.poll_with(owned).unwrap() {
        got.push(r);
    }
    assert_eq!(got, expect);
    assert!(segments(d.path()).len() >= 4);

    // A writer thread appending while a tailer (from inside a row record that is
    // not written yet) follows.
    let d2 = tempfile::tempdir().unwrap();
    let dir = d2.path().to_path_buf();
    let (mut w, _) = JournalWriter::open(&dir, opts(SEG)).unwrap();
    let puts = mix(600, 13);
    let writer = std::thread::spawn(move || {
        let mut expect = Vec::new();
        for (i, p) in puts.into_iter().enumerate() {
            append(&mut w, p, i as u64, &mut expect);
        }
        expect
    });
    let from = 40;
    let mut t = Tailer::open(d2.path(), from).unwrap();
    let mut got: Vec<Rec> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // Looked at before the poll: a writer done by then has nothing more.
        let done = writer.is_finished();
        match t.poll_with(owned).unwrap() {
            Some(r) => got.push(r),
            None if done => break,
            None => std::thread::yield_now(),
        }
        assert!(std::time::Instant::now() < deadline, "tailer stuck");
    }
    let expect = writer.join().unwrap();
    let want: Vec<Rec> = expect.into_iter().filter(|r| r.0 >= from).collect();
    assert_eq!(got, want);
    assert_eq!(tail_from(d2.path(), from), want);
}

/// The bytes the next append of `put` (record number `tag`) would write into
/// the journal in `dir`, where it would write them: found by making it in a copy.
fn next_record_bytes(dir: &Path, put: Put, tag: u64) -> (PathBuf, usize, Vec<u8>, u64) {
    let copy = tempfile::tempdir().unwrap();
    for p in segments(dir) {
        std::fs::copy(&p, copy.path().join(p.file_name().unwrap())).unwrap();
    }
    let (mut w, _) = JournalWriter::open(copy.path(), opts(SEG)).unwrap();
    let seq = append(&mut w, put, tag, &mut Vec::new());
    drop(w);
    assert_eq!(segments(copy.path()).len(), segments(dir).len(), "no roll");
    let p = segments(copy.path()).pop().unwrap();
    let (off, s, _) = *record_offsets(&p).last().unwrap();
    assert_eq!(s, seq);
    let b = std::fs::read(&p).unwrap();
    let n = RECORD_HEADER + put.n * segment::row_bytes(put.kind).unwrap();
    (
        dir.join(p.file_name().unwrap()),
        off,
        b[off..off + n].to_vec(),
        seq,
    )
}

/// How a row record at the tail was cut short.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    Crash,
    PowerLoss,
    FileCut,
}

/// A row record cut short at the tail, by a process crash (its bytes partly
/// written, its commit word never), a power loss (its commit word on disk,
/// pages of its rows not) or a file cut short inside it: recovery cuts exactly it, keeps everything before
/// it, and the reopened writer gives its first row's sequence to the next record.
#[test]
fn a_row_record_cut_short_at_the_tail_is_cut_and_appending_goes_on_at_its_first_row() {
    let puts = mix(40, 17);
    for put in [
        Put {
            kind: PAIR_ROWS_KIND,
            n: 7,
        },
        Put {
            kind: EXEC_ROWS_KIND,
            n: 5,
        },
    ] {
        let base = tempfile::tempdir().unwrap();
        let before = write(base.path(), SEG, &puts);
        let last = before.last().unwrap().0;
        let (path, off, rec, seq) = next_record_bytes(base.path(), put, 99);
        assert_eq!(seq, last + 1);
        let row = segment::row_bytes(put.kind).unwrap();
        let cuts = [
            1,
            4,
            5,
            16,
            RECORD_HEADER,
            RECORD_HEADER + 1,
            RECORD_HEADER + row,
            RECORD_HEADER + 3 * row - 1,
            rec.len() - 1,
            rec.len(),
        ];
        for cause in [Cause::Crash, Cause::PowerLoss, Cause::FileCut] {
            for &n in &cuts {
                let d = tempfile::tempdir().unwrap();
                for p in segments(base.path()) {
                    std::fs::copy(&p, d.path().join(p.file_name().unwrap())).unwrap();
                }
                let path = d.path().join(path.file_name().unwrap());
                let mut b = std::fs::read(&path).unwrap();
                match cause {
                    // Nothing of the record but (some of) its commit word.
                    Cause::Crash if n <= 4 => continue,
                    // Bytes written in order, the commit word last (never).
                    Cause::Crash => b[off + 4..off + n].copy_from_slice(&rec[4..n]),
                    Cause::PowerLoss | Cause::FileCut if n == rec.len() => continue,
                    // The commit word's page reached the disk, the rest only to `n`.
                    Cause::PowerLoss => b[off..off + n.max(4)].copy_from_slice(&rec[..n.max(4)]),
                    // All of it committed, the file cut short inside it.
                    Cause::FileCut => {
                        b[off..off + rec.len()].copy_from_slice(&rec);
                        b.truncate(off + n);
                    }
                }
                std::fs::write(&path, &b).unwrap();
                let what = format!("kind {} {cause:?} cut at {n}", put.kind);
                let s = JournalReader::open(d.path()).unwrap().summary().unwrap();
                assert!(s.problems.is_empty(), "{what}: {:?}", s.problems);
                assert_eq!(s.last_seq, last, "{what}");
                let (read, torn) = read_to_tail(d.path(), 1);
                assert_eq!(read, before, "{what}");
                // No commit word: nothing there yet; one over bad bytes, or a
                // file shorter than its header says: torn.
                let torn_wanted = cause != Cause::Crash;
                assert_eq!(torn.is_some(), torn_wanted, "{what}: {torn:?}");
                assert_eq!(s.torn_tail.is_some(), torn_wanted, "{what}");
                // A tailer reads up to the cut; where it meets bad bytes (it
                // does not tell a torn tail from damage) it says where.
                let mut t = Tailer::open(d.path(), 1).unwrap();
                let mut tailed = Vec::new();
                loop {
                    match t.poll_with(owned) {
                        Ok(Some(r)) => tailed.push(r),
                        Ok(None) => break,
                        Err(JournalError::Corrupt { offset, .. }) => {
                            assert_eq!(offset, off as u64, "{what}");
                            break;
                        }
                        Err(e) => panic!("{what}: {e}"),
                    }
                }
                assert_eq!(tailed, before, "{what}");
                let (mut w, r) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
                assert_eq!((r.last_seq, w.next_seq()), (last, last + 1), "{what}");
                assert!(r.cut_bytes > 0, "{what}: {r:?}");
                assert_eq!(r.cut_seq, Some(last + 1), "{what}");
                let mut expect = before.clone();
                append(&mut w, put, 100, &mut expect);
                append(&mut w, Put { kind: PLAIN, n: 3 }, 101, &mut expect);
                drop(w);
                assert_eq!(read_from(d.path(), 1), expect, "{what}");
                assert_eq!(read_from(d.path(), last + 2), expect[last as usize + 1..]);
            }
        }
    }
}

/// A flipped byte anywhere in a row record with valid records after it is
/// damage: the writer refuses the journal and changes nothing; `walk` and
/// `summary` say all of its rows are lost and read on after it; the reader
/// stops there from any start before it; `repair::plan` cuts at its offset
/// from its first row. (The 4 reserved bytes after the checksum are not
/// checked by any format: a flip there reads as before.)
#[test]
fn a_flipped_byte_in_a_row_record_mid_segment_is_damage_that_loses_all_its_rows() {
    let base = tempfile::tempdir().unwrap();
    let mut puts = vec![Put { kind: PLAIN, n: 40 }; 3];
    puts.insert(
        1,
        Put {
            kind: PAIR_ROWS_KIND,
            n: 5,
        },
    );
    puts.push(Put {
        kind: EXEC_ROWS_KIND,
        n: 3,
    });
    puts.push(Put { kind: PLAIN, n: 8 });
    let all = write(base.path(), SEG, &puts);
    let last = all.last().unwrap().0;
    let seg = segments(base.path()).remove(0);
    let recs = record_offsets(&seg);
    assert_eq!(recs.len(), 6);
    let good = std::fs::read(&seg).unwrap();
    for (which, lost_from, rows) in [(1usize, 2u64, 5u64), (4, 9, 3)] {
        let (off, s, span) = recs[which];
        assert_eq!((s, span), (lost_from, rows));
        let end = recs[which + 1].0;
        for at in off..end {
            let d = tempfile::tempdir().unwrap();
            let path = d.path().join(seg.file_name().unwrap());
            let mut b = good.clone();
            b[at] ^= 0x01;
            std::fs::write(&path, &b).unwrap();
            let what = format!("byte {} of record {s}", at - off);
            if (24 + 4..RECORD_HEADER).contains(&(at - off)) {
                assert_eq!(read_from(d.path(), 1), all, "{what}");
                continue;
            }
            let files = snapshot(d.path());
            match JournalWriter::open(d.path(), opts(SEG)) {
                Err(JournalError::Damaged {
                    seq,
                    next_seq,
                    offset,
                    ..
                }) => assert_eq!((seq, next_seq, offset), (s, s + span, off as u64), "{what}"),
                Err(e) => panic!("{what}: {e}"),
                Ok(_) => panic!("{what}: opened, damage cut"),
            }
            assert!(
                snapshot(d.path()) == files,
                "{what}: refusing changed files"
            );
            let r = JournalReader::open(d.path()).unwrap();
            let s_ = r.summary().unwrap();
            assert_eq!(s_.problems.len(), 1, "{what}: {:?}", s_.problems);
            assert_eq!(s_.problems[0].lost, Some((s, s + span - 1)), "{what}");
            assert_eq!(s_.problems[0].offset, Some(off as u64), "{what}");
            assert_eq!(s_.records, last - span, "{what}");
            let mut walked = Vec::new();
            r.walk(|f| {
                if let Found::Record(rec) = f {
                    walked.push(owned(rec));
                }
            });
            let want: Vec<Rec> = all
                .iter()
                .filter(|e| !(s..s + span).contains(&e.0))
                .cloned()
                .collect();
            assert_eq!(walked, want, "{what}");
            for from in [1, s, s + 1, s + span - 1] {
                let got: Vec<_> = r.iter_from(from).collect();
                let (ok, err) = got.split_at(got.len() - 1);
                assert_eq!(ok.len() as u64, s.saturating_sub(from.max(1)), "{what}");
                assert!(
                    matches!(err, [Err(JournalError::Corrupt { offset, .. })] if *offset == off as u64),
                    "{what}: from {from}: {:?}",
                    err.iter().map(|e| e.as_ref().err()).collect::<Vec<_>>()
                );
            }
            // A read from past the damage meets it too: it reads its segment
            // from the start, and damage is not passed silently.
            assert_eq!(
                r.iter_from(s + span).next().map(|x| x.is_err()),
                Some(true),
                "{what}"
            );
            let cut = repair::plan(d.path()).unwrap().expect("a cut");
            assert_eq!(
                (cut.offset, cut.from_seq, cut.to_seq),
                (off as u64, s, Some(last)),
                "{what}"
            );
        }
    }
}

/// A damaged row record in a segment before the last: the reader names all
/// its rows as lost and reads on into the next segments; the tailer stops at
/// it with an error, and one opened past it reads on.
#[test]
fn a_damaged_row_record_in_an_earlier_segment_is_named_and_read_past() {
    let d = tempfile::tempdir().unwrap();
    let all = write(d.path(), SEG, &mix(80, 23));
    let segs = segments(d.path());
    assert!(segs.len() >= 3);
    let recs = record_offsets(&segs[0]);
    // A row record with a record after it in its segment.
    let (off, s, span) = recs[..recs.len() - 1]
        .iter()
        .copied()
        .find(|r| r.2 > 1)
        .unwrap();
    let mut b = std::fs::read(&segs[0]).unwrap();
    b[off + RECORD_HEADER + 3] ^= 0x80;
    std::fs::write(&segs[0], &b).unwrap();
    let r = JournalReader::open(d.path()).unwrap();
    let sum = r.summary().unwrap();
    assert_eq!(sum.problems.len(), 1, "{:?}", sum.problems);
    assert_eq!(sum.problems[0].lost, Some((s, s + span - 1)));
    assert_eq!(sum.records, all.len() as u64 - span);
    let mut t = Tailer::open(d.path(), 1).unwrap();
    let mut n = 0;
    let err = loop {
        match t.poll_with(|r| r.seq) {
            Ok(Some(seq)) => {
                n += 1;
                assert_eq!(seq, n);
            }
            Ok(None) => panic!("the tailer passed the damage"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err}");
    assert_eq!(n, s - 1);
    let next = first_seq_of(&segs[1]);
    assert_eq!(tail_from(d.path(), next), all[next as usize - 1..]);
}

/// `fuzz_one` (reader, tailer, recovery and their agreement) on segments of row
/// records with bytes changed at random, row records' lengths changed to
/// other row counts and to part rows, and tails cut: no panic, no broken
/// invariant.
#[test]
fn fuzz_body_survives_damaged_row_records() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), SEG, &mix(60, 29));
    let good = std::fs::read(&segments(d.path())[0]).unwrap();
    let recs = record_offsets(&segments(d.path())[0]);
    let rows: Vec<_> = recs.iter().filter(|r| r.2 > 1).collect();
    assert!(rows.len() >= 3);
    fillcast_journal::fuzzing::fuzz_one(&good);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..400u64 {
        let mut b = good.clone();
        let (off, _, span) = *rows[(next() as usize) % rows.len()];
        match i % 5 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let at = SEGMENT_HEADER + (next() as usize) % (b.len() - SEGMENT_HEADER);
                    b[at] ^= (next() as u8) | 1;
                }
            }
            1 => {
                // Another length: a row more or less, a part row, zero, huge.
                let kind = u16::from_le_bytes([b[off + 4], b[off + 5]]);
                let row = segment::row_bytes(kind).unwrap() as u64;
                let len = match next() % 5 {
                    0 => (span + 1) * row,
                    1 => (span - 1) * row,
                    2 => span * row - 1 - next() % row,
                    3 => 0,
                    _ => u64::from(u32::MAX - 2),
                };
                b[off..off + 4].copy_from_slice(&(len as u32 + 1).to_le_bytes());
            }
            2 => {
                // The record rewritten with a good checksum over other lengths.
                let kind = u16::from_le_bytes([b[off + 4], b[off + 5]]);
                let seq = u64::from_le_bytes(b[off + 8..off + 16].try_into().unwrap());
                let len = (next() as usize) % (span as usize * 80 + 1);
                let p = b[off + RECORD_HEADER..off + RECORD_HEADER + len].to_vec();
                put_raw(&mut b, off, kind, seq, &p);
            }
            3 => {
                let cut = off + (next() as usize) % (b.len() - off);
                b.truncate(cut);
            }
            _ => {
                // A zeroed page somewhere in the rows.
                let at = off + (next() as usize) % (span as usize * 64);
                let end = (at + 16 + (next() as usize) % 512).min(b.len());
                b[at..end].fill(0);
            }
        }
        fillcast_journal::fuzzing::fuzz_one(&b);
    }
}

/// A bad record followed by a record whose checksum holds but whose length is
/// not whole rows (which no writer makes), then a good record: the scan said
/// "damage, resume at the part-row record", which `step` refuses, so
/// `fuzz_one` panicked on its invariant (and `walk` resumed at a record it
/// cannot read). The probe for a valid record after a bad one now asks for
/// whole rows too.
#[test]
fn regression_a_part_row_record_after_damage_was_taken_for_the_next_valid_record() {
    let mut b = vec![0u8; 4096];
    b[..SEGMENT_HEADER].copy_from_slice(&segment::encode_header(4096, 1));
    let a = put_raw(&mut b, SEGMENT_HEADER, PLAIN, 1, b"one");
    let bad = a;
    let c = put_raw(&mut b, bad, PLAIN, 2, b"two");
    b[bad + RECORD_HEADER] ^= 1;
    let e = put_raw(&mut b, c, PAIR_ROWS_KIND, 3, &[7u8; PAIR_ROW_BYTES + 8]);
    put_raw(&mut b, e, PLAIN, 4, b"four");
    let scan = segment::scan(&b[..], SEGMENT_HEADER, 1);
    match scan.stop {
        segment::Stop::Damaged {
            resume, resume_seq, ..
        } => {
            assert_eq!((resume, resume_seq), (e, 4));
            assert!(matches!(
                segment::step(&b[..], resume, resume_seq),
                segment::Step::Record { .. }
            ));
        }
        other => panic!("{other:?}"),
    }
    fillcast_journal::fuzzing::fuzz_one(&b);
    // Empty and part-row records of both kinds, the same way.
    for (kind, len) in [
        (PAIR_ROWS_KIND, 0),
        (EXEC_ROWS_KIND, 0),
        (EXEC_ROWS_KIND, EXEC_ROW_BYTES - 16),
        (EXEC_ROWS_KIND, PAIR_ROW_BYTES),
    ] {
        let mut b2 = b.clone();
        let e2 = put_raw(&mut b2, c, kind, 3, &vec![9u8; len]);
        b2[e2..].fill(0);
        put_raw(&mut b2, e2, PLAIN, 4, b"four");
        fillcast_journal::fuzzing::fuzz_one(&b2);
    }
}

/// Row records that are not whole rows, have no rows, or claim more bytes than
/// the segment holds: read as a bad record (a torn tail at the end, damage with
/// valid records after it), never as rows; the writer refuses to make them.
#[test]
fn row_records_of_part_rows_no_rows_or_huge_lengths_are_refused() {
    let cases: [(u16, usize); 6] = [
        (PAIR_ROWS_KIND, PAIR_ROW_BYTES * 5 / 2),
        (PAIR_ROWS_KIND, 0),
        (EXEC_ROWS_KIND, 0),
        (EXEC_ROWS_KIND, PAIR_ROW_BYTES),
        (EXEC_ROWS_KIND, EXEC_ROW_BYTES * 3 + 16),
        (PAIR_ROWS_KIND, 16),
    ];
    for (kind, len) in cases {
        for tail in [true, false] {
            let d = tempfile::tempdir().unwrap();
            let before = write(d.path(), SEG, &[Put { kind: PLAIN, n: 10 }; 2]);
            let p = segments(d.path()).remove(0);
            let mut b = std::fs::read(&p).unwrap();
            let off = record_offsets(&p).last().map(|r| r.0).unwrap();
            let off = off + segment::record_bytes(10);
            let after = put_raw(&mut b, off, kind, 3, &vec![5u8; len]);
            if !tail {
                put_raw(&mut b, after, PLAIN, 4, b"after");
            }
            std::fs::write(&p, &b).unwrap();
            let what = format!("kind {kind}, {len} bytes, at the tail: {tail}");
            let r = JournalReader::open(d.path()).unwrap();
            let read: Vec<_> = r.iter_from(1).collect();
            assert_eq!(read.iter().filter(|x| x.is_ok()).count(), 2, "{what}");
            let s = r.summary().unwrap();
            assert_eq!(s.records, 2 + u64::from(!tail), "{what}");
            if tail {
                assert!(s.problems.is_empty() && s.torn_tail.is_some(), "{what}");
                let (mut w, rec) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
                assert_eq!((rec.last_seq, rec.cut_seq), (2, Some(3)), "{what}");
                let mut expect = before.clone();
                append(&mut w, Put { kind, n: 2 }, 5, &mut expect);
                drop(w);
                assert_eq!(read_from(d.path(), 1), expect, "{what}");
            } else {
                assert_eq!(s.problems.len(), 1, "{what}");
                assert_eq!(s.problems[0].lost, Some((3, 3)), "{what}");
                assert!(
                    matches!(
                        JournalWriter::open(d.path(), opts(SEG)),
                        Err(JournalError::Damaged {
                            seq: 3,
                            next_seq: 4,
                            ..
                        })
                    ),
                    "{what}"
                );
            }
        }
    }
    // A length past the segment's end.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), SEG, &[Put { kind: PLAIN, n: 10 }; 2]);
    let p = segments(d.path()).remove(0);
    let mut b = std::fs::read(&p).unwrap();
    let off = SEGMENT_HEADER + 2 * segment::record_bytes(10);
    put_raw(&mut b, off, PAIR_ROWS_KIND, 3, &[1u8; PAIR_ROW_BYTES]);
    b[off..off + 4].copy_from_slice(&((PAIR_ROW_BYTES * 1000) as u32 + 1).to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let (_, rec) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    assert_eq!((rec.last_seq, rec.cut_seq), (2, Some(3)));
    assert!(rec.cut_reason.unwrap().contains("past the segment end"));

    // The writer: no rows, part rows, more than a segment holds.
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    let fill = |_: &mut [u8]| Ok::<(), ()>(());
    for kind in [PAIR_ROWS_KIND, EXEC_ROWS_KIND] {
        assert!(matches!(
            w.try_append_rows_with(kind, 1, 0, 0, fill),
            Err(JournalError::BadArgument(_))
        ));
        assert!(matches!(
            w.try_append_with(kind, 1, 0, 100, fill),
            Err(JournalError::BadArgument(_))
        ));
        assert!(matches!(
            w.try_append_with(kind, 1, 0, 0, fill),
            Err(JournalError::BadArgument(_))
        ));
        assert!(matches!(
            w.try_append_rows_with(kind, 1, 0, SEG as usize / 64, fill),
            Err(JournalError::TooLarge { .. })
        ));
        assert!(matches!(
            w.try_append_rows_with(PLAIN, 1, 0, 1, fill),
            Err(JournalError::BadArgument(_))
        ));
    }
    assert_eq!(w.next_seq(), 1, "nothing appended");
    assert_eq!(w.append(PLAIN, 1, 0, b"x").unwrap(), 1);
}

/// Absurd row counts are `TooLarge`, as any record too large for a segment:
/// `rows × row bytes` saturated to `usize::MAX`, whose size rounded up to 16
/// overflowed (a panic in a debug build).
#[test]
fn regression_a_row_count_near_usize_max_overflowed_the_record_size() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    for rows in [usize::MAX, usize::MAX / PAIR_ROW_BYTES + 1, usize::MAX / 2] {
        let got = w.try_append_rows_with(PAIR_ROWS_KIND, 1, 0, rows, |_| Ok::<(), ()>(()));
        assert!(
            matches!(got, Err(JournalError::TooLarge { .. })),
            "{rows} rows: {got:?}"
        );
    }
    let got = w.try_append_with(PLAIN, 1, 0, usize::MAX, |_| Ok::<(), ()>(()));
    assert!(matches!(got, Err(JournalError::TooLarge { .. })), "{got:?}");
    assert_eq!(w.append(PLAIN, 1, 0, b"x").unwrap(), 1);
}

/// Rewrites the header of the segment file at `path` to say `format` (2 or 3
/// share the checksum, so its records stay good).
fn set_format(path: &Path, format: u32) {
    let mut b = std::fs::read(path).unwrap();
    let h = segment::parse_header(&b).unwrap();
    b[..SEGMENT_HEADER].copy_from_slice(&segment::encode_header_format(
        h.segment_bytes,
        h.first_seq,
        format,
    ));
    std::fs::write(path, b).unwrap();
}

fn format_of(path: &Path) -> u32 {
    segment::parse_header(&std::fs::read(path).unwrap())
        .unwrap()
        .format
}

/// The pairs of one fan-out (at `ts`, event `event`), `n` of them, that the
/// stage writes as rows where it can.
fn fan_out(n: u32, event: u64, ts: u64) -> Vec<fillcast_engine::port::JournalEntry> {
    (0..n)
        .flat_map(|sub| crate::journal::fan_out_pair(sub, event, ts, 1 + i64::from(sub % 7)))
        .collect()
}

/// `n` venue reports received together at `recv`.
fn reports(n: u64, recv: u64) -> Vec<fillcast_engine::port::JournalEntry> {
    use fillcast_engine::event::{ExecKind, ExecReport};
    use fillcast_engine::port::JournalEntry;
    use fillcast_engine::units::{Lots, Nanos, Ticks};
    (0..n)
        .map(|i| {
            JournalEntry::Exec(ExecReport {
                order_id: 1000 + i,
                kind: ExecKind::Fill,
                qty: Lots(1 + i as i64),
                price: Ticks(100),
                trade_id: 5000 + i,
                venue_ts: Nanos(recv - 1),
                recv_ts: Nanos(recv),
                ..ExecReport::default()
            })
        })
        .collect()
}

/// The entries the journal in `dir` holds, as the stage was given them, and
/// each record's kind.
fn entries(dir: &Path) -> (Vec<fillcast_engine::port::JournalEntry>, Vec<u16>) {
    use fillcast_engine::port::JournalEntry;
    let r = JournalReader::open(dir).unwrap();
    let (mut out, mut kinds) = (Vec::new(), Vec::new());
    for (i, rec) in r.iter_from(1).enumerate() {
        let rec = rec.unwrap();
        assert_eq!(rec.seq, i as u64 + 1);
        kinds.push(rec.kind);
        match decode(rec.kind, rec.schema, rec.payload).unwrap() {
            Entry::OrderDecision(o, d) => {
                out.push(JournalEntry::Order(o));
                out.push(JournalEntry::Decision(d));
            }
            Entry::Exec(x) => out.push(JournalEntry::Exec(x)),
            other => panic!("unexpected {other:?}"),
        }
    }
    (out, kinds)
}

/// A writer reopened on a format-2 segment (an earlier build's) never writes a
/// row record into it: the stage writes a fan-out's pairs and reports as
/// records of their own, the writer refuses a row record, and a reopen before
/// the roll still does; the segment after the roll is format 3 and takes rows.
#[test]
fn a_format_2_segment_never_gets_a_row_record() {
    use fillcast_engine::port::JournalSink;
    use fillcast_journal::stage::JournalStage;
    let d = tempfile::tempdir().unwrap();
    write(d.path(), SEG, &[Put { kind: PLAIN, n: 10 }; 2]);
    let p = segments(d.path()).remove(0);
    set_format(&p, segment::FORMAT_CRC32C);
    let (w, rec) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    assert_eq!((rec.cut_reason, w.next_seq()), (None, 3));
    assert!(!w.takes_rows());
    let mut stage = JournalStage::new(w);
    let mut given = fan_out(6, 7, 50);
    given.extend(reports(4, 60));
    stage.append(&given).unwrap();
    let fill = |_: &mut [u8]| Ok::<(), ()>(());
    let w = stage.writer();
    assert!(matches!(
        w.try_append_rows_with(PAIR_ROWS_KIND, 1, 0, 2, fill),
        Err(JournalError::BadArgument(_))
    ));
    assert!(matches!(
        w.try_append_with(EXEC_ROWS_KIND, 1, 0, EXEC_ROW_BYTES, fill),
        Err(JournalError::BadArgument(_))
    ));
    assert_eq!(w.next_seq(), 3 + 6 + 4);
    drop(stage);
    let (w, _) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    assert!(!w.takes_rows(), "reopened before the roll");
    let mut stage = JournalStage::new(w);
    stage.append(&fan_out(3, 8, 70)).unwrap();
    drop(stage);
    let b = std::fs::read(&p).unwrap();
    let kinds: Vec<u16> = record_offsets(&p)
        .iter()
        .map(|(off, _, span)| {
            assert_eq!(*span, 1);
            u16::from_le_bytes([b[off + 4], b[off + 5]])
        })
        .collect();
    let (od, ex) = (Kind::OrderDecision as u16, Kind::Exec as u16);
    let mut want = vec![PLAIN, PLAIN];
    want.extend([od; 6]);
    want.extend([ex; 4]);
    want.extend([od; 3]);
    assert_eq!(kinds, want);
    assert_eq!(format_of(&p), segment::FORMAT_CRC32C);
    // Rolled: the next segment takes rows.
    let (mut w, _) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    while segments(d.path()).len() < 2 {
        w.append(PLAIN, 1, 0, &[0; 500]).unwrap();
    }
    assert!(w.takes_rows());
    let mut stage = JournalStage::new(w);
    let first = stage.writer().next_seq();
    stage.append(&fan_out(4, 9, 80)).unwrap();
    drop(stage);
    let q = segments(d.path()).pop().unwrap();
    assert_eq!(format_of(&q), segment::FORMAT);
    assert_eq!(
        record_offsets(&q).last().map(|r| (r.1, r.2)),
        Some((first, 4))
    );
}

/// A fan-out (or a burst of reports at one time) whose rows do not fit in one
/// segment: the stage wrote the whole run as one row record, which the writer
/// refused as too large, so the engine could not journal a fan-out of more
/// followers than a segment holds rows (50 in 4 KiB, 13,000 in the 1 MiB of
/// `segment_mib = 1`), where one record a pair rolled into the next segment.
/// A run is now cut into row records that each fit in a segment.
#[test]
fn regression_a_fan_out_with_more_rows_than_a_segment_holds_was_refused() {
    use fillcast_engine::port::JournalSink;
    use fillcast_journal::stage::JournalStage;
    for seg in [segment::SEGMENT_MIN, SEG] {
        let d = tempfile::tempdir().unwrap();
        let (w, _) = JournalWriter::open(d.path(), opts(seg)).unwrap();
        let mut stage = JournalStage::new(w);
        let mut given = fan_out(300, 7, 50);
        given.extend(reports(300, 60));
        given.extend(fan_out(2, 8, 70));
        stage.append(&given).unwrap();
        assert_eq!(stage.records(), 602);
        drop(stage);
        let (back, kinds) = entries(d.path());
        assert_eq!(back, given, "segment of {seg} bytes");
        assert!(kinds[..300].iter().all(|k| *k == PAIR_ROWS_KIND));
        assert!(kinds[300..600].iter().all(|k| *k == EXEC_ROWS_KIND));
        for p in segments(d.path()) {
            assert!(record_offsets(&p).iter().all(|r| r.2 >= 1));
        }
        let (w, rec) = JournalWriter::open(d.path(), opts(seg)).unwrap();
        assert_eq!((rec.cut_reason, w.next_seq()), (None, 603));
    }
}

/// A repair of a damaged row record cuts at its offset, keeps every entry
/// before its first row and a copy of the segment, and the writer reopened
/// after it gives that first row's sequence to the next record.
#[test]
fn a_repaired_row_record_is_cut_whole_and_appending_goes_on_at_its_first_row() {
    let d = tempfile::tempdir().unwrap();
    let all = write(d.path(), SEG, &mix(30, 31));
    let p = segments(d.path()).pop().unwrap();
    let recs = record_offsets(&p);
    let (off, s, span) = recs[..recs.len() - 1]
        .iter()
        .copied()
        .find(|r| r.2 > 1)
        .unwrap();
    assert!(span > 1);
    let mut b = std::fs::read(&p).unwrap();
    b[off + RECORD_HEADER + PAIR_ROW_BYTES / 2] ^= 0x10;
    std::fs::write(&p, &b).unwrap();
    let cut = repair::plan(d.path()).unwrap().expect("a cut");
    assert_eq!(
        (cut.path.clone(), cut.offset, cut.from_seq),
        (p.clone(), off as u64, s)
    );
    let kept = repair::apply(d.path(), &cut).unwrap();
    assert_eq!(std::fs::read(kept.join(p.file_name().unwrap())).unwrap(), b);
    assert_eq!(repair::plan(d.path()).unwrap(), None);
    let (mut w, rec) = JournalWriter::open(d.path(), opts(SEG)).unwrap();
    assert_eq!(
        (rec.last_seq, rec.cut_reason, w.next_seq()),
        (s - 1, None, s)
    );
    let mut expect = all[..s as usize - 1].to_vec();
    append(
        &mut w,
        Put {
            kind: EXEC_ROWS_KIND,
            n: 2,
        },
        77,
        &mut expect,
    );
    drop(w);
    assert_eq!(read_from(d.path(), 1), expect);
}
