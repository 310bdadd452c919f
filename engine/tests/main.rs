//! The engine's tests: config loading, scenarios and properties (`no_alloc` stays a binary of its own: it installs a counting global allocator).
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.

mod architecture;
mod config_load;
mod properties;
mod scenarios;
