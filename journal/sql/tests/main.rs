//! The SQL sidecar's tests, on SQLite and on PostgreSQL: the scenarios are
//! written once (`sidecar`) and run on each database by its own module.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod common;
mod sidecar;
mod sidecar_postgres;
mod sidecar_sqlite;

/// Not a test of its own: the body of the sidecar process that the kill tests
/// start from this binary (`common::spawn_child_sidecar`); it returns at once
/// unless their variables are set.
#[test]
fn child_sidecar_process() {
    common::child_sidecar_process();
}
