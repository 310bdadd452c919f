//! Crash and restart: the real `fillcast` binary, with the simulated venue in its
//! own process (`fillcast sim-venue`), killed with SIGKILL at random moments of a
//! run with many leader fills and restarted each time, then run to the end. After
//! it: every leader fill has exactly one decision per subscription of its leader,
//! the venue never received the same client order id twice, and the engine's
//! follower positions (rebuilt from the journal) equal the venue's books.

use fillcast_engine::model::{SubIdx, SymbolIdx};
use fillcast_engine::outputs::SyncReason;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::replay::replay;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{fillcast, finish, free_port, leader_fills, venue_positions, Rng, Venue};

const KILLS: usize = 20;
const FILLS: usize = 1500;
// The source paces them at 300 a second: 5 s of intake, about what the 20 kills'
// waits add up to, so most kills land while fills are still coming in. At 3,000 a
// second the intake was over after two or three runs, and a run that only replays
// the journal could end before its kill (the test's own check failed now and then).

const FOLLOWERS: usize = 40;

fn config(dir: &Path, port: u16) -> String {
    let mut c = format!(
        r#"[engine]
max_working_orders = 65536
dedup_window = 65536

[journal]
dir = "journal"
segment_mib = 4

[[venues]]
name = "sim"
kind = "sim_remote"
address = "127.0.0.1:{port}"
[venues.sim]
latency_us = 300
partial_fill_ppm = 200000
reject_ppm = 20000
transient_failure_ppm = 20000
seed = 11

[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
venue = "sim"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.01"
tick_size = "0.01"
venue = "sim"

[[sources]]
kind = "file"
path = "{}"
rate_per_sec = 300

"#,
        dir.join("fills.jsonl").display()
    );
    c.push_str(&crate::support::leaders_and_followers(FOLLOWERS));
    c
}

#[test]
fn sigkill_at_random_moments_sends_no_order_twice_and_loses_no_fill() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (fills, keys) = leader_fills(&mut rng, FILLS);
    std::fs::write(dir.join("fills.jsonl"), fills).unwrap();
    let port = free_port();
    let cfg_path = dir.join("crash.toml");
    std::fs::write(&cfg_path, config(dir, port)).unwrap();

    let venue = Venue::start(&cfg_path, dir, port);

    let mut killed_mid_run = 0;
    for i in 0..KILLS {
        let mut engine = fillcast()
            .args(["run", "--progress", "0", "--config"])
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the engine");
        std::thread::sleep(Duration::from_millis(30 + rng.below(500)));
        if engine.try_wait().expect("wait").is_none() {
            killed_mid_run += 1;
        }
        let _ = engine.kill(); // SIGKILL
        let out = engine.wait_with_output().expect("engine exit");
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(line) = err.lines().find(|l| l.starts_with("journal: replayed")) {
            eprintln!("run {i}: {line}");
        }
        assert!(
            !err.contains("differ") || err.contains(", 0 differ"),
            "run {i}: replay disagreed:\n{err}"
        );
        assert!(!err.contains("panicked"), "run {i} panicked:\n{err}");
    }
    assert!(
        killed_mid_run >= KILLS / 2,
        "most kills must land while the engine runs ({killed_mid_run})"
    );

    let last = fillcast()
        .args(["run", "--progress", "0", "--config"])
        .arg(&cfg_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(last, Duration::from_secs(300));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "the last run failed:\n{so}\n{se}");

    let positions = venue.positions.clone();
    let venue_text = venue.stop();
    assert!(
        venue_text.contains("duplicate_client_ids=0"),
        "the venue saw a client order id twice:\n{venue_text}"
    );

    // Exactly one decision per (leader fill, subscription of that leader).
    let journal = dir.join("journal");
    let reader = JournalReader::open(&journal).unwrap();
    let mut decisions: BTreeMap<(u64, u32), u32> = BTreeMap::new();
    for rec in reader.iter_from(1) {
        let rec = rec.expect("journal reads back whole");
        match decode(rec.kind, rec.schema, rec.payload) {
            // The resync's catch-ups are decisions of their own, keyed by their tick.
            Ok(Entry::Decision(d) | Entry::OrderDecision(_, d)) if d.resync == SyncReason::None => {
                *decisions.entry((d.event_key, d.sub.0)).or_default() += 1;
            }
            _ => {}
        }
    }
    let r = replay(&journal).unwrap().expect("journal has records");
    let u = r.core.universe().clone();
    for (leader, key) in &keys {
        let l = u.leader(leader).unwrap();
        for (s, sub) in u.subs.iter().enumerate().filter(|(_, s)| s.leader == l) {
            let n = decisions.get(&(*key, s as u32)).copied().unwrap_or(0);
            assert_eq!(
                n, 1,
                "leader fill {key:016x} has {n} decisions for subscription {}",
                sub.id
            );
        }
    }
    let fills_decided: BTreeSet<u64> = decisions.keys().map(|(k, _)| *k).collect();
    assert_eq!(
        fills_decided.len(),
        keys.len(),
        "decisions for fills that are not in the input"
    );

    // The engine's positions, rebuilt from the journal, equal the venue's books.
    assert_eq!(
        r.core.live_orders(),
        0,
        "orders still unanswered after the last run"
    );
    let mut engine_pos: BTreeMap<(u32, u16), i64> = BTreeMap::new();
    for (i, sub) in u.subs.iter().enumerate() {
        for s in 0..u.symbols.len() {
            let p = r.core.position(SubIdx(i as u32), SymbolIdx(s as u16)).0;
            if p != 0 {
                *engine_pos.entry((sub.follower.0, s as u16)).or_default() += p;
            }
        }
    }
    engine_pos.retain(|_, p| *p != 0);
    let venue_pos = venue_positions(&positions);
    assert_eq!(engine_pos, venue_pos, "engine and venue positions differ");
    assert!(
        r.stats.mismatches == 0 && r.stats.outputs_checked > 10_000,
        "{:?}",
        r.stats
    );
    eprintln!(
        "crash test: {KILLS} kills ({killed_mid_run} mid-run), {} leader fills, {} decisions, journal {:?}, venue {}, {} positions agree",
        keys.len(),
        decisions.len(),
        r.stats,
        venue_text.trim(),
        engine_pos.len()
    );
}
