//! The real `fillcast` binary on damaged journals and a full disk (issue 10,
//! findings 5 and 6): `journal inspect` names what is wrong and fails,
//! `journal repair` is a dry run unless `--yes` and keeps a copy, and `run` on a
//! disk with no room says so instead of dying of SIGBUS.

use crate::support::{fillcast_output, text, tmp};
use fillcast_journal::segment;
use fillcast_journal::stage::JournalStage;
use fillcast_journal::{Durability, JournalOptions, JournalWriter};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

/// A journal of `n` decodable records (config records) in segments of `bytes`.
fn journal(dir: &Path, n: u64, bytes: u64) {
    let (w, _) = JournalWriter::open(
        dir,
        JournalOptions {
            segment_bytes: bytes,
            durability: Durability::Never,
        },
    )
    .unwrap();
    let mut stage = JournalStage::new(w);
    for i in 1..=n {
        let toml = format!("# record {i}\n{}", "x = 1\n".repeat((i % 50) as usize));
        assert_eq!(stage.write_config(i, &toml, i).unwrap(), i);
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    fillcast_journal::writer::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Offset of the start of record `seq` in its segment file.
fn offset_of(path: &Path, seq: u64) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let first = segment::parse_header(&bytes).unwrap().first_seq;
    segment::offset_of(&bytes, first, seq).expect("good records up to seq")
}

fn inspect(dir: &Path, json: bool) -> (bool, String, String) {
    let mut args = vec!["journal", "inspect", dir.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    let o = fillcast_output(&args);
    let (out, err) = text(&o);
    (o.status.success(), out, err)
}

/// Regression (issue 10, finding 5): `inspect` was silent about a zeroed or
/// missing middle segment and exited 0.
#[test]
fn regression_inspect_names_a_zeroed_middle_segment_and_fails() {
    let d = tmp();
    journal(d.path(), 2000, 64 * 1024);
    let segs = segments(d.path());
    assert!(segs.len() > 3);
    let len = std::fs::metadata(&segs[1]).unwrap().len();
    std::fs::write(&segs[1], vec![0u8; len as usize]).unwrap();
    let name = segs[1].file_name().unwrap().to_string_lossy().into_owned();
    for json in [false, true] {
        let (ok, out, err) = inspect(d.path(), json);
        assert!(!ok, "json {json}: exits non-zero\n{out}{err}");
        assert!(out.contains(&name), "json {json}: names the segment\n{out}");
        assert!(err.contains("damaged spots or gaps"), "{err}");
    }
    let (_, out, _) = inspect(d.path(), true);
    assert!(out.lines().any(|l| l.starts_with("{\"problem\"")), "{out}");
    assert!(out.contains("\"seq\":2000"), "reads on to the end:\n{out}");
}

/// Regression (issue 10, finding 5): `inspect --json` exited 0 on records it
/// could not decode.
#[test]
fn regression_inspect_json_fails_on_an_undecodable_record() {
    let d = tmp();
    journal(d.path(), 5, 64 * 1024);
    let (mut w, _) = JournalWriter::open(d.path(), JournalOptions::default()).unwrap();
    w.append(4242, 1, 0, b"not a record of ours").unwrap();
    drop(w);
    let (ok, out, err) = inspect(d.path(), true);
    assert!(!ok, "{out}{err}");
    assert!(out.contains("{\"seq\":6,\"error\""), "{out}");
    assert!(err.contains("1 undecodable"), "{err}");
}

/// Regression (issue 10, finding 5): a truncated last segment made `inspect`
/// refuse the whole journal until `run` repaired it.
#[test]
fn regression_inspect_reads_a_truncated_last_segment() {
    let d = tmp();
    journal(d.path(), 600, 64 * 1024);
    let last = segments(d.path()).pop().unwrap();
    let first = segment::parse_file_name(last.file_name().unwrap().to_str().unwrap()).unwrap();
    let off = offset_of(&last, first + 3) + 8;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(off as u64)
        .unwrap();
    let (ok, out, err) = inspect(d.path(), false);
    assert!(ok, "a torn tail is not damage\n{out}{err}");
    assert!(out.contains("torn tail"), "{out}");
    assert!(out.contains(&format!("(seq 1 .. {})", first + 2)), "{out}");
    let (ok, out, _) = inspect(d.path(), true);
    assert!(ok);
    assert!(out.contains(&format!("\"seq\":{}", first + 2)));
}

/// Regression (issue 10, finding 5): recovery cut valid history after a flipped
/// bit; now `run` refuses and `journal repair` is the explicit way out.
#[test]
fn regression_repair_is_a_dry_run_unless_yes_and_keeps_a_copy() {
    let d = tmp();
    journal(d.path(), 600, 4 << 20);
    let seg = segments(d.path()).pop().unwrap();
    let mut b = std::fs::read(&seg).unwrap();
    b[offset_of(&seg, 300) + 40] ^= 0x01;
    std::fs::write(&seg, &b).unwrap();
    let before = snapshot(d.path());
    let dir = d.path().to_str().unwrap();

    let o = fillcast_output(&["journal", "repair", dir]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("repair drops records 300..600"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert_eq!(snapshot(d.path()), before, "a dry run changes nothing");
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), before.len());

    let o = fillcast_output(&["journal", "repair", dir, "--yes"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let kept: Vec<PathBuf> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(kept.len(), 1, "one repair folder");
    assert!(out.contains(kept[0].to_str().unwrap()), "{out}");
    assert!(
        d.path()
            .join(fillcast_journal::restart::ASK_FIRST_MARKER)
            .exists(),
        "after a repair the next run must ask the venues first"
    );
    assert_eq!(
        std::fs::read(kept[0].join(seg.file_name().unwrap())).unwrap(),
        b
    );
    let (mut w, rec) = JournalWriter::open(d.path(), JournalOptions::default()).unwrap();
    assert_eq!(rec.last_seq, 299);
    assert_eq!(w.append(1, 1, 0, b"x").unwrap(), 300);
}

/// A config of the file replay that journals into `dir/journal` (1 MiB segments).
fn journaled_config(dir: &Path) -> PathBuf {
    let cfg = std::fs::read_to_string("config/run-file.toml").unwrap();
    let fills = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/leader-fills.jsonl");
    let cfg = cfg.replace(
        "\"leader-fills.jsonl\"",
        &format!("{:?}", fills.display().to_string()),
    );
    let cfg = format!("{cfg}\n[journal]\ndir = \"journal\"\nsegment_mib = 1\n");
    let path = dir.join("run.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

/// Regression (issue 10, finding 6): a full disk killed the engine with SIGBUS
/// and no message. A file size limit below the segment size stands in for the
/// full disk (SIGXFSZ ignored, so the kernel answers EFBIG as it would ENOSPC).
#[test]
fn regression_run_on_a_full_disk_says_so_and_a_restart_with_space_continues() {
    let d = tmp();
    let cfg = journaled_config(d.path());
    let o = std::process::Command::new("sh")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=524288 \"$@\"",
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_fillcast"))
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--progress", "0"])
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.signal(), None, "no signal\n{out}{err}");
    assert!(!o.status.success(), "{out}{err}");
    assert!(
        err.contains("no space for a new segment of 1 MiB"),
        "a clear error:\n{out}{err}"
    );
    // With room again, it runs.
    let o = fillcast_output(&["run", "--config", cfg.to_str().unwrap(), "--progress", "0"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let (ok, out, err) = inspect(&d.path().join("journal"), false);
    assert!(ok, "{out}{err}");
    assert!(out.contains("(seq 1 .."), "{out}");
}
