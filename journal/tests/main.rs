//! The journal's tests: segments, records, recovery, damage, the golden journal, large configs.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod config_journal;
mod golden;
mod journal;
mod journal_damage;
mod journal_rows;
mod restart;
