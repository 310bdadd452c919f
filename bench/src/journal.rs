//! Journal append: typed decision records through the journal stage, per
//! durability setting, and a plain buffered file as the baseline.

use fillcast_engine::core::{Decision, DecisionStatus, Reason};
use fillcast_engine::model::{SubIdx, SymbolIdx};
use fillcast_engine::port::{JournalEntry, JournalSink};
use fillcast_engine::units::Lots;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{Durability, JournalOptions, JournalWriter};
use hdrhistogram::Histogram;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Entries per `append` call, as the I/O thread hands them over (one journal chunk).
const CHUNK: usize = 32;
/// Records per leader fill: `before_send` runs once per this many, as before the
/// orders of a fill leave (a 3,000-follower fan-out).
const FILL_RECORDS: usize = 3_000;

fn entries(n: usize) -> Vec<JournalEntry> {
    (0..n)
        .map(|i| {
            JournalEntry::Decision(Decision {
                event_key: i as u64 / FILL_RECORDS as u64 + 1,
                sub: SubIdx(i as u32 % 10_000),
                symbol: SymbolIdx(0),
                target: Lots(i as i64 % 977),
                delta: Lots(i as i64 % 13 - 6),
                sent: Lots(i as i64 % 13 - 6),
                status: DecisionStatus::Sent,
                reason: Reason::None,
                revision: 0xfeed,
            })
        })
        .collect()
}

struct Row {
    name: String,
    records: usize,
    secs: f64,
    hist: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

fn run_journal(dir: &std::path::Path, durability: Durability, all: &[JournalEntry]) -> Row {
    let path = dir.join(format!("{durability:?}").replace(['(', ')'], ""));
    let (w, _) = JournalWriter::open(
        &path,
        JournalOptions {
            segment_bytes: 256 << 20,
            durability,
        },
    )
    .expect("open journal");
    let mut stage = JournalStage::new(w);
    let mut hist = histogram();
    let start = Instant::now();
    for (i, chunk) in all.chunks(CHUNK).enumerate() {
        let t = Instant::now();
        stage.append(chunk).expect("append");
        if (i + 1) * CHUNK % FILL_RECORDS < CHUNK {
            stage.before_send().expect("flush");
        }
        let _ = hist.record((t.elapsed().as_nanos() as u64 / chunk.len() as u64).max(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&path);
    Row {
        name: format!("journal, durability {durability:?}"),
        records: all.len(),
        secs,
        hist,
    }
}

/// The baseline: each record's bytes (same 96-byte size) through a buffered file.
fn run_baseline(dir: &std::path::Path, all: &[JournalEntry]) -> Row {
    let path = dir.join("baseline.bin");
    let file = std::fs::File::create(&path).expect("create baseline file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hist = histogram();
    let record = [0u8; 96];
    let start = Instant::now();
    for chunk in all.chunks(CHUNK) {
        let t = Instant::now();
        for _ in chunk {
            out.write_all(&record).expect("write");
        }
        let _ = hist.record((t.elapsed().as_nanos() as u64 / chunk.len() as u64).max(1));
    }
    out.flush().expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Row {
        name: "baseline: buffered write(2), no checksum".into(),
        records: all.len(),
        secs,
        hist,
    }
}

pub fn run(records: usize, dir: Option<PathBuf>) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench dir");
    let all = entries(records);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("journal append: {records} decision records, chunks of {CHUNK}, before_send every {FILL_RECORDS}; {cores} cores; dir {}", dir.display());
    let mut rows = vec![run_baseline(&dir, &all)];
    for d in [Durability::Never, Durability::EveryMs(10), Durability::Sync] {
        let n = if d == Durability::Sync {
            records.min(1_000_000)
        } else {
            records
        };
        rows.push(run_journal(&dir, d, &all[..n]));
    }
    let base = rows[0].records as f64 / rows[0].secs;
    println!(
        "{:<44}{:>14}{:>10}{:>10}{:>10}{:>10}",
        "", "records/s", "vs base", "p50 ns", "p99 ns", "p99.9 ns"
    );
    for r in &rows {
        let rate = r.records as f64 / r.secs;
        println!(
            "{:<44}{:>14.0}{:>10.2}{:>10}{:>10}{:>10}",
            r.name,
            rate,
            rate / base,
            r.hist.value_at_quantile(0.5),
            r.hist.value_at_quantile(0.99),
            r.hist.value_at_quantile(0.999),
        );
    }
    println!("(latency: per record, averaged over each chunk of {CHUNK})");
}
