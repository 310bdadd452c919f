//! Sidecar replay throughput: a journal of `rows` records written by the real
//! core (mostly copy decisions: 200 followers, most of them paused, so most
//! decisions are skips without orders), replayed into a fresh SQLite file and,
//! given a URL, a fresh PostgreSQL schema. Beside each, the textbook baseline in
//! the same run: one `INSERT` statement per row, autocommit, over the first
//! 20,000 rows (the journal's first leader fills and decisions), into the same
//! schema.
//!
//! The target (DESIGN.md, "Performance targets") is ≥ 300,000 rows/s into SQLite.

use fillcast_engine::event::FeedEvent;
use fillcast_engine::model::Universe;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::sidecar::pg::{Client, NoTls};
use fillcast_journal::sidecar::rusqlite::{params, Connection};
use fillcast_journal::sidecar::schema::{script, Dialect, SCHEMA_VERSION};
use fillcast_journal::sidecar::synth::{Synth, SynthSpec};
use fillcast_journal::sidecar::{self, SidecarOptions, SidecarStats};
use std::path::Path;
use std::time::Instant;

/// Rows the baseline inserts, one statement each.
const BASELINE_ROWS: usize = 20_000;

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
            Entry::Decision(d) => {
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

/// Rows per second of the baseline into SQLite (same file settings as the sidecar).
fn sqlite_baseline(path: &Path, rows: &[(i64, Plain)]) -> f64 {
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
    let t = Instant::now();
    for (seq, row) in rows {
        match row {
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
        }
    }
    rows.len() as f64 / t.elapsed().as_secs_f64().max(1e-9)
}

/// Rows per second of the baseline into PostgreSQL: a round trip and a commit per row.
fn pg_baseline(url: &str, rows: &[(i64, Plain)]) -> f64 {
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
    let t = Instant::now();
    for (seq, row) in rows {
        match row {
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
        }
    }
    rows.len() as f64 / t.elapsed().as_secs_f64().max(1e-9)
}

/// A fresh schema in the database at `url`, and the URL that writes into it.
fn pg_schema(url: &str, tag: &str) -> (String, String) {
    let name = format!("fc_bench_{}_{tag}", std::process::id());
    let mut c = Client::connect(url, NoTls).expect("connect");
    c.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
    ))
    .expect("schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    (
        name.clone(),
        format!("{url}{sep}options=-c%20search_path%3D{name}"),
    )
}

fn drop_schema(url: &str, name: &str) {
    if let Ok(mut c) = Client::connect(url, NoTls) {
        let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
    }
}

fn line(db: &str, s: &SidecarStats, base: f64, base_rows: usize) {
    println!(
        "{db:>9}  {:>10.0} rows/s  {:>10.0} records/s  {:>6} batches  {:>7.2} s | baseline {:>9.0} rows/s ({base_rows} rows) | {:>6.1}x",
        s.rows_per_sec(),
        s.records_per_sec(),
        s.batches,
        s.elapsed.as_secs_f64(),
        base,
        s.rows_per_sec() / base.max(1e-9),
    );
}

pub fn run(rows: usize, pg_url: Option<String>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("journal");
    let t = Instant::now();
    let mut synth = Synth::create(
        &dir,
        &SynthSpec {
            followers: 200,
            paused_pct: 95,
            seed: 1,
        },
    )
    .expect("journal");
    while (synth.records() as usize) < rows {
        synth.leader_fills(50).expect("leader fills");
    }
    let c = synth.counts().clone();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "sidecar replay: {} records ({} leader fills, {} decisions, {} orders, {} exec reports), \
         written in {:.1} s; {cores} cores; schema v{SCHEMA_VERSION}",
        synth.records(),
        c.leader_fills,
        c.decisions,
        c.orders,
        c.execs,
        t.elapsed().as_secs_f64()
    );
    let u = std::sync::Arc::clone(synth.universe());
    let plain = plain_rows(&dir, &u, BASELINE_ROWS);

    let db = tmp.path().join("sidecar.db");
    let stats = sidecar::run(
        &dir,
        &format!("sqlite:{}", db.display()),
        SidecarOptions::default(),
    )
    .expect("sqlite replay");
    let base = sqlite_baseline(&tmp.path().join("baseline.db"), &plain);
    line("sqlite", &stats, base, plain.len());

    if let Some(url) = pg_url {
        let (name, target) = pg_schema(&url, "sidecar");
        let stats =
            sidecar::run(&dir, &target, SidecarOptions::default()).expect("postgres replay");
        let (base_name, base_target) = pg_schema(&url, "baseline");
        let base = pg_baseline(&base_target, &plain);
        line("postgres", &stats, base, plain.len());
        drop_schema(&url, &name);
        drop_schema(&url, &base_name);
    }
}
