//! The SQL sidecar's tests, on SQLite and on PostgreSQL: the scenarios are
//! written once (`sidecar`) and run on each database by its own module.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod common;
mod sidecar;
mod sidecar_postgres;
mod sidecar_sqlite;

/// The body of the sidecar process that the kill tests start from this binary
/// (`common::spawn_child_sidecar`) when their variables are set. Run as an
/// ordinary test, it checks that child mode itself: a child started on a small
/// journal replays all of it into its database and exits cleanly.
#[test]
fn child_sidecar_process() {
    if std::env::var_os("FILLCAST_SIDECAR_CHILD_JOURNAL").is_some() {
        common::child_sidecar_process();
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("j");
    let spec = fillcast_sql::sidecar::synth::SynthSpec {
        followers: 4,
        paused_pct: 0,
        seed: 3,
    };
    common::journal(&dir, &spec, 20);
    let db = tmp.path().join("child.db");
    let url = format!("sqlite:{}", db.display());
    let bin = common::child_binary(tmp.path());
    let status = common::spawn_child_sidecar(&bin, &dir, &url)
        .wait()
        .expect("child exit");
    assert!(status.success(), "child failed: {status}");
    let c = rusqlite::Connection::open(&db).expect("the child's database");
    let fills: i64 = c
        .query_row("SELECT COUNT(*) FROM leader_fills", [], |r| r.get(0))
        .expect("leader_fills");
    assert_eq!(fills, 20, "the child replayed the whole journal");
}
