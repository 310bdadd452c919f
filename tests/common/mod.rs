//! Helpers shared by the tests that run the real `fillcast` binary.
#![allow(dead_code)]

use std::process::{Command, Output};

/// The `fillcast` binary, run from the repository root.
pub fn fillcast_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fillcast"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

pub fn fillcast(args: &[&str]) -> Output {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
