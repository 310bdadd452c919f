//! The `fillcast` binary's integration tests: the real binary, its venue process, restarts and kills.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod binance;
mod binance_demo;
mod binance_faults;
mod cli;
mod crash;
mod fixvenue;
mod journal_damage;
mod keys;
mod lineage_kinds;
mod live;
mod never_unhedged;
mod replay_history;
mod restart_loop;
mod sim_venue;
mod simulate;
mod sql_secrets;
mod support;
