//! The real `fillcast` binary: check-config, run and demo, with good and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fillcast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fillcast"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run fillcast")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A temporary directory, removed when the test ends.
fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// The number after `label` on the summary line that starts with it.
fn figure(out: &str, label: &str) -> u64 {
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

#[test]
fn help_explains_every_command() {
    let o = fillcast(&["--help"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for cmd in ["demo", "run", "check-config"] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    let (demo_help, _) = text(&fillcast(&["demo", "--help"]));
    for opt in ["--followers", "--leaders", "--duration", "--seed"] {
        assert!(demo_help.contains(opt), "demo --help lacks {opt}");
    }
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for f in ["config/example.toml", "config/run-file.toml"] {
        let o = fillcast(&["check-config", f]);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{f}: {out}{err}");
        assert!(out.contains(": ok"), "{out}");
    }
}

#[test]
fn check_config_points_at_file_and_line() {
    let dir = tmp();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[symbols]]\nname = \"X\"\nlot_size = \"abc\"\ntick_size = \"1\"\nvenue = \"sim\"\n",
    )
    .unwrap();
    let o = fillcast(&["check-config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.toml:3"),
        "error should name the file and line 3:\n{err}"
    );
    let o = fillcast(&["check-config", "does/not/exist.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("exist.toml"));
}

#[test]
fn run_replays_a_file_source_through_the_sim_venue() {
    let o = fillcast(&["run", "--config", "config/run-file.toml", "--progress", "0"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let lines = std::fs::read_to_string("config/leader-fills.jsonl")
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count() as u64;
    assert_eq!(figure(&out, "leader fills in"), lines, "{out}");
    assert!(figure(&out, "follower orders out") > 0, "{out}");
    assert!(out.contains("duplicate client order ids 0"), "{out}");
    assert!(out.contains("engine/venue position mismatches 0"), "{out}");
}

#[test]
fn run_reports_bad_lines_and_keeps_going() {
    let tmpdir = tmp();
    let dir = tmpdir.path();
    let good = std::fs::read_to_string("config/leader-fills.jsonl").unwrap();
    let first = good.lines().next().unwrap();
    let fills = format!(
        "{first}\n{{\"leader\":\"L1\"\nnot json at all\n{{\"leader\":\"NOPE\",\"event_id\":\"x1\",\"symbol\":\"BTCUSDT\",\"side\":\"buy\",\"qty\":\"0.1\",\"price\":\"1\",\"ts\":1}}\n{first}\n{{\"leader\":\"L1\",\"event_id\":\"x2\",\"symbol\":\"BTCUSDT\",\"side\":\"buy\",\"qty\":\"-1\",\"price\":\"1\",\"ts\":1}}\n{{\"leader\":\"L1\",\"event_id\":\"x3\",\"symbol\":\"BTCUSDT\",\"side\":\"buy\",\"qty\":\"0.1\",\"price\":\"cheap\",\"ts\":1}}\n{{\"leader\":\"L1\",\"event_id\":\"x4\",\"symbol\":\"DOGE\",\"side\":\"buy\",\"qty\":\"0.1\",\"price\":\"1\",\"ts\":1}}\n{{\"leader\":\"L1\",\"event_id\":\"x5\",\"sym"
    );
    std::fs::write(dir.join("fills.jsonl"), fills).unwrap();
    let cfg = std::fs::read_to_string("config/run-file.toml").unwrap();
    let cfg = cfg.replace(
        "leader-fills.jsonl",
        dir.join("fills.jsonl").to_str().unwrap(),
    );
    let cfg_path = dir.join("run.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let o = fillcast(&[
        "run",
        "--config",
        cfg_path.to_str().unwrap(),
        "--progress",
        "0",
    ]);
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "bad lines must not stop the engine: {out}{err}"
    );
    for line in [2, 3, 4, 5, 6, 7, 8, 9] {
        assert!(
            err.contains(&format!("fills.jsonl:{line}:")),
            "line {line} not reported:\n{err}"
        );
    }
    assert_eq!(figure(&out, "leader fills in"), 1, "{out}");
}

#[test]
fn demo_runs_small_and_reconciles_with_the_venue() {
    let o = fillcast(&[
        "demo",
        "--followers",
        "300",
        "--leaders",
        "4",
        "--duration",
        "1",
        "--rate",
        "200",
        "--seed",
        "3",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(figure(&out, "leader fills in"), 200, "{out}");
    assert!(figure(&out, "follower orders out") > 1000, "{out}");
    assert!(out.contains("duplicate client order ids 0"), "{out}");
    assert!(out.contains("engine/venue position mismatches 0"), "{out}");
    assert!(out.contains("p99"), "{out}");
    let _ = Path::new(".");
}

/// A config of the file replay that journals into `dir/journal` and paces the file.
fn journaled_config(dir: &Path, rate: u32) -> PathBuf {
    let cfg = std::fs::read_to_string("config/run-file.toml").unwrap();
    let fills = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/leader-fills.jsonl");
    let cfg = cfg.replace(
        "\"leader-fills.jsonl\"",
        &format!("{:?}\nrate_per_sec = {rate}", fills.display().to_string()),
    );
    let cfg = format!("{cfg}\n[journal]\ndir = \"journal\"\nsegment_mib = 1\n");
    let path = dir.join("run.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn another_process_tails_the_journal_while_the_engine_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = journaled_config(dir.path(), 40);
    let mut engine = Command::new(env!("CARGO_BIN_EXE_fillcast"))
        .args(["run", "--progress", "0", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = dir.path().join("journal");
    let mut tail = fillcast_journal::Tailer::open(&journal, 1).unwrap();
    let mut seen = Vec::new();
    let mut finished = false;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < until, "tail timed out");
        match tail.poll_with(|r| r.seq).unwrap() {
            Some(seq) => seen.push(seq),
            None if finished => break,
            None => {
                finished = engine.try_wait().unwrap().is_some();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
    assert!(engine.wait().unwrap().success());
    let reader = fillcast_journal::JournalReader::open(&journal).unwrap();
    let all: Vec<u64> = reader.iter_from(1).map(|r| r.unwrap().seq).collect();
    assert!(
        all.len() > 200,
        "the run journals every input and decision ({} records)",
        all.len()
    );
    assert_eq!(
        seen, all,
        "the tail sees every record exactly once, in order"
    );
}

#[test]
fn journal_inspect_summarises_and_dumps_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = journaled_config(dir.path(), 100_000);
    let o = fillcast(&["run", "--progress", "0", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let journal = dir.path().join("journal");
    let (out, _) = text(&fillcast(&[
        "journal",
        "inspect",
        journal.to_str().unwrap(),
    ]));
    assert!(
        out.contains("leader_fill") && out.contains("decision") && out.contains("config"),
        "{out}"
    );
    let o = fillcast(&[
        "journal",
        "inspect",
        journal.to_str().unwrap(),
        "--json",
        "--from",
        "2",
        "--limit",
        "50",
    ]);
    let (json, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 50);
    for (i, l) in lines.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("line {i} is not JSON ({e}): {l}"));
        assert_eq!(v["seq"], i as u64 + 2);
        assert!(v["kind"].is_string());
    }
    let o = fillcast(&[
        "journal",
        "inspect",
        dir.path().join("nothing-here").to_str().unwrap(),
    ]);
    let (out, _) = text(&o);
    assert!(
        o.status.success() && out.contains("records       0"),
        "{out}"
    );
}
