//! Journal append: typed decision records through the journal stage, per
//! durability setting, against writing each decision straight to SQLite (one
//! autocommit INSERT per decision, WAL, `synchronous = NORMAL`: like the journal's
//! `never`, it survives a process crash and not a power loss). A buffered
//! `write(2)` of the same number of bytes, no checksum, is a second reference:
//! the floor for getting bytes into the page cache.

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use fillcast_engine::model::{SubIdx, SymbolIdx};
use fillcast_engine::outputs::{Decision, DecisionStatus, Reason};
use fillcast_engine::port::{JournalEntry, JournalSink};
use fillcast_engine::units::Lots;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{Durability, JournalOptions, JournalWriter};
use fillcast_sql::sidecar::rusqlite::{params, Connection};
use hdrhistogram::Histogram;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Entries per `append` call, as the I/O thread hands them over (one journal chunk).
const CHUNK: usize = 32;
/// Records per leader fill: `before_send` runs once per this many, as before the
/// orders of a fill leave (a 3,000-follower fan-out).
const FILL_RECORDS: usize = 3_000;
/// DESIGN.md: journal append ≥ 5 million records per second.
const TARGET_RECORDS_PER_SEC: f64 = 5e6;
/// Bytes of one decision record in the journal (header and payload).
const RECORD_BYTES: usize = 96;

pub struct Options {
    pub records: usize,
    /// Records `sync` appends (it is slow by design).
    pub sync_records: usize,
    /// Decisions the SQLite baseline inserts, one transaction each.
    pub sqlite_records: usize,
    pub dir: Option<PathBuf>,
}

struct Row {
    name: String,
    role: Role,
    description: String,
    records: usize,
    secs: f64,
    hist: Histogram<u64>,
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = opts.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("bench dir");
    let all = entries(opts.records.max(opts.sqlite_records));

    progress.phase(
        "baseline: SQLite, a transaction per decision",
        opts.sqlite_records as u64,
    );
    let mut rows = vec![sqlite(&dir, &all[..opts.sqlite_records], progress)];
    progress.phase("reference: buffered write(2)", opts.records as u64);
    rows.push(buffered(&dir, &all[..opts.records], progress));
    for d in [Durability::Never, Durability::EveryMs(10), Durability::Sync] {
        let n = if d == Durability::Sync {
            opts.records.min(opts.sync_records)
        } else {
            opts.records
        };
        progress.phase(format!("journal, durability {d:?}"), n as u64);
        rows.push(journal(&dir, d, &all[..n], progress));
    }
    // fillcast's rows first, so that the headline is `never`.
    rows.rotate_left(2);

    let basis = format!("per record, averaged over each chunk of {CHUNK} (SQLite: per INSERT)");
    let mut case = Case::new("append decision records", RatioBasis::Throughput)
        .param("records", opts.records)
        .param("sync_records", opts.records.min(opts.sync_records))
        .param("sqlite_records", opts.sqlite_records)
        .param("chunk_records", CHUNK)
        .param("before_send_every_records", FILL_RECORDS)
        .param("record_bytes", RECORD_BYTES);
    let write2 = rows
        .iter()
        .find(|r| r.name.starts_with("reference"))
        .map_or(1.0, |r| r.records as f64 / r.secs);
    for r in &rows {
        let rate = r.records as f64 / r.secs.max(1e-9);
        case = case.variant(
            Variant::new(r.name.clone(), r.role, r.description.clone())
                .latency(basis.clone(), &r.hist)
                .throughput(rate, "records/s")
                .extra("ratio_vs_buffered_write", rate / write2),
        );
    }
    let mut case = case.finish();
    let never = case
        .fillcast()
        .and_then(|v| v.throughput.as_ref())
        .map_or(0.0, |t| t.value);
    case.target_result = Some(format!(
        "`never`: {:.1} M records/s against ≥ 5 M: {}",
        never / 1e6,
        if never >= TARGET_RECORDS_PER_SEC {
            "met".to_string()
        } else {
            format!("{:.1}× short", TARGET_RECORDS_PER_SEC / never.max(1.0))
        }
    ));
    Scenario {
        name: "journal",
        title: "journal append per durability setting".into(),
        fillcast: "JournalStage::append in chunks of 32 typed decision records, before_send once per 3,000".into(),
        baseline: "each decision straight to SQLite: one autocommit INSERT (WAL, synchronous = NORMAL), prepared once".into(),
        threads: vec![ThreadRole::unpinned("all", "main", "appends / inserts")],
        target: Some("≥ 5 million records/s with flushing off (DESIGN.md)".into()),
        cases: vec![case],
        skipped: Vec::new(),
        notes: vec![
            format!("journal directory: {}", dir.display()),
            "`sync` pays one msync per 3,000 records (before the orders of a fill leave)".into(),
            "the buffered write(2) is a reference, not a design: no checksum, no framing, no reader".into(),
        ],
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

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
                ..Decision::default()
            })
        })
        .collect()
}

fn journal(dir: &Path, durability: Durability, all: &[JournalEntry], progress: &Progress) -> Row {
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
        if i % 4096 == 0 {
            progress.set((i * CHUNK) as u64);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&path);
    let name = match durability {
        Durability::Never => "journal, never".to_string(),
        Durability::EveryMs(ms) => format!("journal, every_ms {ms}"),
        Durability::Sync => "journal, sync".to_string(),
    };
    Row {
        name,
        role: Role::Fillcast,
        description: format!(
            "memory-mapped segments, checksummed rkyv records, durability {durability:?}"
        ),
        records: all.len(),
        secs,
        hist,
    }
}

/// The baseline: each decision is its own SQLite transaction.
fn sqlite(dir: &Path, all: &[JournalEntry], progress: &Progress) -> Row {
    let path = dir.join("baseline.db");
    let _ = std::fs::remove_file(&path);
    let c = Connection::open(&path).expect("baseline db");
    let _: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("wal");
    c.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE decisions (event_key INTEGER NOT NULL, sub INTEGER NOT NULL,
           symbol INTEGER NOT NULL, target INTEGER NOT NULL, delta INTEGER NOT NULL,
           sent INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL,
           revision INTEGER NOT NULL)",
    )
    .expect("baseline schema");
    let mut stmt = c
        .prepare(
            "INSERT INTO decisions (event_key, sub, symbol, target, delta, sent, status, reason, revision) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .expect("prepare");
    let mut hist = histogram();
    let start = Instant::now();
    for (i, e) in all.iter().enumerate() {
        let JournalEntry::Decision(d) = e else {
            continue;
        };
        let t = Instant::now();
        stmt.execute(params![
            d.event_key as i64,
            d.sub.0,
            d.symbol.0,
            d.target.0,
            d.delta.0,
            d.sent.0,
            d.status.as_str(),
            d.reason.as_str(),
            d.revision as i64,
        ])
        .expect("insert");
        let _ = hist.record((t.elapsed().as_nanos() as u64).max(1));
        if i % 256 == 0 {
            progress.set(i as u64);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(stmt);
    drop(c);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("baseline.db{suffix}")));
    }
    Row {
        name: "baseline: SQLite, a transaction per decision".into(),
        role: Role::Baseline,
        description: "one autocommit INSERT per decision (WAL, synchronous = NORMAL)".into(),
        records: all.len(),
        secs,
        hist,
    }
}

/// The reference: each record's bytes (same size) through a buffered file.
fn buffered(dir: &Path, all: &[JournalEntry], progress: &Progress) -> Row {
    let path = dir.join("baseline.bin");
    let file = std::fs::File::create(&path).expect("create baseline file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut hist = histogram();
    let record = [0u8; RECORD_BYTES];
    let start = Instant::now();
    for (i, chunk) in all.chunks(CHUNK).enumerate() {
        let t = Instant::now();
        for _ in chunk {
            out.write_all(&record).expect("write");
        }
        let _ = hist.record((t.elapsed().as_nanos() as u64 / chunk.len() as u64).max(1));
        if i % 4096 == 0 {
            progress.set((i * CHUNK) as u64);
        }
    }
    out.flush().expect("flush");
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Row {
        name: "reference: buffered write(2)".into(),
        role: Role::Reference,
        description: "the same bytes through a 1 MiB BufWriter: no checksum, no framing".into(),
        records: all.len(),
        secs,
        hist,
    }
}
