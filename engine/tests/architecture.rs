//! The invariants of ARCHITECTURE.md that the source itself can show: each test
//! reads the files that must keep one and fails naming the line that breaks it.
//! (Behavioural invariants are tested where they act: `no_alloc`, `properties`,
//! the scenarios, the journal's and the root crate's tests; ARCHITECTURE.md
//! names each one's test.)

use std::path::{Path, PathBuf};

fn src(file: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (path, text)
}

/// The lines of `file` (comments and its `#[cfg(test)]` module left out) that
/// contain any of `words`.
fn offending(file: &str, words: &[&str]) -> Vec<String> {
    let (path, text) = src(file);
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .filter(|(_, l)| words.iter().any(|w| l.contains(w)))
        .map(|(i, l)| format!("{}:{}: {}", path.display(), i + 1, l.trim()))
        .collect()
}

/// The files of the core stage and the kernels it runs.
const HOT: &[&str] = &[
    "core.rs",
    "fanout.rs",
    "sizing.rs",
    "risk.rs",
    "accounting.rs",
    "units.rs",
    "order.rs",
];

#[test]
fn the_core_reads_no_clock() {
    for f in HOT {
        let found = offending(f, &["clock::", "Instant", "SystemTime"]);
        assert!(
            found.is_empty(),
            "time must enter as inputs:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn the_core_takes_no_lock_and_does_no_io() {
    let words = [
        "Mutex",
        "RwLock",
        "std::fs",
        "std::net",
        "std::io",
        "println!",
        "eprintln!",
        "thread::sleep",
    ];
    for f in HOT {
        let found = offending(f, &words);
        assert!(
            found.is_empty(),
            "the core stage talks through rings only:\n{}",
            found.join("\n")
        );
    }
}

#[test]
fn no_float_decides_a_quantity_a_price_or_money() {
    for f in HOT
        .iter()
        .chain(&["model.rs", "pipeline.rs", "event.rs", "outputs.rs"])
    {
        let found = offending(f, &["f64", "f32"]);
        assert!(
            found.is_empty(),
            "integers or rust_decimal only:\n{}",
            found.join("\n")
        );
    }
}

/// Issue 14: the core's handlers compute in integers; `rust_decimal` stays in
/// the model, where config is resolved and where the rare inputs the integers
/// cannot prove go (`FollowerSpec::max_gross_at`, `SubscriptionSpec::ratio_at`).
#[test]
fn the_core_does_no_decimal_arithmetic() {
    let words = ["Decimal", "decimal", "max_gross_of", "proportional_ratio"];
    for f in ["core.rs", "fanout.rs", "sizing.rs", "risk.rs"] {
        let found = offending(f, &words);
        assert!(
            found.is_empty(),
            "integer units only on the core's path:\n{}",
            found.join("\n")
        );
    }
}

/// Every `.rs` file under `engine/src`, relative to it.
fn all_sources() -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("engine/src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, base, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(base).expect("under src");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&base, &base, &mut out);
    out
}

/// (The frozen model-v1 text of a venue, `MODEL_V1_VENUE_SETTINGS`, keeps the
/// simulated venue's keys as bytes every journaled revision hashes: not a kind
/// the engine knows, so its key names are not listed here.)
#[test]
fn the_engine_names_no_venue_or_source_kind() {
    let words = [
        "sim_remote",
        "SimVenue",
        "SimClient",
        "FileSource",
        "SyntheticLeaders",
        "VenueKind",
        "SimVenueConfig",
    ];
    let files = all_sources();
    assert!(files.len() > 10, "{files:?}");
    for f in &files {
        let found = offending(f, &words);
        assert!(
            found.is_empty(),
            "venue and source kinds live in gateways:\n{}",
            found.join("\n")
        );
    }
}
