//! Sidecar replay throughput: a journal of `rows` records written by the real
//! core (mostly copy decisions: 200 followers, most of them paused, so most
//! decisions are skips without orders), replayed into a fresh SQLite file and,
//! given a URL, a fresh PostgreSQL schema. Beside each, the textbook baseline in
//! the same run: one `INSERT` statement per row, autocommit, over the first
//! 20,000 rows (the journal's first leader fills and decisions), into the same
//! schema.
//!
//! The target (DESIGN.md, "Performance targets") is ≥ 300,000 rows/s into SQLite.
//!
//! Latency is per row: each baseline INSERT alone; the sidecar's averaged over each
//! committed batch (it commits `batch_rows` rows per transaction).

use crate::progress::Progress;
use crate::report::{histogram, Case, RatioBasis, Role, Scenario, ThreadRole, Variant};
use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_sql::sidecar::pg::{Client, NoTls};
use fillcast_sql::sidecar::rusqlite::{params, Connection};
use fillcast_sql::sidecar::schema::{script, Dialect, SCHEMA_VERSION};
use fillcast_sql::sidecar::synth::{Synth, SynthSpec};
use fillcast_sql::sidecar::{self, SidecarOptions, SidecarStats};
use hdrhistogram::Histogram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// DESIGN.md: sidecar replay ≥ 300,000 rows/s into SQLite.
const TARGET_ROWS_PER_SEC: f64 = 300_000.0;

pub struct Options {
    /// Journal records to replay.
    pub rows: usize,
    /// Rows the SQLite baseline inserts, one statement and one transaction each.
    pub baseline_rows: usize,
    /// Rows the PostgreSQL baseline inserts (each commit waits for the WAL flush).
    pub pg_baseline_rows: usize,
    pub pg: Option<String>,
}

/// One baseline row: a leader fill or a decision, names resolved, decimals as text.
enum Plain {
    LeaderFill([String; 10]),
    Decision([String; 12]),
}

fn plain_rows(dir: &Path, u: &Universe, limit: usize) -> Vec<(i64, Plain)> {
    let reader = JournalReader::open(dir).expect("journal");
    let mut out = Vec::new();
    for rec in reader.iter_from(1) {
        if out.len() == limit {
            break;
        }
        let rec = rec.expect("record");
        let seq = rec.seq as i64;
        match decode(rec.kind, rec.schema, rec.payload).expect("decode") {
            Entry::Feed(FeedEvent::LeaderFill(f)) => {
                let sym = &u.symbols[f.symbol.0 as usize];
                out.push((
                    seq,
                    Plain::LeaderFill([
                        u.leaders[f.leader.0 as usize].id.clone(),
                        format!("{:016x}", f.event_key),
                        sym.name.clone(),
                        f.side.as_str().into(),
                        sym.qty_decimal(f.qty).to_string(),
                        sym.price_decimal(f.price).to_string(),
                        "0".into(),
                        f.venue_ts.0.to_string(),
                        f.recv_ts.0.to_string(),
                        String::new(),
                    ]),
                ));
            }
            Entry::Decision(d) | Entry::OrderDecision(_, d) => {
                let sym = &u.symbols[d.symbol.0 as usize];
                let sub = &u.subs[d.sub.0 as usize];
                out.push((
                    seq,
                    Plain::Decision([
                        format!("{:016x}", d.event_key),
                        sub.id.clone(),
                        u.followers[sub.follower.0 as usize].id.clone(),
                        u.leaders[sub.leader.0 as usize].id.clone(),
                        sym.name.clone(),
                        sym.qty_decimal(d.target).to_string(),
                        sym.qty_decimal(d.delta).to_string(),
                        sym.qty_decimal(d.sent).to_string(),
                        d.status.as_str().into(),
                        d.reason.as_str().into(),
                        format!("{:016x}", d.revision),
                        String::new(),
                    ]),
                ));
            }
            _ => {}
        }
    }
    out
}

const LEADER_FILL_SQL: &str = "INSERT INTO leader_fills (seq, leader_id, event_id, symbol, side, qty, price, \
     position_after, venue_ts, recv_ts, ignored) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const DECISION_SQL: &str =
    "INSERT INTO copy_instructions (seq, event_id, subscription_id, follower_id, leader_id, \
     symbol, target, delta, sent, status, reason, config_revision) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Runs `insert` on every row, timing each: (rows/s, per-row ns).
fn time_each(
    rows: &[(i64, Plain)],
    progress: &Progress,
    mut insert: impl FnMut(&i64, &Plain),
) -> (f64, Histogram<u64>) {
    let mut hist = histogram();
    let t = Instant::now();
    for (i, (seq, row)) in rows.iter().enumerate() {
        let row_started = Instant::now();
        insert(seq, row);
        let _ = hist.record((row_started.elapsed().as_nanos() as u64).max(1));
        if i % 256 == 0 {
            progress.set(i as u64);
        }
    }
    (
        rows.len() as f64 / t.elapsed().as_secs_f64().max(1e-9),
        hist,
    )
}

/// The baseline into SQLite (same file settings as the sidecar): rows/s, per-row ns.
fn sqlite_baseline(
    path: &Path,
    rows: &[(i64, Plain)],
    progress: &Progress,
) -> (f64, Histogram<u64>) {
    let c = Connection::open(path).expect("baseline db");
    let _: String = c
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("wal");
    c.execute_batch("PRAGMA synchronous = NORMAL")
        .expect("sync");
    c.execute_batch(&script(1, Dialect::Sqlite).expect("schema"))
        .expect("schema");
    let (lf, dec) = (
        LEADER_FILL_SQL.replace('$', "?"),
        DECISION_SQL.replace('$', "?"),
    );
    time_each(rows, progress, |seq, row| match row {
        Plain::LeaderFill(v) => {
            let ts: [i64; 2] = [v[7].parse().unwrap_or(0), v[8].parse().unwrap_or(0)];
            c.execute(
                &lf,
                params![seq, v[0], v[1], v[2], v[3], v[4], v[5], v[6], ts[0], ts[1], v[9]],
            )
            .expect("insert");
        }
        Plain::Decision(v) => {
            c.execute(
                &dec,
                params![seq, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]],
            )
            .expect("insert");
        }
    })
}

/// The baseline into PostgreSQL, a round trip and a commit per row: rows/s, per-row ns.
fn pg_baseline(url: &str, rows: &[(i64, Plain)], progress: &Progress) -> (f64, Histogram<u64>) {
    let mut c = Client::connect(url, NoTls).expect("baseline connect");
    c.batch_execute(&script(1, Dialect::Postgres).expect("schema"))
        .expect("schema");
    // Text parameters, cast by the server: what a naive client sends.
    let lf = c
        .prepare(&LEADER_FILL_SQL.replace(
            "$6, $7, $8",
            "$6::TEXT::NUMERIC, $7::TEXT::NUMERIC, $8::TEXT::NUMERIC",
        ))
        .expect("prepare");
    let dec = c
        .prepare(&DECISION_SQL.replace(
            "$7, $8, $9",
            "$7::TEXT::NUMERIC, $8::TEXT::NUMERIC, $9::TEXT::NUMERIC",
        ))
        .expect("prepare");
    time_each(rows, progress, |seq, row| match row {
        Plain::LeaderFill(v) => {
            let ts: [i64; 2] = [v[7].parse().unwrap_or(0), v[8].parse().unwrap_or(0)];
            c.execute(
                &lf,
                &[
                    seq, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &ts[0], &ts[1], &v[9],
                ],
            )
            .expect("insert");
        }
        Plain::Decision(v) => {
            c.execute(
                &dec,
                &[
                    seq, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
                    &v[10],
                ],
            )
            .expect("insert");
        }
    })
}

/// A fresh schema in the database at `url`, and the URL that writes into it.
fn pg_schema(url: &str, tag: &str) -> Result<(String, String), String> {
    let name = format!("fc_bench_{}_{tag}", std::process::id());
    let mut c = Client::connect(url, NoTls).map_err(|e| format!("connecting: {e}"))?;
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    ))
    .map_err(|e| format!("creating schema {name}: {e}"))?;
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok((
        name.clone(),
        format!("{url}{sep}options=-c%20search_path%3D{name}"),
    ))
}

/// The PostgreSQL case; an unreachable server is a reason to skip, not a crash.
fn postgres(
    url: &str,
    dir: &Path,
    plain: &[(i64, Plain)],
    records: u64,
    progress: &Progress,
) -> Result<Case, String> {
    progress.phase("postgres: sidecar replay", records);
    let (name, target) = pg_schema(url, "sidecar")?;
    let hist = Arc::new(Mutex::new(histogram()));
    let replay = sidecar::run(dir, &target, timed_options(&hist, progress));
    drop_schema(url, &name);
    let stats = replay.map_err(|e| format!("replay: {e}"))?;
    progress.phase("postgres: baseline, an INSERT per row", plain.len() as u64);
    let (base_name, base_target) = pg_schema(url, "baseline")?;
    let base = pg_baseline(&base_target, plain, progress);
    drop_schema(url, &base_name);
    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    Ok(case("postgres", &stats, &h, base, plain.len()))
}

fn drop_schema(url: &str, name: &str) {
    if let Ok(mut c) = Client::connect(url, NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
    }
}

/// Sidecar options that record each committed batch's per-row time into `hist`.
fn timed_options(hist: &Arc<Mutex<Histogram<u64>>>, progress: &Progress) -> SidecarOptions {
    let hist = Arc::clone(hist);
    let bar = progress.handle();
    let mut last = (Instant::now(), 0u64);
    SidecarOptions {
        progress: Some(Box::new(move |s: &SidecarStats| {
            let now = Instant::now();
            let rows = s.rows - last.1;
            if let Some(per_row) = ((now - last.0).as_nanos() as u64).checked_div(rows) {
                if let Ok(mut h) = hist.lock() {
                    let _ = h.record(per_row.max(1));
                }
            }
            last = (now, s.rows);
            bar.set_position(s.records);
        })),
        ..SidecarOptions::default()
    }
}

fn case(
    db: &str,
    stats: &SidecarStats,
    hist: &Histogram<u64>,
    base: (f64, Histogram<u64>),
    base_rows: usize,
) -> Case {
    let mut case = Case::new(db, RatioBasis::Throughput)
        .param("records", stats.records)
        .param("rows", stats.rows)
        .param("batches", stats.batches)
        .param("baseline_rows", base_rows)
        .variant(
            Variant::new(
                "fillcast sidecar",
                Role::Fillcast,
                "journal replay, one transaction per batch with the read position",
            )
            .latency("per row, averaged over each committed batch", hist)
            .throughput(stats.rows_per_sec(), "rows/s")
            .extra("records_per_sec", stats.records_per_sec())
            .extra("elapsed_s", stats.elapsed.as_secs_f64()),
        )
        .variant(
            Variant::new("baseline", Role::Baseline, "one autocommit INSERT per row")
                .latency("per row (one INSERT)", &base.1)
                .throughput(base.0, "rows/s"),
        )
        .finish();
    if db == "sqlite" {
        let rate = stats.rows_per_sec();
        case.target_result = Some(format!(
            "{:.0} k rows/s against ≥ 300 k: {}",
            rate / 1e3,
            if rate >= TARGET_ROWS_PER_SEC {
                "met".to_string()
            } else {
                format!("{:.1}× short", TARGET_ROWS_PER_SEC / rate.max(1.0))
            }
        ));
    }
    case
}

pub fn run(opts: &Options, progress: &Progress) -> Scenario {
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("journal");
    progress.phase("writing the journal", opts.rows as u64);
    let mut synth = Synth::create(
        &dir,
        &SynthSpec {
            followers: 200,
            paused_pct: 95,
            seed: 1,
        },
    )
    .expect("journal");
    while (synth.records() as usize) < opts.rows {
        synth.leader_fills(50).expect("leader fills");
        progress.set(synth.records());
    }
    let c = synth.counts().clone();
    let records = synth.records();
    let u = Arc::clone(synth.universe());
    let plain = plain_rows(&dir, &u, opts.baseline_rows);
    let mut notes = vec![format!(
        "journal: {records} records ({} leader fills, {} decisions, {} orders, {} exec reports), \
         200 followers, 95% paused; schema v{SCHEMA_VERSION}",
        c.leader_fills, c.decisions, c.orders, c.execs
    )];
    let mut cases = Vec::new();

    progress.phase("sqlite: sidecar replay", records);
    let hist = Arc::new(Mutex::new(histogram()));
    let db = tmp.path().join("sidecar.db");
    let stats = sidecar::run(
        &dir,
        &format!("sqlite:{}", db.display()),
        timed_options(&hist, progress),
    )
    .expect("sqlite replay");
    progress.phase("sqlite: baseline, an INSERT per row", plain.len() as u64);
    let base = sqlite_baseline(&tmp.path().join("baseline.db"), &plain, progress);
    let h = hist
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    cases.push(case("sqlite", &stats, &h, base, plain.len()));

    let mut skipped = Vec::new();
    match &opts.pg {
        Some(url) => match postgres(
            url,
            &dir,
            &plain[..opts.pg_baseline_rows.min(plain.len())],
            records,
            progress,
        ) {
            Ok(c) => {
                cases.push(c);
                notes.push(format!("postgres: {}", mask(url)));
            }
            Err(e) => skipped.push(format!("postgres at {}: {e}", mask(url))),
        },
        None => skipped.push(
            "postgres: no database given (pass --pg URL or set FILLCAST_TEST_PG)".to_string(),
        ),
    }
    Scenario {
        name: "sidecar",
        title: "journal replay into SQL".into(),
        fillcast: "fillcast sidecar: replays the journal, one transaction per batch of rows with the read position".into(),
        baseline: "one autocommit INSERT per row, prepared once, into the same schema".into(),
        threads: vec![ThreadRole::unpinned("all", "main", "reads the journal, writes SQL (PostgreSQL: plus the server's processes)")],
        target: Some("≥ 300,000 rows/s into SQLite (DESIGN.md)".into()),
        cases,
        skipped,
        notes,
        elapsed_s: started.elapsed().as_secs_f64(),
    }
}

/// The URL without its password, for printing.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
