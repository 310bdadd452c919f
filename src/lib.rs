//! The `fillcast` package's library: what the command line and its tests share
//! beyond the engine, gateway and journal crates.
//!
//! - `simulate`: the seeded whole-system simulator (`fillcast simulate`), which
//!   drives the real `Core`, a real journal and the simulated venue through faults,
//!   crashes and restarts, and checks the engine's promises at every step.

pub mod simulate;
