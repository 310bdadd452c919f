//! The real `fillcast` binary: check-config, run, demo, sidecar and report, with good
//! and bad input.

use fillcast_sql::sidecar::rusqlite;

use crate::support::{figure, figure_after, fillcast_output, text, tmp};
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn help_explains_every_command() {
    let o = fillcast_output(&["--help"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for cmd in [
        "demo",
        "run",
        "check-config",
        "sidecar",
        "report",
        "journal",
        "ctl",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}:\n{out}");
    }
    let (demo_help, _) = text(&fillcast_output(&["demo", "--help"]));
    for opt in ["--followers", "--leaders", "--duration", "--seed"] {
        assert!(demo_help.contains(opt), "demo --help lacks {opt}");
    }
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    for f in ["config/example.toml", "config/run-file.toml"] {
        let o = fillcast_output(&["check-config", f]);
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
    let o = fillcast_output(&["check-config", path.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("bad.toml:3"),
        "error should name the file and line 3:\n{err}"
    );
    let o = fillcast_output(&["check-config", "does/not/exist.toml"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("exist.toml"));
}

#[test]
fn run_replays_a_file_source_through_the_sim_venue() {
    let o = fillcast_output(&["run", "--config", "config/run-file.toml", "--progress", "0"]);
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
    // No journal configured: no journal line.
    assert!(!out.contains("journal this run"), "{out}");
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
    let o = fillcast_output(&[
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
fn regression_rejected_lines_past_the_first_thousand_appeared_nowhere() {
    // Issue 10, finding 7: the summary counted at most 1,000 rejected lines and the
    // rest were neither printed nor counted.
    let tmpdir = tmp();
    let dir = tmpdir.path();
    let good = std::fs::read_to_string("config/leader-fills.jsonl").unwrap();
    let first = good.lines().next().unwrap();
    let mut fills = format!("{first}\n");
    for _ in 0..1500 {
        fills.push_str("not json\n");
    }
    std::fs::write(dir.join("fills.jsonl"), fills).unwrap();
    let cfg = std::fs::read_to_string("config/run-file.toml")
        .unwrap()
        .replace(
            "leader-fills.jsonl",
            dir.join("fills.jsonl").to_str().unwrap(),
        );
    std::fs::write(dir.join("run.toml"), cfg).unwrap();
    let o = fillcast_output(&[
        "run",
        "--config",
        dir.join("run.toml").to_str().unwrap(),
        "--progress",
        "0",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("rejected by sources 1,500)"), "{out}");
    let reported = err.lines().filter(|l| l.contains("rejected: ")).count();
    assert_eq!(reported, 1500, "every rejected line is printed");
    assert!(err.contains("fills.jsonl:1501:"), "the last one too");
}

#[test]
fn demo_runs_small_and_reconciles_with_the_venue() {
    let dir = tmp();
    let out_dir = dir.path().join("demo");
    let args = [
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
        "--out",
        out_dir.to_str().unwrap(),
    ];
    let o = fillcast_output(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert_eq!(figure(&out, "leader fills in"), 200, "{out}");
    let orders = figure(&out, "follower orders out");
    assert!(orders > 1000, "{out}");
    assert!(out.contains("duplicate client order ids 0"), "{out}");
    assert!(out.contains("engine/venue position mismatches 0"), "{out}");
    assert!(out.contains("p99"), "{out}");
    // What the journal took, and its bytes a follower order (issue 14).
    let bytes = figure(&out, "journal this run");
    let per_order = figure_after(&out, "bytes (");
    assert!(bytes > 0 && per_order > 0, "{out}");
    assert_eq!(per_order, bytes / orders, "{out}");

    // It ends with the sidecar into SQLite and the reports, and says where they are.
    let db = out_dir.join("fillcast.db");
    for f in [
        &db,
        &out_dir.join("report.html"),
        &out_dir.join("report.json"),
    ] {
        assert!(f.is_file(), "{} missing:\n{out}", f.display());
        assert!(
            out.contains(&f.display().to_string()),
            "{} not named:\n{out}",
            f.display()
        );
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count =
        |sql: &str| -> u64 { conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    assert_eq!(count("SELECT count(*) FROM leader_fills"), 200);
    assert_eq!(count("SELECT count(*) FROM follower_orders"), orders);
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("<svg") && html.contains("chart-latency"),
        "no charts in the page"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["leaders"].as_array().map(Vec::len),
        Some(4),
        "{json:#}"
    );
    assert!(
        json["latency"]["count"].as_u64() == Some(200),
        "{}",
        json["latency"]
    );
    // Where the followers' P&L came from (issue 16): the parts add up to the
    // total, the market's spread and impact and the fees are costs, and most
    // fills are priced against the leader fill they copied.
    let a = &json["pnl_attribution"];
    let dec = |k: &str| -> rust_decimal::Decimal {
        a[k].as_str()
            .unwrap_or_else(|| panic!("{k}: {a:#}"))
            .parse()
            .unwrap()
    };
    let funding = a["funding"]
        .as_str()
        .map_or(rust_decimal::Decimal::ZERO, |f| f.parse().unwrap());
    assert_eq!(
        dec("leaders_trading") + dec("spread_and_impact") + dec("fees") + funding,
        dec("total"),
        "{a:#}"
    );
    assert!(dec("residual").is_zero(), "{a:#}");
    assert!(
        dec("spread_and_impact") < rust_decimal::Decimal::ZERO,
        "{a:#}"
    );
    assert!(dec("fees") < rust_decimal::Decimal::ZERO, "{a:#}");
    let at_leader = a["fills_at_leader_price"].as_u64().unwrap();
    let at_last = a["fills_at_last_price"].as_u64().unwrap();
    assert!(at_leader > at_last, "{a:#}");
    let total: rust_decimal::Decimal = json["followers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["net_pnl"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, dec("total"), "the followers' net P&L");
    assert!(
        out.contains("where it came from: leaders' trading"),
        "the demo's summary splits follower P&L:\n{out}"
    );

    // The leaderboard's followers filter on the demo's data (issue 16): at the
    // most any leader has, only the leaders that have it are ranked, and every
    // other is left out with its count.
    let counts: Vec<u64> = json["leaders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["followers"].as_u64().unwrap())
        .collect();
    let most = *counts.iter().max().unwrap();
    let lb = out_dir.join("lb.json");
    let o = fillcast_output(&[
        "report",
        "--db",
        &format!("sqlite:{}", db.display()),
        "--leaderboard",
        "--period",
        "all",
        "--min-followers",
        &most.to_string(),
        "--json",
        lb.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lb).unwrap()).unwrap();
    let ranked = v["leaders"].as_array().unwrap();
    assert_eq!(
        ranked.len(),
        counts.iter().filter(|&&c| c == most).count(),
        "{v:#}"
    );
    assert!(ranked.iter().all(|r| r["followers"] == most), "{v:#}");
    assert_eq!(
        v["left_out"].as_array().unwrap().len() + ranked.len(),
        counts.len(),
        "{v:#}"
    );
    let lb_text = fillcast_output(&[
        "report",
        "--db",
        &format!("sqlite:{}", db.display()),
        "--leaderboard",
        "--period",
        "all",
        "--min-followers",
        &most.to_string(),
    ]);
    assert!(lb_text.status.success(), "{:?}", text(&lb_text));

    // The trailing windows hold the demo's trading (venue time starts now).
    let l = &json["leaders"][0]["windows"];
    assert_eq!(l[0]["window"], "7d");
    assert_eq!(
        l[0]["trades"],
        l[l.as_array().unwrap().len() - 1]["trades"],
        "{l:#}"
    );

    // A rerun replaces its own directory; it never takes over somebody else's.
    drop(conn);
    let o = fillcast_output(&args);
    assert!(o.status.success(), "{:?}", text(&o));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count =
        |sql: &str| -> u64 { conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    assert_eq!(
        count("SELECT count(*) FROM leader_fills"),
        200,
        "rerun starts afresh"
    );
    let foreign = dir.path().join("mine");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), "keep").unwrap();
    let o = fillcast_output(&[
        "demo",
        "--followers",
        "10",
        "--duration",
        "0.1",
        "--out",
        foreign.to_str().unwrap(),
    ]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(err.contains("was not made by `fillcast demo`"), "{err}");
    assert!(foreign.join("precious.txt").is_file());
}

/// Runs the file replay with a journal in `dir/journal`, then the sidecar into
/// `dir/fc.db`; returns the database address.
fn journal_into_sqlite(dir: &Path) -> String {
    let cfg = journaled_config(dir, 100_000);
    let latency = dir.join("latency.json");
    let o = fillcast_output(&[
        "run",
        "--progress",
        "0",
        "--config",
        cfg.to_str().unwrap(),
        "--latency-out",
        latency.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(latency.is_file());
    let db = format!("sqlite:{}", dir.join("fc.db").display());
    let o = fillcast_output(&[
        "sidecar",
        "--journal",
        dir.join("journal").to_str().unwrap(),
        "--db",
        &db,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("sidecar: ") && out.contains("rows"), "{out}");
    db
}

#[test]
fn sidecar_then_report_at_the_command_line() {
    let dir = tmp();
    let db = journal_into_sqlite(dir.path());
    let journal = dir.path().join("journal");
    let records = fillcast_journal::JournalReader::open(&journal)
        .unwrap()
        .iter_from(1)
        .count() as i64;
    let conn = rusqlite::Connection::open(dir.path().join("fc.db")).unwrap();
    let next: i64 = conn
        .query_row("SELECT next_seq FROM sidecar_state", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        next,
        records + 1,
        "the read position is past the last record"
    );

    // A second run finds nothing new and writes nothing.
    let o = fillcast_output(&[
        "sidecar",
        "--journal",
        journal.to_str().unwrap(),
        "--db",
        &db,
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("sidecar: 0 records"), "{out}");

    let (json, html) = (dir.path().join("r.json"), dir.path().join("r.html"));
    let o = fillcast_output(&[
        "report",
        "--db",
        &db,
        "--json",
        json.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--latency",
        dir.path().join("latency.json").to_str().unwrap(),
        "--settlement",
        "daily",
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("leaders (") && out.contains("reconciliation"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "leaders",
        "followers",
        "fees",
        "reconciliation",
        "latency",
        "row_counts",
    ] {
        assert!(!v[key].is_null(), "JSON lacks {key}");
    }
    assert!(v["latency"]["count"].as_u64().unwrap() > 0);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));

    // Lineage of a real order: its leader fill and the instruction behind it.
    let id: String = conn
        .query_row(
            "SELECT client_order_id FROM follower_orders ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let o = fillcast_output(&["report", "--db", &db, "--lineage", &id]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains(&id), "{out}");
    let o = fillcast_output(&["report", "--db", &db, "--lineage", "fc-no-such-order"]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("fc-no-such-order"), "{:?}", text(&o));

    // The leaderboard, printed and as JSON.
    let lb = dir.path().join("lb.json");
    let o = fillcast_output(&[
        "report",
        "--db",
        &db,
        "--leaderboard",
        "--period",
        "all",
        "--min-followers",
        "1",
        "--json",
        lb.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("fillcast leaderboard over all"), "{out}");
    assert!(out.contains("ranked by ROI over the period"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lb).unwrap()).unwrap();
    assert_eq!(v["schema"], "fillcast.leaderboard.v1");
    assert_eq!(v["filters"]["followers_min"], 1);
    let o = fillcast_output(&["report", "--db", &db, "--period", "7d"]);
    assert!(!o.status.success(), "--period without --leaderboard");

    // --as-of fixes the report's time; a date that does not exist is refused.
    let o = fillcast_output(&["report", "--db", &db, "--as-of", "2030-01-02T03:04:05Z"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("as of 2030-01-02 03:04:05 UTC"), "{out}");
    let o = fillcast_output(&["report", "--db", &db, "--as-of", "2026-02-30"]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("--as-of `2026-02-30`: no such date"),
        "{:?}",
        text(&o)
    );

    // One follower's own report; an unknown follower is named.
    let follower: String = conn
        .query_row(
            "SELECT follower_id FROM follower_fills ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (fj, fh) = (dir.path().join("f.json"), dir.path().join("f.html"));
    let o = fillcast_output(&[
        "report",
        "--db",
        &db,
        "--follower",
        &follower,
        "--json",
        fj.to_str().unwrap(),
        "--html",
        fh.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!("fillcast follower report: {follower}")),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fj).unwrap()).unwrap();
    assert_eq!(v["schema"], "fillcast.follower.v1");
    assert_eq!(v["follower"]["follower_id"], follower.as_str());
    assert!(std::fs::read_to_string(&fh).unwrap().contains(&follower));
    let o = fillcast_output(&["report", "--db", &db, "--follower", "no-such-follower"]);
    assert!(!o.status.success());
    assert!(
        text(&o)
            .1
            .contains("\"no-such-follower\" is not in the database"),
        "{:?}",
        text(&o)
    );
}

#[test]
fn sidecar_and_report_reject_bad_input_clearly() {
    let dir = tmp();
    let d = dir.path();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "sidecar".into(),
                "--journal".into(),
                d.join("none").display().to_string(),
                "--db".into(),
                "sqlite:x.db".into(),
            ],
            "no journal at",
        ),
        (
            vec![
                "sidecar".into(),
                "--journal".into(),
                d.display().to_string(),
                "--db".into(),
                "mysql://x".into(),
            ],
            "is not a database address",
        ),
        (
            vec![
                "report".into(),
                "--db".into(),
                format!("sqlite:{}", d.join("missing.db").display()),
            ],
            "no SQLite database at",
        ),
        (
            vec![
                "report".into(),
                "--db".into(),
                "sqlite:x.db".into(),
                "--fee-rate".into(),
                "ten".into(),
            ],
            "--fee-rate",
        ),
        (
            vec![
                "report".into(),
                "--db".into(),
                "sqlite:x.db".into(),
                "--fee-rate".into(),
                "1.5".into(),
            ],
            "outside [0, 1]",
        ),
        (
            vec![
                "report".into(),
                "--db".into(),
                "sqlite:x.db".into(),
                "--settlement".into(),
                "yearly".into(),
            ],
            "daily, weekly or monthly",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = fillcast_output(&args);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{args:?} should fail: {out}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in:\n{err}"
        );
    }
}

#[test]
fn report_names_the_latency_file_and_what_is_wrong_with_it() {
    let dir = tmp();
    let db = journal_into_sqlite(dir.path());
    for (body, expected) in [
        ("not json", "not JSON"),
        ("{\"buckets\": 3}", "\"buckets\""),
        ("{\"buckets\": [[1, 2], [3]]}", "bucket 1"),
        ("{\"buckets\": [[1, -2]]}", "bucket 0"),
        ("{\"buckets\": [[1, 2]", "not JSON"),
    ] {
        let f = dir.path().join("bad-latency.json");
        std::fs::write(&f, body).unwrap();
        let o = fillcast_output(&["report", "--db", &db, "--latency", f.to_str().unwrap()]);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{body}");
        assert!(
            err.contains("bad-latency.json") && err.contains(expected),
            "{body}: {err}"
        );
    }
}

#[test]
fn sidecar_follow_picks_up_a_live_journal_and_stops_on_sigterm() {
    let dir = tmp();
    let cfg = journaled_config(dir.path(), 400);
    let journal = dir.path().join("journal");
    let db = format!("sqlite:{}", dir.path().join("live.db").display());
    // The sidecar starts first, before the journal exists.
    let sidecar = Command::new(env!("CARGO_BIN_EXE_fillcast"))
        .args(["sidecar", "--follow", "--progress", "0", "--journal"])
        .arg(&journal)
        .args(["--db", &db])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let o = fillcast_output(&["run", "--progress", "0", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let records = fillcast_journal::JournalReader::open(&journal)
        .unwrap()
        .iter_from(1)
        .count() as i64;
    let conn = rusqlite::Connection::open(dir.path().join("live.db")).unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let next: Option<i64> = conn
            .query_row("SELECT next_seq FROM sidecar_state", [], |r| r.get(0))
            .ok();
        if next == Some(records + 1) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "the follower never caught up: {next:?} of {records}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = sidecar.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let o = sidecar.wait_with_output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "SIGTERM is a clean stop: {out}{err}");
    assert!(
        out.contains(&format!("sidecar: {records} records")),
        "{out}"
    );
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

/// Every file `check-config` accepts, `run` can start: on a config whose journal
/// exists, `check-config` lays the file out after the journal's model and checks
/// it as a restart would apply it, listing what it changes; a file a restart would
/// refuse fails the check with the same reason, and `run` does refuse it.
#[test]
fn check_config_checks_the_file_against_its_journal() {
    let dir = tmp();
    let cfg = journaled_config(dir.path(), 100_000);
    let text0 = std::fs::read_to_string(&cfg).unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["check-config", cfg.to_str().unwrap()];
        args.extend_from_slice(extra);
        let o = fillcast_output(&args);
        let (out, err) = text(&o);
        (o.status.success(), out, err)
    };
    let (ok, out, err) = check(&[]);
    assert!(ok && out.contains("none yet"), "{out}{err}");

    let o = fillcast_output(&["run", "--progress", "0", "-c", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let (ok, out, err) = check(&[]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("this file is that revision (nothing to apply)"),
        "{out}"
    );

    // Added: applies, and says what it changes.
    let added = format!(
        "{text0}\n[[followers]]\nid = \"F9\"\nequity = \"1000\"\n\n[[subscriptions]]\nfollower = \"F9\"\nleader = \"L1\"\nallocation = \"1000\"\nmode = \"fixed_ratio\"\nratio = \"0.01\"\n"
    );
    std::fs::write(&cfg, &added).unwrap();
    let (ok, out, err) = check(&[]);
    assert!(ok, "{out}{err}");
    for line in [
        "applies this file as revision",
        "followers[F9]: added",
        "subscriptions[F9:L1]: added",
    ] {
        assert!(out.contains(line), "`{line}` not in:\n{out}");
    }

    // Refused by a restart, so refused here, with the reason and the change.
    let resized = text0.replace("dedup_window = 4096", "dedup_window = 8192");
    let moved = text0.replacen(
        "id = \"F5-L1\"\nfollower = \"F5\"",
        "id = \"F5-L1\"\nfollower = \"F6\"",
        1,
    );
    assert_ne!(moved, text0);
    for (name, edited, why) in [
        ("resized", &resized, "dedup_window"),
        ("moved", &moved, "F5-L1"),
    ] {
        std::fs::write(&cfg, edited).unwrap();
        let (ok, out, err) = check(&[]);
        assert!(!ok, "{name}: accepted:\n{out}{err}");
        assert!(
            err.contains("cannot run on its journal") && err.contains(why),
            "{name}: {err}"
        );
        // `run` refuses it as well, and the journal is untouched by either.
        let o = fillcast_output(&["run", "--progress", "0", "-c", cfg.to_str().unwrap()]);
        assert!(!o.status.success(), "{name}: run started");
        assert!(text(&o).1.contains(why), "{name}: {:?}", text(&o));
    }
    // Against another journal directory: none there yet.
    std::fs::write(&cfg, &text0).unwrap();
    let elsewhere = dir.path().join("elsewhere");
    let (ok, out, _) = check(&["--journal", elsewhere.to_str().unwrap()]);
    assert!(ok && out.contains("none yet"), "{out}");
    assert!(!elsewhere.exists(), "check-config made a directory");
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
    let o = fillcast_output(&["run", "--progress", "0", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let journal = dir.path().join("journal");
    let (out, _) = text(&fillcast_output(&[
        "journal",
        "inspect",
        journal.to_str().unwrap(),
    ]));
    assert!(
        out.contains("leader_fill") && out.contains("decision") && out.contains("config"),
        "{out}"
    );
    let o = fillcast_output(&[
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
    let o = fillcast_output(&[
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

/// Issue 12, live inputs: a file source's mark and equity lines reach the core,
/// the journal and the sidecar's `mark_prices` and `leader_equity` tables, beside
/// its fills; a bad one is reported with its line and skipped.
#[test]
fn mark_and_equity_lines_reach_the_journal_and_sql() {
    let dir = tmp();
    let mut lines = std::fs::read_to_string("config/leader-fills.jsonl").unwrap();
    let fills = lines.lines().count();
    lines.push_str(concat!(
        r#"{"type":"mark","symbol":"BTCUSDT","price":"64990.5","ts":1732060900000000000}"#,
        "\n",
        r#"{"type":"equity","leader":"L2","equity":"240000","ts":1732060900000000001}"#,
        "\n",
        r#"{"type":"mark","symbol":"NOPE","price":"1","ts":1732060900000000002}"#,
        "\n",
        r#"{"type":"mark","symbol":"ETHUSDT","price":"3390.01","ts":"1732060900000000003"}"#,
        "\n",
        r#"{"type":"equity","follower":"F3","equity":"48000.5","ts":1732060900000000004}"#,
        "\n",
    ));
    let file = dir.path().join("live.jsonl");
    std::fs::write(&file, &lines).unwrap();
    let o = run_on_file(dir.path(), &file, "", "live");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        format!("{out}{err}").contains(&format!("live.jsonl:{}: unknown symbol `NOPE`", fills + 3)),
        "the bad line is named:\n{out}{err}"
    );
    let db = format!("sqlite:{}", dir.path().join("live.db").display());
    let journal = dir.path().join("journal");
    let o = fillcast_output(&[
        "sidecar",
        "--journal",
        journal.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let conn = rusqlite::Connection::open(dir.path().join("live.db")).unwrap();
    let marks: Vec<(String, String)> = conn
        .prepare("SELECT symbol, price FROM mark_prices ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        marks,
        [
            ("BTCUSDT".to_string(), "64990.5".to_string()),
            ("ETHUSDT".to_string(), "3390.01".to_string())
        ]
    );
    let equity: Vec<(String, String)> = conn
        .prepare("SELECT leader_id, equity FROM leader_equity ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(equity, [("L2".to_string(), "240000".to_string())]);
    let follower: Vec<(String, String)> = conn
        .prepare("SELECT follower_id, equity FROM follower_equity ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(follower, [("F3".to_string(), "48000.5".to_string())]);
}

/// Issue 16, end to end: a file source's funding lines go through the engine
/// into the journal (`journal inspect`), the sidecar writes a rate row each and
/// a payment for every position open then, and `report --json` puts them in the
/// leaders' and followers' P&L. The leaders' payments are fixed by the file
/// (1.25 BTC of L1 and 10 ETH of L2 are open there); the followers' depend on
/// what the simulated venue had filled by then (the file is paced at 50 lines a
/// second, so its copies of the first fills are filled, 20 µs away, 20 ms
/// before the funding), so each is checked against its position and the report
/// against the sums.
#[test]
fn funding_lines_reach_the_journal_sql_and_report() {
    let dir = tmp();
    let fills: Vec<String> = std::fs::read_to_string("config/leader-fills.jsonl")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let mut lines = fills[..5].to_vec();
    lines.extend([
        r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.0001","mark_price":"65100.0","ts":1732060800004500000}"#.to_string(),
        r#"{"type":"funding","symbol":"ETHUSDT","rate":"-0.00025","mark_price":"3401.25","ts":1732060800004500000}"#.to_string(),
        r#"{"type":"funding","symbol":"BTCUSDT","rate":"0.5%","mark_price":"65100.0","ts":1732060800004600000}"#.to_string(),
    ]);
    lines.extend(fills[5..].iter().cloned());
    let file = dir.path().join("funding.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let o = run_on_file(dir.path(), &file, "\nrate_per_sec = 50", "funding");
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        format!("{out}{err}")
            .contains("funding.jsonl:8: field `rate`: `0.5%` is not a decimal number"),
        "the bad line is named:\n{out}{err}"
    );

    let journal = dir.path().join("journal");
    let o = fillcast_output(&["journal", "inspect", journal.to_str().unwrap(), "--json"]);
    let (json, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let funding: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "funding")
        .collect();
    assert_eq!(funding.len(), 2, "{funding:?}");
    assert_eq!(funding[0]["rate"], "0.0001");
    assert_eq!(funding[1]["rate"], "-0.00025");

    let db = format!("sqlite:{}", dir.path().join("funding.db").display());
    let o = fillcast_output(&[
        "sidecar",
        "--journal",
        journal.to_str().unwrap(),
        "--db",
        &db,
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
    let conn = rusqlite::Connection::open(dir.path().join("funding.db")).unwrap();
    let rates: Vec<(String, String, String)> = conn
        .prepare("SELECT symbol, rate, mark_price FROM funding_rates ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let own = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        rates,
        [
            own("BTCUSDT", "0.0001", "65100"),
            own("ETHUSDT", "-0.00025", "3401.25")
        ]
    );
    type Payment = (String, Option<String>, String, String, String, String);
    let payments: Vec<Payment> = conn
        .prepare(
            "SELECT leader_id, subscription_id, position_qty, mark_price, rate, amount \
             FROM funding_payments ORDER BY seq, line",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let dec = |s: &str| rust_decimal::Decimal::from_str_exact(s).unwrap();
    // L1 holds 0.5 + 0.5 + 0.25 BTC: −1.25 × 65100 × 0.0001 = −8.1375. L2 holds
    // 10 ETH: −10 × 3401.25 × −0.00025 = 8.503125.
    let leaders: Vec<(&str, &str, &str)> = payments
        .iter()
        .filter(|p| p.1.is_none())
        .map(|p| (p.0.as_str(), p.2.as_str(), p.5.as_str()))
        .collect();
    assert_eq!(
        leaders,
        [("L1", "1.25", "-8.1375"), ("L2", "10", "8.503125")]
    );
    let mut by_sub: std::collections::BTreeMap<String, rust_decimal::Decimal> = Default::default();
    for p in payments.iter().filter(|p| p.1.is_some()) {
        let want = (-dec(&p.2) * dec(&p.3) * dec(&p.4))
            .round_dp_with_strategy(8, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        assert_eq!(dec(&p.5), want, "{p:?}");
        assert_ne!(dec(&p.2), rust_decimal::Decimal::ZERO, "{p:?}");
        *by_sub.entry(p.1.clone().unwrap()).or_default() += dec(&p.5);
    }
    assert!(
        !by_sub.is_empty(),
        "no follower held a position at the funding: {payments:?}"
    );

    let report = dir.path().join("funding.json");
    let o = fillcast_output(&["report", "--db", &db, "--json", report.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("funding -8.14"), "{out}");
    assert!(
        out.contains("definitions:\n  funding: At each funding input"),
        "{out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let leader = |id: &str| {
        v["leaders"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["leader_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(leader("L1")["funding"], "-8.1375");
    assert_eq!(leader("L2")["funding"], "8.503125");
    assert_eq!(v["row_counts"]["funding_payments"], payments.len() as u64);
    for f in v["followers"].as_array().unwrap() {
        let mut total = rust_decimal::Decimal::ZERO;
        for s in f["subscriptions"].as_array().unwrap() {
            let id = s["subscription_id"].as_str().unwrap();
            let want = by_sub.get(id).copied().unwrap_or_default();
            assert_eq!(dec(s["funding"].as_str().unwrap()), want, "{id}");
            let parts = dec(s["realized_pnl"].as_str().unwrap())
                + dec(s["unrealized_pnl"].as_str().unwrap())
                - dec(s["fees_paid"].as_str().unwrap())
                + want;
            assert_eq!(dec(s["net_pnl"].as_str().unwrap()), parts, "{id}");
            total += want;
        }
        assert_eq!(
            dec(f["funding"].as_str().unwrap()),
            total,
            "{}",
            f["follower_id"]
        );
    }
}

/// With `--log-format json` every line the engine logs on stderr is one JSON
/// object with a level and a message; a command's line carries who sent it and
/// what was asked.
#[test]
fn json_logs_are_one_object_per_line_and_commands_carry_uid_and_request() {
    let dir = tmp();
    let cfg = dir.path().join("live.toml");
    let run_file = std::fs::read_to_string("config/run-file.toml").unwrap();
    let fills = std::fs::canonicalize("config/leader-fills.jsonl").unwrap();
    std::fs::write(
        &cfg,
        run_file.replace(
            "path = \"leader-fills.jsonl\"",
            &format!(
                "path = {:?}\nrate_per_sec = 50",
                fills.display().to_string()
            ),
        ) + "\n[journal]\ndir = \"j\"\n",
    )
    .unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let engine = Command::new(env!("CARGO_BIN_EXE_fillcast"))
        .args([
            "--log-format",
            "json",
            "run",
            "-c",
            cfg_s,
            "--until-stopped",
            "--progress",
            "0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ctl = |words: &[&str]| {
        let mut args = vec!["ctl", "-c", cfg_s];
        args.extend(words);
        fillcast_output(&args)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !ctl(&["status"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "the engine never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(ctl(&["pause", "subscription", "F1:L1"]).status.success());
    assert!(!ctl(&["frobnicate"]).status.success());
    assert!(ctl(&["shutdown"]).status.success());
    let o = crate::support::finish(engine, std::time::Duration::from_secs(30));
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|v| v["level"].is_string() && v["message"].is_string()));
    let pause = lines
        .iter()
        .find(|v| v["request"] == "pause subscription F1:L1")
        .unwrap_or_else(|| panic!("no line for the pause: {err}"));
    assert_eq!(pause["uid"], "0");
    assert_eq!(pause["level"], "INFO");
    let refused = lines
        .iter()
        .find(|v| v["request"] == "frobnicate")
        .unwrap_or_else(|| panic!("no line for the refused command: {err}"));
    assert_eq!(refused["level"], "WARN");
    assert!(refused["message"].as_str().unwrap().contains("REFUSED"));
}

/// `ctl -c FILE` finds the socket of a file that does not validate (a reload is
/// how a person learns what is wrong with a file being edited), and says where it
/// looked when no engine answers there.
#[test]
fn ctl_finds_the_socket_of_an_invalid_config_and_says_where_it_looked() {
    let dir = tmp();
    let cfg = dir.path().join("broken.toml");
    std::fs::write(
        &cfg,
        "[journal]\ndir = \"jr\"\n\n[[subscriptions]]\nallocation = \"-5\"\n",
    )
    .unwrap();
    let o = fillcast_output(&["ctl", "-c", cfg.to_str().unwrap(), "status"]);
    let (_, err) = text(&o);
    assert!(!o.status.success());
    let want = dir.path().join("jr").join("control.sock");
    assert!(
        err.contains(&format!("cannot reach an engine at {}", want.display())),
        "{err}"
    );
    std::fs::write(&cfg, "[control]\nsocket = \"s/c.sock\"\n").unwrap();
    let (_, err) = text(&fillcast_output(&[
        "ctl",
        "-c",
        cfg.to_str().unwrap(),
        "status",
    ]));
    assert!(
        err.contains(&dir.path().join("s/c.sock").display().to_string()),
        "{err}"
    );
    std::fs::write(&cfg, "[engine]\n").unwrap();
    let (_, err) = text(&fillcast_output(&[
        "ctl",
        "-c",
        cfg.to_str().unwrap(),
        "status",
    ]));
    assert!(err.contains("no control socket"), "{err}");
    std::fs::write(&cfg, "[engine\n").unwrap();
    let (_, err) = text(&fillcast_output(&[
        "ctl",
        "-c",
        cfg.to_str().unwrap(),
        "status",
    ]));
    assert!(err.contains("--socket"), "{err}");
}

/// `fillcast run` on config/run-file.toml with its file source reading `file`
/// (`source_extra`: more keys of that source), journaling into `dir/journal`;
/// the config is written as `dir/NAME.toml`.
fn run_on_file(
    dir: &std::path::Path,
    file: &std::path::Path,
    source_extra: &str,
    name: &str,
) -> std::process::Output {
    let cfg = std::fs::read_to_string("config/run-file.toml")
        .unwrap()
        .replace(
            "\"leader-fills.jsonl\"",
            &format!("{:?}{source_extra}", file.display().to_string()),
        );
    let cfg_path = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg_path, format!("{cfg}\n[journal]\ndir = \"journal\"\n")).unwrap();
    fillcast_output(&[
        "run",
        "--progress",
        "0",
        "--config",
        cfg_path.to_str().unwrap(),
    ])
}
