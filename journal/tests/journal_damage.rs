//! Regressions of issue 10 for the journal's framing layer: damage told from a
//! torn tail (finding 5), a full disk (finding 6), durability on a quiet tail and
//! directory syncs (finding 9), owner-only files (finding 11).

use crate::journal::segments;
use fillcast_journal::reader::Found;
use fillcast_journal::segment;
use fillcast_journal::{Durability, JournalError, JournalOptions, JournalReader, JournalWriter};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SEG: u64 = 1 << 20;

fn opts(segment_bytes: u64, durability: Durability) -> JournalOptions {
    JournalOptions {
        segment_bytes,
        durability,
    }
}

fn payload(i: u64) -> Vec<u8> {
    (0..(i * 37 % 300) as usize)
        .map(|j| (i as usize * 31 + j) as u8)
        .collect()
}

fn write(dir: &Path, n: u64, segment_bytes: u64) {
    let (mut w, _) = JournalWriter::open(dir, opts(segment_bytes, Durability::Never)).unwrap();
    for i in 1..=n {
        assert_eq!(w.append(1, 7, i, &payload(i)).unwrap(), i);
    }
}

/// Every file under `dir` (recursively), by path, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    out
}

/// Offset of the start of record `seq` in its segment file.
fn offset_of(path: &Path, seq: u64) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let first = segment::parse_header(&bytes).unwrap().first_seq;
    segment::offset_of(&bytes, first, seq).expect("good records up to seq")
}

/// (seq, payload) of each record read.
type Read = Vec<(u64, Vec<u8>)>;

/// Every record `iter_from(1)` yields, its error, and the torn tail it reports.
fn read_all(dir: &Path) -> (Read, Option<String>, Option<String>) {
    let r = JournalReader::open(dir).unwrap();
    let mut it = r.iter_from(1);
    let mut out = Vec::new();
    let mut err = None;
    for rec in it.by_ref() {
        match rec {
            Ok(rec) => out.push((rec.seq, rec.payload.to_vec())),
            Err(e) => err = Some(e.to_string()),
        }
    }
    let torn = it.torn_tail().map(str::to_string);
    (out, err, torn)
}

/// Damage in the middle of the last segment: open refuses, naming file, offset and
/// sequence, and changes nothing; the reader reports it (does not stop quietly);
/// repair says what it drops, keeps a copy, and then open continues.
fn check_damage_refused_then_repaired(hurt: impl FnOnce(&Path, usize) -> u64) {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 2000, SEG);
    let segs = segments(d.path());
    assert_eq!(segs.len(), 1, "all in one (the last) segment");
    let bad_seq = hurt(&segs[0], offset_of(&segs[0], 1000));
    let before = snapshot(d.path());
    let err = JournalWriter::open(d.path(), opts(SEG, Durability::Never))
        .err()
        .expect("damage is refused");
    let msg = err.to_string();
    assert!(
        matches!(err, JournalError::Damaged { seq, .. } if seq == bad_seq),
        "{msg}"
    );
    assert!(
        msg.contains(".fcj at offset ")
            && msg.contains(&format!("record {bad_seq}"))
            && msg.contains("journal repair"),
        "{msg}"
    );
    assert_eq!(
        snapshot(d.path()),
        before,
        "refusing changed nothing on disk"
    );

    let (got, err, _) = read_all(d.path());
    assert_eq!(got.len() as u64, bad_seq - 1);
    assert!(err.is_some(), "the reader names the damage");
    let s = JournalReader::open(d.path()).unwrap().summary().unwrap();
    assert_eq!(s.problems.len(), 1, "{:?}", s.problems);
    assert_eq!(s.last_seq, 2000, "inspect reads on past the damage");

    let cut = fillcast_journal::repair::plan(d.path())
        .unwrap()
        .expect("a cut");
    assert_eq!((cut.from_seq, cut.to_seq), (bad_seq, Some(2000)));
    assert_eq!(snapshot(d.path()), before, "planning changed nothing");
    let kept = fillcast_journal::repair::apply(d.path(), &cut).unwrap();
    let copy = std::fs::read(kept.join(segs[0].file_name().unwrap())).unwrap();
    assert_eq!(copy, before[&segs[0]], "the copy is the file as it was");
    let mode = std::fs::metadata(kept.join(segs[0].file_name().unwrap()))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (mut w, rec) = JournalWriter::open(d.path(), opts(SEG, Durability::Never)).unwrap();
    assert_eq!((rec.last_seq, rec.cut_bytes), (bad_seq - 1, 0));
    assert_eq!(w.append(1, 7, 0, b"after").unwrap(), bad_seq);
}

/// Regression (issue 10, finding 5): one flipped bit in the middle of the last
/// segment was called a torn tail, and every valid record after it was zeroed.
#[test]
fn regression_flipped_bit_mid_last_segment_is_refused_not_cut() {
    check_damage_refused_then_repaired(|p, off| {
        let mut b = std::fs::read(p).unwrap();
        b[off + 40] ^= 0x04;
        std::fs::write(p, b).unwrap();
        1000
    });
}

/// Regression (issue 10, finding 5): a zeroed page in the middle of the last
/// segment (no commit word where a record belongs) was taken for its end.
#[test]
fn regression_zeroed_page_mid_last_segment_is_refused_not_cut() {
    check_damage_refused_then_repaired(|p, off| {
        let page = off / 4096 * 4096;
        // The first record that runs into the page (found before zeroing it).
        let mut seq = 1;
        while offset_of(p, seq + 1) <= page {
            seq += 1;
        }
        let mut b = std::fs::read(p).unwrap();
        b[page..page + 4096].fill(0);
        std::fs::write(p, b).unwrap();
        seq
    });
}

/// Regression (issue 10, finding 5): a truncated last segment made the reader
/// (so `inspect` and the sidecar) refuse the whole journal.
#[test]
fn regression_truncated_last_segment_reads_up_to_its_tail() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 2000, 64 * 1024);
    let last = segments(d.path()).pop().unwrap();
    let first = segment::parse_file_name(last.file_name().unwrap().to_str().unwrap()).unwrap();
    let cut_seq = first + 5;
    let off = offset_of(&last, cut_seq) + 20;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(off as u64)
        .unwrap();
    let (got, err, torn) = read_all(d.path());
    assert_eq!(err, None);
    assert_eq!(got.len() as u64, cut_seq - 1);
    assert!(got.iter().all(|(s, p)| *p == payload(*s)));
    assert!(
        torn.is_some_and(|t| t.contains(".fcj")),
        "it says where it stopped"
    );
    let s = JournalReader::open(d.path()).unwrap().summary().unwrap();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert!(s.torn_tail.is_some());
    // The tailer stops there too, without spinning.
    let mut t = fillcast_journal::Tailer::open(d.path(), cut_seq - 1).unwrap();
    assert_eq!(t.poll_with(|r| r.seq).unwrap(), Some(cut_seq - 1));
    assert_eq!(t.poll_with(|r| r.seq).unwrap(), None);
    // And recovery cuts it as a torn tail, reporting the sequence.
    let (mut w, rec) = JournalWriter::open(d.path(), opts(64 * 1024, Durability::Never)).unwrap();
    assert_eq!(rec.last_seq, cut_seq - 1);
    assert_eq!(rec.cut_seq, Some(cut_seq));
    assert_eq!(w.append(1, 7, 0, b"x").unwrap(), cut_seq);
}

/// Regression (issue 10, finding 5): a missing or zeroed middle segment went
/// unnamed. `walk` names it, and reads the segments after it.
#[test]
fn regression_zeroed_or_missing_middle_segment_is_named() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 2000, 64 * 1024);
    let segs = segments(d.path());
    assert!(segs.len() > 4);
    let zeroed = &segs[1];
    let len = std::fs::metadata(zeroed).unwrap().len();
    std::fs::write(zeroed, vec![0u8; len as usize]).unwrap();
    std::fs::remove_file(&segs[3]).unwrap();
    let r = JournalReader::open(d.path()).unwrap();
    let mut problems = Vec::new();
    let mut last = 0;
    r.walk(|f| match f {
        Found::Record(rec) => last = rec.seq,
        Found::Problem(p) => problems.push(p.to_string()),
        Found::TornTail(t) => panic!("no torn tail here: {t}"),
    });
    assert_eq!(last, 2000, "read on to the end");
    let names = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&names(zeroed)) && p.contains("no header")),
        "{problems:?}"
    );
    let missing_from = segment::parse_file_name(&names(&segs[3])).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("records {missing_from}.."))),
        "{problems:?}"
    );
    assert!(JournalReader::open(d.path())
        .unwrap()
        .iter_from(1)
        .any(|r| r.is_err()));
}

/// Regression (issue 10, finding 9): `every_ms` never flushed a quiet tail: the
/// tick was called only from tests. Time is given, not slept.
#[test]
fn regression_every_ms_flushes_a_quiet_tail_on_tick() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(d.path(), opts(SEG, Durability::EveryMs(60_000))).unwrap();
    w.append(1, 7, 0, b"a").unwrap();
    let flushes = w.flushes();
    w.tick_at(Instant::now()).unwrap();
    assert_eq!((w.flushed_seq(), w.flushes()), (0, flushes), "not yet");
    w.tick_at(Instant::now() + Duration::from_secs(61)).unwrap();
    assert_eq!((w.flushed_seq(), w.flushes()), (1, flushes + 1));
    w.tick_at(Instant::now() + Duration::from_secs(200))
        .unwrap();
    assert_eq!(w.flushes(), flushes + 1, "nothing new: no flush");
    // Through the engine's sink, which its I/O thread ticks when idle.
    use fillcast_engine::port::JournalSink;
    let (w, _) =
        JournalWriter::open(&d.path().join("s"), opts(SEG, Durability::EveryMs(1))).unwrap();
    let mut stage = fillcast_journal::stage::JournalStage::new(w);
    stage.write_config(1, "x = 1", 0).unwrap();
    std::thread::sleep(Duration::from_millis(3)); // at least the 1 ms interval
    JournalSink::tick(&mut stage).unwrap();
    assert_eq!(stage.writer().flushed_seq(), 1);
}

/// Regression (issue 10, finding 9): a segment rename was never followed by an
/// fsync of the directory, so a power loss could lose the segment's name.
#[test]
fn regression_directory_is_fsynced_after_segment_create_and_roll() {
    let d = tempfile::tempdir().unwrap();
    let (mut w, _) = JournalWriter::open(d.path(), opts(4096, Durability::Sync)).unwrap();
    assert_eq!(w.dir_syncs(), 1, "the first segment's create");
    let mut i = 0;
    while segments(d.path()).len() < 2 {
        i += 1;
        w.append(1, 7, 0, &payload(i)).unwrap();
    }
    let before = w.dir_syncs();
    w.before_send().unwrap();
    assert_eq!(
        w.dir_syncs(),
        before + 1,
        "the roll's rename, synced before orders leave"
    );
    w.append(1, 7, 0, b"x").unwrap();
    w.before_send().unwrap();
    assert_eq!(
        w.dir_syncs(),
        before + 1,
        "no rename since: no directory sync"
    );
}

/// Regression (issue 10, finding 11): segment files were created 0644 although
/// they hold the whole config.
#[test]
fn regression_segment_files_are_owner_only() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), 2000, 64 * 1024);
    for p in segments(d.path()) {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", p.display());
    }
}

/// The child's side of the full-disk test: appends under a file size limit
/// until the writer refuses, and says how far it got.
fn full_disk_child(dir: &Path, segment_bytes: u64) {
    // SAFETY: plain libc calls with valid arguments, in a process that runs only
    // this test: SIGXFSZ ignored (so going past the limit is EFBIG, as ENOSPC
    // would be on a full disk), then the limit set below the new segment size.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: 512 * 1024,
            rlim_max: libc::RLIM_INFINITY,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let (mut w, _) = match JournalWriter::open(dir, opts(segment_bytes, Durability::Never)) {
        Ok(w) => w,
        Err(e) => {
            println!("OPEN-ERR {e}");
            return;
        }
    };
    for i in 0..1_000_000u64 {
        match w.append(1, 7, i, &payload(i % 300 + 1)) {
            Ok(seq) => println!("OK {seq}"),
            Err(e) => {
                println!("ERR {e}");
                return;
            }
        }
    }
    println!("NO ERROR");
}

fn run_child(dir: &Path, segment_bytes: u64) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "journal_damage::regression_full_disk_is_a_clear_error_not_a_sigbus",
            "--exact",
            "--nocapture",
        ])
        .env("FILLCAST_FULL_DISK_CHILD", dir)
        .env("FILLCAST_FULL_DISK_SEGMENT", segment_bytes.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the child died ({:?}): {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Regression (issue 10, finding 6): segments were sized sparse and mapped, so a
/// full disk was a SIGBUS at some write into the mapping, with no message, at
/// every restart. Now a segment gets its blocks first: a clear error, raised
/// while the current segment still has room, and a restart with space goes on.
#[test]
fn regression_full_disk_is_a_clear_error_not_a_sigbus() {
    if let Ok(dir) = std::env::var("FILLCAST_FULL_DISK_CHILD") {
        let bytes = std::env::var("FILLCAST_FULL_DISK_SEGMENT").unwrap();
        full_disk_child(Path::new(&dir), bytes.parse().unwrap());
        return;
    }
    // A new journal under the limit: refused at open, by name.
    let d = tempfile::tempdir().unwrap();
    let text = run_child(&d.path().join("new"), SEG);
    assert!(
        text.contains("OPEN-ERR journal") && text.contains("no space for a new segment of 1 MiB"),
        "{text}"
    );
    // An existing journal of 64 KiB segments, reopened for 1 MiB ones: the
    // current segment is there, the next cannot be made.
    write(d.path(), 300, 64 * 1024);
    let text = run_child(d.path(), SEG);
    assert!(
        text.contains("ERR journal") && text.contains("no space for a new segment"),
        "{text}"
    );
    assert!(!text.contains("NO ERROR"));
    let last_ok = text
        .lines()
        .filter_map(|l| l.strip_prefix("OK "))
        .map(|s| s.parse::<u64>().unwrap())
        .max()
        .unwrap_or(300);
    let (got, err, torn) = read_all(d.path());
    assert_eq!((err, torn), (None, None));
    assert_eq!(got.len() as u64, last_ok, "every accepted record is there");
    // With space again: the restart goes on after the last accepted record.
    let (mut w, rec) = JournalWriter::open(d.path(), opts(SEG, Durability::Never)).unwrap();
    assert_eq!((rec.last_seq, rec.cut_bytes), (last_ok, 0));
    for _ in 0..2000 {
        w.append(1, 7, 0, &payload(5)).unwrap();
    }
    drop(w);
    let (got, err, _) = read_all(d.path());
    assert_eq!((got.len() as u64, err), (last_ok + 2000, None));
    assert!(got[..300].iter().all(|(s, p)| *p == payload(*s)));
}
