//! fillcast SQL: what is built from a journal, apart from the journal itself.
//!
//! `sidecar` replays a journal into SQLite or PostgreSQL (the DESIGN.md tables,
//! defined in `fillcast-schema`), committing its read position with each batch and
//! verifying the journal's continuity under it. The reports read those tables
//! (`fillcast-report`).
//!
//! Kept apart from `fillcast-journal` so that a reader of journals (the engine, the
//! fuzz target, `journal inspect`) builds no SQL engine and no async runtime.

pub mod sidecar;
