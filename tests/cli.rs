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

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fillcast-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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
    let dir = tmp("bad-config");
    let path = dir.join("bad.toml");
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
    let dir = tmp("bad-lines");
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
