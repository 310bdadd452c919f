//! Restarts that are always safe (issue 10): the real `fillcast` binary and the
//! simulated venue in its own process, restarted after completion, after SIGKILLs,
//! from another working directory, with the fills file moved and with operational
//! config changes. After each: no client order id reached the venue twice and every
//! leader fill has exactly one decision per subscription of its leader.

use fillcast_engine::outputs::SyncReason;
use fillcast_journal::reader::JournalReader;
use fillcast_journal::record::{decode, Entry};
use fillcast_journal::segment;
use fillcast_journal::writer::list_segments;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    engine_positions, fillcast, finish, free_port, leader_fills, venue_positions, Rng, Venue,
};

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

/// Runs the engine on the first 100 lines of `dir/fills.jsonl` (the file cut to
/// them); the lines after, for `append_fills`.
fn run_the_first_100_fills(cfg: &Path, dir: &Path) -> Vec<String> {
    let all = std::fs::read_to_string(dir.join("fills.jsonl")).unwrap();
    let lines: Vec<&str> = all.lines().collect();
    let (first, rest) = lines.split_at(100);
    std::fs::write(dir.join("fills.jsonl"), first.join("\n") + "\n").unwrap();
    run_to_end(cfg, dir);
    rest.iter().map(|l| l.to_string()).collect()
}

/// `lines` appended to the fills file `path`.
fn append_fills(path: &Path, lines: &[String]) {
    let mut more = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut more, (lines.join("\n") + "\n").as_bytes()).unwrap();
}

/// Runs `fillcast run` on `cfg` from `cwd` to its end; its stderr.
fn run_to_end(cfg: &Path, cwd: &Path) -> String {
    let child = engine(cfg, cwd).spawn().expect("start the engine");
    let out = finish(child, Duration::from_secs(40));
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "run failed:\n{so}\n{se}");
    se
}

/// A restart on a changed file: it says each of `lines` (the revision applied,
/// what changed), and a further restart on the same file replays with nothing
/// to apply.
fn restart_applies(cfg: &Path, cwd: &Path, lines: &[&str]) {
    let err = run_to_end(cfg, cwd);
    for line in lines {
        assert!(err.contains(line), "`{line}` not in:\n{err}");
    }
    let again = run_to_end(cfg, cwd);
    assert!(again.contains(", 0 differ"), "{again}");
    assert!(
        !again.contains("the decision model changed"),
        "the same file again is the revision in force:\n{again}"
    );
}

fn engine(cfg: &Path, cwd: &Path) -> Command {
    let mut c = fillcast();
    c.current_dir(cwd)
        .args(["run", "--progress", "5", "--config"])
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

/// The file source of `cfg` paced to `rate` lines per second, so kills land mid-run.
fn paced(cfg: String, rate: u64) -> String {
    cfg.replace(
        "kind = \"file\"",
        &format!("kind = \"file\"\nrate_per_sec = {rate}"),
    )
}

/// One test's world: folder `sub` under a temporary root, holding `fills.jsonl`
/// (`n` fills from `seed`) and `copy.toml` (`cfg_text` of the venue's port), and
/// the venue process serving it.
struct Case {
    tmp: tempfile::TempDir,
    dir: PathBuf,
    cfg: PathBuf,
    port: u16,
    keys: Vec<(String, u64)>,
    venue: Venue,
}

impl Case {
    fn new(sub: &str, seed: u64, n: usize, cfg_text: impl Fn(u16) -> String) -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(sub);
        std::fs::create_dir_all(&dir).unwrap();
        let (fills, keys) = leader_fills(&mut Rng(seed), n);
        std::fs::write(dir.join("fills.jsonl"), fills).unwrap();
        let port = free_port();
        let cfg = dir.join("copy.toml");
        std::fs::write(&cfg, cfg_text(port)).unwrap();
        let venue = Venue::start(&cfg, &dir, port);
        Case {
            tmp,
            dir,
            cfg,
            port,
            keys,
            venue,
        }
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// Stops the venue: it must never have seen a client order id twice.
    fn assert_no_order_sent_twice(self) {
        self.stop_venue();
    }

    /// Stops the venue (no client order id twice) and reads its books, before the
    /// folder goes with `self`.
    fn stop_venue(self) -> BTreeMap<(u32, u16), i64> {
        let positions = self.venue.positions.clone();
        let venue_text = self.venue.stop();
        assert!(
            venue_text.contains("duplicate_client_ids=0"),
            "the venue saw a client order id twice:\n{venue_text}"
        );
        venue_positions(&positions)
    }

    /// `assert_no_order_sent_twice`, and no fill lost either way: the engine's
    /// positions, rebuilt from its journal, are the venue's books.
    fn assert_venue_agrees(self, when: &str) {
        let engine = engine_positions(&self.journal());
        let venue = self.stop_venue();
        assert_eq!(
            engine, venue,
            "{when}: the engine's positions differ from the venue's"
        );
    }
}

#[test]
fn regression_plain_restart_sent_every_order_again_past_the_dedup_window() {
    let c = Case::new("", 0x1234_5678_9abc_def1, 300, |port| {
        config(port, "fills.jsonl", "")
    });
    run_to_end(&c.cfg, &c.dir);
    let again = run_to_end(&c.cfg, &c.dir);
    assert!(
        again.contains("resumes at position"),
        "the second run did not resume its source:\n{again}"
    );
    assert_each_fill_decided_once(&c.journal(), &c.keys, "after a plain restart");
    c.assert_no_order_sent_twice();
}

/// Starts `fillcast run`, lets it work for a while, then SIGKILLs it (if it has not
/// finished already). Whether it was still running when killed.
fn run_and_kill(cfg: &Path, cwd: &Path, after: Duration) -> bool {
    let child = engine(cfg, cwd).spawn().expect("start the engine");
    std::thread::sleep(after);
    kill(child)
}

/// SIGKILLs the engine (if it has not finished already) and checks what it
/// said; whether it was still running.
fn kill(mut child: std::process::Child) -> bool {
    let running = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let out = child.wait_with_output().expect("engine exit");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "the engine panicked:\n{err}");
    assert!(
        !err.contains("differ") || err.contains(", 0 differ"),
        "replay disagreed:\n{err}"
    );
    assert!(
        running || out.status.success(),
        "the engine failed before it was killed:\n{err}"
    );
    running
}

/// Starts `fillcast run` and SIGKILLs it once its journal holds `records`
/// records: mid-run however loaded the machine is (a fixed wait found an empty
/// journal when the whole suite ran beside other builds). Whether it was still
/// running when killed.
fn run_until_journaled_then_kill(cfg: &Path, cwd: &Path, journal: &Path, records: u64) -> bool {
    let mut child = engine(cfg, cwd).spawn().expect("start the engine");
    let until = std::time::Instant::now() + Duration::from_secs(120);
    let journaled = || {
        JournalReader::open(journal).map_or(0, |r| {
            r.iter_from(1)
                .map_while(|r| r.ok().map(|r| r.seq))
                .last()
                .unwrap_or(0)
        })
    };
    while child.try_wait().expect("wait").is_none()
        && journaled() < records
        && std::time::Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(child)
}

#[test]
fn restart_loop_after_completion_kills_other_folders_moved_files_and_operational_changes() {
    let c = Case::new("case", 0x0bad_cafe_0000_0010, 1200, |port| {
        paced(config(port, "fills.jsonl", ""), 2500)
    });
    let (root, dir, cfg) = (c.root(), &c.dir, &c.cfg);
    std::fs::create_dir_all(dir.join("moved")).unwrap();
    let write = |fills_path: &str, extra: &str| {
        std::fs::write(cfg, paced(config(c.port, fills_path, extra), 2500)).unwrap();
    };
    let relative = Path::new("case/copy.toml");
    let mut rng = Rng(0x0bad_cafe_0000_0011);
    let mut kill = |cfg: &Path, cwd: &Path| {
        run_and_kill(cfg, cwd, Duration::from_millis(60 + rng.below(300))) as u32
    };

    // Killed mid-run, from the config's folder and from its parent.
    let mut killed = 0;
    for _ in 0..3 {
        killed += kill(cfg, dir);
        killed += kill(relative, root);
    }
    // The fills file moved (the config says where), killed again.
    std::fs::rename(dir.join("fills.jsonl"), dir.join("moved/fills.jsonl")).unwrap();
    write("moved/fills.jsonl", "");
    killed += kill(relative, root);
    // Operational changes: pinned, other rings, another wait, another heartbeat.
    write(
        "moved/fills.jsonl",
        "core_cpu = 0\nfeed_ring_slots = 1024\nwait = \"sleep\"",
    );
    let text = std::fs::read_to_string(cfg).unwrap().replace(
        "kind = \"sim_remote\"",
        "kind = \"sim_remote\"\nheartbeat_ms = 100",
    );
    std::fs::write(cfg, text).unwrap();
    killed += kill(cfg, root);
    assert!(
        killed >= 4,
        "most kills must land while the engine runs ({killed} of 8)"
    );
    // To the end, then once more after completion.
    run_to_end(relative, root);
    let again = run_to_end(cfg, dir);
    assert!(again.contains("resumes at position"), "{again}");

    assert_each_fill_decided_once(&c.journal(), &c.keys, "after the restart loop");
    c.assert_no_order_sent_twice();
}

#[test]
fn regression_any_config_change_bricked_a_restart() {
    let c = Case::new("", 77, 200, |port| config(port, "fills.jsonl", ""));
    let (dir, cfg, port) = (&c.dir, &c.cfg, c.port);
    // The first half of the fills now, the rest after the config changed.
    let rest = run_the_first_100_fills(cfg, dir);

    // What the finding tried: pinning the core, and the fills file elsewhere.
    std::fs::rename(dir.join("fills.jsonl"), dir.join("elsewhere.jsonl")).unwrap();
    std::fs::write(cfg, config(port, "elsewhere.jsonl", "core_cpu = 0")).unwrap();
    run_to_end(cfg, dir);

    // A symbol's lot size changed is refused, saying why and what changed.
    let resized = config(port, "elsewhere.jsonl", "").replacen(
        "lot_size = \"0.01\"",
        "lot_size = \"0.1\"",
        1,
    );
    std::fs::write(cfg, resized).unwrap();
    let out = engine(cfg, dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a new lot size was taken:\n{err}");
    assert!(
        err.contains("symbol `ETHUSDT`: lot_size was 0.01 and is now 0.1"),
        "the refusal does not say why and what changed:\n{err}"
    );

    // A changed allocation applies as a new revision before the next fill.
    let changed = config(port, "elsewhere.jsonl", "").replacen(
        "allocation = \"20000\"",
        "allocation = \"25000\"",
        1,
    );
    std::fs::write(cfg, changed).unwrap();
    append_fills(&dir.join("elsewhere.jsonl"), &rest);
    let err = run_to_end(cfg, dir);
    assert!(
        err.contains("applied before any new event")
            && err.contains("subscriptions[F0:L1].allocation: \"20000\" → \"25000\""),
        "the new revision was not applied with its diff:\n{err}"
    );
    // Once more: the journal replays across its two revisions.
    let again = run_to_end(cfg, dir);
    assert!(again.contains(", 0 differ"), "{again}");

    // Decisions on the fills before the change carry the old revision, after it the new.
    let mut revisions: [BTreeSet<u64>; 2] = Default::default();
    let later: BTreeSet<u64> = c.keys[100..].iter().map(|k| k.1).collect();
    for rec in JournalReader::open(&c.journal()).unwrap().iter_from(1) {
        let rec = rec.unwrap();
        if let Ok(Entry::Decision(d) | Entry::OrderDecision(_, d)) =
            decode(rec.kind, rec.schema, rec.payload)
        {
            if d.resync == SyncReason::None {
                revisions[later.contains(&d.event_key) as usize].insert(d.revision);
            }
        }
    }
    assert!(
        revisions[0].len() == 1 && revisions[1].len() == 1 && revisions[0] != revisions[1],
        "decisions' revisions before and after: {revisions:?}"
    );
    // The sidecar's audit_log says what the new revision changed.
    let db = dir.join("audit.db");
    assert!(sidecar(&c.journal(), &db).status.success());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let detail: String = conn
        .query_row(
            "SELECT detail FROM audit_log WHERE kind = 'config' AND reason = 'applied' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        detail.contains("subscriptions[F0:L1].allocation"),
        "audit_log: {detail}"
    );
    assert_each_fill_decided_once(&c.journal(), &c.keys, "after config changes");
    c.assert_no_order_sent_twice();
}

/// Issue 12: a restart whose config removed a follower and its subscription and
/// added another (listed first in the file) applies them as a revision before the
/// next fill; the journal's indices keep naming what they named, so the new
/// subscription comes last, the removed one decides nothing new, and a further
/// restart on the same file replays with nothing to apply.
#[test]
fn a_restart_applies_added_and_removed_subscriptions_and_replays() {
    let c = Case::new("", 79, 200, |port| config(port, "fills.jsonl", ""));
    let (dir, cfg, port) = (&c.dir, &c.cfg, c.port);
    let rest = run_the_first_100_fills(cfg, dir);

    let f0 = "[[followers]]\nid = \"F0\"\nequity = \"50000\"\n\n[[subscriptions]]\nfollower = \"F0\"\nleader = \"L1\"\nallocation = \"20000\"\nmode = \"proportional\"\n";
    let f99 = f0.replace("F0", "F99");
    let text = config(port, "fills.jsonl", "");
    assert!(text.contains(f0));
    std::fs::write(cfg, text.replacen(f0, &f99, 1)).unwrap();
    append_fills(&dir.join("fills.jsonl"), &rest);
    restart_applies(
        cfg,
        dir,
        &[
            "applied before any new event",
            "subscriptions[F0:L1]: removed",
            "followers[F0]: removed",
            "subscriptions[F99:L1]: added",
        ],
    );

    // F99:L1 is subscription FOLLOWERS (after every journaled one); F0:L1 keeps 0.
    let d = decisions(&c.journal());
    let later: BTreeSet<u64> = c.keys[100..].iter().map(|k| k.1).collect();
    let l1_later = c.keys[100..].iter().filter(|k| k.0 == "L1").count();
    let new_sub = FOLLOWERS as u32;
    let on = |sub: u32, later_ones: bool| {
        d.iter()
            .filter(|((key, s), _)| *s == sub && later.contains(key) == later_ones)
            .count()
    };
    assert_eq!(
        on(new_sub, false),
        0,
        "F99:L1 decided fills before it existed"
    );
    assert_eq!(
        on(new_sub, true),
        l1_later,
        "F99:L1 decides each later L1 fill once"
    );
    assert!(
        on(0, false) > 0,
        "F0:L1 decided the fills before its removal"
    );
    // After its removal F0:L1 opens nothing: its decisions then send no order.
    let mut opened_after = 0;
    for rec in JournalReader::open(&c.journal()).unwrap().iter_from(1) {
        let rec = rec.unwrap();
        if let Ok(Entry::OrderDecision(o, d)) = decode(rec.kind, rec.schema, rec.payload) {
            if d.sub.0 == 0 && later.contains(&d.event_key) && !o.reduce_only {
                opened_after += 1;
            }
        }
    }
    assert_eq!(
        opened_after, 0,
        "F0:L1 opened exposure after it was removed"
    );
    c.assert_no_order_sent_twice();
}

/// Issue 12, symbols: a restart whose config removes ETHUSDT and adds SOLUSDT
/// applies them as a revision before the next fill. What followers held in
/// ETHUSDT closes (`on_remove = "close"`), the fills in it that come after are
/// refused by the source, SOLUSDT's are copied and filled at the venue (which
/// read its config before SOLUSDT existed), a further restart replays it all
/// with nothing to apply, and the engine's books equal the venue's.
#[test]
fn a_restart_applies_added_and_removed_symbols_and_replays() {
    let c = Case::new("", 81, 200, |port| config(port, "fills.jsonl", ""));
    let (dir, cfg, port) = (&c.dir, &c.cfg, c.port);
    let rest = run_the_first_100_fills(cfg, dir);
    let held = engine_positions(&c.journal());
    assert!(
        held.keys().any(|(_, s)| *s == 1),
        "followers hold ETHUSDT after the first run, or this proves nothing: {held:?}"
    );
    let eth = "[[symbols]]\nname = \"ETHUSDT\"\nlot_size = \"0.01\"\ntick_size = \"0.01\"\nvenue = \"sim\"\n";
    let text = config(port, "fills.jsonl", "");
    assert!(text.contains(eth));
    std::fs::write(
        cfg,
        text.replacen(eth, &eth.replace("ETHUSDT", "SOLUSDT"), 1),
    )
    .unwrap();
    let sol = |event: &str, qty: &str| {
        format!(
            r#"{{"leader":"L1","event_id":"{event}","symbol":"SOLUSDT","side":"buy","qty":"{qty}","price":"150","ts":1732060900000000000}}"#
        )
    };
    let mut more = rest.clone();
    more.push(sol("s1", "10"));
    more.push(sol("s2", "5"));
    append_fills(&dir.join("fills.jsonl"), &more);
    restart_applies(
        cfg,
        dir,
        &[
            "applied before any new event",
            "symbols[ETHUSDT]: removed",
            "symbols[SOLUSDT]: added",
            "symbol `ETHUSDT` was removed by a reload",
        ],
    );

    // ETHUSDT (index 1) closed; SOLUSDT (index 2, after the tombstone) held by
    // L1's followers: F0, F2, F4, F6 copy L1 at 0.2, 3 SOLUSDT each.
    let held = engine_positions(&c.journal());
    assert!(
        held.keys().all(|(_, s)| *s != 1),
        "a follower still holds the removed ETHUSDT: {held:?}"
    );
    for f in [0, 2, 4, 6] {
        assert_eq!(held.get(&(f, 2)), Some(&300), "F{f} in SOLUSDT: {held:?}");
    }
    // The closes were the resync's, reason `revision`, reduce-only; nothing else
    // went to ETHUSDT once it was removed.
    let (mut closes, mut removed_at) = (0, None);
    for rec in JournalReader::open(&c.journal()).unwrap().iter_from(1) {
        let rec = rec.unwrap();
        let entries = match decode(rec.kind, rec.schema, rec.payload) {
            Ok(Entry::OrderDecision(o, d)) => vec![Entry::Order(o), Entry::Decision(d)],
            Ok(e) => vec![e],
            Err(_) => vec![],
        };
        for e in entries {
            match e {
                Entry::Config(c) if c.toml.contains("removed = true") => {
                    removed_at.get_or_insert(rec.seq);
                }
                Entry::Order(o) if o.symbol.0 == 1 && removed_at.is_some() => {
                    assert!(o.reduce_only, "seq {}: {o:?}", rec.seq);
                }
                Entry::Decision(d) if d.symbol.0 == 1 && d.resync == SyncReason::Revision => {
                    assert!(removed_at.is_some(), "seq {}: {d:?}", rec.seq);
                    closes += (!d.sent.is_zero()) as u32;
                }
                _ => {}
            }
        }
    }
    assert!(closes > 0, "no close of ETHUSDT at the restart");
    c.assert_venue_agrees("after a restart removed ETHUSDT and added SOLUSDT");
}

#[test]
fn regression_restart_depended_on_the_working_directory() {
    let c = Case::new("case", 78, 120, |port| config(port, "fills.jsonl", ""));
    let (root, dir, cfg) = (c.root(), &c.dir, &c.cfg);
    run_to_end(Path::new("copy.toml"), dir);
    // From the parent folder, and from a folder the config is not under at all.
    run_to_end(Path::new("case/copy.toml"), root);
    let other = tempfile::tempdir().unwrap();
    let again = run_to_end(cfg, other.path());
    assert!(again.contains("resumes at position"), "{again}");
    // The sidecar reads the journal from anywhere too.
    let db = format!("sqlite:{}", root.join("fc.db").display());
    let out = fillcast()
        .current_dir(other.path())
        .args(["sidecar", "--journal"])
        .arg(dir.join("journal"))
        .args(["--db", &db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the sidecar refused the journal: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_each_fill_decided_once(&c.journal(), &c.keys, "after runs from other folders");
    c.assert_no_order_sent_twice();
}

/// The journal's last sequence, and its last segment: first sequence, path, bytes.
fn last_segment(journal: &Path) -> (u64, u64, PathBuf, Vec<u8>) {
    let last_seq = JournalReader::open(journal)
        .unwrap()
        .iter_from(1)
        .map_while(|r| r.ok().map(|r| r.seq))
        .last()
        .expect("records");
    let (first_seq, path) = list_segments(journal).unwrap().pop().expect("a segment");
    let bytes = std::fs::read(&path).unwrap();
    (last_seq, first_seq, path, bytes)
}

/// `fillcast sidecar` from `journal` into the SQLite file `db`.
fn sidecar(journal: &Path, db: &Path) -> std::process::Output {
    fillcast()
        .args(["sidecar", "--journal"])
        .arg(journal)
        .arg("--db")
        .arg(format!("sqlite:{}", db.display()))
        .output()
        .unwrap()
}

/// What a power loss does to a journal written with `durability = "never"`: the
/// page cache's last pages never reach the disk, and orders they recorded may have
/// left. Zeroes the last `share` of the records of the last segment; the seqs lost.
fn lose_journal_tail(journal: &Path, share: f64) -> std::ops::Range<u64> {
    let (last_seq, first_seq, path, mut bytes) = last_segment(journal);
    let from_seq = (first_seq + ((last_seq - first_seq) as f64 * (1.0 - share)) as u64).max(2);
    let from = segment::offset_of(&bytes[..], first_seq, from_seq).expect("record offset");
    let to = segment::offset_of(&bytes[..], first_seq, last_seq + 1).expect("end offset");
    bytes[from..to].fill(0);
    std::fs::write(&path, bytes).unwrap();
    from_seq..last_seq + 1
}

/// A run after records whose orders reached the venue were lost: it must have
/// taken those orders over from the venue (listed at the restart), and end with the
/// marker gone.
fn assert_took_over(err: &str, journal: &Path, when: &str) {
    for line in err.lines().filter(|l| {
        l.contains("taken over")
            || l.contains("already at their venue")
            || l.contains("differ from the venue")
    }) {
        eprintln!("{when}: {line}");
    }
    let taken: u64 = err
        .lines()
        .filter_map(|l| {
            l.split("holds ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(
        taken > 0,
        "{when}: the engine did not take over the orders the journal lost:\n{err}"
    );
    assert!(
        !journal
            .join(fillcast_journal::restart::ASK_FIRST_MARKER)
            .exists(),
        "{when}: a clean end clears the marker"
    );
}

#[test]
fn regression_orders_whose_records_a_power_loss_took_were_sent_again() {
    let c = Case::new("", 0x9e37_79b9, 3000, |port| {
        paced(config(port, "fills.jsonl", ""), 1500).replace("segment_mib = 4", "segment_mib = 64")
    });
    // Killed mid-run, then the machine "loses power": the journal's tail is gone
    // although its orders reached the venue.
    assert!(
        run_until_journaled_then_kill(&c.cfg, &c.dir, &c.journal(), 400),
        "killed mid-run"
    );
    let lost = lose_journal_tail(&c.journal(), 0.3);
    assert!(lost.end - lost.start > 30, "records lost: {lost:?}");
    let out = engine(&c.cfg, &c.dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        if l.contains("venue reports in") || l.contains("venue reconciliation") {
            eprintln!("{l}");
        }
    }
    assert_took_over(&err, &c.journal(), "after the lost tail");
    assert_each_fill_decided_once(&c.journal(), &c.keys, "after the lost tail");
    // The sidecar takes the orders over as the core did: its positions are the
    // engine's.
    let db = c.dir.join("after.db");
    let out = sidecar(&c.journal(), &db);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sql_positions(&db),
        engine_positions(&c.journal()),
        "the sidecar's positions differ from the engine's"
    );
    assert!(out.status.success(), "the run failed:\n{err}");
    c.assert_venue_agrees("after the lost tail");
}

/// The sidecar's `positions` table in lots per (follower, symbol) of `config`'s
/// universe (followers `F0`.., symbols BTCUSDT lot 0.001, ETHUSDT lot 0.01), nonzero.
fn sql_positions(db: &Path) -> BTreeMap<(u32, u16), i64> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT follower_id, symbol, CAST(qty AS TEXT) FROM positions")
        .unwrap();
    let mut pos = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (follower, symbol, qty) = row.unwrap();
        let f: u32 = follower.trim_start_matches('F').parse().unwrap();
        let (s, lot) = match symbol.as_str() {
            "BTCUSDT" => (0u16, "0.001"),
            _ => (1u16, "0.01"),
        };
        let lots = qty.parse::<rust_decimal::Decimal>().unwrap()
            / lot.parse::<rust_decimal::Decimal>().unwrap();
        let lots: i64 = rust_decimal::prelude::ToPrimitive::to_i64(&lots).unwrap();
        *pos.entry((f, s)).or_default() += lots;
    }
    pos.retain(|_, p: &mut i64| *p != 0);
    pos
}

/// Flips one bit in the middle of the last segment's records.
fn damage_journal_middle(journal: &Path) -> u64 {
    let (last_seq, first_seq, path, mut bytes) = last_segment(journal);
    let seq = first_seq + (last_seq - first_seq) / 2;
    let at = segment::offset_of(&bytes[..], first_seq, seq).expect("record offset");
    // The payload's first byte (a short record's payload may end before byte 8,
    // and padding after it is not checksummed): its checksum no longer holds.
    bytes[at + segment::RECORD_HEADER] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    seq
}

#[test]
fn damage_in_the_middle_of_the_last_segment_never_sends_an_order_twice() {
    let c = Case::new("", 0x00da_3a9e, 3000, |port| {
        paced(config(port, "fills.jsonl", ""), 1500).replace("segment_mib = 4", "segment_mib = 64")
    });
    let (dir, cfg, journal) = (&c.dir, &c.cfg, c.journal());
    assert!(
        run_until_journaled_then_kill(cfg, dir, &journal, 400),
        "killed mid-run"
    );
    // A sidecar that has followed the journal so far.
    let db = dir.join("fc.db");
    let sidecar = || sidecar(&journal, &db);
    assert!(sidecar().status.success());

    let seq = damage_journal_middle(&journal);
    let out = engine(cfg, dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the engine started on a damaged journal:\n{err}"
    );
    assert!(
        err.contains("journal repair"),
        "the refusal does not say what to do:\n{err}"
    );

    // The refusal sent nothing; a repair cuts the journal there.
    let repair = fillcast()
        .args(["journal", "repair"])
        .arg(&journal)
        .arg("--yes")
        .output()
        .unwrap();
    assert!(
        repair.status.success(),
        "{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    // The sidecar's history now differs from the journal's at or after the damage.
    let out = sidecar();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the sidecar followed a journal whose history changed (damaged at seq {seq}):\n{err}"
    );
    // The orders of the records the repair dropped reached the venue: the engine
    // decides those fills again under the same ids and asks the venue first.
    let out = engine(cfg, dir).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_took_over(&err, &journal, "after damage and repair");
    assert_each_fill_decided_once(&journal, &c.keys, "after damage and repair");
    assert!(out.status.success(), "the run failed:\n{err}");
    c.assert_venue_agrees("after damage and repair");
}
