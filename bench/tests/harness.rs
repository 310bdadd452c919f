//! The harness binary end to end on the tiniest sizes: every scenario runs, the
//! JSON has the fields operators read, and the chart is a self-contained SVG.
//! Checks shape only; no figure and no time is asserted.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const SCENARIOS: [&str; 6] = ["fanout", "sustained", "journal", "sidecar", "e2e", "reload"];

fn bench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fillcast-bench"));
    // The sidecar's PostgreSQL part is covered by the sidecar's own tests.
    c.env_remove("FILLCAST_TEST_PG");
    c
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| {
        v.get(k)
            .unwrap_or_else(|| panic!("missing `{k}` of `{path}` in {v}"))
    })
}

fn check_variant(scenario: &str, v: &Value) {
    let name = get(v, "name").as_str().unwrap_or_default();
    let at = format!("{scenario} / {name}");
    assert!(
        matches!(
            get(v, "role").as_str(),
            Some("fillcast" | "baseline" | "reference")
        ),
        "{at}: role"
    );
    let samples = get(v, "samples").as_u64().unwrap_or(0);
    assert!(samples > 0, "{at}: no latency samples");
    let lat = get(v, "latency_ns");
    let mut last = 0;
    for p in ["p50", "p90", "p99", "p99_9", "max"] {
        let x = get(lat, p)
            .as_u64()
            .unwrap_or_else(|| panic!("{at}: {p} not a number"));
        assert!(x >= last, "{at}: percentiles must not decrease ({p})");
        last = x;
    }
    assert_eq!(get(lat, "count").as_u64(), Some(samples), "{at}: count");
    assert!(
        !get(lat, "spectrum").as_array().unwrap().is_empty(),
        "{at}: spectrum"
    );
    assert!(
        get(v, "throughput.value").as_f64().is_some_and(|x| x > 0.0),
        "{at}: throughput"
    );
    assert!(get(v, "throughput.unit").is_string(), "{at}: unit");
    assert!(get(v, "ratio").is_number(), "{at}: ratio");
}

#[test]
fn tiny_run_writes_json_with_every_field_and_an_svg_chart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("out/bench.json");
    let chart = dir.path().join("out/bench.html");
    let out = bench()
        .arg("--tiny")
        .args(SCENARIOS)
        .arg("--json")
        .arg(&json)
        .arg("--chart")
        .arg(&chart)
        .current_dir(dir.path())
        .output()
        .expect("run fillcast-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fillcast-bench failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("JSON:") && stdout.contains("chart:"),
        "{stdout}"
    );

    let run: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("valid JSON");
    assert_eq!(get(&run, "schema").as_u64(), Some(1));
    assert!(get(&run, "timestamp")
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let argv = get(&run, "command_line").as_array().expect("command line");
    assert!(argv.iter().any(|a| a == "--tiny"));
    // "unknown" outside a checkout (the temp dir usually is).
    assert!(get(&run, "git.revision")
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    assert!(get(&run, "git").get("dirty").is_some());
    assert!(get(&run, "machine.cores").as_u64().is_some_and(|n| n >= 1));
    for k in ["cpu_model", "kernel"] {
        assert!(get(&run, &format!("machine.{k}")).is_string());
    }
    assert!(get(&run, "machine.memory_bytes").is_u64());

    let scenarios = get(&run, "scenarios").as_array().expect("scenarios");
    let names: Vec<&str> = scenarios
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, SCENARIOS);
    for s in scenarios {
        let name = s["name"].as_str().unwrap_or_default();
        let threads = get(s, "threads").as_array().expect("threads");
        assert!(!threads.is_empty(), "{name}: thread layout");
        for t in threads {
            for k in ["variant", "thread", "work"] {
                assert!(get(t, k).is_string(), "{name}: thread {k}");
            }
            assert!(t.get("pinned_cpu").is_some(), "{name}: pinning");
        }
        assert!(get(s, "baseline").is_string());
        let cases = get(s, "cases").as_array().expect("cases");
        assert!(!cases.is_empty(), "{name}: no case");
        for c in cases {
            assert!(get(c, "ratio").is_number(), "{name}: case ratio");
            assert!(get(c, "ratio_basis").is_string());
            let variants = get(c, "variants").as_array().expect("variants");
            let roles: Vec<&str> = variants.iter().filter_map(|v| v["role"].as_str()).collect();
            assert!(
                roles.contains(&"fillcast") && roles.contains(&"baseline"),
                "{name}: {roles:?}"
            );
            for v in variants {
                check_variant(name, v);
            }
        }
    }
    let sidecar = &scenarios[3];
    assert!(
        get(sidecar, "skipped").as_array().is_some_and(|s| s
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("postgres")))),
        "the sidecar says why PostgreSQL did not run"
    );

    let html = std::fs::read_to_string(&chart).expect("chart written");
    assert!(html.contains("<svg") && html.contains("</svg>"));
    assert!(
        html.contains("<path class=\"data line\""),
        "the chart draws the spectra"
    );
    for external in ["<script", "src=", "href=", "@import"] {
        assert!(!html.contains(external), "self-contained: no {external}");
    }
}

#[test]
fn svg_chart_when_asked_and_default_paths_under_target() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = bench()
        .args(["--tiny", "journal", "--chart", "c.svg"])
        .current_dir(dir.path())
        .output()
        .expect("run fillcast-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(dir.path().join("c.svg")).expect("svg written");
    assert!(svg.starts_with("<svg"));
    assert!(Path::new(&dir.path().join("target/bench/bench.json")).exists());
}

#[test]
fn help_explains_every_scenario_and_its_baseline() {
    let out = bench().arg("--help").output().expect("run --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for s in SCENARIOS {
        assert!(help.contains(s), "--help names `{s}`");
    }
    assert!(
        help.matches("Baseline").count() >= SCENARIOS.len(),
        "{help}"
    );
    for flag in [
        "--quick",
        "--json",
        "--chart",
        "--pg",
        "--followers",
        "--samples",
    ] {
        assert!(help.contains(flag), "--help lists {flag}");
    }
}

#[test]
fn unknown_scenario_is_refused() {
    let out = bench().arg("nonsense").output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

/// A benchmark, not a test: without its venue `fixe2e` ends the run before any
/// scenario, non-zero, naming the file and how to build it.
#[test]
fn fixe2e_without_the_venue_exits_non_zero_and_says_how_to_build_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = bench()
        .args([
            "--tiny",
            "journal",
            "fixe2e",
            "--fixvenue",
            "/nonexistent/fixvenue",
        ])
        .current_dir(dir.path())
        .output()
        .expect("run fillcast-bench");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/fixvenue") && stderr.contains("scripts/install-quickfix.sh"),
        "{stderr}"
    );
    assert!(!stderr.contains("journal done"), "nothing ran: {stderr}");
}

/// `fixe2e` on the tiniest sizes against the QuickFIX venue: the JSON has the
/// FIX variant, the tmpfs reference (where there is a /dev/shm) and the sim
/// baseline, with every field. Skipped, saying why, when the venue is not built
/// and `FILLCAST_REQUIRE_FIX` is not set.
#[test]
fn tiny_fixe2e_against_quickfix_writes_every_field() {
    let bin = std::env::var_os("FILLCAST_FIXVENUE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixvenue/fixvenue"),
        std::path::PathBuf::from,
    );
    if !bin.is_file() {
        let required =
            std::env::var("FILLCAST_REQUIRE_FIX").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(
            !required,
            "FILLCAST_REQUIRE_FIX is set but {} is missing",
            bin.display()
        );
        println!(
            "skipped: {} is missing (scripts/install-quickfix.sh builds it)",
            bin.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("bench.json");
    let out = bench()
        .args(["--tiny", "fixe2e", "--fixvenue"])
        .arg(&bin)
        .arg("--json")
        .arg(&json)
        .current_dir(dir.path())
        .output()
        .expect("run fillcast-bench");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
        .expect("valid JSON");
    let s = &get(&run, "scenarios").as_array().expect("scenarios")[0];
    assert_eq!(get(s, "name").as_str(), Some("fixe2e"));
    let case = &get(s, "cases").as_array().expect("cases")[0];
    let variants = get(case, "variants").as_array().expect("variants");
    let names: Vec<&str> = variants.iter().filter_map(|v| v["name"].as_str()).collect();
    let mut want = vec!["FIX (QuickFIX venue)", "sim venue wire"];
    if Path::new("/dev/shm").is_dir() {
        want.insert(1, "FIX, session stores on tmpfs");
    }
    assert_eq!(names, want);
    for v in variants {
        check_variant("fixe2e", v);
        assert_eq!(get(v, "extra.unmatched_fills").as_f64(), Some(0.0), "{v}");
        assert_eq!(get(v, "extra.source_rejected").as_f64(), Some(0.0), "{v}");
        // 100 followers, every one moved by every fill: 4 chunks of 32 or fewer.
        assert_eq!(get(v, "extra.orders_per_fill").as_f64(), Some(100.0), "{v}");
        assert_eq!(get(v, "extra.submits_per_fill").as_f64(), Some(4.0), "{v}");
    }
    assert!(
        get(s, "notes").as_array().is_some_and(|n| !n
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.contains("event key")))),
        "the drop copy's fills are the in-process source's: {s}"
    );
}
