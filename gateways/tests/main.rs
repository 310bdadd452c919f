//! The gateways' tests: their config tables, the file source, the FIX codec, the simulated venue, its wire and server, the synthetic leaders, the fuzz bodies, a reload through the pipeline.
//!
//! One test binary for the crate (`autotests = false`): each file below is a
//! module, so the workspace links one binary here instead of one per file.
//! `fix_no_alloc` stays a binary of its own: it installs a counting global allocator.

mod common;
mod config;
mod file_source;
mod fix_app;
mod fix_codec;
mod fix_orderentry;
mod fix_session;
mod fuzz_bodies;
mod reload;
mod sim_outage;
mod sim_server;
mod sim_venue;
mod synthetic;
