//! Fixtures the sidecar scenarios and the backends share: synthetic journals,
//! run options, table comparison, and the child process that a test SIGKILLs.

use fillcast_sql::sidecar::schema::TABLES;
use fillcast_sql::sidecar::synth::{Synth, SynthSpec};
use fillcast_sql::sidecar::{run, SidecarOptions, SidecarStats};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A journal written by the real engine core, with `fills` leader fills.
/// The rows a journal's records make in `copy_instructions` and `follower_orders`
/// (from its records by kind): one per decision and one per order, and an
/// `order_decision` record (or a row of a `pair_rows` one) holds one of each.
pub fn instruction_and_order_rows(by_kind: &BTreeMap<u16, u64>) -> (u64, u64) {
    use fillcast_journal::record::Kind;
    let k = |kind: Kind| by_kind.get(&(kind as u16)).copied().unwrap_or(0);
    (
        k(Kind::Decision) + k(Kind::OrderDecision) + k(Kind::PairRows) + k(Kind::ResyncDecision),
        k(Kind::Order) + k(Kind::OrderDecision) + k(Kind::PairRows),
    )
}

pub fn journal(dir: &Path, spec: &SynthSpec, fills: usize) -> Synth {
    let mut s = Synth::create(dir, spec).expect("synthetic journal");
    s.leader_fills(fills).expect("leader fills");
    s
}

/// Stops the run after `batches` committed batches.
pub fn stop_after(batches: u64, batch_rows: usize) -> SidecarOptions {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    SidecarOptions {
        batch_rows,
        stop: Some(stop),
        progress: Some(Box::new(move |s: &SidecarStats| {
            if s.batches >= batches {
                flag.store(true, Ordering::Relaxed);
            }
        })),
        ..SidecarOptions::default()
    }
}

/// Every table's rows, as each test dumps them, sorted.
pub type Tables<R> = BTreeMap<String, Vec<R>>;

pub fn assert_same<R: PartialEq + Debug>(a: &Tables<R>, b: &Tables<R>, what: &str) {
    for t in TABLES {
        let (x, y) = (&a[*t], &b[*t]);
        if x != y {
            let first = x
                .iter()
                .zip(y)
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            panic!(
                "{what}: table {t} differs ({} vs {} rows); first difference at row {first}:\n  {:?}\n  {:?}",
                x.len(),
                y.len(),
                x.get(first),
                y.get(first)
            );
        }
    }
}

/// The body of the child process that `sigkill_repeatedly` kills: a replay in
/// batches of 40 rows. Does nothing when run as an ordinary test.
pub fn child_sidecar_process() {
    let (Ok(dir), Ok(db)) = (
        std::env::var("FILLCAST_SIDECAR_CHILD_JOURNAL"),
        std::env::var("FILLCAST_SIDECAR_CHILD_DB"),
    ) else {
        return;
    };
    let opts = SidecarOptions {
        batch_rows: 40,
        ..SidecarOptions::default()
    };
    run(Path::new(&dir), &db, opts).expect("child run");
}

/// A private copy of this test binary for the child processes, so that a build
/// replacing the binary while the test runs does not take it away.
pub fn child_binary(dir: &Path) -> PathBuf {
    let copy = dir.join("sidecar-child");
    std::fs::copy("/proc/self/exe", &copy)
        .or_else(|_| std::fs::copy(std::env::current_exe().expect("test binary"), &copy))
        .expect("copy the test binary");
    copy
}

/// Starts `bin` (from `child_binary`) as a `child_sidecar_process` on the
/// journal in `dir` into `db`.
pub fn spawn_child_sidecar(bin: &Path, dir: &Path, db: &str) -> std::process::Child {
    Command::new(bin)
        .args([
            "--exact",
            "child_sidecar_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FILLCAST_SIDECAR_CHILD_JOURNAL", dir)
        .env("FILLCAST_SIDECAR_CHILD_DB", db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// Runs the test binary's `child_sidecar_process` test on the journal in `dir`
/// into `db`, SIGKILLs it each time `next_seq` has moved `step` records further,
/// and starts it again, until a child finishes. Returns the number of kills,
/// at least 3.
pub fn sigkill_repeatedly(
    tmp: &Path,
    dir: &Path,
    db: &str,
    total: u64,
    step: u64,
    next_seq: &dyn Fn() -> u64,
) -> usize {
    let bin = child_binary(tmp);
    let mut kills = 0;
    let mut last = 0;
    for _ in 0..200 {
        let mut child = spawn_child_sidecar(&bin, dir, db);
        let deadline = Instant::now() + Duration::from_secs(120);
        let finished = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "child failed: {status}");
                break true;
            }
            let now = next_seq();
            if now > last + step && now <= total {
                child.kill().expect("SIGKILL");
                child.wait().expect("reap");
                kills += 1;
                last = now;
                break false;
            }
            assert!(Instant::now() < deadline, "child stuck");
            std::thread::sleep(Duration::from_micros(300));
        };
        if finished {
            break;
        }
    }
    assert!(
        kills >= 3,
        "{kills} kills: the child ran too fast to be killed midway"
    );
    kills
}

/// One journal record, copied out of its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owned {
    pub seq: u64,
    pub kind: u16,
    pub schema: u16,
    pub ts: u64,
    pub payload: Vec<u8>,
}

/// Every record of the journal in `dir`.
pub fn records(dir: &Path) -> Vec<Owned> {
    let reader = fillcast_journal::reader::JournalReader::open(dir).expect("reader");
    reader
        .iter_from(1)
        .map(|r| {
            let r = r.expect("record");
            Owned {
                seq: r.seq,
                kind: r.kind,
                schema: r.schema,
                ts: r.ts,
                payload: r.payload.to_vec(),
            }
        })
        .collect()
}

/// Replaces the journal in `dir` with one holding `records` (valid, checksummed
/// records, as a repair or a restore would leave them).
pub fn rewrite_journal(dir: &Path, records: &[Owned]) {
    std::fs::remove_dir_all(dir).expect("remove the journal");
    let (mut w, _) =
        fillcast_journal::JournalWriter::open(dir, Default::default()).expect("writer");
    for r in records {
        let seq = w
            .append(r.kind, r.schema, r.ts, &r.payload)
            .expect("append");
        assert_eq!(seq, r.seq);
    }
    w.flush().expect("flush");
}

/// Rewrites, in the journal in `dir`, an already-applied mark price record
/// (before `before`) with another's payload: a journal of the same length whose
/// history differs at one record. Returns that record's sequence.
pub fn rewrite_one_record(dir: &Path, before: u64) -> u64 {
    use fillcast_journal::record::Kind;
    let mut recs = records(dir);
    let marks: Vec<usize> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == Kind::MarkPrice as u16 && r.seq < before)
        .map(|(i, _)| i)
        .collect();
    assert!(marks.len() >= 4, "{} mark prices", marks.len());
    let (a, b) = (marks[marks.len() / 3], marks[marks.len() - 1]);
    assert_ne!(recs[a].payload, recs[b].payload, "two equal mark prices");
    recs[a].payload = recs[b].payload.clone();
    rewrite_journal(dir, &recs);
    recs[a].seq
}
