//! What the tests that drive the real `fillcast` binary share: running it, reading
//! its summary's figures, a seeded generator, leader-fill files, starting and
//! stopping the simulated venue's process, positions from a journal and a venue.
#![allow(dead_code)] // each test file uses its own part

use fillcast_engine::ids::leader_event_key;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn fillcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fillcast"))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Leader fills: two leaders trading two symbols, episodes that open, add, reduce,
/// flip and close, all flat at the end. Returns the JSON lines and their event keys.
pub fn leader_fills(rng: &mut Rng, fills: usize) -> (String, Vec<(String, u64)>) {
    let mut out = String::new();
    let mut keys = Vec::new();
    let mut pos: HashMap<(usize, usize), i64> = HashMap::new();
    let symbols = [
        ("BTCUSDT", "0.001", 650_000i64, "0.1"),
        ("ETHUSDT", "0.01", 300_000, "0.01"),
    ];
    for i in 0..fills {
        let leader = i % 2;
        let s = (i / 2) % 2;
        let p = pos.entry((leader, s)).or_default();
        let lots: i64 = if i + 4 >= fills {
            -*p // the last fills close everything
        } else {
            let q = 1 + rng.below(40) as i64;
            // Lean back toward flat when far out, otherwise a coin decides.
            let reduce_long = *p > 60 || (*p > 0 && rng.below(3) == 0);
            let reduce_short = *p < -60 || (*p < 0 && rng.below(3) == 0);
            let sell = reduce_long || (!reduce_short && rng.below(2) == 1);
            if sell {
                -q
            } else {
                q
            }
        };
        if lots == 0 {
            continue;
        }
        *p += lots;
        let (sym, lot, px, tick) = symbols[s];
        let qty =
            rust_decimal::Decimal::from(lots.abs()) * lot.parse::<rust_decimal::Decimal>().unwrap();
        let price = rust_decimal::Decimal::from(px + rng.below(1000) as i64)
            * tick.parse::<rust_decimal::Decimal>().unwrap();
        let id = format!("e{i}");
        let leader_id = format!("L{}", leader + 1);
        let _ = writeln!(
            out,
            r#"{{"leader":"{leader_id}","event_id":"{id}","symbol":"{sym}","side":"{}","qty":"{}","price":"{}","ts":{}}}"#,
            if lots > 0 { "buy" } else { "sell" },
            qty.normalize(),
            price.normalize(),
            1_732_060_800_000_000_000u64 + i as u64 * 1_000_000
        );
        keys.push((
            leader_id,
            leader_event_key(&format!("L{}", leader + 1), &id),
        ));
    }
    (out, keys)
}

pub fn wait_for(path: &Path, timeout: Duration) -> String {
    let until = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(path) {
            if !s.trim().is_empty() {
                return s;
            }
        }
        assert!(Instant::now() < until, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn finish(mut child: Child, timeout: Duration) -> std::process::Output {
    let until = Instant::now() + timeout;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "process did not finish in {timeout:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// The simulated venue in its own process (`fillcast sim-venue`), which outlives
/// engine restarts and counts client order ids it saw twice.
pub struct Venue {
    child: Child,
    stop: PathBuf,
    /// Where it writes its books when stopped: `follower symbol position` lines.
    pub positions: PathBuf,
}

impl Venue {
    /// Starts venue `sim` of the config at `cfg_path` on `port`; its files go in `dir`.
    pub fn start(cfg_path: &Path, dir: &Path, port: u16) -> Venue {
        let stop = dir.join("venue.stop");
        let positions = dir.join("venue.positions");
        let port_file = dir.join("venue.port");
        let child = fillcast()
            .args(["sim-venue", "--config"])
            .arg(cfg_path)
            .args(["--venue", "sim", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--port-file")
            .arg(&port_file)
            .arg("--stop-file")
            .arg(&stop)
            .arg("--positions-file")
            .arg(&positions)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the venue");
        wait_for(&port_file, Duration::from_secs(20));
        Venue {
            child,
            stop,
            positions,
        }
    }

    /// Stops it; its summary (`... duplicate_client_ids=N ...`).
    pub fn stop(self) -> String {
        std::fs::write(&self.stop, b"stop").unwrap();
        let out = finish(self.child, Duration::from_secs(30));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Every follower's position per symbol, nonzero only: the engine's, rebuilt from
/// the journal at `journal` (which must hold no unanswered order).
pub fn engine_positions(journal: &Path) -> std::collections::BTreeMap<(u32, u16), i64> {
    use fillcast_engine::model::{SubIdx, SymbolIdx};
    let r = fillcast_journal::replay::replay(journal)
        .expect("the journal replays")
        .expect("the journal has records");
    assert_eq!(r.core.live_orders(), 0, "orders still unanswered");
    let u = r.core.universe().clone();
    let mut pos = std::collections::BTreeMap::new();
    for (i, sub) in u.subs.iter().enumerate() {
        for s in 0..u.symbols.len() {
            let p = r.core.position(SubIdx(i as u32), SymbolIdx(s as u16)).0;
            *pos.entry((sub.follower.0, s as u16)).or_default() += p;
        }
    }
    pos.retain(|_, p| *p != 0);
    pos
}

/// The venue's books as `Venue::stop` left them in `positions`, nonzero only.
pub fn venue_positions(positions: &Path) -> std::collections::BTreeMap<(u32, u16), i64> {
    let mut pos = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(positions)
        .expect("venue positions")
        .lines()
    {
        let v: Vec<i64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() == 3 && v[2] != 0 {
            pos.insert((v[0] as u32, v[1] as u16), v[2]);
        }
    }
    pos
}

/// The `fillcast` binary, run from the repository root.
pub fn fillcast_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fillcast"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `fillcast args...` from the repository root, to its end.
pub fn fillcast_output(args: &[&str]) -> Output {
    fillcast_cmd().args(args).output().expect("run fillcast")
}

/// (stdout, stderr) as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A temporary directory, removed when the test ends.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The number after `label` on the summary line that starts with it.
pub fn figure(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"));
    let rest = line.trim_start()[label.len()..].trim_start();
    rest.split_whitespace()
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("bad figure in {line}"))
}

/// The number right after `label` anywhere in `out` (`"unexplained "` → 0).
pub fn figure_after(out: &str, label: &str) -> u64 {
    let at = out
        .find(label)
        .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"));
    out[at + label.len()..]
        .split(|c: char| !c.is_ascii_digit() && c != ',')
        .next()
        .unwrap_or("")
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("no number after `{label}` in:\n{out}"))
}

/// Leaders L1 and L2 (equity 100,000 and 200,000) and `followers` followers
/// `F0`.. (equity 50,000), each subscribed to L1 or L2 in turn with 20,000 in
/// the four modes in turn: the config tail of the crash tests.
pub fn leaders_and_followers(followers: usize) -> String {
    use std::fmt::Write as _;
    let mut c = String::from(
        "[[leaders]]\nid = \"L1\"\nequity = \"100000\"\n\n[[leaders]]\nid = \"L2\"\nequity = \"200000\"\n",
    );
    let modes = [
        "mode = \"proportional\"\nmultiplier = \"2\"",
        "mode = \"fixed_ratio\"\nratio = \"0.5\"",
        "mode = \"fixed_amount\"\namount = \"300\"",
        "mode = \"fixed_leverage\"\nleverage = \"0.5\"",
    ];
    for f in 0..followers {
        let _ = writeln!(c, "[[followers]]\nid = \"F{f}\"\nequity = \"50000\"");
        let _ = writeln!(
            c,
            "[[subscriptions]]\nfollower = \"F{f}\"\nleader = \"L{}\"\nallocation = \"20000\"\n{}\n",
            f % 2 + 1,
            modes[f % 4]
        );
    }
    c
}
