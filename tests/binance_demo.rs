//! Issue 15's demo at the real binary: `fillcast binance-test-venue` as its own
//! process (demo accounts, a leader trading on a seeded schedule), `fillcast
//! run` against it with the leader from the `binance` source and the followers
//! on the `binance` venue, each with its own key from the vault; then the
//! journal into SQLite and the reports. The venue's books must equal the
//! engine's (checked twice: by the venue's own `--check-db`, and here from the
//! journal against the venue's positions file), no client order id may reach
//! the venue twice, and no key material may appear in anything the run wrote.

use crate::binance::{
    assert_none_holds, binance_source, binance_venue, files_under, keys_add, run,
    sidecar_and_report, wait_up_to,
};
use crate::support::{engine_positions, figure, fillcast_cmd, text, tmp};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FOLLOWERS: usize = 3;
/// The config's symbols, in its order (the journal's symbol indices), with
/// their lot size; the venue is given the same filters.
const SYMBOLS: [(&str, &str); 2] = [
    (
        "BTCUSDT",
        "BTCUSDT:tick=0.1,step=0.001,min_qty=0.001,min_notional=100,price=65000",
    ),
    (
        "ETHUSDT",
        "ETHUSDT:tick=0.01,step=0.001,min_qty=0.001,min_notional=20,price=3200",
    ),
];

/// What a child wrote to one of its pipes, so far.
type Captured = Arc<Mutex<Vec<u8>>>;

/// A child process that is killed if the test ends before it does, with its
/// stdout and stderr read as they come (so a full pipe never blocks it).
struct Proc {
    child: Option<Child>,
    out: Captured,
    err: Captured,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn spawn(mut c: std::process::Command) -> Proc {
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fillcast");
        let (out, err) = (Arc::default(), Arc::default());
        let mut readers = Vec::new();
        let pipes: [(Box<dyn Read + Send>, &Captured); 2] = [
            (Box::new(child.stdout.take().unwrap()), &out),
            (Box::new(child.stderr.take().unwrap()), &err),
        ];
        for (mut pipe, into) in pipes {
            let into = Arc::clone(into);
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    into.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        Proc {
            child: Some(child),
            out,
            err,
            readers,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn sigterm(&self) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "SIGTERM to the venue");
    }

    /// Waits for the end (failing after 60 s) and returns what it wrote.
    fn finish(mut self, what: &str) -> Output {
        let mut child = self.child.take().expect("running");
        let status = {
            let mut waited = None;
            wait_for(what, || {
                waited = child.try_wait().expect("wait");
                waited.is_some()
            });
            waited.unwrap()
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        Output {
            status,
            stdout: std::mem::take(&mut self.out.lock().unwrap()),
            stderr: std::mem::take(&mut self.err.lock().unwrap()),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Until `ok()`, or fail after `what` took more than 60 s (a failure bound on
/// a shared machine, not a timing).
fn wait_for(what: &str, ok: impl FnMut() -> bool) {
    wait_up_to(what, Duration::from_secs(60), ok);
}

/// `fillcast ctl status --json` of the engine, or nothing while it is not up.
fn status(cfg: &Path) -> Option<serde_json::Value> {
    let o = fillcast_cmd()
        .args(["ctl", "--json", "--config"])
        .arg(cfg)
        .arg("status")
        .output()
        .ok()?;
    serde_json::from_slice(&o.stdout).ok()
}

/// (role, name, api key, secret) of each line of the venue's `--keys-out` file.
fn accounts(path: &Path) -> Vec<[String; 4]> {
    std::fs::read_to_string(path)
        .expect("the demo keys")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let w: Vec<String> = l.split_whitespace().map(String::from).collect();
            w.try_into().expect("role name key secret")
        })
        .collect()
}

fn config(dir: &Path, urls: &BTreeMap<String, String>) -> PathBuf {
    let url = |k: &str| urls.get(k).unwrap_or_else(|| panic!("no {k} in {urls:?}"));
    let mut c = format!(
        r#"[journal]
dir = "journal"
segment_mib = 8

{venue}
[[symbols]]
name = "BTCUSDT"
lot_size = "0.001"
tick_size = "0.1"
min_notional = "100"
venue = "binance"

[[symbols]]
name = "ETHUSDT"
lot_size = "0.001"
tick_size = "0.01"
min_notional = "20"
venue = "binance"

[[leaders]]
id = "L1"
equity = "100000"

{source}"#,
        venue = binance_venue(
            r#"F1 = "F1", F2 = "F2", F3 = "F3""#,
            url("ws_api_url"),
            url("rest_url")
        ),
        source = binance_source("L1", url("rest_url"), url("stream_url")),
    );
    let modes = [
        "mode = \"fixed_ratio\"\nratio = \"0.5\"",
        "mode = \"proportional\"\nmultiplier = \"2\"",
        "mode = \"fixed_amount\"\namount = \"1000\"",
    ];
    for (f, mode) in modes.iter().enumerate().take(FOLLOWERS) {
        c.push_str(&format!(
            "\n[[followers]]\nid = \"F{n}\"\nequity = \"50000\"\n\
             [[subscriptions]]\nfollower = \"F{n}\"\nleader = \"L1\"\n\
             allocation = \"10000\"\nslippage_bps = 50\n{mode}\n",
            n = f + 1
        ));
    }
    let path = dir.join("fillcast.toml");
    std::fs::write(&path, c).unwrap();
    path
}

#[test]
fn the_binance_demo_copies_the_test_venues_leader_and_the_venues_books_equal_the_engines() {
    let d = tmp();
    let dir = d.path();
    let help = fillcast_cmd()
        .args(["binance-test-venue", "--help"])
        .output()
        .unwrap();
    let (help, _) = text(&help);
    assert!(
        help.contains("stand-in for Binance USD-M futures")
            && help.contains("never a real exchange"),
        "{help}"
    );

    // The venue: 1 leader, 3 followers, 8 trades once the leader's stream is
    // open, the positions left open so that the books compared are not flat.
    let db = format!("sqlite:{}", dir.join("fc.db").display());
    let mut c = fillcast_cmd();
    c.args(["binance-test-venue", "--followers", "3", "--trades", "8"])
        .args([
            "--rate",
            "20",
            "--seed",
            "11",
            "--leave-open",
            "--until-stopped",
        ])
        .arg("--keys-out")
        .arg(dir.join("demo-keys.txt"))
        .arg("--urls-file")
        .arg(dir.join("urls.txt"))
        .arg("--positions-file")
        .arg(dir.join("venue-positions.txt"))
        .args(["--check-db", &db]);
    for (_, spec) in SYMBOLS {
        c.args(["--symbol", spec]);
    }
    let mut venue = Proc::spawn(c);
    let urls_file = dir.join("urls.txt");
    wait_for("the venue's URLs", || urls_file.exists());
    let urls: BTreeMap<String, String> = std::fs::read_to_string(&urls_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let accounts = accounts(&dir.join("demo-keys.txt"));
    assert_eq!(accounts.len(), 1 + FOLLOWERS);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("demo-keys.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the keys file is the owner's only");

    // The vault: every account's key, asked at the venue.
    for [_, name, key, secret] in &accounts {
        keys_add(dir, &urls["rest_url"], name, key, secret, false);
    }
    let cfg = config(dir, &urls);

    let mut engine = run(dir, &cfg);
    engine.arg("--until-stopped");
    let mut engine = Proc::spawn(engine);
    wait_for("the leader's trades", || {
        assert!(venue.alive(), "the venue ended early");
        assert!(engine.alive(), "the engine ended early");
        venue.stdout().contains("leader trades done:")
    });
    let done = venue.stdout();
    let made: u64 = done
        .split("leader trades done: ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no trade count in {done}"));
    assert_eq!(made, 8, "{done}");
    wait_for("the engine to take and copy every trade", || {
        status(&cfg).is_some_and(|s| {
            let s = &s["status"];
            s["counts"]["leader_fills"].as_u64() >= Some(made)
                && s["live_orders"] == 0
                && s["out_of_sync"]["pairs_waiting"] == 0
        })
    });
    let o = fillcast_cmd()
        .args(["ctl", "--config"])
        .arg(&cfg)
        .arg("shutdown")
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", text(&o));
    let engine = engine.finish("the engine to stop");
    let (out, err) = text(&engine);
    assert!(engine.status.success(), "{out}\n{err}");
    assert_eq!(figure(&out, "leader fills in"), made, "{out}");
    assert!(figure(&out, "follower orders out") > 0, "{out}");

    let mut outputs = vec![engine.stdout, engine.stderr];
    outputs.extend(sidecar_and_report(dir, &db));

    // The venue stops and compares its books with the engine's database.
    venue.sigterm();
    let venue = venue.finish("the venue to stop");
    let (vout, verr) = text(&venue);
    assert!(venue.status.success(), "{vout}\n{verr}");
    assert!(
        vout.contains("reconciliation: ok") && vout.contains("more than once 0"),
        "{vout}"
    );
    outputs.extend([venue.stdout, venue.stderr]);

    // And again here: the engine's positions rebuilt from its journal against
    // the venue's positions file, follower by follower.
    let engine_books = engine_positions(&dir.join("journal"));
    let lot = Decimal::new(1, 3);
    let mut at_venue = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("venue-positions.txt"))
        .unwrap()
        .lines()
    {
        let [name, symbol, qty] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("a positions line: {line}")
        };
        at_venue.insert(
            (name.to_string(), symbol.to_string()),
            qty.parse::<Decimal>().unwrap(),
        );
    }
    assert_eq!(at_venue.len(), (1 + FOLLOWERS) * SYMBOLS.len());
    for f in 0..FOLLOWERS {
        for (s, (symbol, _)) in SYMBOLS.iter().enumerate() {
            let engine_lots = engine_books
                .get(&(f as u32, s as u16))
                .copied()
                .unwrap_or(0);
            assert_eq!(
                Decimal::from(engine_lots) * lot,
                at_venue[&(format!("F{}", f + 1), symbol.to_string())],
                "F{} {symbol}: the engine's position against the venue's",
                f + 1
            );
        }
    }
    assert!(
        at_venue.iter().any(|((n, _), q)| n != "L1" && !q.is_zero()),
        "the followers hold positions: {at_venue:?}"
    );

    // No key or secret in anything the run produced, but the keys file.
    let files: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| p.file_name() != Some("demo-keys.txt".as_ref()))
        .collect();
    assert!(
        files.len() >= 6,
        "journal, database, reports, vault, positions"
    );
    outputs.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    for [_, name, key, secret] in &accounts {
        assert_none_holds(
            &outputs,
            &[key, secret],
            &format!("what the demo produced ({name}'s)"),
        );
    }
}
