//! `fillcast-sim`: the simulated venue as its own process, so that it outlives the
//! engine (crash tests kill the engine, restart it, and compare its positions with
//! this venue's books).
//!
//! ```text
//! fillcast-sim --config FILE [--venue NAME] [--listen 127.0.0.1:0]
//!              [--port-file PATH] [--stop-file PATH] [--positions-file PATH]
//! ```
//!
//! Everything is in `fillcast_gateways::simserver::main_with_args` (shared with
//! `fillcast sim-venue`); see `StandaloneOptions` for the flags.

use std::process::ExitCode;

fn main() -> ExitCode {
    fillcast_gateways::simserver::main_with_args(std::env::args().skip(1))
}
