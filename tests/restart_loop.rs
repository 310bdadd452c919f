//! Restarts that are always safe (issue 10): the real `fillcast` binary and the
//! simulated venue in its own process, restarted after completion, after SIGKILLs,
//! from another working directory, with the fills file moved and with operational
//! config changes. After each: no client order id reached the venue twice and every
//! leader fill has exactly one decision per subscription of its leader.

use fillcast_engine::core::SyncReason;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod support;
use support::{fillcast, finish, free_port, leader_fills, Rng, Venue};

const FOLLOWERS: usize = 8;

/// A config whose paths are relative to its own folder, with a duplicate window far
/// smaller than the fills file. `extra_engine` goes into `[engine]`.
fn config(port: u16, fills_path: &str, extra_engine: &str) -> String {
    let mut c = format!(
        r#"[engine]
dedup_window = 16
{extra_engine}

[journal]
dir = "journal"
segment_mib = 4

[[venues]]
name = "sim"
kind = "sim_remote"
address = "127.0.0.1:{port}"
[venues.sim]
latency_us = 100
partial_fill_ppm = 100000
reject_ppm = 10000
seed = 5

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
path = "{fills_path}"

[[leaders]]
id = "L1"
equity = "100000"

[[leaders]]
id = "L2"
equity = "200000"
"#
    );
    for f in 0..FOLLOWERS {
        let _ = writeln!(
            c,
            "[[followers]]\nid = \"F{f}\"\nequity = \"50000\"\n\n[[subscriptions]]\nfollower = \"F{f}\"\nleader = \"L{}\"\nallocation = \"20000\"\nmode = \"proportional\"\n",
            f % 2 + 1
        );
    }
    c
}

/// Runs `fillcast run` on `cfg` from `cwd` to its end; its stderr.
fn run_to_end(cfg: &Path, cwd: &Path) -> String {
    let child = engine(cfg, cwd).spawn().expect("start the engine");
    let out = finish(child, Duration::from_secs(120));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "run failed:\n{so}\n{se}");
    se
}

fn engine(cfg: &Path, cwd: &Path) -> Command {
    let mut c = fillcast();
    c.current_dir(cwd)
        .args(["run", "--progress", "0", "--config"])
        .arg(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Decisions per (leader event, subscription) in the journal, the resync's apart.
fn decisions(journal: &Path) -> BTreeMap<(u64, u32), u32> {
    let mut n = BTreeMap::new();
    for rec in JournalReader::open(journal).unwrap().iter_from(1) {
        let rec = rec.expect("journal reads back whole");
        if let Ok(Entry::Decision(d) | Entry::OrderDecision(_, d)) =
            decode(rec.kind, rec.schema, rec.payload)
        {
            if d.resync == SyncReason::None {
                *n.entry((d.event_key, d.sub.0)).or_default() += 1;
            }
        }
    }
    n
}

/// Every leader fill decided exactly once for each subscription of its leader.
fn assert_each_fill_decided_once(journal: &Path, keys: &[(String, u64)], when: &str) {
    let d = decisions(journal);
    for (leader, key) in keys {
        let subs = (0..FOLLOWERS as u32).filter(|f| format!("L{}", f % 2 + 1) == *leader);
        for s in subs {
            let n = d.get(&(*key, s)).copied().unwrap_or(0);
            assert_eq!(
                n, 1,
                "{when}: fill {key:016x} has {n} decisions for subscription {s}"
            );
        }
    }
    assert_eq!(
        d.len(),
        keys.len() * FOLLOWERS / 2,
        "{when}: decisions for fills that are not in the input"
    );
}

#[test]
fn regression_plain_restart_sent_every_order_again_past_the_dedup_window() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (fills, keys) = leader_fills(&mut Rng(0x1234_5678_9abc_def1), 300);
    std::fs::write(dir.join("fills.jsonl"), fills).unwrap();
    let port = free_port();
    let cfg = dir.join("copy.toml");
    std::fs::write(&cfg, config(port, "fills.jsonl", "")).unwrap();
    let venue = Venue::start(&cfg, dir, port);

    run_to_end(&cfg, dir);
    let again = run_to_end(&cfg, dir);
    assert!(
        again.contains("resumes at position"),
        "the second run did not resume its source:\n{again}"
    );
    assert_each_fill_decided_once(&dir.join("journal"), &keys, "after a plain restart");
    let venue_text = venue.stop();
    assert!(
        venue_text.contains("duplicate_client_ids=0"),
        "the venue saw a client order id twice:\n{venue_text}"
    );
}
